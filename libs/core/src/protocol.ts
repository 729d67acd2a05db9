import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';

/**
 * What the protocol endpoints (token, revocation, introspection, UserInfo) and the client
 * authentication methods read from a request. Express's Request has this shape too, so a method
 * written against either works on both.
 */
export interface ProtocolRequest {
  method: string;
  /** The path as sent, without the query string. */
  path: string;
  headers: IncomingHttpHeaders;
  /** The parsed form body (flat: a repeated parameter is an array), when there is one. */
  body?: unknown;
  /** The client address (honours TRUST_PROXY). */
  ip?: string;
}

/** A protocol endpoint's answer: JSON `body`, status 200 unless given. */
export interface ProtocolResponse {
  status?: number;
  body: unknown;
  headers?: Record<string, string>;
}

/**
 * One protocol endpoint served by the lean HTTP path (libs/identity/src/protocol-server.ts), in
 * front of Express: the request log, rate limit, security headers, CORS, body limits and error
 * format are the ones every route has; `handle` gets the parsed form and answers JSON or throws an
 * OAuthError (rendered as RFC 6749 §5.2 JSON).
 */
export interface ProtocolRoute {
  method: 'GET' | 'POST';
  path: string;
  /** The body must be `application/x-www-form-urlencoded`, each parameter once (RFC 6749 §3.2). */
  form: boolean;
  /**
   * Form parameters held to the body limit alone, not to the per-parameter length limit: a value
   * the endpoint must answer whatever its length (introspection's `token`, RFC 7662 §2.2).
   */
  unboundedParams?: readonly string[];
  /** `headers`: set on the answer, whether it is a success or an error (CORS, for instance). */
  handle(req: ProtocolRequest, headers: Record<string, string>): Promise<ProtocolResponse>;
}

/** What the lean path knows of a request it offers to a shortcut. */
export interface ShortcutContext {
  /** The client address (honours TRUST_PROXY). */
  ip?: string;
  /** The query string, without the `?` ('' when there is none). */
  query: string;
  /** Express's compiled `trust proxy` setting (proxy-addr), for decisions `req.protocol` would make. */
  trust: (address: string, hop: number) => boolean;
}

/**
 * The common case of a browser route answered by the lean HTTP path, with the request log, rate
 * limit and security headers of every route: `handle` either answers (and resolves true) or writes
 * nothing and resolves false, and the request goes on to Express and Nest, whose answer is then
 * the only one. The first is /authorize for a signed-in user whose consent is in place.
 */
export interface ProtocolShortcut {
  method: 'GET';
  path: string;
  handle(req: IncomingMessage, res: ServerResponse, ctx: ShortcutContext): Promise<boolean>;
}
