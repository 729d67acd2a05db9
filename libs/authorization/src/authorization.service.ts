import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { FastifyRequest as Request } from 'fastify';
import { LessThan, Repository } from 'typeorm';
import { After, Clock, DirectSql, DirectTable, IdpEvents, RowUpdate, OAuthError, PageRedirect, WrittenHere, accessDenied, randomToken, sha256, RequestContext } from '@idp/core';
import { Consent, ConsentService } from '@idp/consent';
import { Interactions, type SessionUser } from '@idp/session';
import { AuthorizationCode } from './authorization-code.entity';
import type { AuthorizeRequest } from './authorize-request';

/** Codes live 60 s (RFC 6749 §4.1.2 recommends at most 10 minutes; OAuth 2.1 "short"). */
export const CODE_TTL_S = 60;

@Injectable()
export class AuthorizationService {
  private sweeps = 0;
  /** Issuing, finding and redeeming codes: direct statements (DirectSql); the sweep stays on TypeORM. */
  private readonly rows: DirectTable<AuthorizationCode>;
  /**
   * The codes issued here, until their first lookup: the token request that redeems a code moments
   * after /authorize finds it without reading it back (WrittenHere). The redemption's conditional
   * UPDATE still decides in the database whether the code is unused and unexpired.
   */
  private readonly issued = new WrittenHere<AuthorizationCode>();

  constructor(
    @InjectRepository(AuthorizationCode) private readonly codes: Repository<AuthorizationCode>,
    private readonly consents: ConsentService,
    private readonly events: IdpEvents,
    private readonly clock: Clock,
  ) {
    this.rows = DirectSql.of(codes.manager.connection).table(AuthorizationCode);
  }

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
    await this.rows.insert(row);
    this.issued.put(row.code_hash, row, row.expires_at.getTime());
    if (++this.sweeps % 500 === 0) void this.sweep();
    await this.events.emit('authorization.code_issued', { clientId: ar.client.client_id, userId: user.sub, scope: ar.scopes.join(' '), audience: ar.api?.identifier }, ctx);
    return code;
  }

  /**
   * The stored code (used or not), or null for a code this server never issued. The first lookup of
   * a code issued by this replica is answered from memory (as written, so unused), every other one
   * by the database.
   */
  async findCode(code: string): Promise<AuthorizationCode | null> {
    if (code.length > 256) return null;
    const hash = sha256(code);
    return this.issued.take(hash) ?? this.rows.findOne({ code_hash: hash });
  }

  /**
   * What redeems a code, run by the token grant in the write that adds the tokens issued from it:
   * marks it used and records its access token (so a replay can revoke it) in one conditional
   * UPDATE (`used_at IS NULL`) that exactly one of any number of concurrent redemptions can win, on
   * SQLite (one writer at a time) and PostgreSQL (the row lock taken by UPDATE makes the losers
   * re-check the condition and match nothing). A code is thus never used without its tokens being
   * recorded, even when the database goes away half way. The UPDATE also requires the code to be
   * unexpired in the database, which is the authority over what findCode may have answered from
   * memory.
   */
  redemption(codeHash: string, access: { jti: string; exp: number }): RowUpdate<AuthorizationCode> {
    const now = this.clock.date();
    return { table: this.rows, where: { code_hash: codeHash, used_at: null, expires_at: new After(now) }, set: { used_at: now, access_jti: access.jti, access_exp: new Date(access.exp * 1000) } };
  }

  /** A failed redemption attempt uses the code up (a code gets one attempt). */
  async burnCode(codeHash: string): Promise<void> {
    await this.rows.update({ code_hash: codeHash, used_at: null }, { used_at: this.clock.date() });
  }

  /** Expired codes are kept a day (to recognize replays) and then deleted. */
  private async sweep(): Promise<void> {
    await this.codes.delete({ expires_at: LessThan(new Date(this.clock.now() - 24 * 3600 * 1000)) }).catch(() => undefined);
  }
}
