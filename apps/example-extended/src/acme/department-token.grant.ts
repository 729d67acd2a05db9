import { Injectable } from '@nestjs/common';
import { IdpEvents, invalidGrant, invalidRequest, invalidTarget, unauthorizedClient, RequestContext } from '@idp/core';
import type { Client } from '@idp/clients';
import { ResourcesService } from '@idp/resources';
import { GrantHandler, TokenIssuer, TokenRequest, TokenResponse, grantedScopes, requestedAudience } from '@idp/token';
import { DEPARTMENT_TOKEN_GRANT } from './acme.constants';
import { ProfilesService } from './profiles.service';

const DEPARTMENT = /^[A-Za-z0-9 _.-]{1,64}$/;

/**
 * Seam: grant handler. A confidential client with a client grant for an API gets an access token
 * for that API acting for one department (a `department` claim), e.g. a nightly job that exports
 * one department's records:
 *
 *     POST /oauth/token
 *     grant_type=urn:example:params:oauth:grant-type:department-token&audience=https://hr.acme.example/api&department=Engineering
 *
 * The token endpoint has already authenticated the client (any method, including ours), checked
 * that the grant type is registered and that the client's grant_types list it; the handler checks
 * everything else. Listed in `grant_types_supported`.
 */
@GrantHandler({ name: DEPARTMENT_TOKEN_GRANT })
@Injectable()
export class DepartmentTokenGrant implements GrantHandler {
  constructor(
    private readonly resources: ResourcesService,
    private readonly issuer: TokenIssuer,
    private readonly events: IdpEvents,
    private readonly profiles: ProfilesService,
  ) {}

  async handle(req: TokenRequest, client: Client, ctx?: RequestContext): Promise<TokenResponse> {
    // The token endpoint checks this too; a handler that may be called from elsewhere checks it itself.
    if (!client.grant_types.includes(DEPARTMENT_TOKEN_GRANT)) throw unauthorizedClient('the client is not allowed this grant_type');
    if (client.isPublic) throw unauthorizedClient('public clients cannot use the department-token grant');

    const department = req.department;
    if (!department) throw invalidRequest('department is required');
    if (!DEPARTMENT.test(department)) throw invalidRequest('department is malformed');
    if (!(await this.profiles.departmentExists(department))) throw invalidGrant('unknown department');

    const audience = requestedAudience(req);
    if (!audience) throw invalidRequest('audience (or resource) is required: name the API the token is for');
    // Like client_credentials: the client's grant for the API, every granted scope or the requested subset.
    const { api, scope } = await grantedScopes(this.resources, client.client_id, audience, req.scope);
    if (api.is_system) throw invalidTarget('department tokens are not issued for the admin API');

    const { token, expiresIn, event } = await this.issuer.accessToken({
      client, sub: client.client_id, audience: api.identifier, scope, lifetime: api.token_lifetime,
      grantType: DEPARTMENT_TOKEN_GRANT, extra: { department },
    });
    // After the token exists (nothing to commit here): audit log, subscribers; with the request's id and address.
    await this.events.emit('token.issued', event, ctx);
    return { access_token: token, token_type: 'Bearer', expires_in: expiresIn, scope: scope.join(' ') };
  }
}
