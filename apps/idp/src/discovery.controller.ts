import { Controller, Get, Header } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { IdpConfig } from '@idp/core';
import { ASSERTION_ALGS, ClientAuthRegistry } from '@idp/clients';
import { KeysService } from '@idp/keys';
import { GrantRegistry } from '@idp/token';

/**
 * RFC 8414 and OpenID Connect Discovery 1.0, built from the registries so that only what is
 * really supported is listed, and an extension's grant or method appears by itself.
 */
@ApiExcludeController()
@Controller('.well-known')
export class DiscoveryController {
  constructor(
    private readonly config: IdpConfig,
    private readonly grants: GrantRegistry,
    private readonly methods: ClientAuthRegistry,
    private readonly keys: KeysService,
  ) {}

  metadata(): Record<string, unknown> {
    const iss = this.config.issuer;
    const authMethods = this.methods.names;
    return {
      issuer: iss,
      token_endpoint: `${iss}/oauth/token`,
      jwks_uri: `${iss}/.well-known/jwks.json`,
      grant_types_supported: this.grants.grantTypes,
      token_endpoint_auth_methods_supported: authMethods,
      ...(authMethods.includes('private_key_jwt') ? { token_endpoint_auth_signing_alg_values_supported: ASSERTION_ALGS } : {}),
      response_types_supported: [],
      access_token_signing_alg_values_supported: this.keys.algorithms(),
      service_documentation: `${iss}/admin/openapi.json`,
    };
  }

  @Get('oauth-authorization-server')
  @Header('Cache-Control', 'public, max-age=60')
  oauthMetadata() {
    return this.metadata();
  }

  @Get('openid-configuration')
  @Header('Cache-Control', 'public, max-age=60')
  openidConfiguration() {
    return { ...this.metadata(), subject_types_supported: ['public'], id_token_signing_alg_values_supported: this.keys.algorithms() };
  }
}
