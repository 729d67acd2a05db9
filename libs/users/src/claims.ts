import { Injectable } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { RegistryOptions, buildRegistry } from '@idp/core';
import type { IdpUser } from './user-store';

export interface ClaimsContext {
  use: 'id_token' | 'userinfo';
  scopes: string[];
  clientId: string;
}

/**
 * Supplies the claims of one scope (OIDC Core §5.4) for ID tokens and /userinfo. Register with
 * `@ClaimsProvider({ name: 'acme' })` where the name is the scope; its `claims` are advertised in
 * `claims_supported`.
 */
export interface ClaimsProvider {
  readonly claims: string[];
  load(user: IdpUser, ctx: ClaimsContext): Promise<Record<string, unknown>> | Record<string, unknown>;
}

export const ClaimsProvider = DiscoveryService.createDecorator<{ name: string } & RegistryOptions>();

/** Claims that only the token issuer sets; a provider returning one of them is ignored for it. */
const RESERVED = new Set(['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti', 'auth_time', 'nonce', 'acr', 'amr', 'azp', 'at_hash', 'c_hash', 'sid']);

@ClaimsProvider({ name: 'profile' })
@Injectable()
export class ProfileClaims implements ClaimsProvider {
  readonly claims = ['name', 'updated_at'];
  load(user: IdpUser) {
    return { ...(user.name ? { name: user.name } : {}), ...(user.updated_at ? { updated_at: Math.floor(user.updated_at.getTime() / 1000) } : {}) };
  }
}

@ClaimsProvider({ name: 'email' })
@Injectable()
export class EmailClaims implements ClaimsProvider {
  readonly claims = ['email', 'email_verified'];
  load(user: IdpUser) {
    return { email: user.email, email_verified: user.email_verified };
  }
}

/** Every claims provider by scope, built once; feeds ID tokens, /userinfo and discovery. */
@Injectable()
export class ClaimsService {
  private built?: Map<string, ClaimsProvider>;

  constructor(private readonly discovery: DiscoveryService) {}

  onModuleInit(): void {
    void this.registry;
  }

  private get registry(): Map<string, ClaimsProvider> {
    return (this.built ??= buildRegistry<ClaimsProvider>(this.discovery, ClaimsProvider, 'claims provider'));
  }

  /** Scopes with claims (for `scopes_supported`). */
  get scopes(): string[] {
    return [...this.registry.keys()];
  }

  /** Every claim any provider can supply (for `claims_supported`). */
  get claimNames(): string[] {
    return [...new Set([...this.registry.values()].flatMap((p) => p.claims))];
  }

  /** The claims for the granted scopes, from every matching provider, in scope order. */
  async claimsFor(user: IdpUser, ctx: ClaimsContext): Promise<Record<string, unknown>> {
    const out: Record<string, unknown> = {};
    for (const scope of ctx.scopes) {
      const provider = this.registry.get(scope);
      if (!provider) continue;
      const claims = await provider.load(user, ctx);
      for (const [k, v] of Object.entries(claims ?? {})) if (!RESERVED.has(k) && v !== undefined) out[k] = v;
    }
    return out;
  }
}
