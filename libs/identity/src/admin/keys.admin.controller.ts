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
  @ApiProperty({ enum: ['current', 'previous'] }) status: string;
  @ApiProperty() created_at: string;
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

  /** A new key becomes current; the previous one stays published until every token it signed has expired. */
  @Post('rotate')
  @HttpCode(201)
  @RequireScopes('write:keys')
  @ApiOkResponse({ type: KeyViewDto })
  async rotate(@Body() dto: RotateKeyDto, @CurrentToken() token: BearerToken, @CurrentContext() ctx: RequestContext | undefined) {
    const retireAfterSeconds = Math.max(await this.resources.maxTokenLifetime(), ID_TOKEN_LIFETIME) + SKEW;
    return this.keys.rotate({ alg: dto.alg, retireAfterSeconds, actor: token.client_id, ctx });
  }
}
