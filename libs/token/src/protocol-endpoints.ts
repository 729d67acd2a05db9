import { Injectable } from '@nestjs/common';
import {
  IdpConfig, ProtocolRequest, ProtocolResponse, ProtocolRoute, RequestContext,
  insufficientScope, invalidClient, invalidRequest, invalidToken, unauthorizedClient, unsupportedGrantType,
} from '@idp/core';
import { Client, ClientAuthenticator } from '@idp/clients';
import { ClaimsService, UserStore } from '@idp/users';
import { GrantRegistry, TokenRequest } from './grant-handler';
import { TokenIntrospection } from './token-introspection';
import { BearerGuard } from './bearer.guard';

/** Token responses and errors are never cached (RFC 6749 §5.1). */
const NO_STORE = { 'Cache-Control': 'no-store', Pragma: 'no-cache' };
const USERINFO_CHALLENGE = { 'WWW-Authenticate': 'Bearer realm="idp", error="invalid_token", error_description="the access token is invalid or expired"' };

/**
 * The token (RFC 6749 §3.2), revocation (RFC 7009), introspection (RFC 7662) and UserInfo
 * (OIDC Core §5.3) endpoints. They are served by the lean HTTP path in front of Express (the
 * identity lib's protocol-server.ts), which parses and checks the form body and renders errors;
 * the work itself is here and in the grant handlers, client authentication methods and
 * customizers this module's seams register.
 */
@Injectable()
export class ProtocolEndpoints {
  private readonly userinfoAudience: string;

  constructor(
    private readonly grants: GrantRegistry,
    private readonly tokens: TokenIntrospection,
    private readonly authenticator: ClientAuthenticator,
    private readonly bearer: BearerGuard,
    private readonly users: UserStore,
    private readonly claims: ClaimsService,
    config: IdpConfig,
  ) {
    this.userinfoAudience = `${config.issuer}/userinfo`;
  }

  routes(): ProtocolRoute[] {
    return [
      { method: 'POST', path: '/oauth/token', form: true, handle: (req, h) => this.token(req, h) },
      { method: 'POST', path: '/oauth/revoke', form: true, unboundedParams: ['token'], handle: (req, h) => this.revoke(req, h) },
      // Any token is answered, whatever its length (RFC 7662 §2.2: one not recognised is inactive).
      { method: 'POST', path: '/oauth/introspect', form: true, unboundedParams: ['token'], handle: (req, h) => this.introspect(req, h) },
      { method: 'GET', path: '/userinfo', form: false, handle: (req) => this.userinfo(req) },
      { method: 'POST', path: '/userinfo', form: false, handle: (req) => this.userinfo(req) },
    ];
  }

  /** RFC 6749 §3.2 token endpoint: authenticate the client, then the grant handler of `grant_type`. */
  async token(req: ProtocolRequest, headers: Record<string, string> = {}): Promise<ProtocolResponse> {
    const client = await this.client(req, headers);
    const body = req.body as Record<string, string>;
    const grantType = body.grant_type;
    if (!grantType) throw invalidRequest('grant_type is required');
    const handler = this.grants.get(grantType);
    if (!handler) throw unsupportedGrantType('the grant_type is not supported');
    if (!client.grant_types.includes(grantType)) throw unauthorizedClient('the client is not allowed this grant_type');
    const origin = req.headers.origin;
    const request = { ...body, grant_type: grantType, origin: typeof origin === 'string' ? origin : undefined } as TokenRequest;
    return { body: await handler.handle(request, client, RequestContext.of(req)), headers };
  }

  /**
   * RFC 7009: always 200 once the client is authenticated, whether or not the token was valid
   * (§2.2: an invalid token is no error), whatever its length or shape; `token` is required (§2.1).
   */
  async revoke(req: ProtocolRequest, headers: Record<string, string> = {}): Promise<ProtocolResponse> {
    const client = await this.client(req, headers);
    const body = req.body as Record<string, string>;
    if (body.token === undefined) throw invalidRequest('token is required');
    await this.tokens.revoke(body.token, client, body.token_type_hint, RequestContext.of(req));
    return { body: {}, headers };
  }

  /**
   * RFC 7662, for confidential clients (resource servers register as clients). `token` is required
   * (§2.1); any value of it is answered, `{"active": false}` for one not recognised, even empty (§2.2).
   */
  async introspect(req: ProtocolRequest, headers: Record<string, string> = {}): Promise<ProtocolResponse> {
    const client = await this.client(req, headers);
    const body = req.body as Record<string, string>;
    if (client.isPublic) throw invalidClient('public clients may not introspect tokens');
    if (body.token === undefined) throw invalidRequest('token is required');
    return { body: await this.tokens.introspect(body.token, client, body.token_type_hint), headers };
  }

  /** OIDC Core §5.3 UserInfo: the claims of the granted scopes, for a user's access token (GET or POST). */
  async userinfo(req: ProtocolRequest): Promise<ProtocolResponse> {
    const token = await this.bearer.authenticate(req.headers.authorization, this.userinfoAudience);
    const scopes = (token.scope ?? '').split(' ');
    if (!scopes.includes('openid')) {
      throw insufficientScope('the access token was not issued with the openid scope').withHeaders({ 'WWW-Authenticate': 'Bearer realm="idp", error="insufficient_scope", scope="openid"' });
    }
    const user = typeof token.sub === 'string' && token.sub !== token.client_id ? await this.users.findById(token.sub) : null;
    if (!user || user.blocked) throw invalidToken().withHeaders(USERINFO_CHALLENGE);
    return { body: { sub: user.id, ...(await this.claims.claimsFor(user, { use: 'userinfo', scopes, clientId: token.client_id })) }, headers: { 'Cache-Control': 'no-store' } };
  }

  /**
   * The calling client, authenticated; and the answer's headers: no-store, and CORS (CONTRACT §4 allowed_origins): a browser may read
   * the answer only from an origin that client registered.
   */
  private async client(req: ProtocolRequest, headers: Record<string, string>): Promise<Client> {
    Object.assign(headers, NO_STORE);
    const client = await this.authenticator.authenticate(req);
    const origin = req.headers.origin;
    if (origin && client.allowed_origins.includes(origin)) {
      headers['Access-Control-Allow-Origin'] = origin;
      headers.Vary = 'Origin';
    }
    return client;
  }
}
