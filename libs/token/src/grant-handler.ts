import { Injectable } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { RegistryOptions, RequestContext, buildRegistry } from '@idp/core';
import type { Client } from '@idp/clients';

/** The token request's form parameters, flat (duplicates were refused before this point). */
export type TokenRequest = Readonly<Record<string, string | undefined>> & {
  grant_type: string;
  /** Set from the request's Origin header: a browser is calling (no refresh token for a confidential client). */
  readonly origin?: string;
};

export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  scope?: string;
  id_token?: string;
  refresh_token?: string;
  [extra: string]: unknown;
}

/**
 * One grant type (fosite's handler shape): the token endpoint finds it by `grant_type`. `ctx` is
 * the token request's context (request id, address): pass it on to the events the grant emits.
 */
export interface GrantHandler {
  handle(request: TokenRequest, client: Client, ctx?: RequestContext): Promise<TokenResponse>;
}

/** Registers a provider as the handler of a grant type, e.g. `@GrantHandler({ name: 'client_credentials' })`. */
export const GrantHandler = DiscoveryService.createDecorator<{ name: string } & RegistryOptions>();

/** Every `@GrantHandler()` provider by grant type, built once; duplicates fail the boot. */
@Injectable()
export class GrantRegistry {
  private built?: Map<string, GrantHandler>;

  constructor(private readonly discovery: DiscoveryService) {}

  onModuleInit(): void {
    void this.registry;
  }

  private get registry(): Map<string, GrantHandler> {
    return (this.built ??= buildRegistry<GrantHandler>(this.discovery, GrantHandler, 'grant handler'));
  }

  get(grantType: string): GrantHandler | undefined {
    return this.registry.get(grantType);
  }

  /** For discovery (`grant_types_supported`) and client registration. */
  get grantTypes(): string[] {
    return [...this.registry.keys()];
  }
}
