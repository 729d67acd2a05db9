import { Injectable } from '@nestjs/common';
import { LoginDecision, LoginPolicy, LoginPolicyContext } from '@idp/session';
import { ProfilesService } from './profiles.service';

export const FLAGGED_MESSAGE = 'Your Acme account is on hold. Please contact the IT help desk (extension 4357) to sign in again.';

/**
 * Seam: login policy. Runs after the password was verified (`stage: 'login'`: the reason is shown
 * on the login page, HTTP 403) and again whenever an existing session is about to be used
 * (`stage: 'session'`: the application gets `access_denied`). Every policy runs in order; the
 * first refusal wins.
 */
@LoginPolicy({ name: 'acme-flagged-employees' })
@Injectable()
export class FlaggedEmployeePolicy implements LoginPolicy {
  constructor(private readonly profiles: ProfilesService) {}

  async evaluate(ctx: LoginPolicyContext): Promise<LoginDecision> {
    const profile = await this.profiles.find(ctx.user.id);
    if (profile?.flagged) return { allow: false, reason: FLAGGED_MESSAGE };
    return { allow: true };
  }
}
