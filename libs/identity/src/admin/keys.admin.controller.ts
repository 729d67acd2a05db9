import { Body, Controller, Get, HttpCode, Post } from '@nestjs/common';
import { ApiOkResponse, ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional } from 'class-validator';
import { KeysService, SIGNING_ALGS, SigningAlg } from '@idp/keys';
import { ResourcesService } from '@idp/resources';
import { BearerToken, CurrentToken, RequireScopes } from '@idp/token';
import { AdminApi } from './admin.decorators';
import { CurrentContext, RequestContext } from '@idp/core';

export class RotateKeyDto {
  @ApiPropertyOptional({ enum: SIGNING_ALGS, description: 'defaults to IDP_SIGNING_ALG' })
  @IsOptional() @IsIn(SIGNING_ALGS) alg?: SigningAlg;
}

export class KeyViewDto {
  @ApiProperty() kid: string;
  @ApiProperty() alg: string;
  @ApiProperty({ enum: ['next', 'current', 'previous'], description: 'next: published, not signing yet; current: signs now; previous: signed before the current one' }) status: string;
  @ApiProperty() created_at: string;
  @ApiProperty({ nullable: true, type: String, description: 'when the key starts signing; null for the next key until a rotation schedules it' }) activates_at: string | null;
  @ApiProperty({ nullable: true, type: String, description: 'a previous key is published until then' }) publish_until: string | null;
}

/** ID tokens live one hour; the clock skew allowance on top. */
const ID_TOKEN_LIFETIME = 3600;
const SKEW = 300;

@AdminApi('keys')
@Controller('admin/keys')
export class KeysAdminController {
  constructor(private readonly keys: KeysService, private readonly resources: ResourcesService) {}

  @Get()
  @RequireScopes('read:keys')
  @ApiOkResponse({ type: [KeyViewDto] })
  list() {
    return { items: this.keys.list(), next_cursor: null };
  }

  /**
   * The published next key becomes current: at once if it has been published for the activation
   * lead, else at its `activates_at` (the answer). The key signing until then stays published until
   * every token it signed has expired, and a new next key is published.
   */
  @Post('rotate')
  @HttpCode(201)
  @RequireScopes('write:keys')
  @ApiOkResponse({ type: KeyViewDto })
  async rotate(@Body() dto: RotateKeyDto, @CurrentToken() token: BearerToken, @CurrentContext() ctx: RequestContext | undefined) {
    const retireAfterSeconds = Math.max(await this.resources.maxTokenLifetime(), ID_TOKEN_LIFETIME) + SKEW;
    return this.keys.rotate({ alg: dto.alg, retireAfterSeconds, actor: token.client_id, ctx });
  }
}
