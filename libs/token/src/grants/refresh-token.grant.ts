import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { type EntityManager, IsNull, MoreThan, Repository } from 'typeorm';
import { Clock, IdpEvents, RequestContext, invalidGrant, invalidRequest, invalidScope } from '@idp/core';
import type { Client } from '@idp/clients';
import { ResourcesService } from '@idp/resources';
import { UserStore } from '@idp/users';
import { GrantHandler, TokenRequest, TokenResponse } from '../grant-handler';
import { RefreshToken } from '../refresh-token.entity';
import { RevocationService } from '../revocation.service';
import { TokenIssuer } from '../token-issuer';
import { parseScope } from '../token-params';
import { UsedUp, UserTokens } from './user-tokens';

const invalid = () => invalidGrant('the refresh token is invalid, expired or revoked');

/**
 * RFC 6749 §6 refresh. With rotation (the default, and always for public clients) each token is
 * used once: the conditional UPDATE (`used_at IS NULL`) lets exactly one of concurrent uses win,
 * and presenting a used token revokes the whole family (RFC 9700 §4.14.2). Scope may narrow,
 * never widen.
 */
@GrantHandler({ name: 'refresh_token' })
@Injectable()
export class RefreshTokenGrant implements GrantHandler {
  constructor(
    @InjectRepository(RefreshToken) private readonly refreshTokens: Repository<RefreshToken>,
    private readonly users: UserStore,
    private readonly resources: ResourcesService,
    private readonly revocation: RevocationService,
    private readonly tokens: UserTokens,
    private readonly issuer: TokenIssuer,
    private readonly events: IdpEvents,
    private readonly clock: Clock,
  ) {}

  async handle(req: TokenRequest, client: Client, ctx?: RequestContext): Promise<TokenResponse> {
    if (!req.refresh_token) throw invalidRequest('refresh_token is required');
    const hash = this.issuer.hashRefreshToken(req.refresh_token);
    // Issued by this replica and not looked up since: its row as written (UserTokens), else the database's.
    const row = this.tokens.takeIssuedRefresh(hash) ?? (await this.refreshTokens.findOneBy({ token_hash: hash }));
    if (!row || row.client_id !== client.client_id) throw invalid();
    if (row.revoked_at) throw invalid();
    if (row.expires_at.getTime() < this.clock.now()) throw invalid();

    const requested = parseScope(req.scope);
    let scopes = row.scopes;
    if (requested) {
      const outside = requested.filter((s) => !row.scopes.includes(s));
      if (outside.length) throw invalidScope(`scope exceeds what was granted: ${outside.join(' ')}`);
      scopes = row.scopes.filter((s) => requested.includes(s));
    }

    const rotate = client.refresh_token_rotation || client.isPublic;
    // Presented again after a rotation: reuse (RFC 9700 §4.14.2), known without signing anything.
    if (rotate && row.used_at) return this.reused(client, row, ctx);

    const user = await this.users.findById(row.user_id);
    if (!user || user.blocked) {
      await this.revocation.revokeFamilies([row.family_id]);
      throw invalid();
    }
    const api = row.audience ? await this.resources.findByIdentifier(row.audience) : null;
    if (row.audience && !api) throw invalid();

    // The new refresh token keeps the family's scopes (narrowing applies to this access token only)
    // and its absolute expiry; without rotation the same refresh token stays valid and none is sent.
    try {
      return await this.tokens.issue(
        {
          client, user, scopes, api, authTime: row.auth_time, sid: row.sid, amr: row.amr.split(' '), grantType: 'refresh_token',
          family: { id: row.family_id, expiresAt: row.expires_at }, codeHash: row.code_hash ?? undefined,
          refreshScopes: row.scopes, noNewRefresh: !rotate, rotates: rotate ? hash : undefined,
        },
        req,
        ctx,
        // Without rotation, the new access token is recorded on the presented refresh token.
        rotate ? undefined : (m, access) => this.recordAccessToken(m, hash, access),
      );
    } catch (err) {
      if (!(err instanceof UsedUp)) throw err;
      // Another use won, or a revocation (or the expiry) came first: read the row again to tell which.
      const now = await this.refreshTokens.findOneBy({ token_hash: hash });
      if (rotate && now?.used_at && !now.revoked_at) return this.reused(client, row, ctx);
      throw invalid(); // revoked or expired meanwhile (its family with it), or gone
    }
  }

  /** Without rotation: records the new access token on the presented refresh token, if it is still unrevoked and unexpired (the row count decides). */
  private async recordAccessToken(m: EntityManager, hash: string, access: { jti: string; exp: number }): Promise<boolean> {
    const { affected } = await m.getRepository(RefreshToken).update(
      { token_hash: hash, revoked_at: IsNull(), expires_at: MoreThan(this.clock.date()) },
      { access_jti: access.jti, access_exp: new Date(access.exp * 1000) },
    );
    return affected === 1;
  }

  /** A used refresh token presented again: the whole family is revoked, and the reuse announced. */
  private async reused(client: Client, row: RefreshToken, ctx: RequestContext | undefined): Promise<never> {
    await this.revocation.revokeFamilies([row.family_id]);
    await this.events.emit('token.refresh_reused', { clientId: client.client_id, userId: row.user_id, familyId: row.family_id }, ctx);
    throw invalid();
  }
}
