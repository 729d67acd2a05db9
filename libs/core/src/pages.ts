import type { ServerResponse } from 'node:http';
import type { Response } from 'express';

/**
 * Renders a server-side page (login, consent, logout, errors) with the headers every HTML page of
 * an IdP needs: no framing (clickjacking), no caching, no referrer, a strict CSP with no script.
 */
export function renderPage(res: Response, view: string, data: Record<string, unknown>, status = 200): void {
  setPageHeaders(res);
  res.status(status).render(view, data);
}

const PAGE_CSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'";

/**
 * The headers of an HTML page. `scriptHashes`: the only scripts the page may run, by hash
 * (`sha256-…`), for a page with a fixed inline script (the form_post response); none otherwise.
 * Written on the bare response, so that the lean HTTP path can send a page too.
 */
export function setPageHeaders(res: ServerResponse, scriptHashes: string[] = []): void {
  const scripts = scriptHashes.length ? `; script-src ${scriptHashes.map((h) => `'${h}'`).join(' ')}` : '';
  res.setHeader('Content-Security-Policy', PAGE_CSP + scripts);
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Pragma', 'no-cache');
}

/**
 * Saves the session before a redirect leaves. express-session otherwise sends the headers (and
 * so the Location) before its store write finishes, and a fast client follows the redirect into
 * a request that still sees the old session.
 */
export function saveSession(req: { session?: { save(cb: (err?: unknown) => void): void } }): Promise<void> {
  if (!req.session) return Promise.resolve();
  return new Promise((resolve, reject) => req.session!.save((err) => (err ? reject(err) : resolve())));
}
