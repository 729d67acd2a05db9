import type { FastifyReply } from 'fastify';

/**
 * The Content-Security-Policy of every answer (@fastify/helmet applies it to all of them), and
 * of the pages above all: no script, no framing, styles and images from our own origin only.
 */
export const PAGE_CSP_DIRECTIVES: Record<string, string[]> = {
  defaultSrc: ["'none'"],
  styleSrc: ["'self'"],
  imgSrc: ["'self'", 'data:'],
  baseUri: ["'none'"],
  frameAncestors: ["'none'"],
};
const PAGE_CSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'";

/** The view resolution the application installs on its Fastify instance (boot.ts): a theme's template first, else the built-in one. */
interface ThemedInstance {
  idpTemplate?: (view: string) => string;
}

/**
 * Renders a server-side page (login, consent, logout, errors) with the headers every HTML page of
 * an IdP needs: no framing (clickjacking), no caching, no referrer, a strict CSP with no script.
 */
export function renderPage(reply: FastifyReply, view: string, data: Record<string, unknown>, status = 200): FastifyReply {
  setPageHeaders(reply);
  const template = (reply.server as unknown as ThemedInstance).idpTemplate?.(view) ?? `${view}.ejs`;
  return reply.status(status).type('text/html; charset=utf-8').view(template, data) as FastifyReply;
}

/**
 * The headers of an HTML page. `scriptHashes`: the only scripts the page may run, by hash
 * (`sha256-…`), for a page with a fixed inline script (the form_post response); none otherwise.
 */
export function setPageHeaders(reply: FastifyReply, scriptHashes: string[] = []): void {
  const scripts = scriptHashes.length ? `; script-src ${scriptHashes.map((h) => `'${h}'`).join(' ')}` : '';
  reply.header('Content-Security-Policy', PAGE_CSP + scripts);
  reply.header('Cache-Control', 'no-store');
  reply.header('Pragma', 'no-cache');
}
