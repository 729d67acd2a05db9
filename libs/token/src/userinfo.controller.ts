import { Controller, Get, Header, HttpCode, Post, UseFilters, UseGuards } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { IdpConfig, TokenErrorFilter, insufficientScope, invalidToken } from '@idp/core';
import { ClaimsService, UserStore } from '@idp/users';
import { BearerAudience, BearerGuard, BearerToken, CurrentToken } from './bearer.guard';

const USERINFO_CHALLENGE = { 'WWW-Authenticate': 'Bearer realm="idp", error="invalid_token", error_description="the access token is invalid or expired"' };

/**
 * OIDC Core §5.3 UserInfo (GET or POST): the claims of the granted scopes, for an access token
 * issued for UserInfo (`aud` = ISSUER/userinfo) with `openid`. Errors carry the RFC 6750 challenge.
 */
@ApiExcludeController()
@Controller('userinfo')
@UseFilters(TokenErrorFilter)
@BearerAudience((config: IdpConfig) => `${config.issuer}/userinfo`)
@UseGuards(BearerGuard)
export class UserinfoController {
  constructor(private readonly users: UserStore, private readonly claims: ClaimsService) {}

  @Get()
  @Header('Cache-Control', 'no-store')
  get(@CurrentToken() token: BearerToken): Promise<Record<string, unknown>> {
    return this.userinfo(token);
  }

  @Post()
  @HttpCode(200)
  @Header('Cache-Control', 'no-store')
  post(@CurrentToken() token: BearerToken): Promise<Record<string, unknown>> {
    return this.userinfo(token);
  }

  private async userinfo(token: BearerToken): Promise<Record<string, unknown>> {
    const scopes = (token.scope ?? '').split(' ');
    if (!scopes.includes('openid')) {
      throw insufficientScope('the access token was not issued with the openid scope').withHeaders({ 'WWW-Authenticate': 'Bearer realm="idp", error="insufficient_scope", scope="openid"' });
    }
    const user = typeof token.sub === 'string' && token.sub !== token.client_id ? await this.users.findById(token.sub) : null;
    if (!user || user.blocked) throw invalidToken().withHeaders(USERINFO_CHALLENGE);
    return { sub: user.id, ...(await this.claims.claimsFor(user, { use: 'userinfo', scopes, clientId: token.client_id })) };
  }
}
