import { Injectable, Logger } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseQuery } from 'node:querystring';
import type { SessionData } from 'express-session';
import { IdpConfig, OAuthError, ProtocolShortcut, ShortcutContext, RequestContext } from '@idp/core';
import { LoginRequirement, SessionCookies, SessionSerializer } from '@idp/session';
import { AuthorizeRequestValidator, loginCheckOf } from './authorize-request';
import { AuthorizationService } from './authorization.service';
import { ConsentService } from '@idp/consent';
import { sendAuthorizationError, sendAuthorizationResponse } from './authorize-response';

/**
 * GET /authorize for a user who is signed in and whose consent is in place, the request of every
 * silent sign-in and of every application opened again: answered by the lean HTTP path with the
 * same steps as AuthorizeController (the signed session cookie, the session and its user as
 * Passport deserializes it, the same validation, LoginRequirement, the consent check, the code,
 * the renewed rolling cookie), without Express, express-session, Passport and Nest's pipeline
 * (docs/performance.md). Anything else, an error included, is left to the controller: nothing has
 * been written by then, and the controller's answer (a login or consent page, an error redirect
 * or page) is the only one.
 */
@Injectable()
export class AuthorizeShortcut {
  private readonly logger = new Logger('AuthorizeShortcut');

  constructor(
    private readonly validator: AuthorizeRequestValidator,
    private readonly cookies: SessionCookies,
    private readonly serializer: SessionSerializer,
    private readonly requirement: LoginRequirement,
    private readonly authorization: AuthorizationService,
    private readonly consents: ConsentService,
    private readonly config: IdpConfig,
  ) {}

  route(): ProtocolShortcut {
    return { method: 'GET', path: '/authorize', handle: (req, res, ctx) => this.handle(req, res, ctx) };
  }

  async handle(req: IncomingMessage, res: ServerResponse, ctx: ShortcutContext): Promise<boolean> {
    const id = this.cookies.sessionId(req);
    if (!id || !this.cookies.canSet(req, ctx.trust)) return false;
    // Express's query parser on this server ('simple': node:querystring, a repeated parameter an array).
    // Validation first (it reads only cached clients and APIs), so that the session and the user's
    // consent for the client are then read together.
    const ar = await this.validator.validate(parseQuery(ctx.query), undefined).catch(() => undefined);
    if (!ar) return false;
    const { session, joined: consent } = await this.cookies.loadWith(id, this.consents.sessionJoin(ar.client.client_id));
    const stored = session?.passport?.user;
    if (!session || !stored) return false;
    const user = await this.serializer.deserialize(stored);
    if (!user) return false;
    let reason: string | undefined;
    try {
      reason = await this.requirement.check(user, loginCheckOf(ar), ctx.ip);
    } catch (err) {
      // A login policy's refusal goes back to the application as AuthorizeErrorFilter sends it
      // (answered here, so that no policy is asked twice for one request).
      if (!(err instanceof OAuthError) || !err.redirectable) return false;
      await this.renew(res, id, session);
      sendAuthorizationError(res, 'GET', ar, ar.state, err, this.config.issuer);
      return true;
    }
    if (reason !== undefined) return false;
    // The consent joined on the session row's user, who is the session's user (the store writes both).
    if ((await this.authorization.consentMissing(ar, user, consent?.user_id === user.sub ? consent : undefined)).length) return false;
    const code = await this.authorization.issueCode(ar, user, RequestContext.of(req));
    // From here on a code exists: this answer is the one.
    await this.renew(res, id, session);
    sendAuthorizationResponse(res, 'GET', ar, { code, state: ar.state, iss: this.config.issuer });
    return true;
  }

  /** The rolling session cookie, as express-session renews it on every answer (a failed store write is logged, not fatal, as there). */
  private async renew(res: ServerResponse, id: string, session: SessionData): Promise<void> {
    try {
      await this.cookies.renew(res, id, session);
    } catch (err) {
      this.logger.warn(`session renewal failed: ${(err as Error)?.message}`);
    }
  }
}
