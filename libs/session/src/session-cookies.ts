import session from 'express-session';
import type { RequestHandler } from 'express';
import type { TypeOrmSessionStore } from './session.store';

/** Browser sessions live 14 days of inactivity at most (the cookie is renewed on each use). */
export const SESSION_IDLE_MS = 14 * 24 * 3600 * 1000;

/**
 * The IdP's own browser session: a signed, HttpOnly, SameSite=Lax cookie (`__Host-` on https)
 * naming a session kept in the database (TypeOrmSessionStore), through express-session. Bound to
 * the pages only (SessionModule), never to the protocol endpoints or the admin API.
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
}
