import { ExecutionContext, Injectable } from '@nestjs/common';
import { AuthGuard } from '@nestjs/passport';
import type { Request } from 'express';
import type { User } from '@idp/users';
import { IdpEvents, LockoutService } from '@idp/core';

export type LoginRequest = Request & { loginLocked?: number };

/**
 * Runs passport-local on POST /login. A failure does not throw: `req.user` stays unset and the
 * controller shows the form again. On success the session is regenerated (fixation) keeping the
 * pending interactions and CSRF token, and the user is logged in.
 */
@Injectable()
export class LocalLoginGuard extends AuthGuard('local') {
  constructor(private readonly lockout: LockoutService, private readonly events: IdpEvents) {
    super();
  }

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const req = ctx.switchToHttp().getRequest<LoginRequest>();
    const username = typeof req.body?.username === 'string' ? req.body.username.slice(0, 320) : '';
    // Brute-force protection (CONTRACT §5): a locked account or address is refused before any
    // password check; failures of unknown accounts count the same as those of real ones.
    const keys = this.lockout.loginKeys(username, req.ip);
    const state = await this.lockout.check(keys);
    if (state.retryAfter) {
      req.loginLocked = state.retryAfter;
      return true;
    }
    await super.canActivate(ctx);
    if (!req.user) {
      const locked = await this.lockout.fail(keys);
      if (locked) {
        req.loginLocked = locked;
        await this.events.emit('user.locked', { reason: 'account', retryAfter: locked, ip: req.ip });
      }
      return true;
    }
    if (state.dirty) await this.lockout.succeed(keys);
    if (req.user) {
      const user = req.user as unknown as User;
      await new Promise<void>((resolve, reject) => req.logIn(user as never, { keepSessionInfo: true } as never, (err) => (err ? reject(err) : resolve())));
      // From here on the request sees what later requests will see: the serialized session user.
      req.user = req.session.passport?.user;
    }
    return true;
  }

  handleRequest<TUser>(err: unknown, user: TUser): TUser {
    if (err) throw err;
    return (user || undefined) as TUser;
  }
}
