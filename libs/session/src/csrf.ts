import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { OAuthError, randomToken, safeEqual } from '@idp/core';

/** The session's CSRF token (synchronizer token pattern), created on first use. */
export function csrfToken(req: FastifyRequest): string {
  if (!req.session.csrf) req.session.csrf = randomToken(24);
  return req.session.csrf;
}

/** Refuses a form POST whose `_csrf` field does not match the session's token. */
@Injectable()
export class CsrfGuard implements CanActivate {
  canActivate(ctx: ExecutionContext): boolean {
    const req = ctx.switchToHttp().getRequest<FastifyRequest>();
    const sent = (req.body as Record<string, unknown> | undefined)?._csrf;
    const expected = req.session?.csrf;
    if (typeof sent !== 'string' || !expected || !safeEqual(sent, expected)) {
      throw new OAuthError('invalid_request', 'This form has expired. Go back to the application and sign in again.', 403, false, 'csrf token mismatch');
    }
    return true;
  }
}
