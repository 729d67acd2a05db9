import { Injectable, OnModuleDestroy } from '@nestjs/common';
import Redis from 'ioredis';
import { InjectDataSource } from '@nestjs/typeorm';
import { Column, DataSource, Entity, In, PrimaryColumn } from 'typeorm';
import { IdpConfig } from './config';
import { sha256 } from './crypto';
import { retryOnDbConflict } from './db-errors';

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
  /** Whether any of the keys has failures recorded. */
  dirty: boolean;
}

/**
 * One attempt taken on a set of keys before its credential is checked (LockoutService.attempt).
 * `retryAfter` > 0: refused, nothing was counted and nothing may be checked. Otherwise the attempt
 * already counts as a failure on every key; `lockedFor` is the lock that this count put in place
 * (0 = none), which stands if the check fails and is lifted by `succeed`.
 */
export interface LockAttempt {
  readonly keys: readonly LockKey[];
  readonly retryAfter: number;
  readonly lockedFor: number;
}

/** Counters forget failures older than this (a user who mistypes once a week never locks). */
const FORGET_AFTER_S = 24 * 3600;
/** How often idle counters (nothing for FORGET_AFTER_S, not locked) are removed from the database. */
const PURGE_EVERY_MS = 10 * 60_000;

/** The lock schedule: IDP_LOCKOUT_SECONDS at the threshold, doubling with each further failure, up to IDP_LOCKOUT_MAX_SECONDS. */
export interface LockSchedule {
  base: number;
  max: number;
}

/** A key to give an attempt back to: `reset` sets its count to zero, otherwise it counts one failure less. */
export interface ReleaseKey extends LockKey {
  reset: boolean;
}

/**
 * Where the counters live: the database by default, Redis when REDIS_URL is set. `take` is the
 * atomic check-and-count: one step per key that either refuses (the key is locked) or adds one
 * failure and, at the threshold, locks. Every statement takes its rows in the keys' sorted order,
 * so two attempts can never wait on each other (no deadlock).
 */
export interface LockoutStore {
  /** Latest lock end (ms since the epoch, 0 if none) over the keys, and whether any has failures. */
  check(keys: string[]): Promise<{ until: number; dirty: boolean }>;
  /**
   * All or nothing: when any key is locked, counts nothing and answers the latest lock end;
   * otherwise counts one failure on every key and answers the longest lock that this put in place.
   */
  take(keys: readonly LockKey[], schedule: LockSchedule, now: number): Promise<{ lockedUntil: number; lockedFor: number }>;
  /** Gives one attempt back per key (see ReleaseKey); a key below its threshold afterwards is unlocked. */
  release(keys: readonly ReleaseKey[], now: number): Promise<void>;
  /** Removes counters idle since before `forgetBefore` and not locked (a database has no expiry of its own). */
  purge?(forgetBefore: number, now: number): Promise<void>;
  close?(): Promise<void>;
}

export function lockSeconds(failures: number, threshold: number, base: number, max: number): number {
  return failures >= threshold ? Math.min(base * 2 ** Math.min(failures - threshold, 30), max) : 0;
}

/** The distinct lock lengths past the threshold: base, 2 × base, … up to and including the cap. */
export function lockSteps(schedule: LockSchedule): number[] {
  const steps: number[] = [];
  for (let d = 0; d <= 30; d++) {
    const s = lockSeconds(d, 0, schedule.base, schedule.max);
    steps.push(s);
    if (s >= schedule.max) break;
  }
  return steps;
}

const byKey = <T extends { key: string }>(a: T, b: T) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

/**
 * Counters in the `lockouts` table. `take` and `release` are one multi-row upsert each (atomic on
 * SQLite and PostgreSQL, rows locked in the keys' order); a conflicting statement on PostgreSQL is
 * run again rather than failing the request.
 */
export class DatabaseLockoutStore implements LockoutStore {
  constructor(private readonly db: DataSource) {}

  private get pg(): boolean {
    return this.db.options.type === 'postgres';
  }

  private get table(): string {
    return this.db.getRepository(Lockout).metadata.tablePath;
  }

  /** Numbered ($n) or positional (?) parameters, timestamps typed where PostgreSQL cannot infer them. */
  private params() {
    const values: unknown[] = [];
    const pg = this.pg;
    const add = (v: unknown, cast?: 'timestamp' | 'integer'): string => {
      values.push(v instanceof Date && !pg ? sqliteDate(v) : v);
      const p = pg ? `$${values.length}` : '?';
      return pg && cast ? `CAST(${p} AS ${cast})` : p;
    };
    return { values, add };
  }

  async check(keys: string[]) {
    const rows = await this.db.getRepository(Lockout).find({ where: { key: In(keys) } });
    return {
      until: Math.max(0, ...rows.map((r) => r.locked_until?.getTime() ?? 0)),
      dirty: rows.some((r) => r.failures > 0),
    };
  }

  async take(keys: readonly LockKey[], schedule: LockSchedule, now: number) {
    const sorted = [...keys].sort(byKey);
    const at = new Date(now);
    const steps = lockSteps(schedule);
    const { values, add } = this.params();
    const t = this.table;
    // SQLite's parameters are positional: each piece below adds its values when it is written,
    // and the template is written left to right, so values and placeholders stay in step.
    // The failures after this attempt (a counter idle for a day starts again at one) …
    const failures = () => `(CASE WHEN ${t}.last_failure_at < ${add(new Date(now - FORGET_AFTER_S * 1000), 'timestamp')} THEN 1 ELSE ${t}.failures + 1 END)`;
    // … beyond this key's threshold (0 = at the threshold) …
    const beyond = () => `(${failures()} - CASE excluded.key ${sorted.map((k) => `WHEN ${add(k.key)} THEN ${add(k.threshold, 'integer')}`).join(' ')} END)`;
    // … and the lock that puts in place: none below the threshold, then the schedule's steps up to the cap.
    const capped = () => `(CASE WHEN ${beyond()} < 0 THEN NULL ELSE ${add(new Date(now + steps[steps.length - 1] * 1000), 'timestamp')} END)`;
    const lock = () =>
      steps.length > 1
        ? `CASE ${beyond()} ${steps.slice(0, -1).map((s, d) => `WHEN ${d} THEN ${add(new Date(now + s * 1000), 'timestamp')}`).join(' ')} ELSE ${capped()} END`
        : capped();
    const sql = `INSERT INTO ${t} (key, failures, locked_until, last_failure_at) VALUES ${sorted
      .map((k) => {
        // A brand-new counter holds one failure: locked at once only with a threshold of 1.
        const first = k.threshold <= 1 ? new Date(now + steps[0] * 1000) : null;
        return `(${add(k.key)}, 1, ${add(first, 'timestamp')}, ${add(at, 'timestamp')})`;
      })
      .join(', ')}
      ON CONFLICT (key) DO UPDATE SET failures = ${failures()}, locked_until = ${lock()}, last_failure_at = excluded.last_failure_at
      WHERE ${t}.locked_until IS NULL OR ${t}.locked_until <= ${add(at, 'timestamp')}
      RETURNING key, locked_until`;
    // A locked key is left as it is and returns no row: the attempt is refused.
    const returned: { key: string; locked_until: string | Date | null }[] = await retryOnDbConflict(() => this.db.query(sql, values));
    const ms = (v: string | Date | null) => (v === null ? 0 : v instanceof Date ? v.getTime() : Date.parse(`${String(v).replace(' ', 'T')}Z`));
    if (returned.length < sorted.length) {
      const taken = new Set(returned.map((r) => r.key));
      const locked = sorted.filter((k) => !taken.has(k.key));
      const { until } = await this.check(locked.map((k) => k.key));
      // Give back what this attempt counted on the keys that were not locked.
      await this.release(sorted.filter((k) => taken.has(k.key)).map((k) => ({ ...k, reset: false })), now);
      return { lockedUntil: Math.max(until, now + 1000), lockedFor: 0 };
    }
    const lockedFor = Math.max(0, ...returned.map((r) => Math.round((ms(r.locked_until) - now) / 1000)));
    return { lockedUntil: 0, lockedFor };
  }

  async release(keys: readonly ReleaseKey[], now: number) {
    if (!keys.length) return;
    const sorted = [...keys].sort(byKey);
    const { values, add } = this.params();
    const t = this.table;
    const less = () => `(CASE WHEN ${t}.failures > 0 THEN ${t}.failures - 1 ELSE 0 END)`;
    const sql = `INSERT INTO ${t} (key, failures, locked_until, last_failure_at) VALUES ${sorted.map((k) => `(${add(k.key)}, 0, NULL, ${add(new Date(now), 'timestamp')})`).join(', ')}
      ON CONFLICT (key) DO UPDATE SET
        failures = CASE excluded.key ${sorted.map((k) => `WHEN ${add(k.key)} THEN ${k.reset ? '0' : less()}`).join(' ')} END,
        locked_until = CASE excluded.key ${sorted.map((k) => `WHEN ${add(k.key)} THEN ${k.reset ? (this.pg ? 'CAST(NULL AS timestamp)' : 'NULL') : `(CASE WHEN ${less()} < ${add(k.threshold, 'integer')} THEN NULL ELSE ${t}.locked_until END)`}`).join(' ')} END`;
    await retryOnDbConflict(() => this.db.query(sql, values));
  }

  async purge(forgetBefore: number, now: number) {
    const { values, add } = this.params();
    const t = this.table;
    const idle = `last_failure_at < ${add(new Date(forgetBefore), 'timestamp')} AND (locked_until IS NULL OR locked_until < ${add(new Date(now), 'timestamp')})`;
    // PostgreSQL: rows some attempt holds right now are skipped, so the purge never waits on (or deadlocks with) one.
    const sql = this.pg
      ? `DELETE FROM ${t} WHERE key IN (SELECT key FROM ${t} WHERE ${idle} LIMIT 10000 FOR UPDATE SKIP LOCKED)`
      : `DELETE FROM ${t} WHERE key IN (SELECT key FROM ${t} WHERE ${idle} LIMIT 10000)`;
    await this.db.query(sql, values);
  }
}

/**
 * Counters in Redis (REDIS_URL), for several replicas without a database write per attempt: one
 * hash per key, `failures` and `until`, expiring a day after the last failure. Each script runs
 * atomically over all the keys of an attempt.
 */
export class RedisLockoutStore implements LockoutStore {
  /** KEYS: the keys; ARGV: now (ms), forget (s), then per key its threshold, then the schedule (base, max). */
  private static readonly TAKE = `
    local now, forget, n = tonumber(ARGV[1]), tonumber(ARGV[2]), #KEYS
    local base, max = tonumber(ARGV[3 + n]), tonumber(ARGV[4 + n])
    local latest = 0
    for i = 1, n do
      local u = tonumber(redis.call('HGET', KEYS[i], 'until') or '0')
      if u > now and u > latest then latest = u end
    end
    if latest > 0 then return {latest, 0} end
    local longest = 0
    for i = 1, n do
      local threshold = tonumber(ARGV[2 + i])
      local failures = redis.call('HINCRBY', KEYS[i], 'failures', 1)
      redis.call('EXPIRE', KEYS[i], forget)
      if failures >= threshold then
        local seconds = math.min(base * 2 ^ math.min(failures - threshold, 30), max)
        redis.call('HSET', KEYS[i], 'until', now + seconds * 1000)
        if seconds > longest then longest = seconds end
      end
    end
    return {0, longest}`;

  /** KEYS: the keys; ARGV: per key its threshold, then per key 1 (reset) or 0 (one failure less). */
  private static readonly RELEASE = `
    local n = #KEYS
    for i = 1, n do
      if ARGV[n + i] == '1' then
        redis.call('DEL', KEYS[i])
      elseif redis.call('EXISTS', KEYS[i]) == 1 then
        local failures = redis.call('HINCRBY', KEYS[i], 'failures', -1)
        if failures < 0 then redis.call('HSET', KEYS[i], 'failures', 0); failures = 0 end
        if failures < tonumber(ARGV[i]) then redis.call('HDEL', KEYS[i], 'until') end
      end
    end
    return 0`;

  constructor(private readonly redis: Redis, private readonly prefix: string) {}

  async check(keys: string[]) {
    const pipeline = this.redis.pipeline();
    for (const k of keys) pipeline.hget(this.prefix + k, 'until').hget(this.prefix + k, 'failures');
    const results = (await pipeline.exec()) ?? [];
    let until = 0;
    let dirty = false;
    for (let i = 0; i < results.length; i += 2) {
      const [errU, u] = results[i];
      const [errF, f] = results[i + 1];
      if (errU || errF) throw errU ?? errF;
      until = Math.max(until, Number(u ?? 0));
      dirty ||= Number(f ?? 0) > 0;
    }
    return { until, dirty };
  }

  async take(keys: readonly LockKey[], schedule: LockSchedule, now: number) {
    const [lockedUntil, lockedFor] = (await this.redis.eval(
      RedisLockoutStore.TAKE, keys.length, ...keys.map((k) => this.prefix + k.key),
      now, FORGET_AFTER_S, ...keys.map((k) => k.threshold), schedule.base, schedule.max,
    )) as [number, number];
    return { lockedUntil: Number(lockedUntil), lockedFor: Number(lockedFor) };
  }

  async release(keys: readonly ReleaseKey[]) {
    if (!keys.length) return;
    await this.redis.eval(RedisLockoutStore.RELEASE, keys.length, ...keys.map((k) => this.prefix + k.key), ...keys.map((k) => k.threshold), ...keys.map((k) => (k.reset ? 1 : 0)));
  }

  async close() {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

/**
 * Brute-force protection (CONTRACT §5): failures are counted per key (in the database, or Redis
 * when REDIS_URL is set, shared by every replica); at a key's threshold it locks for
 * IDP_LOCKOUT_SECONDS, doubling with each further failure up to IDP_LOCKOUT_MAX_SECONDS.
 *
 * The check and the count are one atomic step taken before any password or secret is verified
 * (`attempt`): an attempt counts as a failure from the start, and the attempt that reaches the
 * threshold locks the key at once, so however many arrive together, at most `threshold` of them
 * are ever checked. A locked key refuses attempts without counting them or costing a verification.
 * A success gives its attempt back (`succeed`): the account's or client's counters start again
 * from zero, the address counts one failure less (it keeps the failures it had).
 */
@Injectable()
export class LockoutService implements OnModuleDestroy {
  readonly store: LockoutStore;
  private readonly clientKeyCache = new Map<string, readonly LockKey[]>();
  private purgeTimer?: NodeJS.Timeout;

  constructor(@InjectDataSource() db: DataSource, private readonly config: IdpConfig) {
    this.store = config.redisUrl
      ? new RedisLockoutStore(new Redis(config.redisUrl, { maxRetriesPerRequest: 1, connectTimeout: 2000, commandTimeout: 2000 }), config.redisPrefix)
      : new DatabaseLockoutStore(db);
    if (this.store.purge) {
      this.purgeTimer = setInterval(() => void this.purge().catch(() => undefined), PURGE_EVERY_MS);
      this.purgeTimer.unref();
    }
  }

  async onModuleDestroy(): Promise<void> {
    if (this.purgeTimer) clearInterval(this.purgeTimer);
    await this.store.close?.();
  }

  /** Removes counters that have been idle for a day and are not locked. */
  purge(): Promise<void> {
    const now = Date.now();
    return this.store.purge?.(now - FORGET_AFTER_S * 1000, now) ?? Promise.resolve();
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

  /** Where the keys stand, without counting anything (for the admin and tests; attempts use `attempt`). */
  async check(keys: readonly LockKey[]): Promise<LockState> {
    const { until, dirty } = await this.store.check(keys.map((k) => k.key));
    const now = Date.now();
    return { retryAfter: until > now ? Math.ceil((until - now) / 1000) : 0, dirty };
  }

  /**
   * Takes one attempt on the keys before its credential is checked: refused (`retryAfter` > 0)
   * while any key is locked; otherwise counted as a failure already, to be given back by
   * `succeed` (or `abandon`, when the check could not be made).
   */
  async attempt(keys: readonly LockKey[]): Promise<LockAttempt> {
    const now = Date.now();
    const { lockedUntil, lockedFor } = await this.store.take(keys, { base: this.config.lockoutSeconds, max: this.config.lockoutMaxSeconds }, now);
    return { keys, retryAfter: lockedUntil > now ? Math.ceil((lockedUntil - now) / 1000) : 0, lockedFor };
  }

  /** The credential was right: the account's (client's) counters start again, the address counts one failure less. */
  async succeed(attempt: LockAttempt): Promise<void> {
    await this.store.release(attempt.keys.map((k) => ({ ...k, reset: !k.key.includes(':ip:') })), Date.now());
  }

  /** The credential could not be checked (an error, not a wrong answer): the attempt is given back on every key. */
  async abandon(attempt: LockAttempt): Promise<void> {
    await this.store.release(attempt.keys.map((k) => ({ ...k, reset: false })), Date.now());
  }
}

/** How TypeORM stores a Date in SQLite (`datetime` columns: UTC "YYYY-MM-DD HH:MM:SS.SSS"). */
function sqliteDate(d: Date): string {
  return d.toISOString().replace('T', ' ').replace('Z', '');
}
