import { Injectable } from '@nestjs/common';
import { Clock, randomToken } from '@idp/core';
import { UserStore } from '@idp/users';
import type { IdpUser as User } from '@idp/users';
import type { SessionUser } from './session.types';

/** Keeps {sub, auth_time, sid, amr} in the session; a deleted or blocked user is signed out on the next request. */
@Injectable()
export class SessionSerializer {
  constructor(private readonly users: UserStore, private readonly clock: Clock) {}

  /** What the session keeps of a user who has just signed in (a new `sid`, `auth_time` now). */
  serialize(user: User | SessionUser): SessionUser {
    if ('sub' in user && typeof user.sub === 'string') return user as SessionUser;
    return { sub: (user as User).id, auth_time: this.clock.nowSeconds(), sid: randomToken(16), amr: ['pwd'] };
  }

  /** The session's user while the account exists and is not blocked, else false. */
  async deserialize(data: SessionUser | undefined): Promise<SessionUser | false> {
    if (!data?.sub) return false;
    const user = await this.users.findById(data.sub);
    return user && !user.blocked ? data : false;
  }
}
