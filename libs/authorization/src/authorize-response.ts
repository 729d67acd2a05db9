import type { ServerResponse } from 'node:http';
import type { OAuthError } from '@idp/core';

/**
 * An authorization response (RFC 6749 §4.1.2 / §4.1.2.1) in the query of the redirect URI, always
 * with `iss` (RFC 9207) and the client's `state`. 303 after a POST, 302 after a GET. Written on the
 * bare response (an Express one is one too), so the lean /authorize path and the controller give
 * the same answer: the Location header and no body.
 */
export function redirectToClient(res: ServerResponse, method: string, redirectUri: string, params: Record<string, string | undefined>): void {
  const url = new URL(redirectUri);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.append(k, v);
  res.statusCode = method === 'POST' ? 303 : 302;
  res.setHeader('Location', url.toString());
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Content-Length', '0');
  res.end();
}

/** An error response (RFC 6749 §4.1.2.1) to a verified redirect URI: `error`, `error_description`, `state`, `iss`. */
export function redirectErrorToClient(res: ServerResponse, method: string, redirectUri: string, state: string | undefined, err: OAuthError, issuer: string): void {
  redirectToClient(res, method, redirectUri, { error: err.code, error_description: err.description, state, iss: issuer });
}
