import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource, EntityManager, In, IsNull, LessThan } from 'typeorm';
import { Clock, inTransaction } from '@idp/core';
import { RefreshToken } from './refresh-token.entity';
import { RevokedToken } from './revoked-token.entity';

const RECENT_MS = 1_000;

/**
 * Revocation of access tokens (deny-list by jti) and refresh-token families. Expiries and
 * revoked_at are the Clock's; how long an answer is kept per replica is real time.
 */
@Injectable()
export class RevocationService {
  private sweeps = 0;
  private readonly recent = new Map<string, { at: number; revoked: boolean }>();

  constructor(@InjectDataSource() private readonly db: DataSource, private readonly clock: Clock) {}

  /**
   * Whether an access token is on the deny-list. Checked on every bearer request, so answers are
   * kept a second per replica: a revocation made here is seen at once, one made on another
   * replica within a second.
   */
  async isRevoked(jti: string | undefined): Promise<boolean> {
    if (!jti) return false;
    const hit = this.recent.get(jti);
    if (hit && (hit.revoked || Date.now() - hit.at < RECENT_MS)) return hit.revoked;
    const revoked = (await this.db.getRepository(RevokedToken).findOne({ where: { jti }, select: { jti: true } })) !== null;
    if (this.recent.size >= 50_000) this.recent.clear();
    this.recent.set(jti, { at: Date.now(), revoked });
    return revoked;
  }

  /** Adds access tokens to the deny-list until their expiry (idempotent). */
  async revokeAccess(tokens: { jti: string | null; exp: Date | null }[], m: EntityManager = this.db.manager): Promise<void> {
    const now = this.clock.now();
    const rows = tokens.filter((t) => t.jti && t.exp && t.exp.getTime() > now).map((t) => ({ jti: t.jti!, expires_at: t.exp! }));
    for (const r of rows) this.recent.set(r.jti, { at: Date.now(), revoked: true });
    if (rows.length) await m.getRepository(RevokedToken).createQueryBuilder().insert().values(rows).orIgnore().execute();
    if (++this.sweeps % 200 === 0) void this.db.getRepository(RevokedToken).delete({ expires_at: LessThan(new Date(now)) }).catch(() => undefined);
  }

  /** Revokes every refresh token of the families given, and the access tokens they issued. */
  async revokeFamilies(familyIds: string[], m?: EntityManager): Promise<void> {
    if (!familyIds.length) return;
    const run = async (em: EntityManager) => {
      const repo = em.getRepository(RefreshToken);
      const live = { family_id: In(familyIds), revoked_at: IsNull() };
      const now = this.clock.date();
      await repo.update(live, { revoked_at: now });
      // A rotation committing meanwhile holds the row it rotated, so the UPDATE above waited for
      // it; but under READ COMMITTED only a new statement sees the token it added: revoke again.
      await repo.update(live, { revoked_at: now });
      const members = await repo.find({ where: { family_id: In(familyIds) } });
      await this.revokeAccess(members.map((r) => ({ jti: r.access_jti, exp: r.access_exp })), em);
    };
    return m ? run(m) : inTransaction(this.db, run);
  }

  /** Revokes everything a user's grant to a client produced (consent revoked). */
  async revokeForUserAndClient(userId: string, clientId: string): Promise<void> {
    const rows = await this.db.getRepository(RefreshToken).find({ select: { family_id: true }, where: { user_id: userId, client_id: clientId } });
    await this.revokeFamilies([...new Set(rows.map((r) => r.family_id))]);
  }

  /** Revokes the refresh tokens and access token that came from a replayed code (RFC 6749 §4.1.2). */
  async revokeForCode(codeHash: string, access: { jti: string | null; exp: Date | null }): Promise<void> {
    await inTransaction(this.db, async (m) => {
      const rows = await m.getRepository(RefreshToken).find({ select: { family_id: true }, where: { code_hash: codeHash } });
      await this.revokeFamilies([...new Set(rows.map((r) => r.family_id))], m);
      await this.revokeAccess([access], m);
    });
  }
}
