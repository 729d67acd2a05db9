import { Injectable } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { Clock, IdpConfig, IdpEventMap, randomToken } from '@idp/core';
import { KeysService } from '@idp/keys';
import type { Client } from '@idp/clients';
import { ClaimsService, IdpUser as User } from '@idp/users';
import { PROTECTED_CLAIMS, TokenCustomizers } from './token-customizer';

export interface AccessTokenSpec {
  client: Client;
  /** The resource owner, or the client itself for client_credentials (RFC 9068 §2.2). */
  sub: string;
  audience: string | string[];
  scope: string[];
  lifetime: number;
  grantType: string;
  userId?: string;
  /** The signed-in user (for customizers); absent for client_credentials. */
  user?: User;
  authTime?: number;
  sid?: string;
  extra?: Record<string, unknown>;
}

export interface IssuedAccessToken {
  token: string;
  jti: string;
  expiresIn: number;
  exp: number;
  /** The `token.issued` event to emit once the request's writes are committed. */
  event: IdpEventMap['token.issued'];
}

export interface IdTokenSpec {
  client: Client;
  user: User;
  scopes: string[];
  authTime: number;
  sid: string;
  amr: string[];
  nonce?: string | null;
  accessToken: string;
  grantType: string;
}

/** ID tokens live one hour (they are read once, at sign-in). */
export const ID_TOKEN_LIFETIME = 3600;


/** Mints our tokens: RFC 9068 JWT access tokens, OIDC ID tokens and opaque refresh tokens. */
@Injectable()
export class TokenIssuer {
  constructor(
    private readonly keys: KeysService,
    private readonly config: IdpConfig,
    private readonly claims: ClaimsService,
    private readonly customizers: TokenCustomizers,
    private readonly clock: Clock,
  ) {}

  get userinfoAudience(): string {
    return `${this.config.issuer}/userinfo`;
  }

  async accessToken(spec: AccessTokenSpec): Promise<IssuedAccessToken> {
    const iat = this.clock.nowSeconds();
    const exp = iat + spec.lifetime;
    const jti = randomToken(16);
    const extra = Object.fromEntries(Object.entries(spec.extra ?? {}).filter(([k]) => !PROTECTED_CLAIMS.has(k)));
    const audience = Array.isArray(spec.audience) ? spec.audience : [spec.audience];
    const core = {
      iss: this.config.issuer,
      sub: spec.sub,
      aud: spec.audience,
      client_id: spec.client.client_id,
      scope: spec.scope.join(' '),
      jti,
      iat,
      exp,
      ...(spec.authTime !== undefined ? { auth_time: spec.authTime } : {}),
      ...(spec.sid !== undefined ? { sid: spec.sid } : {}),
    };
    const customized = await this.customizers.extraClaims({
      tokenType: 'access_token', claims: { ...extra, ...core }, client: spec.client, user: spec.user, grantType: spec.grantType, scopes: spec.scope, audience,
    });
    const claims = { ...extra, ...customized, ...core };
    const token = await this.keys.sign(claims, { typ: 'at+jwt' });
    return {
      token, jti, expiresIn: spec.lifetime, exp,
      event: { clientId: spec.client.client_id, grantType: spec.grantType, userId: spec.userId, audience, jti, scope: claims.scope },
    };
  }

  /** OIDC Core §2 / §3.1.3.6: the ID token, with `at_hash` of the access token issued beside it. */
  async idToken(spec: IdTokenSpec): Promise<string> {
    const iat = this.clock.nowSeconds();
    const profile = await this.claims.claimsFor(spec.user, { use: 'id_token', scopes: spec.scopes, clientId: spec.client.client_id });
    const core = {
      iss: this.config.issuer,
      sub: spec.user.id,
      aud: spec.client.client_id,
      iat,
      exp: iat + ID_TOKEN_LIFETIME,
      auth_time: spec.authTime,
      ...(spec.nonce ? { nonce: spec.nonce } : {}),
      amr: spec.amr,
      sid: spec.sid,
      at_hash: halfHash(spec.accessToken, this.keys.current().alg),
    };
    const customized = await this.customizers.extraClaims({
      tokenType: 'id_token', claims: { ...profile, ...core }, client: spec.client, user: spec.user, grantType: spec.grantType, scopes: spec.scopes, audience: [spec.client.client_id],
    });
    // `at_hash` again for the key that signs: the customizers' awaits may span the next key's activation.
    return this.keys.sign((key) => ({ ...profile, ...customized, ...core, at_hash: halfHash(spec.accessToken, key.alg) }));
  }

  /** A refresh token: 256 random bits; the caller stores only `hash`. */
  refreshToken(): { token: string; hash: string } {
    const token = randomToken(32);
    return { token, hash: this.config.keyring.hashSecret(token) };
  }

  hashRefreshToken(token: string): string {
    return this.config.keyring.hashSecret(token);
  }
}

/** Left half of the hash named by the signing algorithm (SHA-256 for RS256/ES256, SHA-512 for Ed25519). */
function halfHash(value: string, signingAlg: string): string {
  const digest = createHash(signingAlg === 'EdDSA' ? 'sha512' : 'sha256').update(value, 'ascii').digest();
  return digest.subarray(0, digest.length / 2).toString('base64url');
}
