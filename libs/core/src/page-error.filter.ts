import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { Response } from 'express';
import { PageRedirect } from './page-redirect';
import { OAuthError } from './oauth-error';
import { isDatabaseUnavailable } from './errors';
import { renderPage, saveSession } from './pages';

/**
 * Errors of the HTML pages (login, consent, logout, the authorize error page): a redirect for
 * PageRedirect, otherwise an error page with a message a person can act on; never a stack.
 */
@Catch()
export class PageErrorFilter implements ExceptionFilter {
  protected readonly logger = new Logger('PageErrorFilter');

  catch(exception: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    if (res.headersSent) return;
    if (exception instanceof PageRedirect) {
      res.setHeader('Cache-Control', 'no-store');
      const req = host.switchToHttp().getRequest();
      saveSession(req).then(
        () => res.redirect(303, exception.location),
        (err) => {
          this.logger.error(`session save failed: ${(err as Error)?.message}`);
          renderPage(res, 'error', { title: 'Something went wrong', message: pageError(err).message }, pageError(err).status);
        },
      );
      return;
    }
    const { status, message } = pageError(exception);
    if (status >= 500) this.logger.error((exception as Error)?.message ?? String(exception), (exception as Error)?.stack);
    renderPage(res, 'error', { title: status >= 500 ? 'Something went wrong' : 'We could not complete this request', message }, status);
  }
}

export function pageError(exception: unknown): { status: number; message: string } {
  if (exception instanceof OAuthError) return { status: exception.status >= 500 ? exception.status : exception.status || 400, message: exception.description };
  if (exception instanceof HttpException && exception.getStatus() < 500) {
    return { status: exception.getStatus(), message: exception.getStatus() === 404 ? 'This page does not exist.' : 'The request was not valid.' };
  }
  if (isDatabaseUnavailable(exception)) return { status: 503, message: 'The service is temporarily unavailable. Please try again in a moment.' };
  return { status: 500, message: 'An unexpected error occurred. Please try again.' };
}
