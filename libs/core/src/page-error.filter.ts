import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { PageRedirect } from './page-redirect';
import { OAuthError } from './oauth-error';
import { exceptionHeaders, isDatabaseUnavailable } from './errors';
import { renderPage } from './pages';

/**
 * Errors of the HTML pages (login, consent, logout, the authorize error page): a redirect for
 * PageRedirect, otherwise an error page with a message a person can act on; never a stack. The
 * session is saved before the answer leaves (@fastify/session's onSend), a redirect's included.
 */
@Catch()
export class PageErrorFilter implements ExceptionFilter {
  protected readonly logger = new Logger('PageErrorFilter');

  catch(exception: unknown, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    if (reply.sent) return;
    if (exception instanceof PageRedirect) {
      reply.header('Cache-Control', 'no-store').redirect(exception.location, 303);
      return;
    }
    const { status, message } = pageError(exception);
    if (status >= 500) this.logger.error((exception as Error)?.message ?? String(exception), (exception as Error)?.stack);
    // The error page of a failure goes out without another session write (the store may be what
    // failed: saving the session again, as the session plugin does before each answer, would fail it too).
    // A redirect whose session could not be saved does not leave: the error page replaces it.
    if (status >= 500) {
      (host.switchToHttp().getRequest<{ session?: unknown }>()).session = null;
      reply.removeHeader('location');
    }
    for (const [k, v] of Object.entries(exceptionHeaders(exception))) reply.header(k, v);
    if (status === 503) reply.header('Retry-After', '5');
    const title = status >= 500 ? 'Something went wrong' : status === 429 ? 'Too many requests' : 'We could not complete this request';
    void renderPage(reply, 'error', { title, message }, status);
  }
}

export function pageError(exception: unknown): { status: number; message: string } {
  if (exception instanceof OAuthError) return { status: exception.status >= 500 ? exception.status : exception.status || 400, message: exception.description };
  if (exception instanceof HttpException && exception.getStatus() < 500) {
    const status = exception.getStatus();
    if (status === 429) return { status, message: 'Too many requests from your network. Please wait a few seconds and try again.' };
    if (status === 413) return { status, message: 'The form you sent is too large.' };
    if (status === 415) return { status: 400, message: 'The form must be sent as application/x-www-form-urlencoded in UTF-8.' };
    return { status, message: status === 404 ? 'This page does not exist.' : status === 403 ? 'This request was refused.' : 'The request was not valid.' };
  }
  // A body the server could not read (a broken compression, say): the client's error.
  const e = exception as { status?: number; statusCode?: number; expose?: boolean } | undefined;
  const clientStatus = e?.status ?? e?.statusCode;
  if (e && e.expose === true && typeof clientStatus === 'number' && clientStatus < 500) return { status: clientStatus === 413 ? 413 : 400, message: 'The request could not be read.' };
  if (isDatabaseUnavailable(exception)) return { status: 503, message: 'The service is temporarily unavailable. Please try again in a moment.' };
  return { status: 500, message: 'An unexpected error occurred. Please try again.' };
}
