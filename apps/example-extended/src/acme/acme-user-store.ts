import { Injectable } from '@nestjs/common';
import { IdpUser, PasswordCheck, UserStore, UsersService } from '@idp/users';

/** The email domain of Acme's staff: `ada` signs in as `ada@acme.example`. */
export const ACME_EMAIL_DOMAIN = 'acme.example';

/**
 * Seam: UserStore (where users come from). Acme keeps its users in the IdP's own table (so the
 * admin API still manages them) but lets staff sign in with their short name: a username without
 * `@` is read as `<name>@acme.example`. A company with users elsewhere (LDAP, its own database)
 * implements the same methods against that source instead.
 *
 * Given as `IdentityModule.forRoot({ userStore: AcmeUserStore })`, it replaces the built-in store
 * everywhere: the login checks passwords through it, and tokens, UserInfo and sessions load users
 * by id through it. It is created inside the IdP's users module, so it can inject the IdP's
 * exported services (UsersService, IdpConfig, the TypeORM DataSource…), not your module's own.
 */
@Injectable()
export class AcmeUserStore extends UserStore {
  constructor(private readonly users: UsersService) {
    super();
  }

  findById(id: string): Promise<IdpUser | null> {
    return this.users.findById(id);
  }

  /** Delegates to the built-in check (argon2id, same cost whether or not the account exists). */
  verifyPassword(username: string, password: string): Promise<IdpUser | null> {
    return this.users.verifyPassword(acmeEmail(username), password);
  }

  /** The login's check: the same, and the account tried even on a wrong password (the audit log's user_id). */
  checkPassword(username: string, password: string): Promise<PasswordCheck> {
    return this.users.checkPassword(acmeEmail(username), password);
  }
}

function acmeEmail(username: string): string {
  return username.includes('@') ? username : `${username}@${ACME_EMAIL_DOMAIN}`;
}
