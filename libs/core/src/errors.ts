import { HttpException } from '@nestjs/common';
import { OAuthError, invalidRequest, serverError, temporarilyUnavailable } from './oauth-error';

/** True for errors that mean the database cannot be reached right now (answer 503, not 500). */
export function isDatabaseUnavailable(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | undefined;
  if (!e) return false;
  const code = e.code ?? '';
  if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', '57P01', '57P02', '57P03', '08000', '08003', '08006', '53300', 'SQLITE_BUSY'].includes(code)) return true;
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|database is locked/i.test(e.message ?? '');
}

/**
 * Headers an exception carries for its answer (Retry-After on a 429, a challenge): an OAuthError's
 * `headers`, or an HttpException whose response names them (`{ headers: { … } }`).
 */
export function exceptionHeaders(exception: unknown): Record<string, string> {
  const own = (exception as { headers?: unknown })?.headers;
  if (own && typeof own === 'object') return own as Record<string, string>;
  if (exception instanceof HttpException) {
    const body = exception.getResponse() as { headers?: unknown };
    if (body && typeof body === 'object' && body.headers && typeof body.headers === 'object') return body.headers as Record<string, string>;
  }
  return {};
}

/** Maps any thrown value to an OAuthError: protocol errors pass, framework 4xx become invalid_request. */
export function toOAuthError(err: unknown): OAuthError {
  if (err instanceof OAuthError) return err;
  if (err instanceof HttpException) {
    const status = err.getStatus();
    if (status === 413) return new OAuthError('invalid_request', 'the request body is too large', 413);
    // RFC 6749 §3.2: the token endpoint takes a form; any other body is invalid_request, 400.
    if (status === 415) return invalidRequest('the request body must be application/x-www-form-urlencoded in UTF-8');
    if (status === 429) return new OAuthError('slow_down', 'rate limit exceeded; retry later', 429, false);
    // A framework message may echo a parameter name: keep it to the characters RFC 6749 §5.2 allows.
    const description = httpMessage(err).replace(/[^\x20\x21\x23-\x5B\x5D-\x7E]/g, '?');
    // A guard's refusal (an extension's own, say) keeps its 403; a missing route its 404.
    if (status === 403) return new OAuthError('access_denied', description, 403, true);
    if (status < 500) return new OAuthError('invalid_request', description, status === 400 ? 400 : status, true);
  }
  const e = err as { type?: string; status?: number; statusCode?: number; expose?: boolean };
  if (e && typeof e === 'object' && typeof (e.status ?? e.statusCode) === 'number' && (e.status ?? e.statusCode)! < 500 && (e.type || e.expose === true)) {
    // body-parser errors (entity.parse.failed, entity.too.large, charset.unsupported, …), and the
    // client errors it wraps without a type (http-errors' `expose`), such as a body that is not the gzip it claims
    return e.type === 'entity.too.large' ? new OAuthError('invalid_request', 'the request body is too large', 413) : invalidRequest('the request body could not be parsed');
  }
  if (isDatabaseUnavailable(err)) return temporarilyUnavailable('database unavailable');
  return serverError((err as Error)?.message);
}

export function httpMessage(err: HttpException): string {
  const body = err.getResponse() as string | { message?: string | string[] };
  if (typeof body === 'string') return body;
  const m = body?.message;
  return Array.isArray(m) ? m.join('; ') : (m ?? err.message);
}
