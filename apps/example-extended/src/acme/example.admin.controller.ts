import { Body, Controller, Get, NotFoundException, Param, Put, Query } from '@nestjs/common';
import { ApiOkResponse, ApiProperty, ApiQuery } from '@nestjs/swagger';
import { IsBoolean, IsOptional, IsString, Matches, MaxLength } from 'class-validator';
import { IdpEvents, CurrentContext, RequestContext } from '@idp/core';
import { AdminApi } from '@idp/identity';
import { BearerToken, CurrentToken, RequireScopes } from '@idp/token';
import { UserStore } from '@idp/users';
import { LoginCounter } from './login-counter';
import { ProfilesService } from './profiles.service';

export class EmployeeProfileDto {
  @ApiProperty({ example: 'Engineering' })
  @IsString() @MaxLength(64) @Matches(/^[A-Za-z0-9 _.-]+$/, { message: 'department may contain letters, digits, spaces, _ . and - only' })
  department: string;

  @ApiProperty({ required: false, default: false })
  @IsOptional() @IsBoolean()
  flagged?: boolean;
}

export class EmployeeProfileView {
  @ApiProperty() user_id: string;
  @ApiProperty() department: string;
  @ApiProperty() flagged: boolean;
}

/**
 * Seam: admin routes. `@AdminApi('example')` puts the controller in the admin API (bearer access
 * tokens with aud = $ISSUER/admin, the admin error format, the OpenAPI document under the tag
 * `example`); each route names the scopes it needs with `@RequireScopes` (403 insufficient_scope
 * without them). The scopes themselves are added to the admin API by
 * `IdentityModule.forRoot({ adminScopes: ACME_ADMIN_SCOPES })`, so client grants can give them.
 */
@AdminApi('example')
@Controller('admin/example')
export class ExampleAdminController {
  constructor(
    private readonly counter: LoginCounter,
    private readonly profiles: ProfilesService,
    private readonly users: UserStore,
    private readonly events: IdpEvents,
  ) {}

  @Get('login-count')
  @RequireScopes('read:login_stats')
  @ApiQuery({ name: 'user_id', required: false })
  loginCount(@Query('user_id') userId?: string) {
    return this.counter.count(typeof userId === 'string' ? userId : undefined);
  }

  @Get('profiles/:user_id')
  @RequireScopes('read:employee_profiles')
  @ApiOkResponse({ type: EmployeeProfileView })
  async getProfile(@Param('user_id') userId: string): Promise<EmployeeProfileView> {
    const profile = userId.length <= 36 ? await this.profiles.find(userId) : null;
    if (!profile) throw new NotFoundException([`no employee profile for user ${userId}`]);
    return { user_id: profile.user_id, department: profile.department, flagged: profile.flagged };
  }

  @Put('profiles/:user_id')
  @RequireScopes('write:employee_profiles')
  @ApiOkResponse({ type: EmployeeProfileView })
  async setProfile(@Param('user_id') userId: string, @Body() dto: EmployeeProfileDto, @CurrentToken() token: BearerToken, @CurrentContext() ctx: RequestContext | undefined): Promise<EmployeeProfileView> {
    const user = userId.length <= 36 ? await this.users.findById(userId) : null;
    if (!user) throw new NotFoundException([`user ${userId} not found`]);
    const profile = await this.profiles.set(userId, { department: dto.department, flagged: dto.flagged ?? false });
    // The built-in audit log and any subscriber see the change (user.updated is audited).
    await this.events.emit('user.updated', { userId, actor: token.client_id }, ctx);
    return { user_id: profile.user_id, department: profile.department, flagged: profile.flagged };
  }
}
