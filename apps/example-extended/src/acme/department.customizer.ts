import { Injectable } from '@nestjs/common';
import { TokenCustomizer, TokenCustomizerContext } from '@idp/token';
import { HR_API } from './acme.constants';
import { ProfilesService } from './profiles.service';

/**
 * Seam: token customizer. Adds the signed-in user's `department` to access tokens for the HR API
 * only (other APIs, ID tokens and machine tokens are left alone). A customizer may add claims; it
 * cannot set or change the core ones (iss, sub, aud, exp, scope, client_id…): those are dropped.
 */
@TokenCustomizer({ name: 'acme-hr-department' })
@Injectable()
export class HrDepartmentCustomizer implements TokenCustomizer {
  constructor(private readonly profiles: ProfilesService) {}

  async customize(ctx: TokenCustomizerContext): Promise<Record<string, unknown> | void> {
    if (ctx.tokenType !== 'access_token' || !ctx.user || !ctx.audience.includes(HR_API)) return;
    const profile = await this.profiles.find(ctx.user.id);
    if (profile) return { department: profile.department };
  }
}
