import { ExecutionContext, Injectable } from '@nestjs/common';
import { AuthGuard } from '@nestjs/passport';
import type { Request } from 'express';
import type { User } from '@idp/users';

/**
 * Runs passport-local on POST /login. A failure does not throw: `req.user` stays unset and the
 * controller shows the form again. On success the session is regenerated (fixation) keeping the
 * pending interactions and CSRF token, and the user is logged in.
 */
@Injectable()
export class LocalLoginGuard extends AuthGuard('local') {
  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const req = ctx.switchToHttp().getRequest<Request>();
    await super.canActivate(ctx);
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
