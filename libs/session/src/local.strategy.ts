import { Injectable } from '@nestjs/common';
import type { FastifyRequest as Request } from 'fastify';
import { Strategy } from 'passport-local';
import { UserStore, normalizeEmail } from '@idp/users';
import type { IdpUser as User } from '@idp/users';
import { PassportStrategy } from '@nestjs/passport';

/** Why a sign-in failed, as the audit log says it (the person signing in sees one generic message). */
export type LoginFailureReason = 'unknown account' | 'wrong password' | 'wrong email or password' | 'blocked' | 'input too long' | 'missing username or password' | 'locked';

/**
 * What the strategy found of a failed check, for the audit log: the account that was tried, when
 * one exists, and why it failed. Set on the request (`loginAttempt`) by the strategy; never the
 * password.
 */
export interface LoginAttempt {
  userId?: string;
  reason: LoginFailureReason;
}
export type LoginAttemptRequest = Request & { loginAttempt?: LoginAttempt };

/** The longest identifier the audit log keeps (and the login checks): an email's 320 characters. */
export const MAX_IDENTIFIER_LENGTH = 320;

/** The identifier typed in the login form as the audit log keeps it: normalised as emails are, bounded. */
export function typedIdentifier(raw: unknown): string {
  return typeof raw === 'string' ? normalizeEmail(raw.slice(0, MAX_IDENTIFIER_LENGTH * 2)).slice(0, MAX_IDENTIFIER_LENGTH) : '';
}

/**
 * passport-local (`username`, the email, and `password`), behind AuthGuard('local') on POST /login.
 * One generic failure for every reason; what was tried goes on the request for the audit log.
 */
@Injectable()
export class LocalStrategy extends PassportStrategy(Strategy, 'local') {
  constructor(private readonly users: UserStore) {
    super({ usernameField: 'username', passwordField: 'password', passReqToCallback: true });
  }

  /** The user when the password matches and the user is not blocked; else false, with what was tried on the request. */
  async validate(req: LoginAttemptRequest, username: string, password: string): Promise<User | false> {
    const { user, attempt } = await this.check(username, password);
    if (attempt) req.loginAttempt = attempt;
    return user;
  }

  private async check(username: string, password: string): Promise<{ user: User | false; attempt?: LoginAttempt }> {
    if (username.length > MAX_IDENTIFIER_LENGTH || password.length > 1024) return { user: false, attempt: { reason: 'input too long' } };
    // One lookup and one verification, known account or not: the account tried comes from it.
    const { user, accountId } = await this.users.checkPassword(username, password);
    if (!user) {
      if (accountId) return { user: false, attempt: { userId: accountId, reason: 'wrong password' } };
      return { user: false, attempt: { reason: accountId === null ? 'unknown account' : 'wrong email or password' } };
    }
    // A blocked user gets the same answer as a wrong password: nothing tells the two apart.
    if (user.blocked) return { user: false, attempt: { userId: user.id, reason: 'blocked' } };
    return { user };
  }
}
