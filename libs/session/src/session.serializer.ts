import { Injectable } from '@nestjs/common';
import { randomToken } from '@idp/core';
import { UserStore } from '@idp/users';
import type { IdpUser as User } from '@idp/users';
import type { SessionUser } from './session.types';
import { IdpPassport } from './passport';

/** Keeps {sub, auth_time, sid, amr} in the session; a deleted or blocked user is signed out on the next request. */
@Injectable()
export class SessionSerializer {
  constructor(private readonly users: UserStore, passport: IdpPassport) {
    passport.serializeUser((user, done) => done(null, this.serialize(user as User | SessionUser)));
    passport.deserializeUser((data: SessionUser, done: (err: unknown, user?: SessionUser | false) => void) => {
      this.deserialize(data).then((u) => done(null, u), done);
    });
  }

  serialize(user: User | SessionUser): SessionUser {
    if ('sub' in user && typeof user.sub === 'string') return user as SessionUser;
    return { sub: (user as User).id, auth_time: Math.floor(Date.now() / 1000), sid: randomToken(16), amr: ['pwd'] };
  }

  async deserialize(data: SessionUser): Promise<SessionUser | false> {
    if (!data?.sub) return false;
    const user = await this.users.findById(data.sub);
    return user && !user.blocked ? data : false;
  }
}
