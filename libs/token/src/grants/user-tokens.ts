import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, type ObjectLiteral } from 'typeorm';
import { Clock, DirectSql, DirectTable, IdpEvents, RequestContext, RowUpdate, WrittenHere, uuidv7 } from '@idp/core';
import type { Client } from '@idp/clients';
import type { Api } from '@idp/resources';
import type { IdpUser as User } from '@idp/users';
import type { TokenRequest, TokenResponse } from '../grant-handler';
import { RefreshToken } from '../refresh-token.entity';
import { TokenIssuer, IssuedAccessToken } from '../token-issuer';

/** Thrown by UserTokens.issue when what the tokens were to be issued for was used up by another request first. */
export class UsedUp extends Error {
  constructor() {
    super('used up by a concurrent request');
  }
}

/** A user's access tokens for /userinfo only live one hour. */
export const USERINFO_TOKEN_LIFETIME = 3600;
/** A refresh token family lives 30 days from the sign-in, rotated or not (absolute, like Auth0's default). */
export const REFRESH_FAMILY_LIFETIME_S = 30 * 24 * 3600;

export interface UserGrant {
  client: Client;
  user: User;
  scopes: string[];
  api?: Api | null;
  authTime: number;
  sid: string;
  amr: string[];
  nonce?: string | null;
  grantType: 'authorization_code' | 'refresh_token';
  /** Continue this refresh family (refresh grant) instead of starting one. */
  family?: { id: string; expiresAt: Date };
  /** Scopes of the refresh token, when they differ from the access token's (narrowed refresh, RFC 6749 §6). */
  refreshScopes?: string[];
  /** Issue no new refresh token (refresh without rotation: the presented one stays valid). */
  noNewRefresh?: boolean;
  codeHash?: string;
}

/**
 * What the authorization_code and refresh_token grants share: the access token (for the API, or
 * for /userinfo: accessTokenTarget), the ID token, and the refresh-token rules of CONTRACT §2.
 */
@Injectable()
export class UserTokens {
  private readonly refreshRows: DirectTable<RefreshToken>;
  /**
   * The refresh tokens issued here, until their first lookup (WrittenHere): a refresh presented to
   * the replica that issued it, while it is still among the last 5,000 issued (some 11 MiB), is not
   * read back. The refresh grant's conditional UPDATE still decides in the database whether it is
   * unused, unrevoked and unexpired.
   */
  private readonly issuedRefresh = new WrittenHere<RefreshToken>(5_000);

  constructor(private readonly issuer: TokenIssuer, private readonly events: IdpEvents, @InjectDataSource() db: DataSource, private readonly clock: Clock) {
    this.refreshRows = DirectSql.of(db).table(RefreshToken);
  }

  /**
   * Refresh tokens only with offline_access granted, the refresh_token grant registered, and the
   * API (if any) allowing offline access; never to a confidential client's request carrying an
   * Origin header (a browser must not hold a client secret); to a public client only with rotation.
   */
  mayRefresh(g: Pick<UserGrant, 'client' | 'scopes' | 'api' | 'refreshScopes' | 'noNewRefresh'>, req: TokenRequest): boolean {
    if (g.noNewRefresh) return false;
    if (!(g.refreshScopes ?? g.scopes).includes('offline_access')) return false;
    if (!g.client.grant_types.includes('refresh_token')) return false;
    if (g.api && !g.api.allow_offline_access) return false;
    if (g.client.isPublic) return g.client.refresh_token_rotation;
    return !req.origin;
  }

  /**
   * The access token's `aud` and `scope` (CONTRACT §2). For an API: that API alone, and only the
   * granted scopes the API defines; `openid`, `profile`, `email`, `offline_access` and the claims
   * providers' scopes shape the ID token and the refresh token, not a token the API is to accept.
   * Without an API: a token for /userinfo, with every granted scope (UserInfo answers by them).
   */
  accessTokenTarget(g: Pick<UserGrant, 'scopes' | 'api'>): { audience: string; scope: string[] } {
    if (!g.api) return { audience: this.issuer.userinfoAudience, scope: g.scopes };
    const own = new Set(g.api.scopes.map((s) => s.value));
    return { audience: g.api.identifier, scope: g.scopes.filter((s) => own.has(s)) };
  }

  /** The row of a refresh token issued here (by its hash), on its first lookup only; then undefined. */
  takeIssuedRefresh(hash: string): RefreshToken | undefined {
    return this.issuedRefresh.take(hash);
  }

  /**
   * Signs the tokens, then writes the new refresh token and uses up what they are issued for
   * (`useUp`: the code, or the presented refresh token) atomically (DirectTable.updateThenInsert:
   * one statement on PostgreSQL), and announces the issuance after the commit. Throws UsedUp,
   * writing nothing, when `useUp` matches no row (another request used it first). `ctx`: the
   * token request's context, for the event.
   */
  async issue<X extends ObjectLiteral>(g: UserGrant, req: TokenRequest, ctx: RequestContext | undefined, useUp?: (access: IssuedAccessToken) => RowUpdate<X>): Promise<TokenResponse> {
    const { audience, scope } = this.accessTokenTarget(g);
    const access = await this.issuer.accessToken({
      client: g.client, sub: g.user.id, audience, scope, lifetime: g.api?.token_lifetime ?? USERINFO_TOKEN_LIFETIME,
      grantType: g.grantType, userId: g.user.id, user: g.user, authTime: g.authTime, sid: g.sid,
    });
    // RFC 6749 §5.1: `scope` is the scope of the access token (the ID token's are in its claims).
    const response: TokenResponse = { access_token: access.token, token_type: 'Bearer', expires_in: access.expiresIn, scope: scope.join(' ') };
    if (g.scopes.includes('openid')) {
      response.id_token = await this.issuer.idToken({
        client: g.client, user: g.user, scopes: g.scopes, authTime: g.authTime, sid: g.sid, amr: g.amr, nonce: g.nonce, accessToken: access.token, grantType: g.grantType,
      });
    }
    const refresh = this.mayRefresh(g, req) ? this.issuer.refreshToken() : undefined;
    let row: Partial<RefreshToken> | undefined;
    if (refresh) {
      const now = this.clock.date();
      row = {
        token_hash: refresh.hash, family_id: g.family?.id ?? uuidv7(), client_id: g.client.client_id, user_id: g.user.id, scopes: g.refreshScopes ?? g.scopes,
        audience: g.api?.identifier ?? null, sid: g.sid, auth_time: g.authTime, amr: g.amr.join(' '), code_hash: g.codeHash ?? null,
        created_at: now, expires_at: g.family?.expiresAt ?? new Date(now.getTime() + REFRESH_FAMILY_LIFETIME_S * 1000),
        used_at: null, revoked_at: null, access_jti: access.jti, access_exp: new Date(access.exp * 1000),
      };
    }
    const use = useUp?.(access);
    if (use) {
      const done = row ? await use.table.updateThenInsert(use.where, use.set, this.refreshRows, row) : (await use.table.update(use.where, use.set)) === 1;
      if (!done) throw new UsedUp();
    } else if (row) {
      await this.refreshRows.insert(row);
    }
    if (row) this.issuedRefresh.put(row.token_hash!, { ...(row as RefreshToken), scopes: [...row.scopes!] }, row.expires_at!.getTime());
    if (refresh) response.refresh_token = refresh.token;
    await this.events.emit('token.issued', access.event, ctx);
    return response;
  }
}
