import { Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Column, DataSource, Entity, In, PrimaryColumn } from 'typeorm';
import { IdpConfig } from './config';
import { sha256 } from './crypto';

/**
 * A failure counter (CONTRACT §5): a sign-in or client-authentication key and how often it failed
 * in a row; `locked_until` once a threshold is crossed. Keys never hold an email or secret in
 * clear (hashed), only client ids and IP addresses.
 */
@Entity('lockouts')
export class Lockout {
  @PrimaryColumn({ type: 'varchar', length: 128 }) key: string;
  @Column({ type: 'integer' }) failures: number;
  @Column({ nullable: true, type: Date }) locked_until: Date | null;
  @Column() last_failure_at: Date;
}

export interface LockKey {
  key: string;
  /** Consecutive failures at which this key locks. */
  threshold: number;
}

export interface LockState {
  /** Seconds until every lock on these keys has passed (0 = not locked). */
  retryAfter: number;
  /** Whether any of the keys has failures recorded (so a success has something to clear). */
  dirty: boolean;
}

/** Counters forget failures older than this (a user who mistypes once a week never locks). */
const FORGET_AFTER_S = 24 * 3600;

/**
 * Brute-force protection: failures are counted per key in the database (shared by every
 * replica); at a key's threshold it locks for IDP_LOCKOUT_SECONDS, doubling with each further
 * failure up to IDP_LOCKOUT_MAX_SECONDS. While locked, attempts are refused before any
 * password or secret is checked, so they neither count nor cost an argon2 verification.
 */
@Injectable()
export class LockoutService {
  constructor(@InjectDataSource() private readonly db: DataSource, private readonly config: IdpConfig) {}

  /** The keys of a sign-in: the account from this address, the account from anywhere, the address. */
  loginKeys(email: string, ip = 'unknown'): LockKey[] {
    const account = sha256(email.trim().toLowerCase());
    return [
      { key: `login:pair:${sha256(`${account}|${ip}`)}`, threshold: this.config.lockoutThreshold },
      { key: `login:acct:${account}`, threshold: this.config.lockoutThreshold * 5 },
      { key: `login:ip:${ip}`.slice(0, 128), threshold: this.config.lockoutIpThreshold },
    ];
  }

  /** The keys of a client authentication: the client from this address, the client, the address. */
  clientKeys(clientId: string, ip = 'unknown'): LockKey[] {
    const client = sha256(clientId);
    return [
      { key: `client:pair:${sha256(`${client}|${ip}`)}`, threshold: this.config.lockoutThreshold },
      { key: `client:id:${client}`, threshold: this.config.lockoutThreshold * 5 },
      { key: `client:ip:${ip}`.slice(0, 128), threshold: this.config.lockoutIpThreshold },
    ];
  }

  async check(keys: LockKey[]): Promise<LockState> {
    const rows = await this.db.getRepository(Lockout).find({ where: { key: In(keys.map((k) => k.key)) } });
    const now = Date.now();
    const until = Math.max(0, ...rows.map((r) => r.locked_until?.getTime() ?? 0));
    return { retryAfter: until > now ? Math.ceil((until - now) / 1000) : 0, dirty: rows.length > 0 };
  }

  /** Records one failure on every key; returns the seconds of the longest lock now in place (0 if none). */
  async fail(keys: LockKey[]): Promise<number> {
    const now = new Date();
    const forget = new Date(now.getTime() - FORGET_AFTER_S * 1000);
    let longest = 0;
    await this.db.transaction(async (m) => {
      const repo = m.getRepository(Lockout);
      for (const k of keys) {
        // One conditional upsert per key: concurrent failures each add one (row lock on PostgreSQL,
        // the single writer on SQLite).
        const pg = this.db.options.type === 'postgres';
        const p = (i: number) => (pg ? `$${i}` : '?');
        const table = repo.metadata.tablePath;
        const rows: { failures: number }[] = await m.query(
          `INSERT INTO ${table} (key, failures, locked_until, last_failure_at) VALUES (${p(1)}, 1, NULL, ${p(2)})
           ON CONFLICT (key) DO UPDATE SET
             failures = CASE WHEN ${table}.last_failure_at < ${p(3)} THEN 1 ELSE ${table}.failures + 1 END,
             last_failure_at = ${p(4)}
           RETURNING failures`,
          [k.key, now, forget, now].map((v) => (v instanceof Date && !pg ? sqliteDate(v) : v)),
        );
        const failures = Number(rows[0]?.failures ?? 1);
        if (failures >= k.threshold) {
          const seconds = Math.min(this.config.lockoutSeconds * 2 ** (failures - k.threshold), this.config.lockoutMaxSeconds);
          await repo.update({ key: k.key }, { locked_until: new Date(now.getTime() + seconds * 1000) });
          longest = Math.max(longest, seconds);
        }
      }
    });
    return longest;
  }

  /** A success clears the account (or client) counters; the address keeps its count. */
  async succeed(keys: LockKey[]): Promise<void> {
    const clear = keys.filter((k) => !k.key.includes(':ip:')).map((k) => k.key);
    if (clear.length) await this.db.getRepository(Lockout).delete({ key: In(clear) });
  }
}

/** How TypeORM stores a Date in SQLite (`datetime` columns: UTC "YYYY-MM-DD HH:MM:SS.SSS"). */
function sqliteDate(d: Date): string {
  return d.toISOString().replace('T', ' ').replace('Z', '');
}
