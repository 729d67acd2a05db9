import type { IncomingMessage, ServerResponse } from 'node:http';
import { createHmac, timingSafeEqual } from 'node:crypto';
import session, { type SessionData } from 'express-session';
import type { RequestHandler } from 'express';
import type { ObjectLiteral } from 'typeorm';
import type { LeftJoin } from '@idp/core';
import type { TypeOrmSessionStore } from './session.store';
import type { SessionRecord } from './session.entity';

// The cookie package express-session itself parses and writes the cookie with (same version).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const cookie: {
  parse(header: string): Record<string, string | undefined>;
  serialize(name: string, value: string, options: { expires: Date; httpOnly: boolean; path: string; sameSite: 'lax'; secure: boolean }): string;
} = require('cookie');

/** Browser sessions live 14 days of inactivity at most (the cookie is renewed on each use). */
export const SESSION_IDLE_MS = 14 * 24 * 3600 * 1000;

/** Express's compiled `trust proxy` setting (proxy-addr), as `app.get('trust proxy fn')` returns it. */
export type TrustFn = (address: string, hop: number) => boolean;

/**
 * The browser session cookie, in one place: the express-session middleware of the pages is built
 * from these settings, and the lean /authorize path (authorize-shortcut.ts) reads and renews the
 * same cookie the same way, without the middleware. The cookie holds `s:<session id>.<HMAC>`
 * (express-session's signed format); the store keeps the session under the id's hash.
 */
export class SessionCookies {
  readonly name: string;
  private readonly cookie: { httpOnly: true; sameSite: 'lax'; secure: boolean; path: '/'; maxAge: number };

  constructor(private readonly secret: string, readonly store: TypeOrmSessionStore, https: boolean) {
    // __Host- prefix on https: the cookie is Secure, host-only, and for path / (RFC 6265bis §4.1.3.2).
    this.name = https ? '__Host-idp_session' : 'idp_session';
    this.cookie = { httpOnly: true, sameSite: 'lax', secure: https, path: '/', maxAge: SESSION_IDLE_MS };
  }

  /** The express-session middleware of the browser pages. */
  middleware(): RequestHandler {
    return session({ name: this.name, secret: this.secret, store: this.store, resave: false, saveUninitialized: false, rolling: true, cookie: { ...this.cookie } });
  }

  /** The session id of a request's cookie when its signature is right (as express-session reads it), else undefined. */
  sessionId(req: IncomingMessage): string | undefined {
    const header = req.headers.cookie;
    if (!header || !header.includes(this.name)) return undefined;
    const raw = cookie.parse(header)[this.name];
    if (!raw || !raw.startsWith('s:')) return undefined;
    const signed = raw.slice(2);
    const dot = signed.lastIndexOf('.');
    if (dot <= 0) return undefined;
    const id = signed.slice(0, dot);
    const expected = Buffer.from(this.sign(id));
    const given = Buffer.from(signed.slice(dot + 1));
    return given.length === expected.length && timingSafeEqual(given, expected) ? id : undefined;
  }

  /** The stored session (null when there is none or it expired) and a row joined to its record (TypeOrmSessionStore.getWith), in one read. */
  loadWith<F extends ObjectLiteral>(id: string, join: LeftJoin<SessionRecord, F>): Promise<{ session: SessionData | null; joined: F | null }> {
    return this.store.getWith(id, join);
  }

  /**
   * Whether the cookie can be set on this request's response: a Secure cookie only over HTTPS, as
   * express-session decides it (the connection, or X-Forwarded-Proto from a trusted proxy, as
   * Express's `req.protocol`).
   */
  canSet(req: IncomingMessage, trust: TrustFn): boolean {
    if (!this.cookie.secure) return true;
    const socket = req.socket as IncomingMessage['socket'] & { encrypted?: boolean };
    if (socket.encrypted) return true;
    if (!trust(socket.remoteAddress ?? '', 0)) return false;
    const header = req.headers['x-forwarded-proto'];
    const value = (Array.isArray(header) ? header[0] : header) ?? 'http';
    const comma = value.indexOf(',');
    return (comma === -1 ? value : value.slice(0, comma)).trim() === 'https';
  }

  /**
   * What express-session does at the end of a request with an unchanged rolling session: a new
   * expiry (now + the idle time) in the Set-Cookie header and in the store (the store writes it at
   * most once a minute). Rejects when the store write failed (the cookie is set all the same, and
   * the row keeps its earlier expiry, as with the middleware).
   */
  async renew(res: ServerResponse, id: string, data: SessionData): Promise<void> {
    const expires = new Date(Date.now() + this.cookie.maxAge);
    const renewed = { ...data, cookie: { ...data.cookie, originalMaxAge: this.cookie.maxAge, expires } } as SessionData;
    res.appendHeader('Set-Cookie', cookie.serialize(this.name, `s:${id}.${this.sign(id)}`, { expires, httpOnly: true, path: '/', sameSite: 'lax', secure: this.cookie.secure }));
    await new Promise<void>((resolve, reject) => this.store.touch(id, renewed, (err) => (err ? reject(err) : resolve())));
  }

  /** express-session's signature (cookie-signature): HMAC-SHA256 in base64 without padding. */
  private sign(id: string): string {
    return createHmac('sha256', this.secret).update(id).digest('base64').replace(/=+$/, '');
  }
}
