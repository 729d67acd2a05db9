import type { IncomingHttpHeaders } from 'node:http';

/**
 * What the protocol endpoints (token, revocation, introspection) and the client authentication
 * methods read from a request: the framework's request has this shape, so a method written against
 * it does not depend on the HTTP adapter.
 */
export interface ProtocolRequest {
  method: string;
  /** The URL as sent: the path and the query string. */
  url?: string;
  /** The path as sent, without the query string (when the framework gives it). */
  path?: string;
  headers: IncomingHttpHeaders;
  /** The parsed form body (flat: a repeated parameter is an array), when there is one. */
  body?: unknown;
  /** The client address (honours TRUST_PROXY). */
  ip?: string;
}
