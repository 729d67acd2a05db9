import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { Clock, IdpConfig, IdpEvents, RequestContext } from '@idp/core';
import type { Client } from '@idp/clients';
import { KeysService } from '@idp/keys';
import { RefreshToken } from './refresh-token.entity';
import { RevocationService } from './revocation.service';
import { TokenIssuer } from './token-issuer';

/** Looks up our tokens for revocation (RFC 7009) and introspection (RFC 7662). */
@Injectable()
export class TokenIntrospection {
  constructor(
    @InjectRepository(RefreshToken) private readonly refreshTokens: Repository<RefreshToken>,
    private readonly keys: KeysService,
    private readonly issuer: TokenIssuer,
    private readonly revocation: RevocationService,
    private readonly config: IdpConfig,
    private readonly events: IdpEvents,
    private readonly clock: Clock,
  ) {}

  private async refreshRow(token: string): Promise<RefreshToken | null> {
    if (token.length > 256) return null;
    return this.refreshTokens.findOne({ where: { token_hash: this.issuer.hashRefreshToken(token) } });
  }

  private async accessClaims(token: string): Promise<Record<string, unknown> | null> {
    try {
      const { payload } = await this.keys.verify(token, { typ: 'at+jwt' });
      if (await this.revocation.isRevoked(payload.jti)) return null;
      return payload as Record<string, unknown>;
    } catch {
      return null;
    }
  }

  /**
   * Revokes a refresh token (and its family, with the access tokens it produced) or an access
   * token (deny-listed until it expires). A token of another client is left alone, silently.
   * `ctx`: the revocation request's context, for the event.
   */
  async revoke(token: string, client: Client, hint?: string, ctx?: RequestContext): Promise<void> {
    const order = hint === 'access_token' ? ['access', 'refresh'] : ['refresh', 'access'];
    for (const kind of order) {
      if (kind === 'refresh') {
        const row = await this.refreshRow(token);
        if (row && row.client_id === client.client_id) {
          await this.revocation.revokeFamilies([row.family_id]);
          await this.events.emit('token.revoked', { clientId: client.client_id, tokenType: 'refresh_token', userId: row.user_id }, ctx);
          return;
        }
      } else {
        const claims = await this.accessClaims(token);
        if (claims && claims.client_id === client.client_id && typeof claims.jti === 'string') {
          await this.revocation.revokeAccess([{ jti: claims.jti, exp: new Date(Number(claims.exp) * 1000) }]);
          await this.events.emit('token.revoked', { clientId: client.client_id, tokenType: 'access_token', userId: claims.sub === client.client_id ? undefined : String(claims.sub) }, ctx);
          return;
        }
      }
    }
  }

  async introspect(token: string, client: Client, hint?: string): Promise<Record<string, unknown>> {
    const order = hint === 'refresh_token' ? ['refresh', 'access'] : ['access', 'refresh'];
    for (const kind of order) {
      if (kind === 'access') {
        const c = await this.accessClaims(token);
        if (c) {
          return {
            active: true, token_type: 'Bearer', scope: c.scope, client_id: c.client_id, sub: c.sub, aud: c.aud, iss: c.iss,
            exp: c.exp, iat: c.iat, jti: c.jti, ...(c.auth_time !== undefined ? { auth_time: c.auth_time } : {}),
          };
        }
      } else {
        const row = await this.refreshRow(token);
        // A refresh token is only described to the client it was issued to.
        if (row && row.client_id === client.client_id && !row.revoked_at && !row.used_at && row.expires_at.getTime() > this.clock.now()) {
          return {
            active: true, token_type: 'refresh_token', scope: row.scopes.join(' '), client_id: row.client_id, sub: row.user_id, iss: this.config.issuer,
            exp: Math.floor(row.expires_at.getTime() / 1000), iat: Math.floor(row.created_at.getTime() / 1000),
            ...(row.audience ? { aud: row.audience } : {}),
          };
        }
      }
    }
    return { active: false };
  }
}
