import type { IncomingHttpHeaders } from 'node:http';

/** The path of a request URL, without its query string. */
export function urlPath(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

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
