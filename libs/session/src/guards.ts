import { ExecutionContext, Injectable } from '@nestjs/common';
import { AuthGuard } from '@nestjs/passport';
import type { FastifyRequest as Request } from 'fastify';
import { LoginAttemptRequest, typedIdentifier } from './local.strategy';
import { LoginPolicies } from './login-policy';
import { Interactions } from './interactions';
import { SessionSerializer } from './session.serializer';
import { ClientsService } from '@idp/clients';
import type { User } from '@idp/users';
import { IdpEvents, LockoutService, RequestContext } from '@idp/core';

/** What the guard found: a lock (seconds to wait), a refusal by a login policy, or a successful login. */
export type LoginRequest = Request & { loginLocked?: number; loginOk?: boolean; loginDenied?: string };

/**
 * AuthGuard('local') on POST /login (passport-local, `session: false`: the IdP owns its session).
 * Around the strategy: the lockouts (CONTRACT §5), and the login policies. A failure does not
 * throw: the guard passes with `loginOk` unset and the controller shows the form again. On success
 * the session is regenerated (no fixation), keeping the pending interactions and the CSRF token,
 * and records the user.
 */
@Injectable()
export class LocalLoginGuard extends AuthGuard('local') {
  constructor(
    private readonly lockout: LockoutService,
    private readonly events: IdpEvents,
    private readonly policies: LoginPolicies,
    private readonly clients: ClientsService,
    private readonly serializer: SessionSerializer,
  ) {
    super({ session: false });
  }

  /** The strategy's verdict, never an exception: the user, or false for a failed check. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  handleRequest(err: unknown, user: User | false): any {
    if (err) throw err;
    return user || false;
  }

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const req = ctx.switchToHttp().getRequest<LoginRequest>();
    const body = (req.body ?? {}) as Record<string, unknown>;
    const username = typeof body.username === 'string' ? body.username.slice(0, 320) : '';
    // Brute-force protection (CONTRACT §5): the attempt takes a slot of the account's and address's
    // budget, atomically, before the password is checked, and a locked account or address is
    // refused without a check; failures of unknown accounts count the same as those of real ones.
    const attempt = await this.lockout.attempt(this.lockout.loginKeys(username, req.ip));
    if (attempt.retryAfter) {
      req.loginLocked = attempt.retryAfter;
      return true;
    }
    let found: User | false;
    try {
      await super.canActivate(ctx);
      found = req.user as unknown as User | false;
    } catch (err) {
      this.lockout.abandon(attempt);
      throw err;
    } finally {
      req.user = undefined;
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
      const interaction = Interactions.get(req, body.interaction);
      const client = interaction ? await this.clients.find(interaction.client_id) : null;
      const decision = await this.policies.evaluate({ user: found, client, ip: req.ip, stage: 'login' });
      if (!decision.allow) {
        req.loginDenied = decision.reason;
        await this.events.emit('user.login_denied', { userId: found.id, clientId: client?.client_id, reason: decision.reason }, RequestContext.of(req));
        return true;
      }
    }
    await startSession(req, this.serializer.serialize(found));
    req.user = req.session.user;
    req.loginOk = true;
    return true;
  }
}

/**
 * A new session for a user who has just signed in: a new session id (the one the browser had
 * before is void, RFC 9700 §4.1 / OWASP session fixation), keeping the pending authorization
 * requests and the CSRF token of the form.
 */
async function startSession(req: Request, user: NonNullable<Request['session']['user']>): Promise<void> {
  await req.session.regenerate(['csrf', 'interactions']);
  req.session.user = user;
}
