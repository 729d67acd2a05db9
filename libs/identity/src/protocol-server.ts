import { BadRequestException } from '@nestjs/common';
import type { IncomingMessage, RequestListener, Server, ServerResponse } from 'node:http';
import { urlencoded } from 'express';
import { IdpConfig, JsonLogger, OAuthError, ProtocolRequest, ProtocolRoute, ProtocolShortcut, RequestContext, invalidRequest, protocolErrorResponse } from '@idp/core';
import type { ClientsService } from '@idp/clients';
import { RATE_LIMITED, RateLimiter } from './rate-limit';
import { setActualCors, setSecurityHeaders } from './http-policy';
import { inputProblem } from './http-input';
import { beginRequest, handOver } from './request-log';
import { FORM_PARAMETER_LIMIT, parseUrlencoded } from './form-parse';

// Packages Express itself uses for the same jobs (proxy-addr for `req.ip`, type-is for `req.is`).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const proxyaddr: (req: IncomingMessage, trust: TrustFn) => string = require('proxy-addr');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const typeis: (req: IncomingMessage, types: string[]) => string | false | null = require('type-is');

type TrustFn = (address: string, hop: number) => boolean;

/** The body limit of every form endpoint (the Express parser's in boot.ts uses it too). */
export const FORM_BODY_LIMIT = 64 * 1024;
/** Parameters longer than this are refused outright (no legitimate one comes close), unless a route holds one to the body limit alone (ProtocolRoute.unboundedParams). */
export const MAX_PARAM_LENGTH = 8192;

const FORM = 'application/x-www-form-urlencoded';
/** The content type a form body almost always has: read here; anything else goes through body-parser. */
const PLAIN_FORM = /^application\/x-www-form-urlencoded[ \t]*(;[ \t]*charset="?utf-8"?[ \t]*)?$/i;

export interface ProtocolServerOptions {
  config: IdpConfig;
  logger: JsonLogger;
  limiter?: RateLimiter;
  clients: ClientsService;
  routes: ProtocolRoute[];
  /** Browser routes whose common case is answered here, the rest by Express (ProtocolShortcut). */
  shortcuts?: ProtocolShortcut[];
  /** Express's compiled `trust proxy` setting, so that the address is the one `req.ip` would be. */
  trust: TrustFn;
}

/**
 * Answers the protocol endpoints (token, revocation, introspection, UserInfo) on `server` before
 * Express sees the request; every other request, and every other method on these paths (CORS
 * preflights included), goes to Express as before. These are the endpoints every API call and
 * sign-in goes through, and Express with Nest's pipeline cost several times the work of the
 * endpoint itself (docs/performance.md). The policies are the same ones, shared with the Express
 * middleware: request id and log line, rate limit, security headers, CORS, body size and parameter
 * limits, no U+0000, each parameter once, and errors in the RFC 6749 §5.2 format with
 * `Cache-Control: no-store` (503 with Retry-After when the database is away).
 */
export function serveProtocolRoutes(server: Server, opts: ProtocolServerOptions): void {
  const listeners = server.listeners('request') as RequestListener[];
  if (listeners.length !== 1) throw new Error(`expected the HTTP server to have one request listener (Express), found ${listeners.length}`);
  const express = listeners[0];
  const routes = new Map(opts.routes.map((r) => [`${r.method} ${r.path}`, r]));
  const shortcuts = new Map((opts.shortcuts ?? []).map((s) => [`${s.method} ${s.path}`, s]));
  const compat = urlencoded({ extended: false, limit: FORM_BODY_LIMIT, parameterLimit: FORM_PARAMETER_LIMIT });
  const hsts = opts.config.issuer.startsWith('https://');
  server.removeListener('request', express);
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    // Express matches routes case-insensitively and with or without a trailing slash.
    let key = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
    key = `${req.method} ${key.toLowerCase()}`;
    const route = routes.get(key);
    if (route) return void serve(route, req, res, url, path);
    const shortcut = shortcuts.get(key);
    // U+0000 anywhere in the URL is refused by Express's middleware (refuseHostileInput).
    if (shortcut && !url.includes('%00')) return void tryShortcut(shortcut, req, res, path, q < 0 ? '' : url.slice(q + 1));
    express(req, res);
  });

  /** A shortcut's answer, or Express's when it leaves the request (begun here: one log line, counted once). */
  async function tryShortcut(shortcut: ProtocolShortcut, req: IncomingMessage, res: ServerResponse, path: string, query: string): Promise<void> {
    const ip = addressOf(req);
    beginRequest(opts.logger, req, res, path, ip);
    const retryAfter = opts.limiter?.hit(path, ip);
    handOver(req, retryAfter);
    // Over the limit: Express answers 429 in the route's format.
    if (retryAfter !== undefined) return express(req, res);
    setSecurityHeaders(res, hsts);
    let answered = false;
    try {
      answered = await shortcut.handle(req, res, { ip, query, trust: opts.trust });
    } catch (err) {
      opts.logger.write('debug', 'shortcut declined', { path, reason: (err as Error)?.message });
    }
    if (answered) return;
    if (res.headersSent) {
      // Not expected (a shortcut answers completely or writes nothing); never two answers.
      res.destroy();
      return;
    }
    for (const name of res.getHeaderNames()) if (name !== 'x-request-id') res.removeHeader(name);
    express(req, res);
  }

  async function serve(route: ProtocolRoute, req: IncomingMessage, res: ServerResponse, url: string, path: string): Promise<void> {
    const ip = addressOf(req);
    const ctx = beginRequest(opts.logger, req, res, path, ip);
    const headers: Record<string, string> = {};
    try {
      const retryAfter = opts.limiter?.hit(path, ip);
      if (retryAfter !== undefined) {
        res.setHeader('Retry-After', String(retryAfter));
        return send(res, 429, RATE_LIMITED, { 'Cache-Control': 'no-store' });
      }
      setSecurityHeaders(res, hsts);
      const origin = req.headers.origin;
      if (origin && route.path === '/userinfo') await setActualCors(res, route.path, origin, opts.clients);
      const body = await readBody(req, res);
      if (url.includes('%00')) throw invalidRequest('the URL must not contain the character U+0000');
      const problem = inputProblem(body, '', false);
      // As a framework 400, whose message toOAuthError keeps to the RFC 6749 §5.2 characters (it may quote a parameter name).
      if (problem) throw new BadRequestException([problem]);
      const request: ProtocolRequest = { method: req.method ?? 'GET', path, headers: req.headers, body, ip };
      RequestContext.bind(request, ctx);
      if (route.form) request.body = formBody(req, body, route.unboundedParams);
      const answer = await route.handle(request, headers);
      send(res, answer.status ?? 200, answer.body, { ...headers, ...answer.headers });
    } catch (err) {
      fail(res, err, headers);
    }
  }

  /** The client address, as Express's `req.ip` gives it. */
  function addressOf(req: IncomingMessage): string | undefined {
    try {
      return proxyaddr(req, opts.trust);
    } catch {
      return req.socket.remoteAddress;
    }
  }

  /** The parsed form body (undefined when the request has none, or not a form). */
  async function readBody(req: IncomingMessage, res: ServerResponse): Promise<unknown> {
    const length = req.headers['content-length'];
    const encoding = req.headers['content-encoding'];
    if (
      length !== undefined && /^\d{1,6}$/.test(length) && Number(length) <= FORM_BODY_LIMIT && req.headers['transfer-encoding'] === undefined &&
      (encoding === undefined || encoding.toLowerCase() === 'identity') && PLAIN_FORM.test(req.headers['content-type'] ?? '')
    ) {
      return parseUrlencoded(await readFully(req, Number(length)));
    }
    // Chunked, compressed, other charsets, too large, not a form: body-parser decides, as in Express.
    const holder = req as IncomingMessage & { body?: unknown };
    await new Promise<void>((resolve, reject) => compat(holder as never, res as never, (err?: unknown) => (err ? reject(err) : resolve())));
    return holder.body;
  }

  function fail(res: ServerResponse, exception: unknown, routeHeaders: Record<string, string>): void {
    const answer = protocolErrorResponse(exception, opts.logger);
    if (res.headersSent) return;
    send(res, answer.status, answer.body, { ...routeHeaders, ...answer.headers });
  }
}

/**
 * RFC 6749 §3.2 (and RFC 7009 §2.1, RFC 7662 §2.1): the body is a form, each parameter at most
 * once, every value a string of sane length (`unbounded`: parameters held to the body limit alone).
 */
function formBody(req: IncomingMessage, body: unknown, unbounded: readonly string[] = []): Record<string, string> {
  if (!typeis(req, [FORM])) throw invalidRequest(`the request body must be ${FORM}`);
  if (!body || typeof body !== 'object') throw invalidRequest('the request body is empty');
  for (const [name, value] of Object.entries(body as Record<string, unknown>)) {
    if (Array.isArray(value)) {
      if (name === 'resource') throw new OAuthError('invalid_target', 'only one resource may be requested per token', 400);
      throw invalidRequest(`parameter ${safeName(name)} is repeated`);
    }
    if (typeof value !== 'string') throw invalidRequest(`parameter ${safeName(name)} is malformed`);
    if (value.length > MAX_PARAM_LENGTH && !unbounded.includes(name)) throw invalidRequest(`parameter ${safeName(name)} is too long`);
  }
  return body as Record<string, string>;
}

function safeName(name: string): string {
  return /^[A-Za-z0-9_.-]{1,64}$/.test(name) ? name : '(unnamed)';
}

/** The body of a request with a Content-Length (which Node's parser enforces), as UTF-8. */
function readFully(req: IncomingMessage, length: number): Promise<string> {
  if (length === 0) return Promise.resolve('');
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let ended = false;
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.once('end', () => {
      ended = true;
      resolve(chunks.length === 1 ? chunks[0].toString('utf8') : Buffer.concat(chunks).toString('utf8'));
    });
    // The client went away mid-body: a client error (nobody is left to read the answer).
    const aborted = () => reject(Object.assign(new Error('request aborted'), { status: 400, expose: true }));
    req.once('error', aborted);
    req.once('close', () => ended || aborted());
  });
}

function send(res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>): void {
  const json = JSON.stringify(body);
  res.statusCode = status;
  if (headers) for (const name in headers) res.setHeader(name, headers[name]);
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(json));
  res.end(json);
}
