import { Injectable } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { RegistryOptions, buildRegistry } from '@idp/core';
import type { Client } from '@idp/clients';
import type { IdpUser } from '@idp/users';

export interface LoginPolicyContext {
  user: IdpUser;
  /** The application the user is signing in to. */
  client: Client | null;
  ip?: string;
  /** `login`: the password was just verified; `session`: an existing session is about to be used. */
  stage: 'login' | 'session';
}

export type LoginDecision = { allow: true } | { allow: false; reason: string };

/**
 * A decision that may refuse a sign-in (events only notify; a policy can say no): for example
 * "no sign-in outside office hours" or "this account is flagged". Register with
 * `@LoginPolicy({ name: 'office-hours' })`. Every policy runs in order; the first refusal wins,
 * and its `reason` is shown to the user on the login page (or sent to the application as
 * `access_denied` when an existing session is refused).
 */
export interface LoginPolicy {
  evaluate(ctx: LoginPolicyContext): Promise<LoginDecision> | LoginDecision;
}

export const LoginPolicy = DiscoveryService.createDecorator<{ name: string } & RegistryOptions>();

@Injectable()
export class LoginPolicies {
  private built?: Map<string, LoginPolicy>;

  constructor(private readonly discovery: DiscoveryService) {}

  onModuleInit(): void {
    void this.registry;
  }

  private get registry(): Map<string, LoginPolicy> {
    return (this.built ??= buildRegistry<LoginPolicy>(this.discovery, LoginPolicy, 'login policy'));
  }

  get size(): number {
    return this.registry.size;
  }

  async evaluate(ctx: LoginPolicyContext): Promise<LoginDecision> {
    for (const policy of this.registry.values()) {
      const decision = await policy.evaluate(ctx);
      if (!decision.allow) return decision;
    }
    return { allow: true };
  }
}
