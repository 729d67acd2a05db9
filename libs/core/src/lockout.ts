import { Injectable, OnModuleDestroy } from '@nestjs/common';
import Redis from 'ioredis';
import { InjectDataSource } from '@nestjs/typeorm';
import { Column, DataSource, Entity, In, PrimaryColumn } from 'typeorm';
import { Clock, SystemClock } from './clock';
import { IdpConfig } from './config';
import { sha256 } from './crypto';
import { retryOnDbConflict } from './db-errors';
import { inTransaction } from './transactions';

/**
 * A failure counter (CONTRACT §5): a sign-in or client-authentication key and how often it failed
 * in a row; `locked_until` once a threshold is crossed; and the lease of the attempts still
 * allowed (see LockoutService). Keys never hold an email or secret in clear (hashed), only client
 * ids and IP addresses.
 */
@Entity('lockouts')
export class Lockout {
  @PrimaryColumn({ type: 'varchar', length: 128 }) key: string;
  @Column({ type: 'integer' }) failures: number;
  @Column({ nullable: true, type: Date }) locked_until: Date | null;
  @Column() last_failure_at: Date;
  @Column({ nullable: true, type: Date }) lease_end: Date | null;
  @Column({ type: 'integer', default: 0 }) leased: number;
  @Column({ type: 'integer', default: 0 }) leased_next: number;
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

/** Counters forget failures older than this (a user who mistypes once a week never locks). */
export const FORGET_AFTER_MS = 24 * 3600_000;
/** How often idle counters (nothing for FORGET_AFTER_MS, not locked, no lease) are removed from the database. */
const PURGE_EVERY_MS = 10 * 60_000;
/** The length of a lease epoch: slots handed out in one are void when it ends (an instance that died gives its back then). */
export const LEASE_EPOCH_MS = 30_000;
/**
 * A slot is only taken for a new attempt while its epoch has at least this long to run, longer
 * than any credential check can take (the outbound fetch of a jwks_uri is bounded at 5 s, a
 * database statement at 10 s): an attempt always ends inside the epoch whose budget it counts in.
 * In an epoch's last LEASE_MARGIN_MS, slots are handed out for the next epoch instead.
 */
export const LEASE_MARGIN_MS = 12_000;
/** How long an attempt waits for one of this instance's own slots on a key to come back, when the key's budget is all in use. */
const SLOT_WAIT_MS = 5_000;
/** How many attempts on one key may wait here, asking the store again, while other instances hold its slots. */
const MAX_POLLING_WAITERS = 32;

/** The lock schedule: IDP_LOCKOUT_SECONDS at the threshold, doubling with each further failure, up to IDP_LOCKOUT_MAX_SECONDS. */
export interface LockSchedule {
  base: number;
  max: number;
}

export function lockSeconds(failures: number, threshold: number, base: number, max: number): number {
  return failures >= threshold ? Math.min(base * 2 ** Math.min(failures - threshold, 30), max) : 0;
}

/** One counter's state, in ms since the epoch (0 = none). */
export interface Counter {
  failures: number;
  lockedUntil: number;
  lastFailureAt: number;
  /** End of the current lease epoch; `leased` slots are out in it, `leasedNext` in the one after. */
  leaseEnd: number;
  leased: number;
  leasedNext: number;
}

export const EMPTY_COUNTER: Counter = Object.freeze({ failures: 0, lockedUntil: 0, lastFailureAt: 0, leaseEnd: 0, leased: 0, leasedNext: 0 });

/**
 * The counter as it stands at `now`: an epoch that has ended hands its slots over (the next
 * epoch's become current; anything older is void), and failures a day old are forgotten.
 */
export function rolled(c: Counter, now: number): Counter {
  let { leaseEnd, leased, leasedNext, failures } = c;
  if (leaseEnd <= now) {
    if (leaseEnd > 0 && leaseEnd + LEASE_EPOCH_MS > now) {
      leased = leasedNext;
      leasedNext = 0;
      leaseEnd += LEASE_EPOCH_MS;
    } else {
      leased = 0;
      leasedNext = 0;
      leaseEnd = now + LEASE_EPOCH_MS;
    }
  }
  if (c.lastFailureAt && c.lastFailureAt < now - FORGET_AFTER_MS && c.lockedUntil <= now) failures = 0;
  return { ...c, failures, leaseEnd, leased, leasedNext };
}

/** The attempts a counter still allows to be checked: up to the threshold, and one at a time after a lock has passed. */
export function budget(c: Counter, threshold: number): number {
  return c.failures >= threshold ? 1 : threshold - c.failures;
}

export type LeaseResult = { counter: Counter; granted: { epoch: number } } | { counter: Counter; refused: { lockedUntil: number; busyUntil: number } };

/**
 * Hands out one slot of the counter's budget: refused while locked, or while every slot is out
 * (busy until the current epoch ends); else a slot of the current epoch, or of the next one in the
 * current one's last LEASE_MARGIN_MS. `epoch` is the end of the slot's epoch.
 */
export function lease(c0: Counter, threshold: number, now: number): LeaseResult {
  const c = rolled(c0, now);
  if (c.lockedUntil > now) return { counter: c, refused: { lockedUntil: c.lockedUntil, busyUntil: 0 } };
  if (budget(c, threshold) - c.leased - c.leasedNext < 1) return { counter: c, refused: { lockedUntil: 0, busyUntil: c.leaseEnd } };
  if (c.leaseEnd - now >= LEASE_MARGIN_MS) return { counter: { ...c, leased: c.leased + 1 }, granted: { epoch: c.leaseEnd } };
  return { counter: { ...c, leasedNext: c.leasedNext + 1 }, granted: { epoch: c.leaseEnd + LEASE_EPOCH_MS } };
}

/** A checked attempt failed: its slot (of epoch `epoch`) is spent as one failure more; at the threshold the key locks. */
export function fail(c0: Counter, threshold: number, schedule: LockSchedule, epoch: number, now: number): Counter {
  const c = rolled(c0, now);
  const leased = epoch === c.leaseEnd ? Math.max(c.leased - 1, 0) : c.leased;
  const leasedNext = epoch === c.leaseEnd + LEASE_EPOCH_MS ? Math.max(c.leasedNext - 1, 0) : c.leasedNext;
  const failures = c.failures + 1;
  const seconds = lockSeconds(failures, threshold, schedule.base, schedule.max);
  return { ...c, failures, leased, leasedNext, lastFailureAt: now, lockedUntil: seconds ? now + seconds * 1000 : c.lockedUntil };
}

/** A success on an account or client: its failures start again from zero, and any lock is lifted. */
export function reset(c0: Counter, now: number): Counter {
  return { ...rolled(c0, now), failures: 0, lockedUntil: 0 };
}

/**
 * Where the counters live: the database by default, Redis when REDIS_URL is set. `update` is the
 * one atomic step: it reads the counters of the keys, hands them to `fn`, and writes what `fn`
 * returns, with no other update of those keys in between, on any instance. Rows are taken in the
 * keys' sorted order, so two updates never wait on each other (no deadlock).
 */
export interface LockoutStore {
  /** Latest lock end (ms since the epoch, 0 if none) over the keys, and whether any has failures. */
  check(keys: string[]): Promise<{ until: number; dirty: boolean }>;
  update<T>(keys: string[], fn: (counters: Map<string, Counter>) => { counters: Map<string, Counter>; result: T }): Promise<T>;
  /** Removes counters idle since before `forgetBefore`, not locked and without a lease (a database has no expiry of its own). */
  purge?(forgetBefore: number, now: number): Promise<void>;
  close?(): Promise<void>;
}

const ms = (v: string | Date | null | undefined): number =>
  v === null || v === undefined ? 0 : v instanceof Date ? v.getTime() : Date.parse(`${String(v).replace(' ', 'T')}Z`);

/**
 * Counters in the `lockouts` table. An update is one transaction: one upsert that takes the rows
 * (inserting missing ones) in sorted key order and returns them, then one UPDATE per changed row;
 * a conflict PostgreSQL reports (deadlock, serialization) runs it again. It happens only when an
 * instance leases a slot (about once per key and instance per epoch) and on failures: successes
 * touch the database only to clear failures they find.
 */
export class DatabaseLockoutStore implements LockoutStore {
  /** `clock`: the time of the rows it inserts (their last_failure_at before any failure). */
  constructor(private readonly db: DataSource, private readonly clock: Clock = new SystemClock()) {}

  private get pg(): boolean {
    return this.db.options.type === 'postgres';
  }

  private get table(): string {
    return this.db.getRepository(Lockout).metadata.tablePath;
  }

  private param(i: number): string {
    return this.pg ? `$${i}` : '?';
  }

  private date(v: number): Date | string | null {
    if (!v) return null;
    return this.pg ? new Date(v) : sqliteDate(new Date(v));
  }

  async check(keys: string[]) {
    const rows = await this.db.getRepository(Lockout).find({ where: { key: In(keys) } });
    return {
      until: Math.max(0, ...rows.map((r) => r.locked_until?.getTime() ?? 0)),
      dirty: rows.some((r) => r.failures > 0),
    };
  }

  update<T>(keys: string[], fn: (counters: Map<string, Counter>) => { counters: Map<string, Counter>; result: T }): Promise<T> {
    const sorted = [...new Set(keys)].sort();
    const t = this.table;
    const now = this.date(this.clock.now());
    return retryOnDbConflict(() =>
      inTransaction(this.db, async (m) => {
        // Takes every row (a no-op update locks one that exists) in key order, and reads it back.
        const values: unknown[] = [];
        const rows = sorted.map((k) => {
          values.push(k, now);
          return `(${this.param(values.length - 1)}, 0, NULL, ${this.param(values.length)}, NULL, 0, 0)`;
        });
        const found: Record<string, unknown>[] = await m.query(
          `INSERT INTO ${t} (key, failures, locked_until, last_failure_at, lease_end, leased, leased_next) VALUES ${rows.join(', ')}
           ON CONFLICT (key) DO UPDATE SET key = excluded.key
           RETURNING key, failures, locked_until, last_failure_at, lease_end, leased, leased_next`,
          values,
        );
        const before = new Map<string, Counter>();
        for (const r of found) {
          before.set(String(r.key), {
            failures: Number(r.failures), lockedUntil: ms(r.locked_until as string | Date | null), lastFailureAt: ms(r.last_failure_at as string | Date | null),
            leaseEnd: ms(r.lease_end as string | Date | null), leased: Number(r.leased), leasedNext: Number(r.leased_next),
          });
        }
        // A row inserted just now (not there before) reads as the empty counter: its last_failure_at is no failure.
        for (const [k, c] of before) if (c.failures === 0 && !c.leaseEnd && !c.lockedUntil) before.set(k, { ...c, lastFailureAt: 0 });
        const { counters, result } = fn(before);
        for (const k of sorted) {
          const c = counters.get(k);
          const b = before.get(k)!;
          if (!c || (c.failures === b.failures && c.lockedUntil === b.lockedUntil && c.lastFailureAt === b.lastFailureAt && c.leaseEnd === b.leaseEnd && c.leased === b.leased && c.leasedNext === b.leasedNext)) continue;
          await m.query(
            `UPDATE ${t} SET failures = ${this.param(1)}, locked_until = ${this.param(2)}, last_failure_at = ${this.param(3)}, lease_end = ${this.param(4)}, leased = ${this.param(5)}, leased_next = ${this.param(6)} WHERE key = ${this.param(7)}`,
            [c.failures, this.date(c.lockedUntil), this.date(c.lastFailureAt || this.clock.now()), this.date(c.leaseEnd), c.leased, c.leasedNext, k],
          );
        }
        return result;
      }),
    );
  }

  async purge(forgetBefore: number, now: number) {
    const idle = `last_failure_at < ${this.param(1)} AND (locked_until IS NULL OR locked_until < ${this.param(2)}) AND (lease_end IS NULL OR lease_end < ${this.param(3)})`;
    const t = this.table;
    // PostgreSQL: rows some attempt holds right now are skipped, so the purge never waits on (or deadlocks with) one.
    const sql = this.pg
      ? `DELETE FROM ${t} WHERE key IN (SELECT key FROM ${t} WHERE ${idle} LIMIT 10000 FOR UPDATE SKIP LOCKED)`
      : `DELETE FROM ${t} WHERE key IN (SELECT key FROM ${t} WHERE ${idle} LIMIT 10000)`;
    await this.db.query(sql, [this.date(forgetBefore), this.date(now), this.date(now)]);
  }
}

/**
 * Counters in Redis (REDIS_URL), for several replicas: one hash per key, expiring a day after its
 * last change. An update is an optimistic transaction (WATCH, read, MULTI … EXEC, again when
 * another instance changed a key meanwhile) on a connection of its own, one at a time per instance.
 */
export class RedisLockoutStore implements LockoutStore {
  private tx?: Redis;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly redis: Redis, private readonly prefix: string) {}

  async check(keys: string[]) {
    const pipeline = this.redis.pipeline();
    for (const k of keys) pipeline.hget(this.prefix + k, 'lockedUntil').hget(this.prefix + k, 'failures');
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

  update<T>(keys: string[], fn: (counters: Map<string, Counter>) => { counters: Map<string, Counter>; result: T }): Promise<T> {
    const run = this.queue.then(() => this.transact(keys, fn));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async transact<T>(keys: string[], fn: (counters: Map<string, Counter>) => { counters: Map<string, Counter>; result: T }): Promise<T> {
    const tx = (this.tx ??= this.redis.duplicate());
    const sorted = [...new Set(keys)].sort();
    const names = sorted.map((k) => this.prefix + k);
    for (let attempt = 0; attempt < 50; attempt++) {
      // Another instance changed a key in between: back off a random moment, so that two instances
      // retrying together do not keep colliding.
      if (attempt) await new Promise((r) => setTimeout(r, Math.random() * Math.min(attempt, 10)));
      await tx.watch(...names);
      const read = (await names.reduce((p, name) => p.hgetall(name), tx.pipeline()).exec()) ?? [];
      const before = new Map<string, Counter>();
      for (const [i] of names.entries()) {
        const [err, raw] = read[i] ?? [new Error('no reply')];
        if (err) throw err;
        const h = raw as Record<string, string>;
        before.set(sorted[i], {
          failures: Number(h.failures ?? 0), lockedUntil: Number(h.lockedUntil ?? 0), lastFailureAt: Number(h.lastFailureAt ?? 0),
          leaseEnd: Number(h.leaseEnd ?? 0), leased: Number(h.leased ?? 0), leasedNext: Number(h.leasedNext ?? 0),
        });
      }
      const { counters, result } = fn(before);
      const multi = tx.multi();
      for (const [i, name] of names.entries()) {
        const c = counters.get(sorted[i]);
        if (!c) continue;
        multi.hset(name, { failures: c.failures, lockedUntil: c.lockedUntil, lastFailureAt: c.lastFailureAt, leaseEnd: c.leaseEnd, leased: c.leased, leasedNext: c.leasedNext });
        multi.pexpire(name, FORGET_AFTER_MS);
      }
      if ((await multi.exec()) !== null) return result;
    }
    throw new Error('lockout counters: too many concurrent changes');
  }

  async close() {
    await this.tx?.quit().catch(() => this.tx?.disconnect());
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

/** A slot this instance holds on one key: the epoch it counts in, until when it may start attempts. */
interface Pool {
  epoch: number;
  usableUntil: number;
  /** Slots of this epoch held here and not in use by an attempt. */
  free: number;
  /** Slots of this epoch held here and in use. */
  inUse: number;
  /** Whether the key had failures when last seen (a success then clears them). */
  dirty: boolean;
}

/** One attempt's slots, one per key, to be given back (`succeed`, `abandon`) or spent (`failed`). */
export interface LockAttempt {
  readonly keys: readonly LockKey[];
  /** Seconds to wait: the attempt was refused and holds nothing; 0 when it may be checked. */
  readonly retryAfter: number;
  /** The epoch of the slot taken on each key. */
  readonly epochs: ReadonlyMap<string, number>;
}

/**
 * Brute-force protection (CONTRACT §5): failures are counted per key (in the database, or Redis
 * when REDIS_URL is set, shared by every replica); at a key's threshold it locks for
 * IDP_LOCKOUT_SECONDS, doubling with each further failure up to IDP_LOCKOUT_MAX_SECONDS.
 *
 * The check and the count are one atomic step taken before any password or secret is verified: an
 * attempt is only checked with a slot of its keys' budget (the threshold less the failures, one
 * at a time after a lock has passed), and the slots are handed out atomically by the store, so
 * however many attempts arrive together, on one instance or several, no more are checked than the
 * budget allows; a failure spends its slot as a failure, a success gives it back. Slots are leased
 * to an instance for an epoch (LEASE_EPOCH_MS) and reused there for attempt after attempt, so the
 * usual request (a success on a key without failures) costs no database or Redis write at all; an
 * instance goes to the store about once per key and epoch, and on failures. A locked key refuses
 * attempts without counting them or costing a verification. When a key's whole budget is in use by
 * attempts in flight, a new attempt waits (up to SLOT_WAIT_MS) for one of them here, or, when other
 * instances hold them, asks the store again after pauses that double; then it is refused with 429.
 *
 * Counters, leases and locks are on the injected Clock (a test advances it past a lock); the waits
 * for a slot are timers, on real time.
 */
@Injectable()
export class LockoutService implements OnModuleDestroy {
  readonly store: LockoutStore;
  private readonly clientKeyCache = new Map<string, readonly LockKey[]>();
  private readonly pools = new Map<string, Pool>();
  /** Attempts waiting here for a key whose slots other instances hold (key -> how many), at most MAX_POLLING_WAITERS each. */
  private readonly polling = new Map<string, number>();
  /** Locks seen here (key -> end, ms): attempts on a locked key are refused without asking the store again. */
  private readonly locks = new Map<string, number>();
  private waiters: (() => void)[] = [];
  private purgeTimer?: NodeJS.Timeout;

  constructor(@InjectDataSource() db: DataSource, private readonly config: IdpConfig, private readonly clock: Clock) {
    this.store = config.redisUrl
      ? new RedisLockoutStore(new Redis(config.redisUrl, { maxRetriesPerRequest: 1, connectTimeout: 2000, commandTimeout: 2000 }), config.redisPrefix)
      : new DatabaseLockoutStore(db, clock);
    if (this.store.purge) {
      this.purgeTimer = setInterval(() => void this.purge().catch(() => undefined), PURGE_EVERY_MS);
      this.purgeTimer.unref();
    }
  }

  async onModuleDestroy(): Promise<void> {
    if (this.purgeTimer) clearInterval(this.purgeTimer);
    this.wake();
    await this.store.close?.();
  }

  /** Removes counters that have been idle for a day, are not locked and hold no lease. */
  purge(): Promise<void> {
    const now = this.clock.now();
    return this.store.purge?.(now - FORGET_AFTER_MS, now) ?? Promise.resolve();
  }

  private get schedule(): LockSchedule {
    return { base: this.config.lockoutSeconds, max: this.config.lockoutMaxSeconds };
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
    const now = this.clock.now();
    return { retryAfter: until > now ? Math.ceil((until - now) / 1000) : 0, dirty };
  }

  /**
   * Takes a slot on every key before the credential is checked: from this instance's pool when it
   * has a free one, else leased from the store. Refused (`retryAfter` > 0, nothing held) while a
   * key is locked, or when its budget stays in use (it waits up to SLOT_WAIT_MS for a slot first).
   */
  async attempt(keys: readonly LockKey[]): Promise<LockAttempt> {
    // The wait for a slot is bounded on real time (its pauses are timers); the keys' state on the clock.
    const deadline = Date.now() + SLOT_WAIT_MS;
    let pauses = 0;
    for (;;) {
      const now = this.clock.now();
      const seenLock = Math.max(0, ...keys.map((k) => this.locks.get(k.key) ?? 0));
      if (seenLock > now) return { keys, retryAfter: Math.ceil((seenLock - now) / 1000), epochs: new Map() };
      const epochs = new Map<string, number>();
      const missing: LockKey[] = [];
      for (const k of keys) {
        const p = this.pools.get(k.key);
        if (p && p.free > 0 && now < p.usableUntil) {
          p.free--;
          p.inUse++;
          epochs.set(k.key, p.epoch);
        } else missing.push(k);
      }
      if (!missing.length) return { keys, retryAfter: 0, epochs };
      const outcome = await this.store.update(missing.map((k) => k.key), (counters) => {
        const granted = new Map<string, { epoch: number; dirty: boolean }>();
        const locked = new Map<string, number>();
        let busyUntil = 0;
        const next = new Map<string, Counter>();
        for (const k of missing) {
          const r = lease(counters.get(k.key) ?? EMPTY_COUNTER, k.threshold, now);
          if ('granted' in r) {
            next.set(k.key, r.counter);
            granted.set(k.key, { epoch: r.granted.epoch, dirty: r.counter.failures > 0 });
          } else if (r.refused.lockedUntil) locked.set(k.key, r.refused.lockedUntil);
          else busyUntil = Math.max(busyUntil, r.refused.busyUntil);
        }
        // All or nothing: slots are only taken when every key has one.
        return granted.size === missing.length ? { counters: next, result: { granted, locked, busyUntil } } : { counters: new Map(), result: { granted: new Map(), locked, busyUntil } };
      });
      const lockedUntil = Math.max(0, ...outcome.locked.values());
      this.remember(outcome.locked);
      if (outcome.granted.size === missing.length) {
        for (const [key, g] of outcome.granted) {
          let p = this.pools.get(key);
          if (!p || p.epoch !== g.epoch) {
            if (this.pools.size >= 10_000) this.prunePools(now);
            p = { epoch: g.epoch, usableUntil: g.epoch - LEASE_MARGIN_MS, free: 0, inUse: 0, dirty: g.dirty };
            this.pools.set(key, p);
          }
          p.dirty ||= g.dirty;
          p.inUse++;
          epochs.set(key, g.epoch);
        }
        return { keys, retryAfter: 0, epochs };
      }
      // Refused: give back what was taken here for this attempt.
      this.giveBack(epochs);
      // Seconds counted from now, after the store's answer: a lock another attempt set meanwhile may end later than `now` + its length.
      const answered = this.clock.now();
      if (lockedUntil > answered) return { keys, retryAfter: Math.ceil((lockedUntil - answered) / 1000), epochs: new Map() };
      // Busy: the budget is all in use. Wait for one of this instance's own attempts on those keys
      // to end; when the slots are held by other instances, ask the store again after a pause that
      // doubles each time (50 ms, 100 ms, … : a handful of store calls in SLOT_WAIT_MS), so that
      // their failures' lock, or a slot they give back at the epoch's end, is seen. A few such
      // waiters a key at most; the others are refused at once.
      const ownInUse = missing.some((k) => (this.pools.get(k.key)?.inUse ?? 0) > 0);
      const busy = { keys, retryAfter: Math.max(1, Math.ceil((Math.min(outcome.busyUntil || answered + 1000, answered + LEASE_EPOCH_MS) - answered) / 1000)), epochs: new Map() };
      if (Date.now() >= deadline) return busy;
      if (ownInUse) await this.waitForSlot(deadline);
      else {
        const key = missing[0].key;
        const polling = this.polling.get(key) ?? 0;
        if (polling >= MAX_POLLING_WAITERS) return busy;
        this.polling.set(key, polling + 1);
        try {
          await this.waitForSlot(Math.min(deadline, Date.now() + 50 * 2 ** pauses++));
        } finally {
          const left = (this.polling.get(key) ?? 1) - 1;
          if (left > 0) this.polling.set(key, left);
          else this.polling.delete(key);
        }
      }
    }
  }

  /** The credential was right: the slots come back to this instance's pool; an account's or client's failures, if any, are cleared. */
  async succeed(attempt: LockAttempt): Promise<void> {
    const dirty = attempt.keys.filter((k) => !k.key.includes(':ip:') && this.pools.get(k.key)?.dirty);
    this.giveBack(attempt.epochs);
    if (!dirty.length) return;
    const now = this.clock.now();
    await this.store.update(dirty.map((k) => k.key), (counters) => ({ counters: new Map(dirty.map((k) => [k.key, reset(counters.get(k.key) ?? EMPTY_COUNTER, now)])), result: undefined }));
    for (const k of dirty) {
      const p = this.pools.get(k.key);
      if (p) p.dirty = false;
      this.locks.delete(k.key);
    }
  }

  /**
   * Keeps the locks just seen, so that attempts on them are refused here until they end (another
   * instance's success may lift one sooner; this instance then refuses until the end it saw).
   */
  private remember(locks: ReadonlyMap<string, number>): void {
    if (!locks.size) return;
    if (this.locks.size >= 10_000) {
      const now = this.clock.now();
      for (const [key, until] of this.locks) if (until <= now) this.locks.delete(key);
      if (this.locks.size >= 10_000) this.locks.clear();
    }
    for (const [key, until] of locks) this.locks.set(key, until);
  }

  /** The credential was wrong: each slot is spent as one failure more. Returns the seconds of the longest lock now in place (0 if none). */
  async failed(attempt: LockAttempt): Promise<number> {
    const now = this.clock.now();
    try {
      return await this.store.update(attempt.keys.map((k) => k.key), (counters) => {
        let longest = 0;
        const next = new Map<string, Counter>();
        const locked = new Map<string, number>();
        for (const k of attempt.keys) {
          const c = fail(counters.get(k.key) ?? EMPTY_COUNTER, k.threshold, this.schedule, attempt.epochs.get(k.key) ?? 0, now);
          next.set(k.key, c);
          if (c.lockedUntil > now) {
            locked.set(k.key, c.lockedUntil);
            longest = Math.max(longest, Math.ceil((c.lockedUntil - now) / 1000));
          }
        }
        return { counters: next, result: { longest, locked } };
      }).then(({ longest, locked }) => {
        this.remember(locked);
        return longest;
      });
    } finally {
      // The slots stay in use until the failure is recorded: an attempt waiting for one of them
      // then finds the key as the failure left it (locked, or with its budget spent).
      for (const [key, epoch] of attempt.epochs) {
        const p = this.pools.get(key);
        if (p && p.epoch === epoch) {
          p.inUse = Math.max(p.inUse - 1, 0);
          p.dirty = true;
        }
      }
      this.wake();
    }
  }

  /** The credential could not be checked (an error, not a wrong answer): the slots come back unspent. */
  abandon(attempt: LockAttempt): void {
    this.giveBack(attempt.epochs);
  }

  private giveBack(epochs: ReadonlyMap<string, number>): void {
    for (const [key, epoch] of epochs) {
      const p = this.pools.get(key);
      if (p && p.epoch === epoch && p.inUse > 0) {
        p.inUse--;
        p.free++;
      }
    }
    if (epochs.size) this.wake();
  }

  private waitForSlot(deadline: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
      timer.unref();
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private wake(): void {
    const woken = this.waiters;
    this.waiters = [];
    for (const w of woken) w();
  }

  /** Drops pools whose epoch has ended (their slots are void in the store too). */
  private prunePools(now: number): void {
    for (const [key, p] of this.pools) if (p.epoch <= now && p.inUse === 0) this.pools.delete(key);
    if (this.pools.size >= 10_000) for (const [key, p] of this.pools) if (p.inUse === 0) this.pools.delete(key);
  }
}

/** How TypeORM stores a Date in SQLite (`datetime` columns: UTC "YYYY-MM-DD HH:MM:SS.SSS"). */
function sqliteDate(d: Date): string {
  return d.toISOString().replace('T', ' ').replace('Z', '');
}
