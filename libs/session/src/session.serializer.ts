import { Injectable } from '@nestjs/common';
import { PassportSerializer } from '@nestjs/passport';
import { randomToken } from '@idp/core';
import { UsersService } from '@idp/users';
import type { User } from '@idp/users';
import type { SessionUser } from './session.types';

/** Keeps {sub, auth_time, sid, amr} in the session; a deleted or blocked user is signed out on the next request. */
@Injectable()
export class SessionSerializer extends PassportSerializer {
  constructor(private readonly users: UsersService) {
    super();
  }

  serializeUser(user: User | SessionUser, done: (err: unknown, data?: SessionUser) => void): void {
    if ('sub' in user && typeof user.sub === 'string') return done(null, user as SessionUser);
    done(null, { sub: (user as User).id, auth_time: Math.floor(Date.now() / 1000), sid: randomToken(16), amr: ['pwd'] });
  }

  deserializeUser(data: SessionUser, done: (err: unknown, user?: SessionUser | false) => void): void {
    if (!data?.sub) return done(null, false);
    this.users
      .findById(data.sub)
      .then((u) => done(null, u && !u.blocked ? data : false))
      .catch((err) => done(err));
  }
}
