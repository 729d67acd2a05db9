import { Body, Controller, Header, HttpCode, Post, Req, UseFilters, UseGuards } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { ProtocolRequest, RequestContext, TokenErrorFilter, invalidClient, invalidRequest, unauthorizedClient, unsupportedGrantType } from '@idp/core';
import { Client, ClientAuthGuard, CurrentClient } from '@idp/clients';
import { GrantRegistry, TokenRequest } from './grant-handler';
import { TokenIntrospection } from './token-introspection';
import { OAuthFormGuard, UnboundedParams } from './oauth-form.guard';

/**
 * The token (RFC 6749 §3.2), revocation (RFC 7009) and introspection (RFC 7662) endpoints: a form
 * body (OAuthFormGuard), an authenticated client (ClientAuthGuard), then the work, which is in
 * the grant handlers, client authentication methods and customizers this module's seams register.
 * Answers and errors are JSON and never cached (RFC 6749 §5.1, §5.2: TokenErrorFilter).
 */
@ApiExcludeController()
@Controller('oauth')
@UseFilters(TokenErrorFilter)
@UseGuards(OAuthFormGuard, ClientAuthGuard)
export class TokenController {
  constructor(private readonly grants: GrantRegistry, private readonly tokens: TokenIntrospection) {}

  /** The grant handler of `grant_type`, for a client allowed that grant. */
  @Post('token')
  @HttpCode(200)
  @Header('Cache-Control', 'no-store')
  @Header('Pragma', 'no-cache')
  async token(@CurrentClient() client: Client, @Body() body: Record<string, string>, @Req() req: ProtocolRequest): Promise<unknown> {
    const grantType = body.grant_type;
    if (!grantType) throw invalidRequest('grant_type is required');
    const handler = this.grants.get(grantType);
    if (!handler) throw unsupportedGrantType('the grant_type is not supported');
    if (!client.grant_types.includes(grantType)) throw unauthorizedClient('the client is not allowed this grant_type');
    const origin = req.headers.origin;
    const request = { ...body, grant_type: grantType, origin: typeof origin === 'string' ? origin : undefined } as TokenRequest;
    return handler.handle(request, client, RequestContext.of(req));
  }

  /**
   * RFC 7009: always 200 once the client is authenticated, whether or not the token was valid
   * (§2.2: an invalid token is no error), whatever its length or shape; `token` is required (§2.1).
   */
  @Post('revoke')
  @HttpCode(200)
  @UnboundedParams('token')
  @Header('Cache-Control', 'no-store')
  @Header('Pragma', 'no-cache')
  async revoke(@CurrentClient() client: Client, @Body() body: Record<string, string>, @Req() req: ProtocolRequest): Promise<object> {
    if (body.token === undefined) throw invalidRequest('token is required');
    await this.tokens.revoke(body.token, client, body.token_type_hint, RequestContext.of(req));
    return {};
  }

  /**
   * RFC 7662, for confidential clients (resource servers register as clients). `token` is required
   * (§2.1); any value of it is answered, `{"active": false}` for one not recognised, even empty (§2.2).
   */
  @Post('introspect')
  @HttpCode(200)
  @UnboundedParams('token')
  @Header('Cache-Control', 'no-store')
  @Header('Pragma', 'no-cache')
  introspect(@CurrentClient() client: Client, @Body() body: Record<string, string>): Promise<unknown> {
    if (client.isPublic) throw invalidClient('public clients may not introspect tokens');
    if (body.token === undefined) throw invalidRequest('token is required');
    return this.tokens.introspect(body.token, client, body.token_type_hint);
  }
}
