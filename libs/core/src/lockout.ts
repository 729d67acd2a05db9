import { Injectable, OnModuleDestroy } from '@nestjs/common';
import Redis from 'ioredis';
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

const CLEAN_CACHE_MS = 1_000;

/** Counters forget failures older than this (a user who mistypes once a week never locks). */
const FORGET_AFTER_S = 24 * 3600;

/** Where the counters live: the database by default, Redis when REDIS_URL is set. */
export interface LockoutStore {
  /** Latest lock end (ms since the epoch, 0 if none) over the keys, and whether any has failures. */
  check(keys: string[]): Promise<{ until: number; dirty: boolean }>;
  /** Adds one failure; at `threshold` or beyond, locks for base × 2^(failures − threshold) s, capped. Returns the lock's seconds, or 0. */
  fail(key: string, threshold: number, baseSeconds: number, maxSeconds: number): Promise<number>;
  clear(keys: string[]): Promise<void>;
  close?(): Promise<void>;
}

export function lockSeconds(failures: number, threshold: number, base: number, max: number): number {
  return failures >= threshold ? Math.min(base * 2 ** Math.min(failures - threshold, 30), max) : 0;
}

/** Counters in the `lockouts` table: one conditional upsert per failure (atomic on SQLite and PostgreSQL). */
export class DatabaseLockoutStore implements LockoutStore {
  constructor(private readonly db: DataSource) {}

  async check(keys: string[]) {
    const rows = await this.db.getRepository(Lockout).find({ where: { key: In(keys) } });
    return { until: Math.max(0, ...rows.map((r) => r.locked_until?.getTime() ?? 0)), dirty: rows.length > 0 };
  }

  async fail(key: string, threshold: number, base: number, max: number): Promise<number> {
    const now = new Date();
    const forget = new Date(now.getTime() - FORGET_AFTER_S * 1000);
    const pg = this.db.options.type === 'postgres';
    const p = (i: number) => (pg ? `$${i}` : '?');
    const repo = this.db.getRepository(Lockout);
    const table = repo.metadata.tablePath;
    return this.db.transaction(async (m) => {
      // Concurrent failures each add one (row lock on PostgreSQL, the single writer on SQLite).
      const rows: { failures: number }[] = await m.query(
        `INSERT INTO ${table} (key, failures, locked_until, last_failure_at) VALUES (${p(1)}, 1, NULL, ${p(2)})
         ON CONFLICT (key) DO UPDATE SET
           failures = CASE WHEN ${table}.last_failure_at < ${p(3)} THEN 1 ELSE ${table}.failures + 1 END,
           last_failure_at = ${p(4)}
         RETURNING failures`,
        [key, now, forget, now].map((v) => (v instanceof Date && !pg ? sqliteDate(v) : v)),
      );
      const seconds = lockSeconds(Number(rows[0]?.failures ?? 1), threshold, base, max);
      if (seconds) await m.getRepository(Lockout).update({ key }, { locked_until: new Date(now.getTime() + seconds * 1000) });
      return seconds;
    });
  }

  async clear(keys: string[]) {
    await this.db.getRepository(Lockout).delete({ key: In(keys) });
  }
}

/**
 * Counters in Redis (REDIS_URL), for several replicas without a database write per failure: one
 * hash per key, `failures` and `until`, expiring a day after the last failure. A Lua script makes
 * each failure one atomic step.
 */
export class RedisLockoutStore implements LockoutStore {
  private static readonly FAIL = `
    local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
    redis.call('EXPIRE', KEYS[1], ARGV[5])
    local threshold, base, max, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
    if failures < threshold then return 0 end
    local seconds = math.min(base * 2 ^ math.min(failures - threshold, 30), max)
    redis.call('HSET', KEYS[1], 'until', now + seconds * 1000)
    return seconds`;

  constructor(private readonly redis: Redis, private readonly prefix: string) {}

  async check(keys: string[]) {
    const pipeline = this.redis.pipeline();
    for (const k of keys) pipeline.hget(this.prefix + k, 'until').exists(this.prefix + k);
    const results = (await pipeline.exec()) ?? [];
    let until = 0;
    let dirty = false;
    for (let i = 0; i < results.length; i += 2) {
      const [errU, u] = results[i];
      const [errE, exists] = results[i + 1];
      if (errU || errE) throw errU ?? errE;
      until = Math.max(until, Number(u ?? 0));
      dirty ||= Number(exists) > 0;
    }
    return { until, dirty };
  }

  async fail(key: string, threshold: number, base: number, max: number): Promise<number> {
    return Number(await this.redis.eval(RedisLockoutStore.FAIL, 1, this.prefix + key, threshold, base, max, Date.now(), FORGET_AFTER_S));
  }

  async clear(keys: string[]) {
    if (keys.length) await this.redis.del(...keys.map((k) => this.prefix + k));
  }

  async close() {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

/**
 * Brute-force protection: failures are counted per key (in the database, or Redis when
 * REDIS_URL is set, shared by every replica); at a key's threshold it locks for
 * IDP_LOCKOUT_SECONDS, doubling with each further failure up to IDP_LOCKOUT_MAX_SECONDS. While
 * locked, attempts are refused before any password or secret is checked, so they neither count
 * nor cost an argon2 verification.
 */
@Injectable()
export class LockoutService implements OnModuleDestroy {
  readonly store: LockoutStore;
  private readonly clean = new Map<string, number>();
  private readonly clientKeyCache = new Map<string, readonly LockKey[]>();

  constructor(@InjectDataSource() db: DataSource, private readonly config: IdpConfig) {
    this.store = config.redisUrl
      ? new RedisLockoutStore(new Redis(config.redisUrl, { maxRetriesPerRequest: 1, connectTimeout: 2000, commandTimeout: 2000 }), config.redisPrefix)
      : new DatabaseLockoutStore(db);
  }

  async onModuleDestroy(): Promise<void> {
    await this.store.close?.();
  }

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
  clientKeys(clientId: string, ip = 'unknown'): readonly LockKey[] {
    // Every token request asks for the same few pairs: their keys (two SHA-256 each, nothing
    // secret in them) are kept, frozen, for up to 10,000 pairs per replica.
    const pair = `${ip.length}:${ip}${clientId}`; // the address's length first: no two pairs share a name
    let keys = this.clientKeyCache.get(pair);
    if (!keys) {
      const client = sha256(clientId);
      keys = Object.freeze([
        Object.freeze({ key: `client:pair:${sha256(`${client}|${ip}`)}`, threshold: this.config.lockoutThreshold }),
        Object.freeze({ key: `client:id:${client}`, threshold: this.config.lockoutThreshold * 5 }),
        Object.freeze({ key: `client:ip:${ip}`.slice(0, 128), threshold: this.config.lockoutIpThreshold }),
      ]);
      if (this.clientKeyCache.size >= 10_000) this.clientKeyCache.clear();
      this.clientKeyCache.set(pair, keys);
    }
    return keys;
  }

  async check(keys: readonly LockKey[]): Promise<LockState> {
    // Every token request checks its client's keys: a clean answer is kept a second per replica
    // (a lock set on another replica is seen within that second; failures here clear it at once).
    const id = keys.map((k) => k.key).join(' ');
    const hit = this.clean.get(id);
    if (hit && Date.now() - hit < CLEAN_CACHE_MS) return { retryAfter: 0, dirty: false };
    const { until, dirty } = await this.store.check(keys.map((k) => k.key));
    if (!dirty && until <= Date.now()) {
      if (this.clean.size >= 10_000) this.clean.clear();
      this.clean.set(id, Date.now());
    }
    const now = Date.now();
    return { retryAfter: until > now ? Math.ceil((until - now) / 1000) : 0, dirty };
  }

  /** Records one failure on every key; returns the seconds of the longest lock now in place (0 if none). */
  async fail(keys: readonly LockKey[]): Promise<number> {
    this.clean.clear();
    let longest = 0;
    for (const k of keys) longest = Math.max(longest, await this.store.fail(k.key, k.threshold, this.config.lockoutSeconds, this.config.lockoutMaxSeconds));
    return longest;
  }

  /** A success clears the account (or client) counters; the address keeps its count. */
  async succeed(keys: readonly LockKey[]): Promise<void> {
    const clear = keys.filter((k) => !k.key.includes(':ip:')).map((k) => k.key);
    if (clear.length) await this.store.clear(clear);
  }
}

/** How TypeORM stores a Date in SQLite (`datetime` columns: UTC "YYYY-MM-DD HH:MM:SS.SSS"). */
function sqliteDate(d: Date): string {
  return d.toISOString().replace('T', ' ').replace('Z', '');
}
