import { Injectable } from '@nestjs/common';
import { Strategy } from 'passport-local';
import { UserStore } from '@idp/users';
import type { IdpUser as User } from '@idp/users';
import { IdpPassport } from './passport';

/** passport-local: `username` (the email) and `password`. One generic failure for every reason. */
@Injectable()
export class LocalStrategy {
  constructor(private readonly users: UserStore, passport: IdpPassport) {
    passport.use(
      'local',
      new Strategy({ usernameField: 'username', passwordField: 'password' }, (username, password, done) => {
        this.validate(username, password).then((user) => done(null, user as never), done);
      }),
    );
  }

  async validate(username: string, password: string): Promise<User | false> {
    if (username.length > 320 || password.length > 1024) return false;
    const user = await this.users.verifyPassword(username, password);
    // A blocked user gets the same answer as a wrong password: nothing tells the two apart.
    if (!user || user.blocked) return false;
    return user;
  }
}
