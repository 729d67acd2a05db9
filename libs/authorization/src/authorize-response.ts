import { createHash } from 'node:crypto';
import type { FastifyReply } from 'fastify';
import { setPageHeaders, type OAuthError } from '@idp/core';

/** How the authorization response travels (OAuth 2.0 Multiple Response Type Encoding Practices, Form Post Response Mode). */
export type ResponseMode = 'query' | 'form_post';
export const RESPONSE_MODES: readonly ResponseMode[] = ['query', 'form_post'];

/** Where, and how, an authorization response goes: a redirect URI verified for the client. */
export interface ResponseTarget {
  redirectUri: string;
  responseMode: ResponseMode;
}

/**
 * An authorization response (RFC 6749 §4.1.2 / §4.1.2.1), always with `iss` (RFC 9207) and the
 * client's `state`. With response_mode=query, in the query of the redirect URI: 303 after a POST,
 * 302 after a GET, the Location header and no body. With response_mode=form_post, a page whose
 * form posts the parameters to the redirect URI.
 */
export function sendAuthorizationResponse(reply: FastifyReply, method: string, target: ResponseTarget, params: Record<string, string | undefined>): void {
  if (target.responseMode === 'form_post') return sendFormPost(reply, target.redirectUri, params);
  const url = new URL(target.redirectUri);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) url.searchParams.append(k, v);
  void reply.header('Cache-Control', 'no-store').redirect(url.toString(), method === 'POST' ? 303 : 302);
}

/** An error response (RFC 6749 §4.1.2.1) to a verified redirect URI: `error`, `error_description`, `state`, `iss`. */
export function sendAuthorizationError(res: FastifyReply, method: string, target: ResponseTarget, state: string | undefined, err: OAuthError, issuer: string): void {
  sendAuthorizationResponse(res, method, target, { error: err.code, error_description: err.description, state, iss: issuer });
}

/**
 * The page's one script, fixed, so that the CSP allows it by its hash and nothing else runs
 * (whatever a parameter holds, it is only ever an escaped attribute value).
 */
const AUTO_SUBMIT = 'document.forms[0].submit();';
const AUTO_SUBMIT_HASH = `sha256-${createHash('sha256').update(AUTO_SUBMIT).digest('base64')}`;

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);

/**
 * OAuth 2.0 Form Post Response Mode: an HTML form with the parameters as hidden fields, posted to
 * the registered redirect URI by the browser (the script), or by the user's click on its button
 * when JavaScript is off. The page's headers are those of every page (no framing, no caching, no
 * referrer) with a CSP that allows only that script. The page is built here rather than by a
 * theme's template: its script must stay the one the CSP hash names, and nothing the request
 * carried may become markup.
 */
function sendFormPost(reply: FastifyReply, redirectUri: string, params: Record<string, string | undefined>): void {
  const fields = Object.entries(params)
    .filter((e): e is [string, string] => e[1] !== undefined)
    .map(([name, value]) => `    <input type="hidden" name="${escapeHtml(name)}" value="${escapeHtml(value)}">`)
    .join('\n');
  const html = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="referrer" content="no-referrer">
  <title>Returning to the application</title>
  <link rel="stylesheet" href="/assets/idp.css">
</head>
<body>
<main class="card">
  <h1>Returning to the application</h1>
  <form method="post" action="${escapeHtml(redirectUri)}">
${fields}
    <p class="sub">If nothing happens, select Continue.</p>
    <div class="buttons"><button type="submit">Continue</button></div>
  </form>
</main>
<script>${AUTO_SUBMIT}</script>
</body>
</html>
`;
  setPageHeaders(reply, [AUTO_SUBMIT_HASH]);
  void reply.status(200).type('text/html; charset=utf-8').send(html);
}
