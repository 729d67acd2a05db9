import { Body, Controller, Header, HttpCode, Post, Req, UseFilters, UseGuards } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { Request } from 'express';
import { TokenErrorFilter, invalidClient, invalidRequest, unauthorizedClient, unsupportedGrantType } from '@idp/core';
import { Client, ClientAuthGuard, CurrentClient } from '@idp/clients';
import { GrantRegistry, TokenRequest, TokenResponse } from './grant-handler';
import { FormBodyGuard } from './form-body.guard';
import { TokenIntrospection } from './token-introspection';

@ApiExcludeController()
@Controller('oauth')
@UseFilters(TokenErrorFilter)
@UseGuards(FormBodyGuard, ClientAuthGuard)
export class TokenController {
  constructor(private readonly grants: GrantRegistry, private readonly tokens: TokenIntrospection) {}

  /** RFC 6749 §3.2 token endpoint. */
  @Post('token')
  @HttpCode(200)
  @Header('Cache-Control', 'no-store')
  @Header('Pragma', 'no-cache')
  async token(@Body() body: Record<string, string>, @CurrentClient() client: Client, @Req() req: Request): Promise<TokenResponse> {
    const grantType = body.grant_type;
    if (!grantType) throw invalidRequest('grant_type is required');
    const handler = this.grants.get(grantType);
    if (!handler) throw unsupportedGrantType('the grant_type is not supported');
    if (!client.grant_types.includes(grantType)) throw unauthorizedClient('the client is not allowed this grant_type');
    const request = { ...body, grant_type: grantType, origin: req.headers.origin } as TokenRequest;
    return handler.handle(request, client);
  }

  /** RFC 7009: always 200 once the client is authenticated, whether or not the token was valid. */
  @Post('revoke')
  @HttpCode(200)
  @Header('Cache-Control', 'no-store')
  async revoke(@Body() body: Record<string, string>, @CurrentClient() client: Client): Promise<Record<string, never>> {
    if (!body.token) throw invalidRequest('token is required');
    await this.tokens.revoke(body.token, client, body.token_type_hint);
    return {};
  }

  /** RFC 7662, for confidential clients (resource servers register as clients). */
  @Post('introspect')
  @HttpCode(200)
  @Header('Cache-Control', 'no-store')
  async introspect(@Body() body: Record<string, string>, @CurrentClient() client: Client): Promise<Record<string, unknown>> {
    if (client.isPublic) throw invalidClient('public clients may not introspect tokens');
    if (!body.token) throw invalidRequest('token is required');
    return this.tokens.introspect(body.token, client, body.token_type_hint);
  }
}
