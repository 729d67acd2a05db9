import type { Response } from 'express';

/**
 * An authorization response (RFC 6749 §4.1.2 / §4.1.2.1) in the query of the redirect URI, always
 * with `iss` (RFC 9207) and the client's `state`. 303 after a POST, 302 after a GET.
 */
export function redirectToClient(res: Response, method: string, redirectUri: string, params: Record<string, string | undefined>): void {
  const url = new URL(redirectUri);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.append(k, v);
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.redirect(method === 'POST' ? 303 : 302, url.toString());
}
