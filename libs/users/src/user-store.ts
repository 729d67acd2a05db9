/**
 * A user as the protocol needs one. The built-in table provides it (User); a customer's
 * UserStore may map its own directory or database to it.
 */
export interface IdpUser {
  /** Stable and unique: the `sub` of every token. */
  id: string;
  email: string;
  name?: string | null;
  email_verified: boolean;
  blocked: boolean;
  updated_at?: Date;
}

/** What one password check found (UserStore.checkPassword). */
export interface PasswordCheck {
  /** The user whose identifier and password match (a blocked user too, with `blocked` set), else null. */
  user: IdpUser | null;
  /**
   * The id of the account the identifier names, whether or not the password matched (the audit
   * log's `user_id` of a failed sign-in; never shown to the person signing in): null when no
   * account has that identifier, undefined when the store cannot tell.
   */
  accountId?: string | null;
}

/**
 * Where users come from (a replaceable seam): the login checks passwords through it, tokens and
 * UserInfo load users by id. The default is the built-in `users` table (UsersService); provide
 * another with `IdentityModule.forRoot({ userStore: MyUserStore })`.
 */
export abstract class UserStore {
  abstract findById(id: string): Promise<IdpUser | null>;
  /**
   * The user whose email and password match, or null. Should cost the same whether or not the
   * account exists (never reveal which emails are registered).
   */
  abstract verifyPassword(email: string, password: string): Promise<IdpUser | null>;

  /**
   * The check the login makes: verifyPassword, and the account that was tried. This default
   * knows the account only when the password matched; a store that can name it on a wrong
   * password too (the built-in one does) overrides this, from the same lookup and at the same
   * cost, so that the audit log of a failed sign-in names the account.
   */
  async checkPassword(email: string, password: string): Promise<PasswordCheck> {
    const user = await this.verifyPassword(email, password);
    return { user, accountId: user?.id };
  }
}
