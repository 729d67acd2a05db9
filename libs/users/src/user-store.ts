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
}
