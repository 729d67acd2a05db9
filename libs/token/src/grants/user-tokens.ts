import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, type EntityManager } from 'typeorm';
import { Clock, IdpEvents, RequestContext, WrittenHere, changedRows, inTransaction, uuidv7 } from '@idp/core';
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
  /** The hash of the refresh token these tokens rotate: used up in the write that adds its successor (rotateRefreshToken). */
  rotates?: string;
  codeHash?: string;
}

/**
 * What the authorization_code and refresh_token grants share: the access token (for the API, or
 * for /userinfo: accessTokenTarget), the ID token, and the refresh-token rules of CONTRACT §2.
 */
@Injectable()
export class UserTokens {
  /**
   * The refresh tokens issued here, until their first lookup (WrittenHere): a refresh presented to
   * the replica that issued it, while it is still among the last 5,000 issued (some 11 MiB), is not
   * read back. The refresh grant's conditional UPDATE still decides in the database whether it is
   * unused, unrevoked and unexpired.
   */
  private readonly issuedRefresh = new WrittenHere<RefreshToken>(5_000);
  private insertSql?: string;
  private rotateSql?: { useUp: string; useUpAndAdd: string };

  constructor(private readonly issuer: TokenIssuer, private readonly events: IdpEvents, @InjectDataSource() private readonly db: DataSource, private readonly clock: Clock) {}

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
   * Signs the tokens, then writes the new refresh token and uses up what they are issued for, both
   * or neither: the refresh token they rotate (`g.rotates`, rotateRefreshToken), or what `useUp`
   * uses up in the transaction `m` it is given (the code; true when it did). Announces the issuance
   * after the commit. Throws UsedUp, writing nothing, when nothing was used up (another request did
   * first). `ctx`: the token request's context, for the event.
   */
  async issue(g: UserGrant, req: TokenRequest, ctx: RequestContext | undefined, useUp?: (m: EntityManager, access: IssuedAccessToken) => Promise<boolean>): Promise<TokenResponse> {
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
    let row: RefreshToken | undefined;
    if (refresh) {
      const now = this.clock.date();
      row = {
        token_hash: refresh.hash, family_id: g.family?.id ?? uuidv7(), client_id: g.client.client_id, user_id: g.user.id, scopes: g.refreshScopes ?? g.scopes,
        audience: g.api?.identifier ?? null, sid: g.sid, auth_time: g.authTime, amr: g.amr.join(' '), code_hash: g.codeHash ?? null,
        created_at: now, expires_at: g.family?.expiresAt ?? new Date(now.getTime() + REFRESH_FAMILY_LIFETIME_S * 1000),
        used_at: null, revoked_at: null, access_jti: access.jti, access_exp: new Date(access.exp * 1000),
      };
    }
    if (g.rotates) {
      if (!(await this.rotateRefreshToken(g.rotates, row))) throw new UsedUp();
    } else if (useUp) {
      const added = row;
      const done = added
        ? await inTransaction(this.db, async (m) => {
            if (!(await useUp(m, access))) return false;
            await this.addRefreshToken(m, added);
            return true;
          })
        : await useUp(this.db.manager, access);
      if (!done) throw new UsedUp();
    } else if (row) {
      await this.addRefreshToken(this.db.manager, row);
    }
    if (row) this.issuedRefresh.put(row.token_hash, { ...row, scopes: [...row.scopes] }, row.expires_at.getTime());
    if (refresh) response.refresh_token = refresh.token;
    await this.events.emit('token.issued', access.event, ctx);
    return response;
  }

  /**
   * The INSERT of every refresh token issued, in `m` (the transaction that uses up what it is issued
   * for, or none), hand-written (a profile of the code flow and of refresh put TypeORM's insert
   * builder at several times the statement; and on SQLite the builder writes numbers such as
   * auth_time into the SQL text, so that each sign-in's tokens were a statement of their own to
   * prepare, in a cache of 100). Every column,
   * each value converted by TypeORM's driver as insert() converts it.
   */
  private async addRefreshToken(m: EntityManager, row: RefreshToken): Promise<void> {
    const { driver } = this.db;
    const meta = this.db.getMetadata(RefreshToken);
    this.insertSql ??= `INSERT INTO ${meta.tablePath} (${meta.columns.map((c) => `"${c.databaseName}"`).join(', ')}) VALUES (${meta.columns.map((c, i) => driver.createParameter(c.propertyName, i)).join(', ')})`;
    await m.query(this.insertSql, meta.columns.map((c) => driver.preparePersistentValue(c.getEntityValue(row), c)));
  }

  /**
   * Rotation: uses up the presented refresh token (`presented`, its hash) and adds its successor
   * (when one is issued), both or neither. One conditional UPDATE (`used_at IS NULL AND revoked_at
   * IS NULL AND expires_at > now`) that exactly one of concurrent uses wins (the row count
   * decides); it requires the token unrevoked and unexpired in the database, the authority over a
   * row read from memory (takeIssuedRefresh). Hand-written (a profile of refresh put TypeORM's
   * builders at several times the statement). On PostgreSQL one statement, `WITH used AS (UPDATE …
   * RETURNING 1) INSERT … SELECT … FROM used`: one round trip instead of BEGIN, UPDATE, INSERT and
   * COMMIT, with the UPDATE's row lock held until the INSERT commits with it, so a revocation under
   * way either committed first (no row matches: nothing is added) or waits for this commit and then
   * finds the new token too (RevocationService.revokeFamilies). On SQLite (no UPDATE in a WITH) one
   * transaction. Whether this use won.
   */
  private async rotateRefreshToken(presented: string, successor: RefreshToken | undefined): Promise<boolean> {
    const { driver } = this.db;
    const meta = this.db.getMetadata(RefreshToken);
    const p = (i: number) => driver.createParameter(`p${i}`, i);
    const update = `UPDATE ${meta.tablePath} SET "used_at" = ${p(0)} WHERE "token_hash" = ${p(1)} AND "used_at" IS NULL AND "revoked_at" IS NULL AND "expires_at" > ${p(2)}`;
    // The INSERT's SELECT leaves its parameters' types to the target columns.
    this.rotateSql ??= {
      useUp: update,
      useUpAndAdd: `WITH used AS (${update} RETURNING 1) INSERT INTO ${meta.tablePath} (${meta.columns.map((c) => `"${c.databaseName}"`).join(', ')}) SELECT ${meta.columns.map((c, i) => p(i + 3)).join(', ')} FROM used`,
    };
    const now = driver.preparePersistentValue(this.clock.date(), meta.findColumnWithPropertyName('used_at')!);
    if (!successor) return (await changedRows(this.db.manager, this.rotateSql.useUp, [now, presented, now])) === 1;
    if (this.db.options.type === 'postgres') {
      const values = meta.columns.map((c) => driver.preparePersistentValue(c.getEntityValue(successor), c));
      return (await changedRows(this.db.manager, this.rotateSql.useUpAndAdd, [now, presented, now, ...values])) === 1;
    }
    return inTransaction(this.db, async (m) => {
      if ((await changedRows(m, this.rotateSql!.useUp, [now, presented, now])) !== 1) return false;
      await this.addRefreshToken(m, successor);
      return true;
    });
  }
}
