import { Controller, Delete, Get, HttpCode, Param } from '@nestjs/common';
import { ApiNotFoundResponse, ApiOkResponse, ApiProperty } from '@nestjs/swagger';
import { ConsentService } from '@idp/consent';
import { UsersService } from '@idp/users';
import { BearerToken, CurrentToken, RequireScopes, RevocationService } from '@idp/token';
import { AdminApi } from './admin.decorators';
import { CurrentContext, RequestContext } from '@idp/core';

export class UserGrantView {
  @ApiProperty() id: string;
  @ApiProperty() user_id: string;
  @ApiProperty() client_id: string;
  @ApiProperty({ type: [String], description: 'OpenID Connect scopes' }) scope: string[];
  @ApiProperty({ type: Object, description: 'API scopes, by API identifier' }) api_scopes: Record<string, string[]>;
  @ApiProperty() granted_at: string;
  @ApiProperty() updated_at: string;
}

/** A user's consents ("grants"), and their revocation (which revokes the refresh tokens issued under them). */
@AdminApi('users')
@Controller('admin/users/:user_id/grants')
export class UserGrantsAdminController {
  constructor(private readonly users: UsersService, private readonly consents: ConsentService, private readonly revocation: RevocationService) {}

  @Get()
  @RequireScopes('read:users')
  @ApiOkResponse({ type: [UserGrantView] }) @ApiNotFoundResponse()
  async list(@Param('user_id') userId: string) {
    await this.users.get(userId);
    const items = (await this.consents.listForUser(userId)).map((c): UserGrantView => {
      const { '': oidc = [], ...apis } = c.scopes;
      return { id: c.id, user_id: c.user_id, client_id: c.client_id, scope: oidc, api_scopes: apis, granted_at: c.granted_at.toISOString(), updated_at: c.updated_at.toISOString() };
    });
    return { items, next_cursor: null };
  }

  @Delete(':grant_id')
  @HttpCode(204)
  @RequireScopes('write:users')
  @ApiNotFoundResponse()
  async revoke(@Param('user_id') userId: string, @Param('grant_id') grantId: string, @CurrentToken() token: BearerToken, @CurrentContext() ctx: RequestContext | undefined): Promise<void> {
    const consent = await this.consents.revoke(userId, grantId, token.client_id, ctx);
    await this.revocation.revokeForUserAndClient(consent.user_id, consent.client_id);
  }
}
