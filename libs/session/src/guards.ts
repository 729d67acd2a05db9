import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import type { Request, Response } from 'express';
import { IdpPassport } from './passport';
import { LoginAttemptRequest, typedIdentifier } from './local.strategy';
import { LoginPolicies } from './login-policy';
import { Interactions } from './interactions';
import { ClientsService } from '@idp/clients';
import type { User } from '@idp/users';
import { IdpEvents, LockoutService, RequestContext } from '@idp/core';

/** What the guard found: a lock (seconds to wait), or a successful login. */
export type LoginRequest = Request & { loginLocked?: number; loginOk?: boolean; loginDenied?: string };

/**
 * Runs passport-local on POST /login. A failure does not throw: `req.user` stays unset and the
 * controller shows the form again. On success the session is regenerated (fixation) keeping the
 * pending interactions and CSRF token, and the user is logged in.
 */
@Injectable()
export class LocalLoginGuard implements CanActivate {
  constructor(
    private readonly lockout: LockoutService,
    private readonly events: IdpEvents,
    private readonly passport: IdpPassport,
    private readonly policies: LoginPolicies,
    private readonly clients: ClientsService,
  ) {}

  /** passport.authenticate('local') with a callback: the user, or false on a failed check. */
  private authenticate(req: Request, res: Response): Promise<User | false> {
    return new Promise((resolve, reject) => {
      this.passport.authenticate('local', { session: false }, (err: unknown, user: User | false) => (err ? reject(err) : resolve(user)))(req, res, reject);
    });
  }

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const req = ctx.switchToHttp().getRequest<LoginRequest>();
    const username = typeof req.body?.username === 'string' ? req.body.username.slice(0, 320) : '';
    // Brute-force protection (CONTRACT §5): the attempt takes a slot of the account's and address's
    // budget, atomically, before the password is checked, and a locked account or address is
    // refused without a check; failures of unknown accounts count the same as those of real ones.
    const attempt = await this.lockout.attempt(this.lockout.loginKeys(username, req.ip));
    if (attempt.retryAfter) {
      req.loginLocked = attempt.retryAfter;
      return true;
    }
    // The verdict is `found`, never `req.user`: a signed-in user re-entering a wrong password
    // (prompt=login) still has a session user on the request.
    let found: User | false;
    try {
      found = await this.authenticate(req, ctx.switchToHttp().getResponse<Response>());
    } catch (err) {
      this.lockout.abandon(attempt);
      throw err;
    }
    if (!found) {
      const locked = await this.lockout.failed(attempt);
      if (locked) {
        req.loginLocked = locked;
        const userId = (req as LoginAttemptRequest).loginAttempt?.userId;
        await this.events.emit('user.locked', { reason: 'account', retryAfter: locked, ...(userId ? { userId } : {}), identifier: typedIdentifier(username), ip: req.ip }, RequestContext.of(req));
      }
      return true;
    }
    await this.lockout.succeed(attempt);
    // The password is right; a login policy may still say no (its reason is shown to the user).
    if (this.policies.size) {
      const interaction = Interactions.get(req, req.body?.interaction);
      const client = interaction ? await this.clients.find(interaction.client_id) : null;
      const decision = await this.policies.evaluate({ user: found, client, ip: req.ip, stage: 'login' });
      if (!decision.allow) {
        req.loginDenied = decision.reason;
        await this.events.emit('user.login_denied', { userId: found.id, clientId: client?.client_id, reason: decision.reason }, RequestContext.of(req));
        return true;
      }
    }
    await new Promise<void>((resolve, reject) => req.logIn(found as never, { keepSessionInfo: true } as never, (err) => (err ? reject(err) : resolve())));
    // From here on the request sees what later requests will see: the serialized session user.
    req.user = req.session.passport?.user;
    req.loginOk = true;
    return true;
  }
}
