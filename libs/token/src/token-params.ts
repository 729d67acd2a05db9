import { invalidRequest, invalidScope, invalidTarget, unauthorizedClient } from '@idp/core';
import type { Api, ResourcesService } from '@idp/resources';
import { SCOPE_TOKEN } from '@idp/clients';
import type { TokenRequest } from './grant-handler';

/** Splits a `scope` parameter (RFC 6749 §3.3); undefined when absent. */
export function parseScope(raw: string | undefined): string[] | undefined {
  if (raw === undefined || raw.trim() === '') return undefined;
  const parts = raw.split(' ').filter((s) => s.length > 0);
  if (parts.some((s) => !SCOPE_TOKEN.test(s))) throw invalidScope('scope is malformed');
  return [...new Set(parts)];
}

/** The API a token is requested for: `audience` (Auth0 style) or `resource` (RFC 8707). */
export function requestedAudience(req: TokenRequest): string | undefined {
  const { audience, resource } = req;
  if (audience !== undefined && resource !== undefined && audience !== resource) {
    throw invalidRequest('audience and resource name different APIs');
  }
  const target = audience ?? resource;
  if (target === undefined) return undefined;
  if (resource !== undefined) {
    // RFC 8707 §2: an absolute URI without a fragment.
    try {
      const u = new URL(resource);
      if (u.hash || resource.includes('#')) throw new Error();
    } catch {
      throw invalidTarget('resource must be an absolute URI without a fragment');
    }
  }
  return target;
}

/**
 * What a machine token may carry (client_credentials and grants like it): the client's grant
 * for the API, and every granted scope or the requested subset of them. invalid_target for an
 * unknown API, unauthorized_client without a grant, invalid_scope beyond it (RFC 6749 §5.2:
 * never silently widened).
 */
export async function grantedScopes(resources: ResourcesService, clientId: string, audience: string, scopeParam: string | undefined): Promise<{ api: Api; scope: string[] }> {
  const grant = await resources.grantFor(clientId, audience);
  if (!grant) {
    const api = await resources.findByIdentifier(audience);
    if (!api) throw invalidTarget('the requested audience is not a registered API');
    throw unauthorizedClient('the client has no grant for the requested API');
  }
  const requested = parseScope(scopeParam);
  if (!requested) return grant;
  const outside = requested.filter((s) => !grant.scope.includes(s));
  if (outside.length) throw invalidScope(`scope not granted to this client: ${outside.join(' ')}`);
  return { api: grant.api, scope: grant.scope.filter((s) => requested.includes(s)) };
}
