import { Injectable } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { RegistryOptions, buildRegistry } from '@idp/core';
import type { Client } from '@idp/clients';
import type { IdpUser } from '@idp/users';

export interface TokenCustomizerContext {
  tokenType: 'access_token' | 'id_token';
  /** The claims so far (read-only: return the claims to add). */
  claims: Readonly<Record<string, unknown>>;
  client: Client;
  /** The signed-in user; absent for client_credentials. */
  user?: IdpUser;
  grantType: string;
  scopes: string[];
  audience: string[];
}

/**
 * Adds claims to the tokens we issue (for example per API: `if (ctx.audience.includes(API))`).
 * Register with `@TokenCustomizer({ name: 'acme-roles' })`. The core claims (iss, sub, aud, exp,
 * iat, nbf, jti, client_id, scope, and in ID tokens auth_time, nonce, at_hash, sid, amr, azp)
 * cannot be set or overridden: they are dropped from what a customizer returns.
 */
export interface TokenCustomizer {
  customize(ctx: TokenCustomizerContext): Promise<Record<string, unknown> | void> | Record<string, unknown> | void;
}

export const TokenCustomizer = DiscoveryService.createDecorator<{ name: string } & RegistryOptions>();

export const PROTECTED_CLAIMS = new Set(['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti', 'client_id', 'scope', 'auth_time', 'nonce', 'at_hash', 'c_hash', 'sid', 'amr', 'azp', 'typ', 'cnf']);

/** Every `@TokenCustomizer()` provider, run in registration order. */
@Injectable()
export class TokenCustomizers {
  private built?: Map<string, TokenCustomizer>;

  constructor(private readonly discovery: DiscoveryService) {}

  onModuleInit(): void {
    void this.registry;
  }

  private get registry(): Map<string, TokenCustomizer> {
    return (this.built ??= buildRegistry<TokenCustomizer>(this.discovery, TokenCustomizer, 'token customizer'));
  }

  /** The claims every customizer adds, without any protected claim. */
  async extraClaims(ctx: TokenCustomizerContext): Promise<Record<string, unknown>> {
    if (this.registry.size === 0) return {};
    const out: Record<string, unknown> = {};
    for (const customizer of this.registry.values()) {
      const added = await customizer.customize({ ...ctx, claims: { ...ctx.claims, ...out } });
      for (const [k, v] of Object.entries(added ?? {})) if (!PROTECTED_CLAIMS.has(k) && v !== undefined) out[k] = v;
    }
    return out;
  }
}
