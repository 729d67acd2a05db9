import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger, LoggerService } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { exceptionHeaders, httpMessage, isDatabaseUnavailable, toOAuthError } from './errors';

/**
 * A protocol error as RFC 6749 §5.2 JSON: `error`, `error_description`, `Cache-Control: no-store`,
 * the error's own headers (WWW-Authenticate, Retry-After), Retry-After on 503. Logs 5xx (and a
 * hint, at debug) under `TokenErrorFilter`.
 */
export function protocolErrorResponse(exception: unknown, log: Pick<LoggerService, 'error' | 'debug'>): { status: number; headers: Record<string, string>; body: { error: string; error_description: string } } {
  const err = toOAuthError(exception);
  if (err.status >= 500) log.error(`${err.code}: ${err.hint ?? ''}`, 'TokenErrorFilter');
  else if (err.hint) log.debug?.(`${err.code}: ${err.hint}`, 'TokenErrorFilter');
  const headers: Record<string, string> = { 'Cache-Control': 'no-store', Pragma: 'no-cache', ...exceptionHeaders(exception), ...err.headers };
  if (err.status === 503) headers['Retry-After'] = '5';
  return { status: err.status, headers, body: { error: err.code, error_description: err.description } };
}

/**
 * Renders protocol errors as RFC 6749 §5.2 JSON (protocolErrorResponse): on the token,
 * revocation, introspection and UserInfo endpoints, and on any route of an extension's own that
 * speaks OAuth.
 */
@Catch()
export class TokenErrorFilter implements ExceptionFilter {
  private readonly logger = new Logger('TokenErrorFilter');

  catch(exception: unknown, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    const { status, headers, body } = protocolErrorResponse(exception, { error: (m: unknown) => this.logger.error(m), debug: (m: unknown) => this.logger.debug(m) });
    if (reply.sent) return;
    void reply.status(status).headers(headers).type('application/json; charset=utf-8').send(body);
  }
}

/**
 * The JSON error format of the admin API and every other non-protocol route:
 * `{ statusCode, error, message }` where `message` names each bad field. Unknown errors answer a
 * generic 500 (or 503 when the database is away); the stack goes to the log, never to the client.
 */
@Catch()
export class ApiErrorFilter implements ExceptionFilter {
  private readonly logger = new Logger('ApiErrorFilter');

  catch(exception: unknown, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    if (reply.sent) return;
    const body = errorBody(exception);
    if (body.statusCode >= 500 && body.statusCode !== 503) {
      this.logger.error((exception as Error)?.message ?? String(exception), (exception as Error)?.stack);
    }
    reply.headers(exceptionHeaders(exception));
    if (body.statusCode === 503) reply.header('Retry-After', '5');
    void reply.status(body.statusCode).type('application/json; charset=utf-8').send(body);
  }
}

const REASONS: Record<number, string> = {
  400: 'invalid_request', 401: 'unauthorized', 403: 'forbidden', 404: 'not_found', 405: 'method_not_allowed',
  409: 'conflict', 413: 'payload_too_large', 415: 'unsupported_media_type', 429: 'too_many_requests', 503: 'temporarily_unavailable',
};

export function errorBody(exception: unknown): { statusCode: number; error: string; message: string | string[] } {
  if (exception instanceof HttpException) {
    const status = exception.getStatus();
    const raw = exception.getResponse() as { message?: string | string[]; error?: string } | string;
    const message = typeof raw === 'string' ? raw : (raw.message ?? httpMessage(exception));
    const error = typeof raw === 'object' && raw.error && /^[a-z_]+$/.test(raw.error) ? raw.error : (REASONS[status] ?? 'error');
    return { statusCode: status, error, message };
  }
  const oauth = toOAuthError(exception);
  if (oauth.status < 500) return { statusCode: oauth.status, error: oauth.code, message: oauth.description };
  if (isDatabaseUnavailable(exception)) return { statusCode: 503, error: 'temporarily_unavailable', message: 'the database is unavailable, try again shortly' };
  return { statusCode: 500, error: 'server_error', message: 'internal server error' };
}
