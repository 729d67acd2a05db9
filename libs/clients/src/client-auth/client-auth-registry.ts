import { Injectable, OnModuleInit } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { buildRegistry } from '@idp/core';
import { ClientAuthMethod } from './client-auth-method';

/** Every `@ClientAuthMethod()` provider by name, built once at boot; duplicates fail the boot. */
@Injectable()
export class ClientAuthRegistry implements OnModuleInit {
  private built?: Map<string, ClientAuthMethod>;

  constructor(private readonly discovery: DiscoveryService) {}

  onModuleInit(): void {
    void this.registry;
  }

  /** Built on first use (every provider exists by then), at the latest when this module initializes. */
  private get registry(): Map<string, ClientAuthMethod> {
    return (this.built ??= buildRegistry<ClientAuthMethod>(this.discovery, ClientAuthMethod, 'client authentication method'));
  }

  /** Registered method names, for discovery (`token_endpoint_auth_methods_supported`). */
  get names(): string[] {
    return [...this.registry.keys()];
  }

  get(name: string): ClientAuthMethod | undefined {
    return this.registry.get(name);
  }

  all(): ClientAuthMethod[] {
    return [...this.registry.values()];
  }
}
