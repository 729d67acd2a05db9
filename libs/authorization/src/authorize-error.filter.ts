import { ArgumentsHost, Catch } from '@nestjs/common';
import type { FastifyReply as Response } from 'fastify';
import { IdpConfig, OAuthError, PageErrorFilter, PageRedirect, toOAuthError } from '@idp/core';
import { Interactions } from '@idp/session';
import type { AuthorizeHttpRequest } from './authorize-request';
import { sendAuthorizationError } from './authorize-response';

/**
 * Errors at /authorize: once the redirect URI is verified, redirectable errors go back to the
 * client with `error`, `error_description`, `state` and `iss`, in the response mode the request
 * asked for (the query, or a form post); before that (or for a non-redirectable error) the user
 * sees the error page with HTTP 400.
 */
@Catch()
export class AuthorizeErrorFilter extends PageErrorFilter {
  constructor(private readonly config: IdpConfig) {
    super();
  }

  catch(exception: unknown, host: ArgumentsHost): void {
    const req = host.switchToHttp().getRequest<AuthorizeHttpRequest>();
    const res = host.switchToHttp().getResponse<Response>();
    const target = req.authorizeTarget;
    if (exception instanceof PageRedirect || !target || res.sent) return super.catch(exception, host);
    const err = exception instanceof OAuthError ? exception : toOAuthError(exception);
    if (!err.redirectable) return super.catch(exception, host);
    if (err.status >= 500) this.logger.error(`authorize failed: ${err.hint ?? (exception as Error)?.message}`);
    if (target.interactionId) Interactions.remove(req, target.interactionId);
    sendAuthorizationError(res, req.method, target, target.state, err, this.config.issuer);
  }
}
