import type { Type } from '@nestjs/common';
import type { Clock } from './clock';

/**
 * Replacements for the class-token seams, given to IdentityModule.forRoot and read by the lib
 * that owns each seam (kept here, in the shared vocabulary, so no lib depends on the composition root).
 */
export interface IdpOverrides {
  /** A class implementing UserStore (from @idp/users). */
  userStore?: Type<unknown>;
  /** Scopes added to the admin API, for an extension's own admin routes. */
  adminScopes?: { value: string; description: string }[];
  /** The clock the IdP decides by (a ManualClock in tests); the system's by default. */
  clock?: Clock;
}

export const IDP_OVERRIDES = Symbol('IDP_OVERRIDES');
