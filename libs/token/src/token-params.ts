import { invalidRequest, invalidScope, invalidTarget } from '@idp/core';
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
