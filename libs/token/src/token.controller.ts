import { Body, Controller, Header, HttpCode, Post, Req, UseFilters, UseGuards } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { Request } from 'express';
import { TokenErrorFilter, invalidRequest, unauthorizedClient, unsupportedGrantType } from '@idp/core';
import { Client, ClientAuthGuard, CurrentClient } from '@idp/clients';
import { GrantRegistry, TokenRequest, TokenResponse } from './grant-handler';
import { FormBodyGuard } from './form-body.guard';

@ApiExcludeController()
@Controller('oauth')
@UseFilters(TokenErrorFilter)
export class TokenController {
  constructor(private readonly grants: GrantRegistry) {}

  /** RFC 6749 §3.2 token endpoint. */
  @Post('token')
  @HttpCode(200)
  @Header('Cache-Control', 'no-store')
  @Header('Pragma', 'no-cache')
  @UseGuards(FormBodyGuard, ClientAuthGuard)
  async token(@Body() body: Record<string, string>, @CurrentClient() client: Client, @Req() req: Request): Promise<TokenResponse> {
    const grantType = body.grant_type;
    if (!grantType) throw invalidRequest('grant_type is required');
    const handler = this.grants.get(grantType);
    if (!handler) throw unsupportedGrantType('the grant_type is not supported');
    if (!client.grant_types.includes(grantType)) throw unauthorizedClient('the client is not allowed this grant_type');
    const request = { ...body, grant_type: grantType, origin: req.headers.origin } as TokenRequest;
    return handler.handle(request, client);
  }
}
