import { Controller, Get, Header } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { IdpConfig } from '@idp/core';
import { ASSERTION_ALGS, ClientAuthRegistry } from '@idp/clients';
import { KeysService } from '@idp/keys';
import { GrantRegistry } from '@idp/token';
import { ClaimsService } from '@idp/users';

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
    private readonly claims: ClaimsService,
  ) {}

  metadata(): Record<string, unknown> {
    const iss = this.config.issuer;
    const authMethods = this.methods.names;
    const confidential = authMethods.filter((m) => m !== 'none');
    const jwtAuth = authMethods.includes('private_key_jwt') ? ASSERTION_ALGS : undefined;
    return {
      issuer: iss,
      authorization_endpoint: `${iss}/authorize`,
      token_endpoint: `${iss}/oauth/token`,
      userinfo_endpoint: `${iss}/userinfo`,
      jwks_uri: `${iss}/.well-known/jwks.json`,
      revocation_endpoint: `${iss}/oauth/revoke`,
      introspection_endpoint: `${iss}/oauth/introspect`,
      end_session_endpoint: `${iss}/oidc/logout`,
      scopes_supported: ['openid', ...this.claims.scopes.filter((s) => s !== 'openid'), 'offline_access'],
      claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'auth_time', 'nonce', 'sid', 'amr', 'at_hash', ...this.claims.claimNames],
      response_types_supported: ['code'],
      // The authorization lib's RESPONSE_MODES (authorize-response.ts), which it keeps to itself.
      response_modes_supported: ['query', 'form_post'],
      grant_types_supported: this.grants.grantTypes,
      code_challenge_methods_supported: ['S256'],
      token_endpoint_auth_methods_supported: authMethods,
      ...(jwtAuth ? { token_endpoint_auth_signing_alg_values_supported: jwtAuth } : {}),
      revocation_endpoint_auth_methods_supported: authMethods,
      ...(jwtAuth ? { revocation_endpoint_auth_signing_alg_values_supported: jwtAuth } : {}),
      introspection_endpoint_auth_methods_supported: confidential,
      ...(jwtAuth ? { introspection_endpoint_auth_signing_alg_values_supported: jwtAuth } : {}),
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: this.keys.algorithms(),
      access_token_signing_alg_values_supported: this.keys.algorithms(),
      prompt_values_supported: ['none', 'login', 'consent', 'select_account'],
      authorization_response_iss_parameter_supported: true,
      request_parameter_supported: false,
      request_uri_parameter_supported: false,
      claims_parameter_supported: false,
      frontchannel_logout_supported: false,
      backchannel_logout_supported: false,
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
    return this.metadata();
  }
}
