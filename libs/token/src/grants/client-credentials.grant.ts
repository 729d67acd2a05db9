import { Injectable } from '@nestjs/common';
import { IdpEvents, RequestContext, invalidRequest, unauthorizedClient } from '@idp/core';
import type { Client } from '@idp/clients';
import { ResourcesService } from '@idp/resources';
import { GrantHandler, TokenRequest, TokenResponse } from '../grant-handler';
import { TokenIssuer } from '../token-issuer';
import { grantedScopes, requestedAudience } from '../token-params';

/**
 * RFC 6749 §4.4 client_credentials. The API is named by `audience` (Auth0) or `resource`
 * (RFC 8707); the client needs a client grant for it. Without `scope`, every granted scope.
 */
@GrantHandler({ name: 'client_credentials' })
@Injectable()
export class ClientCredentialsGrant implements GrantHandler {
  constructor(private readonly resources: ResourcesService, private readonly issuer: TokenIssuer, private readonly events: IdpEvents) {}

  async handle(req: TokenRequest, client: Client, ctx?: RequestContext): Promise<TokenResponse> {
    if (client.isPublic) throw unauthorizedClient('public clients cannot use client_credentials');
    const audience = requestedAudience(req);
    if (!audience) throw invalidRequest('audience (or resource) is required: name the API the token is for');
    const { api, scope } = await grantedScopes(this.resources, client.client_id, audience, req.scope);
    const { token, expiresIn, event } = await this.issuer.accessToken({
      client, sub: client.client_id, audience: api.identifier, scope, lifetime: api.token_lifetime, grantType: 'client_credentials',
    });
    await this.events.emit('token.issued', event, ctx);
    return { access_token: token, token_type: 'Bearer', expires_in: expiresIn, scope: scope.join(' ') };
  }
}
