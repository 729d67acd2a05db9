import { Injectable } from '@nestjs/common';
import { ClaimsContext, ClaimsProvider, IdpUser } from '@idp/users';
import { ProfilesService } from './profiles.service';

/**
 * Seam: claims provider. The `department` scope (OIDC Core §5.4 style) adds a `department` claim
 * to the ID token and to /userinfo. The scope appears in `scopes_supported` and the claim in
 * `claims_supported`; /authorize accepts the scope because a provider claims it.
 */
@ClaimsProvider({ name: 'department' })
@Injectable()
export class DepartmentClaims implements ClaimsProvider {
  readonly claims = ['department'];

  constructor(private readonly profiles: ProfilesService) {}

  async load(user: IdpUser, _ctx: ClaimsContext): Promise<Record<string, unknown>> {
    const profile = await this.profiles.find(user.id);
    // No profile, no claim (an absent claim, never `null`).
    return profile ? { department: profile.department } : {};
  }
}
