import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { FastifyRequest as Request } from 'fastify';
import { type EntityManager, IsNull, LessThan, Repository } from 'typeorm';
import { Clock, IdpEvents, changedRows, OAuthError, PageRedirect, WrittenHere, accessDenied, randomToken, sha256, RequestContext } from '@idp/core';
import { Consent, ConsentService } from '@idp/consent';
import { Interactions, type SessionUser } from '@idp/session';
import { AuthorizationCode } from './authorization-code.entity';
import type { AuthorizeRequest } from './authorize-request';

/** Codes live 60 s (RFC 6749 §4.1.2 recommends at most 10 minutes; OAuth 2.1 "short"). */
export const CODE_TTL_S = 60;

@Injectable()
export class AuthorizationService {
  private sweeps = 0;
  /**
   * The codes issued here, until their first lookup: the token request that redeems a code moments
   * after /authorize finds it without reading it back (WrittenHere). The redemption's conditional
   * UPDATE still decides in the database whether the code is unused and unexpired.
   */
  private readonly issued = new WrittenHere<AuthorizationCode>();
  private insertSql?: string;
  private consumeSql?: string;

  constructor(
    @InjectRepository(AuthorizationCode) private readonly codes: Repository<AuthorizationCode>,
    private readonly consents: ConsentService,
    private readonly events: IdpEvents,
    private readonly clock: Clock,
  ) {}

  /**
   * After the login: a code, or the consent page, or an error. The user's answer on the consent
   * page comes back through the interaction.
   */
  async decide(req: Request, ar: AuthorizeRequest, user: SessionUser): Promise<{ code: string }> {
    const decision = ar.interaction?.decision;
    if (decision === 'deny') throw accessDenied('the user denied the request');
    if (decision !== 'allow') {
      const missing = await this.consentMissing(ar, user);
      if (missing.length) {
        if (ar.prompt.includes('none')) throw new OAuthError('consent_required', 'the user has not consented to this request');
        const interaction = ar.interaction ?? Interactions.create(req, ar.params, ar.client.client_id);
        Interactions.update(req, interaction.id, { consent: { scopes: ar.scopes, audience: ar.api?.identifier } });
        throw new PageRedirect(`/consent?interaction=${encodeURIComponent(interaction.id)}`);
      }
    }
    const code = await this.issueCode(ar, user, RequestContext.of(req));
    if (ar.interaction) Interactions.remove(req, ar.interaction.id);
    return { code };
  }

  /**
   * The scopes the user must still consent to (all of them with prompt=consent, unless the client
   * is first-party). `consent`: the user's consent for this client, when already read (null: none).
   */
  async consentMissing(ar: AuthorizeRequest, user: SessionUser, consent?: Consent | null): Promise<string[]> {
    if (ar.prompt.includes('consent') && !ar.client.first_party) return ar.scopes;
    return this.consents.missingScopes({ userId: user.sub, client: ar.client, scopes: ar.scopes, audience: ar.api?.identifier }, consent);
  }

  /** Stores the code's hash with everything it is bound to; returns the code itself (once). `ctx`: the authorization request's context, for the event. */
  async issueCode(ar: AuthorizeRequest, user: SessionUser, ctx: RequestContext | undefined): Promise<string> {
    const code = randomToken(32);
    const now = this.clock.date();
    const row: AuthorizationCode = {
      code_hash: sha256(code), client_id: ar.client.client_id, user_id: user.sub, redirect_uri: ar.redirectUri,
      code_challenge: ar.codeChallenge ?? null, scopes: [...ar.scopes], audience: ar.api?.identifier ?? null, nonce: ar.nonce ?? null,
      auth_time: user.auth_time, sid: user.sid, amr: (user.amr ?? ['pwd']).join(' '),
      expires_at: new Date(now.getTime() + CODE_TTL_S * 1000), used_at: null, access_jti: null, access_exp: null, created_at: now,
    };
    await this.insertCode(row);
    this.issued.put(row.code_hash, row, row.expires_at.getTime());
    if (++this.sweeps % 500 === 0) void this.sweep();
    await this.events.emit('authorization.code_issued', { clientId: ar.client.client_id, userId: user.sub, scope: ar.scopes.join(' '), audience: ar.api?.identifier }, ctx);
    return code;
  }

  /**
   * The INSERT of every code issued, hand-written (a profile of the code flow put TypeORM's insert
   * builder at several times the statement; and on SQLite the builder writes numbers such as
   * auth_time into the SQL text, so that each sign-in's codes were a statement of their own to
   * prepare, in a cache of 100). Every column,
   * each value converted by TypeORM's driver as insert() converts it.
   */
  private async insertCode(row: AuthorizationCode): Promise<void> {
    const { driver } = this.codes.manager.connection;
    const columns = this.codes.metadata.columns;
    this.insertSql ??= `INSERT INTO ${this.codes.metadata.tablePath} (${columns.map((c) => `"${c.databaseName}"`).join(', ')}) VALUES (${columns.map((c, i) => driver.createParameter(c.propertyName, i)).join(', ')})`;
    await this.codes.query(this.insertSql, columns.map((c) => driver.preparePersistentValue(c.getEntityValue(row), c)));
  }

  /**
   * The stored code (used or not), or null for a code this server never issued. The first lookup of
   * a code issued by this replica is answered from memory (as written, so unused), every other one
   * by the database.
   */
  async findCode(code: string): Promise<AuthorizationCode | null> {
    if (code.length > 256) return null;
    const hash = sha256(code);
    return this.issued.take(hash) ?? this.codes.findOneBy({ code_hash: hash });
  }

  /**
   * Redeems a code, in `m`: the token grant's transaction that adds the tokens issued from it (so
   * both are written, or neither; a code is never used without its tokens being recorded, even when
   * the database goes away half way). Marks it used and records its access token (so a replay can
   * revoke it) in one conditional UPDATE (`used_at IS NULL AND expires_at > now`) that exactly one
   * of any number of concurrent redemptions can win, on SQLite (one transaction at a time) and
   * PostgreSQL (the row lock taken by the UPDATE, held until the commit, makes the losers re-check
   * the condition and match nothing). The row count decides: whether this redemption used the code
   * (false: another used it first, or it expired or went). The database is thus the authority over
   * what findCode may have answered from memory. Hand-written, as the INSERT (insertCode), each
   * date converted by TypeORM's driver as update() converts it.
   */
  async consumeCode(m: EntityManager, codeHash: string, access: { jti: string; exp: number }): Promise<boolean> {
    const { driver } = m.connection;
    const meta = this.codes.metadata;
    const p = (i: number) => driver.createParameter(`p${i}`, i);
    this.consumeSql ??= `UPDATE ${meta.tablePath} SET "used_at" = ${p(0)}, "access_jti" = ${p(1)}, "access_exp" = ${p(2)} WHERE "code_hash" = ${p(3)} AND "used_at" IS NULL AND "expires_at" > ${p(4)}`;
    const date = (d: Date) => driver.preparePersistentValue(d, meta.findColumnWithPropertyName('used_at')!);
    const now = this.clock.date();
    return (await changedRows(m, this.consumeSql, [date(now), access.jti, date(new Date(access.exp * 1000)), codeHash, date(now)])) === 1;
  }

  /** A failed redemption attempt uses the code up (a code gets one attempt). */
  async burnCode(codeHash: string): Promise<void> {
    await this.codes.update({ code_hash: codeHash, used_at: IsNull() }, { used_at: this.clock.date() });
  }

  /** Expired codes are kept a day (to recognize replays) and then deleted. */
  private async sweep(): Promise<void> {
    await this.codes.delete({ expires_at: LessThan(new Date(this.clock.now() - 24 * 3600 * 1000)) }).catch(() => undefined);
  }
}
