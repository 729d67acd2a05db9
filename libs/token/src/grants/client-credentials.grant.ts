import { Injectable } from '@nestjs/common';
import { IdpEvents, invalidRequest, invalidScope, invalidTarget, unauthorizedClient } from '@idp/core';
import type { Client } from '@idp/clients';
import { ResourcesService } from '@idp/resources';
import { GrantHandler, TokenRequest, TokenResponse } from '../grant-handler';
import { TokenIssuer } from '../token-issuer';
import { parseScope, requestedAudience } from '../token-params';

/**
 * RFC 6749 §4.4 client_credentials. The API is named by `audience` (Auth0) or `resource`
 * (RFC 8707); the client needs a client grant for it. Without `scope`, every granted scope.
 */
@GrantHandler({ name: 'client_credentials' })
@Injectable()
export class ClientCredentialsGrant implements GrantHandler {
  constructor(private readonly resources: ResourcesService, private readonly issuer: TokenIssuer, private readonly events: IdpEvents) {}

  async handle(req: TokenRequest, client: Client): Promise<TokenResponse> {
    if (client.isPublic) throw unauthorizedClient('public clients cannot use client_credentials');
    const audience = requestedAudience(req);
    if (!audience) throw invalidRequest('audience (or resource) is required: name the API the token is for');
    const grant = await this.resources.grantFor(client.client_id, audience);
    if (!grant) {
      const api = await this.resources.findByIdentifier(audience);
      if (!api) throw invalidTarget('the requested audience is not a registered API');
      throw unauthorizedClient('the client has no grant for the requested API');
    }
    let scope = grant.scope;
    const requested = parseScope(req.scope);
    if (requested) {
      const outside = requested.filter((s) => !grant.scope.includes(s));
      // RFC 6749 §5.2: a scope beyond what was granted is invalid_scope, never silently widened.
      if (outside.length) throw invalidScope(`scope not granted to this client: ${outside.join(' ')}`);
      scope = grant.scope.filter((s) => requested.includes(s));
    }
    const { token, expiresIn, event } = await this.issuer.accessToken({
      client, sub: client.client_id, audience: grant.api.identifier, scope, lifetime: grant.api.token_lifetime, grantType: 'client_credentials',
    });
    await this.events.emit('token.issued', event);
    return { access_token: token, token_type: 'Bearer', expires_in: expiresIn, scope: scope.join(' ') };
  }
}
