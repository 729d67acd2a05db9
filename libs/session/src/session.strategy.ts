import { Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import { Strategy } from 'passport-custom';
import type { FastifyRequest as Request } from 'fastify';
import { SessionSerializer } from './session.serializer';
import type { SessionUser } from './session.types';

/** The Passport strategy name of the IdP's browser session (SessionGuard). */
export const SESSION_STRATEGY = 'idp-session';

/**
 * Authenticates a browser request from the IdP's own session (the signed session cookie, read by
 * the session middleware of the pages): the session's user, while the account exists and is not
 * blocked. No session, or a user who is gone, fails; SessionGuard decides what that means.
 */
@Injectable()
export class SessionStrategy extends PassportStrategy(Strategy, SESSION_STRATEGY) {
  constructor(private readonly serializer: SessionSerializer) {
    super();
  }

  validate(req: Request): Promise<SessionUser | false> {
    return this.serializer.deserialize(storedSessionUser(req));
  }
}

/**
 * The user the session records, as written at sign-in; sessions written before the IdP owned its
 * session layout kept it where Passport's session support put it (`passport.user`).
 */
export function storedSessionUser(req: Request): SessionUser | undefined {
  const session = req.session as (Request['session'] & { passport?: { user?: SessionUser } }) | null | undefined;
  return session?.user ?? session?.passport?.user;
}
