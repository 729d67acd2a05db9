import '@fastify/session';

/** What a signed-in session carries about its user (the session's `user`). */
export interface SessionUser {
  sub: string;
  /** Seconds since the epoch of the last authentication (OIDC `auth_time`). */
  auth_time: number;
  /** The OIDC session id (`sid` claim), stable for the life of the login. */
  sid: string;
  amr: string[];
}

/** A pending authorization request, resumed by id after login or consent. */
export interface Interaction {
  id: string;
  /** The validated /authorize parameters, replayed on resume. */
  params: Record<string, string>;
  client_id: string;
  created_at: number;
  /** Set when the user logged in during this interaction (satisfies prompt=login). */
  login_at?: number;
  /** The `sid` of the sign-in made during this interaction: the session that satisfies its prompt=login and max_age. */
  login_sid?: string;
  /** What the consent page must show, set by the authorization step. */
  consent?: { scopes: string[]; audience?: string };
  /** The user's answer on the consent page. */
  decision?: 'allow' | 'deny';
}

declare module 'fastify' {
  /** What the IdP keeps in a browser session (@fastify/session, stored by SessionStore). */
  interface Session {
    csrf?: string;
    interactions?: Record<string, Interaction>;
    /** The signed-in user, once the login succeeded (LocalLoginGuard). */
    user?: SessionUser;
  }
  interface FastifyRequest {
    /** What a Passport guard authenticated (AuthGuard sets it). */
    user?: unknown;
  }
}
