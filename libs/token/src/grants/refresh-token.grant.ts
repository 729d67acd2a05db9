import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { DirectSql, DirectTable, IdpEvents, invalidGrant, invalidRequest, invalidScope } from '@idp/core';
import type { Client } from '@idp/clients';
import { ResourcesService } from '@idp/resources';
import { UserStore } from '@idp/users';
import { GrantHandler, TokenRequest, TokenResponse } from '../grant-handler';
import { RefreshToken } from '../refresh-token.entity';
import { RevocationService } from '../revocation.service';
import { TokenIssuer } from '../token-issuer';
import { parseScope } from '../token-params';
import { UserTokens } from './user-tokens';

/**
 * RFC 6749 §6 refresh. With rotation (the default, and always for public clients) each token is
 * used once: the conditional UPDATE (`used_at IS NULL`) lets exactly one of concurrent uses win,
 * and presenting a used token revokes the whole family (RFC 9700 §4.14.2). Scope may narrow,
 * never widen.
 */
@GrantHandler({ name: 'refresh_token' })
@Injectable()
export class RefreshTokenGrant implements GrantHandler {
  /** The per-request reads and writes: direct statements (DirectSql). */
  private readonly rows: DirectTable<RefreshToken>;

  constructor(
    @InjectRepository(RefreshToken) refreshTokens: Repository<RefreshToken>,
    private readonly users: UserStore,
    private readonly resources: ResourcesService,
    private readonly revocation: RevocationService,
    private readonly tokens: UserTokens,
    private readonly issuer: TokenIssuer,
    private readonly events: IdpEvents,
  ) {
    this.rows = DirectSql.of(refreshTokens.manager.connection).table(RefreshToken);
  }

  async handle(req: TokenRequest, client: Client): Promise<TokenResponse> {
    if (!req.refresh_token) throw invalidRequest('refresh_token is required');
    const hash = this.issuer.hashRefreshToken(req.refresh_token);
    const row = await this.rows.findOne({ token_hash: hash });
    const invalid = () => invalidGrant('the refresh token is invalid, expired or revoked');
    if (!row || row.client_id !== client.client_id) throw invalid();
    if (row.revoked_at) throw invalid();
    if (row.expires_at.getTime() < Date.now()) throw invalid();

    const requested = parseScope(req.scope);
    let scopes = row.scopes;
    if (requested) {
      const outside = requested.filter((s) => !row.scopes.includes(s));
      if (outside.length) throw invalidScope(`scope exceeds what was granted: ${outside.join(' ')}`);
      scopes = row.scopes.filter((s) => requested.includes(s));
    }

    const rotate = client.refresh_token_rotation || client.isPublic;
    const usedAt = new Date();
    if (rotate) {
      const won = await this.rows.update({ token_hash: hash, used_at: null, revoked_at: null }, { used_at: usedAt });
      if (won !== 1) {
        await this.revocation.revokeFamilies([row.family_id]);
        await this.events.emit('token.refresh_reused', { clientId: client.client_id, userId: row.user_id, familyId: row.family_id });
        throw invalid();
      }
    }

    const user = await this.users.findById(row.user_id);
    if (!user || user.blocked) {
      await this.revocation.revokeFamilies([row.family_id]);
      throw invalid();
    }
    const api = row.audience ? await this.resources.findByIdentifier(row.audience) : null;
    if (row.audience && !api) throw invalid();

    // The new refresh token keeps the family's scopes (narrowing applies to this access token only)
    // and its absolute expiry; without rotation the same refresh token stays valid and none is sent.
    let revokedMeanwhile = false;
    const response = await this.tokens.issue(
      {
        client, user, scopes, api, authTime: row.auth_time, sid: row.sid, amr: row.amr.split(' '), grantType: 'refresh_token',
        family: { id: row.family_id, expiresAt: row.expires_at }, codeHash: row.code_hash ?? undefined,
        refreshScopes: row.scopes, noNewRefresh: !rotate,
      },
      req,
      rotate
        ? async (tx) => {
            // A concurrent reuse of the presented token revokes the family, and the new token with
            // it. Writing the presented token's row holds it until the commit: either a revocation
            // already under way is seen here (and applied to the new token right after the
            // commit, before anyone has seen it), or it waits for this commit and then finds the
            // new token (RevocationService.revokeFamilies).
            await this.rows.update({ token_hash: hash }, { used_at: usedAt }, tx);
            revokedMeanwhile = !!(await this.rows.findOne({ token_hash: hash }, tx))?.revoked_at;
          }
        : async (tx, access) => {
            await this.rows.update({ token_hash: hash }, { access_jti: access.jti, access_exp: new Date(access.exp * 1000) }, tx);
          },
    );
    if (revokedMeanwhile) await this.revocation.revokeFamilies([row.family_id]);
    return response;
  }
}
