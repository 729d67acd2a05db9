import { Injectable } from '@nestjs/common';
import type { Request } from 'express';
import { Strategy } from 'passport-local';
import { UserStore, normalizeEmail } from '@idp/users';
import type { IdpUser as User } from '@idp/users';
import { IdpPassport } from './passport';

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

/** passport-local: `username` (the email) and `password`. One generic failure for every reason. */
@Injectable()
export class LocalStrategy {
  constructor(private readonly users: UserStore, passport: IdpPassport) {
    passport.use(
      'local',
      new Strategy({ usernameField: 'username', passwordField: 'password', passReqToCallback: true }, (req, username, password, done) => {
        this.check(username, password).then(({ user, attempt }) => {
          if (attempt) (req as LoginAttemptRequest).loginAttempt = attempt;
          done(null, user as never);
        }, done);
      }),
    );
  }

  /** The user when the password matches and the user is not blocked; else false and what was tried. */
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
