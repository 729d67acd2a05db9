import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { After, Clock, DirectSql, DirectTable, IdpEvents, RequestContext, invalidGrant, invalidRequest, invalidScope } from '@idp/core';
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
    private readonly clock: Clock,
  ) {
    this.rows = DirectSql.of(refreshTokens.manager.connection).table(RefreshToken);
  }

  async handle(req: TokenRequest, client: Client, ctx?: RequestContext): Promise<TokenResponse> {
    if (!req.refresh_token) throw invalidRequest('refresh_token is required');
    const hash = this.issuer.hashRefreshToken(req.refresh_token);
    // Issued by this replica and not looked up since: its row as written (UserTokens), else the database's.
    const row = this.tokens.takeIssuedRefresh(hash) ?? (await this.rows.findOne({ token_hash: hash }));
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
          refreshScopes: row.scopes, noNewRefresh: !rotate,
        },
        req,
        ctx,
        // With rotation, the conditional UPDATE that uses the presented token up is one atomic
        // write with the new token's INSERT: exactly one of concurrent uses wins it. It also holds
        // the row until the commit, so a revocation under way either committed first (no row
        // matches: nothing is added) or waits for this commit and then finds the new token too
        // (RevocationService.revokeFamilies). Without rotation, the new access token is recorded.
        // Either way the UPDATE requires the token unrevoked and unexpired in the database, the
        // authority over a row read from memory (UserTokens.takeIssuedRefresh).
        (access) => {
          const now = this.clock.date();
          return rotate
            ? { table: this.rows, where: { token_hash: hash, used_at: null, revoked_at: null, expires_at: new After(now) }, set: { used_at: now } }
            : { table: this.rows, where: { token_hash: hash, revoked_at: null, expires_at: new After(now) }, set: { access_jti: access.jti, access_exp: new Date(access.exp * 1000) } };
        },
      );
    } catch (err) {
      if (!(err instanceof UsedUp)) throw err;
      // Another use won, or a revocation (or the expiry) came first: read the row again to tell which.
      const now = await this.rows.findOne({ token_hash: hash });
      if (rotate && now?.used_at && !now.revoked_at) return this.reused(client, row, ctx);
      throw invalid(); // revoked or expired meanwhile (its family with it), or gone
    }
  }

  /** A used refresh token presented again: the whole family is revoked, and the reuse announced. */
  private async reused(client: Client, row: RefreshToken, ctx: RequestContext | undefined): Promise<never> {
    await this.revocation.revokeFamilies([row.family_id]);
    await this.events.emit('token.refresh_reused', { clientId: client.client_id, userId: row.user_id, familyId: row.family_id }, ctx);
    throw invalid();
  }
}
