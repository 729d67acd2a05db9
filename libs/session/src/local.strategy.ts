import { Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import { Strategy } from 'passport-local';
import { UsersService } from '@idp/users';
import type { User } from '@idp/users';

/** passport-local: `username` (the email) and `password`. One generic failure for every reason. */
@Injectable()
export class LocalStrategy extends PassportStrategy(Strategy, 'local') {
  constructor(private readonly users: UsersService) {
    super({ usernameField: 'username', passwordField: 'password' });
  }

  async validate(username: string, password: string): Promise<User | false> {
    if (username.length > 320 || password.length > 1024) return false;
    const user = await this.users.verifyPassword(username, password);
    // A blocked user gets the same answer as a wrong password: nothing tells the two apart.
    if (!user || user.blocked) return false;
    return user;
  }
}
