import { Injectable } from '@nestjs/common';
import { IdpConfig, IdpEvents, randomToken } from '@idp/core';
import { KeysService } from '@idp/keys';
import type { Client } from '@idp/clients';

export interface AccessTokenSpec {
  client: Client;
  /** The resource owner, or the client itself for client_credentials (RFC 9068 §2.2). */
  sub: string;
  audience: string;
  scope: string[];
  lifetime: number;
  grantType: string;
  userId?: string;
  authTime?: number;
  extra?: Record<string, unknown>;
}

/** Claims that a customizer or an extra field may never set. */
const PROTECTED = ['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti', 'client_id', 'scope'];

/** Mints our tokens: RFC 9068 JWT access tokens signed by the keys module. */
@Injectable()
export class TokenIssuer {
  constructor(private readonly keys: KeysService, private readonly config: IdpConfig, private readonly events: IdpEvents) {}

  async accessToken(spec: AccessTokenSpec): Promise<{ token: string; jti: string; expiresIn: number; exp: number }> {
    const iat = Math.floor(Date.now() / 1000);
    const exp = iat + spec.lifetime;
    const jti = randomToken(16);
    const extra = Object.fromEntries(Object.entries(spec.extra ?? {}).filter(([k]) => !PROTECTED.includes(k)));
    const claims = {
      ...extra,
      iss: this.config.issuer,
      sub: spec.sub,
      aud: spec.audience,
      client_id: spec.client.client_id,
      scope: spec.scope.join(' '),
      jti,
      iat,
      exp,
      ...(spec.authTime !== undefined ? { auth_time: spec.authTime } : {}),
    };
    const token = await this.keys.sign(claims, { typ: 'at+jwt' });
    await this.events.emit('token.issued', {
      clientId: spec.client.client_id, grantType: spec.grantType, userId: spec.userId, audience: [spec.audience], jti, scope: claims.scope,
    });
    return { token, jti, expiresIn: spec.lifetime, exp };
  }
}
