import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { Client as PgClient } from 'pg';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from '@idp/identity';
import { TEST_REDIS_URL as REDIS_URL, redisUp } from '../../../test/support/redis';
import { ManualClock, SystemClock } from './clock';
import { loadConfig } from './config';
import { sha256 } from './crypto';
import {
  Counter, DatabaseLockoutStore, EMPTY_COUNTER, LEASE_EPOCH_MS, LEASE_MARGIN_MS, Lockout, LockoutService, LockoutStore, RedisLockoutStore, fail, lease, reset, rolled,
} from './lockout';

describe('LockoutService.clientKeys', () => {
  const config = loadConfig({ IDP_LOCKOUT_THRESHOLD: '4' });
  const service = () => new LockoutService({} as DataSource, config, new SystemClock());

  it('names the client from this address, the client and the address, with hashed client ids', () => {
    const client = sha256('app-1');
    expect(service().clientKeys('app-1', '10.0.0.1')).toEqual([
      { key: `client:pair:${sha256(`${client}|10.0.0.1`)}`, threshold: 4 },
      { key: `client:id:${client}`, threshold: 20 },
      { key: 'client:ip:10.0.0.1', threshold: config.lockoutIpThreshold },
    ]);
  });

  it('gives the same frozen keys for the same client and address, and others for another address or client', () => {
    const s = service();
    const a = s.clientKeys('app-1', '10.0.0.1');
    expect(s.clientKeys('app-1', '10.0.0.1')).toBe(a);
    expect(Object.isFrozen(a) && a.every((k) => Object.isFrozen(k))).toBe(true);
    const b = s.clientKeys('app-1', '10.0.0.2');
    expect(b[0].key).not.toBe(a[0].key);
    expect(b[1].key).toBe(a[1].key);
    expect(b[2].key).toBe('client:ip:10.0.0.2');
    // no two (client, address) pairs share a cache entry, whatever characters they hold
    expect(s.clientKeys('x\u0000y', 'z')[1].key).not.toBe(s.clientKeys('x', 'y\u0000z')[1].key);
    expect(s.clientKeys('1:x', '1')[1].key).not.toBe(s.clientKeys('x', '1:1')[1].key);
    expect(s.clientKeys('app-2', '10.0.0.1')[1].key).toBe(`client:id:${sha256('app-2')}`);
  });
});


/** The counter's steps, as pure functions of the counter and the time. */
describe('lockout counter steps', () => {
  const T0 = Date.UTC(2026, 11, 4, 12, 0, 0);
  const schedule = { base: 60, max: 900 };
  const grant = (c: Counter, threshold: number, now: number) => {
    const r = lease(c, threshold, now);
    if (!('granted' in r)) throw new Error(`refused: ${JSON.stringify(r.refused)}`);
    return r;
  };

  it('hands out no more slots than the threshold less the failures, across every holder', () => {
    let c: Counter = EMPTY_COUNTER;
    for (let i = 0; i < 3; i++) c = grant(c, 3, T0 + i).counter;
    expect(lease(c, 3, T0 + 10)).toEqual({ counter: c, refused: { lockedUntil: 0, busyUntil: T0 + LEASE_EPOCH_MS } });
    // One slot spent as a failure: still none to hand out (the failure takes its place).
    c = fail(c, 3, schedule, T0 + LEASE_EPOCH_MS, T0 + 20);
    expect(c).toMatchObject({ failures: 1, leased: 2 });
    expect('refused' in lease(c, 3, T0 + 30)).toBe(true);
  });

  it('locks at the threshold, doubling after each lock up to the cap, and one attempt at a time after a lock', () => {
    let c: Counter = EMPTY_COUNTER;
    let now = T0;
    const locks: number[] = [];
    for (let i = 0; i < 7; i++) {
      const g = grant(c, 1, now);
      c = fail(g.counter, 1, schedule, g.granted.epoch, now);
      locks.push((c.lockedUntil - now) / 1000);
      expect(lease(c, 1, now + 1)).toMatchObject({ refused: { lockedUntil: c.lockedUntil } });
      now = c.lockedUntil + 1;
    }
    expect(locks).toEqual([60, 120, 240, 480, 900, 900, 900]);
    // After the lock has passed: one attempt at a time, not the threshold's.
    const after = grant(c, 5, now).counter;
    expect(lease(after, 5, now)).toMatchObject({ refused: { lockedUntil: 0 } });
  });

  it('voids the slots of an ended epoch (an instance that died gives its back) and moves the next epoch\'s forward', () => {
    let c = grant(EMPTY_COUNTER, 2, T0).counter;
    c = grant(c, 2, T0 + LEASE_EPOCH_MS - LEASE_MARGIN_MS + 1).counter; // in the margin: for the next epoch
    expect(c).toMatchObject({ leased: 1, leasedNext: 1, leaseEnd: T0 + LEASE_EPOCH_MS });
    expect(rolled(c, T0 + LEASE_EPOCH_MS)).toMatchObject({ leased: 1, leasedNext: 0, leaseEnd: T0 + 2 * LEASE_EPOCH_MS });
    expect(rolled(c, T0 + 3 * LEASE_EPOCH_MS)).toMatchObject({ leased: 0, leasedNext: 0, leaseEnd: T0 + 4 * LEASE_EPOCH_MS });
  });

  it('spends a failure on the epoch its slot came from only', () => {
    const c = grant(grant(EMPTY_COUNTER, 5, T0).counter, 5, T0 + LEASE_EPOCH_MS - 1000).counter;
    expect(fail(c, 5, schedule, T0 + 2 * LEASE_EPOCH_MS, T0 + LEASE_EPOCH_MS - 500)).toMatchObject({ failures: 1, leased: 1, leasedNext: 0 });
    expect(fail(c, 5, schedule, T0 + LEASE_EPOCH_MS, T0 + 2000)).toMatchObject({ failures: 1, leased: 0, leasedNext: 1 });
  });

  it('forgets failures a day old, and a success clears them and the lock', () => {
    const g = grant(EMPTY_COUNTER, 1, T0);
    const locked = fail(g.counter, 1, schedule, g.granted.epoch, T0);
    expect(rolled(locked, T0 + 24 * 3600_000 + 61_000).failures).toBe(0);
    expect(reset(locked, T0 + 1)).toMatchObject({ failures: 0, lockedUntil: 0 });
  });
});

/**
 * The stores: `update` is atomic over its keys on every instance (50 parallel increments on two
 * store objects sharing the counters lose none), on SQLite, PostgreSQL (TEST_DATABASE_URL) and Redis.
 */
const PG_URL = process.env.TEST_DATABASE_URL?.startsWith('postgres') ? process.env.TEST_DATABASE_URL : undefined;
if (!redisUp) console.warn(`RedisLockoutStore specs skipped: no Redis at ${REDIS_URL} (.ci/run starts one)`);

interface StoreFixture {
  stores: [LockoutStore, LockoutStore];
  close(): Promise<void>;
}
const fixtures: [string, () => Promise<StoreFixture>][] = [
  ['DatabaseLockoutStore on SQLite', async () => {
    const ds = await new DataSource({ ...dataSourceOptions('sqlite::memory:'), migrationsRun: true }).initialize();
    return { stores: [new DatabaseLockoutStore(ds), new DatabaseLockoutStore(ds)], close: () => ds.destroy() };
  }],
  ...(PG_URL
    ? [['DatabaseLockoutStore on PostgreSQL', async () => {
        const schema = `t_${randomBytes(6).toString('hex')}`;
        const admin = new PgClient({ connectionString: PG_URL });
        await admin.connect();
        await admin.query(`CREATE SCHEMA ${schema}`);
        const url = new URL(PG_URL);
        url.searchParams.set('schema', schema);
        const a = await new DataSource({ ...dataSourceOptions(url.toString()), migrationsRun: true }).initialize();
        const b = await new DataSource({ ...dataSourceOptions(url.toString()) }).initialize();
        return {
          stores: [new DatabaseLockoutStore(a), new DatabaseLockoutStore(b)],
          close: async () => {
            await a.destroy();
            await b.destroy();
            await admin.query(`DROP SCHEMA ${schema} CASCADE`);
            await admin.end();
          },
        };
      }] as [string, () => Promise<StoreFixture>]]
    : []),
  ...(redisUp
    ? [['RedisLockoutStore', async () => {
        const prefix = `spec:${randomBytes(6).toString('hex')}:`;
        const a = new RedisLockoutStore(new Redis(REDIS_URL), prefix);
        const b = new RedisLockoutStore(new Redis(REDIS_URL), prefix);
        return { stores: [a, b], close: async () => { await a.close(); await b.close(); } };
      }] as [string, () => Promise<StoreFixture>]]
    : []),
];

describe.each(fixtures)('%s', (name, make) => {
  let f: StoreFixture;
  let n = 0;
  beforeAll(async () => {
    f = await make();
  });
  afterAll(() => f.close());

  it('runs each update atomically over its keys: 50 parallel increments from two instances lose none', async () => {
    n++;
    const keys = [`login:pair:u${n}`, `login:acct:u${n}`, `login:ip:10.0.0.${n}`];
    const inc = (store: LockoutStore, i: number) =>
      store.update(i % 2 ? [...keys].reverse() : keys, (counters) => ({
        counters: new Map(keys.map((k) => [k, { ...(counters.get(k) ?? EMPTY_COUNTER), failures: (counters.get(k)?.failures ?? 0) + 1, lastFailureAt: Date.now() }])),
        result: undefined,
      }));
    await Promise.all(Array.from({ length: 50 }, (_, i) => inc(f.stores[i % 2], i)));
    const counts = await Promise.all(keys.map((k) => f.stores[0].update([k], (c) => ({ counters: new Map(), result: c.get(k)!.failures }))));
    expect(counts).toEqual([50, 50, 50]);
    expect(await f.stores[1].check(keys)).toEqual({ until: 0, dirty: true });
  });

  it('reads a key it has never seen as the empty counter, and keeps the times it is given', async () => {
    n++;
    const key = `client:pair:fresh${n}`;
    const seen = await f.stores[0].update([key], (c) => ({ counters: new Map([[key, { ...EMPTY_COUNTER, failures: 2, lockedUntil: 1_800_000_000_000, lastFailureAt: 1_799_999_000_000, leaseEnd: 1_800_000_030_000, leased: 3, leasedNext: 1 }]]), result: c.get(key) }));
    expect(seen).toEqual(EMPTY_COUNTER);
    const back = await f.stores[1].update([key], (c) => ({ counters: new Map(), result: c.get(key) }));
    expect(back).toEqual({ failures: 2, lockedUntil: 1_800_000_000_000, lastFailureAt: 1_799_999_000_000, leaseEnd: 1_800_000_030_000, leased: 3, leasedNext: 1 });
    expect((await f.stores[0].check([key])).until).toBe(1_800_000_000_000);
  });

  if (name.startsWith('DatabaseLockoutStore')) {
    it('purges counters idle for a day that are neither locked nor leased', async () => {
      n++;
      const now = Date.now();
      const store = f.stores[0] as DatabaseLockoutStore;
      const put = (key: string, c: Partial<Counter>) => store.update([key], () => ({ counters: new Map([[key, { ...EMPTY_COUNTER, ...c }]]), result: undefined }));
      await put(`p:idle${n}`, { failures: 3, lastFailureAt: now - 25 * 3600_000 });
      await put(`p:locked${n}`, { failures: 3, lastFailureAt: now - 25 * 3600_000, lockedUntil: now + 60_000 });
      await put(`p:leased${n}`, { lastFailureAt: now - 25 * 3600_000, leaseEnd: now + 20_000, leased: 1 });
      await put(`p:fresh${n}`, { failures: 1, lastFailureAt: now - 1000 });
      await store.purge(now - 24 * 3600_000, now);
      const failures = async (key: string) => store.update([key], (c) => ({ counters: new Map(), result: c.get(key)! }));
      expect(await failures(`p:idle${n}`)).toEqual(EMPTY_COUNTER);
      expect((await failures(`p:locked${n}`)).failures).toBe(3);
      expect((await failures(`p:leased${n}`)).leased).toBe(1);
      expect((await failures(`p:fresh${n}`)).failures).toBe(1);
    });
  }
});

/**
 * The service: slots taken before the check, reused for successes, spent by failures; on the
 * database store on SQLite, with a clock that moves only when the test advances it.
 */
describe('LockoutService', () => {
  let ds: DataSource;
  let service: LockoutService;
  let writes = 0;
  const clock = new ManualClock();
  beforeAll(async () => {
    ds = await new DataSource({ ...dataSourceOptions('sqlite::memory:'), migrationsRun: true }).initialize();
    service = new LockoutService(ds, loadConfig({ IDP_LOCKOUT_THRESHOLD: '3', IDP_LOCKOUT_IP_THRESHOLD: '100', IDP_LOCKOUT_SECONDS: '60' }), clock);
    const update = service.store.update.bind(service.store);
    service.store.update = ((...args: Parameters<LockoutStore['update']>) => {
      writes++;
      return update(...args);
    }) as LockoutStore['update'];
  });
  afterAll(async () => {
    await service.onModuleDestroy();
    await ds.destroy();
  });

  it('goes to the store once for a run of successes on the same keys', async () => {
    const keys = service.clientKeys('app-ok', '192.0.2.10');
    writes = 0;
    for (let i = 0; i < 100; i++) {
      const a = await service.attempt(keys);
      expect(a.retryAfter).toBe(0);
      await service.succeed(a);
    }
    expect(writes).toBe(1);
  });

  it('checks at most the threshold of parallel attempts: the rest wait, then are refused once the failures lock the key', async () => {
    const keys = service.loginKeys('parallel@example.com', '192.0.2.20');
    const attempts = Array.from({ length: 10 }, () => service.attempt(keys));
    const first = await Promise.race(attempts);
    expect(first.retryAfter).toBe(0);
    // Three hold slots; fail them all: the key locks and everyone waiting is refused.
    const settled: { retryAfter: number }[] = [];
    const all = attempts.map((p) => p.then(async (a) => {
      if (a.retryAfter === 0) await service.failed(a);
      settled.push(a);
    }));
    await Promise.all(all);
    expect(settled.filter((a) => a.retryAfter === 0)).toHaveLength(3);
    expect(settled.filter((a) => a.retryAfter > 0).every((a) => a.retryAfter > 0 && a.retryAfter <= 60)).toBe(true);
    expect((await service.check(keys)).retryAfter).toBeGreaterThan(0);
  });

  it('clears an account\'s failures on a success, and keeps the address\'s', async () => {
    const keys = service.loginKeys('mistyped@example.com', '192.0.2.30');
    const a = await service.attempt(keys);
    await service.failed(a);
    expect((await service.check([keys[0]])).dirty).toBe(true);
    await service.succeed(await service.attempt(keys));
    expect((await service.check([keys[0], keys[1]])).dirty).toBe(false);
    expect((await service.check([keys[2]])).dirty).toBe(true);
  });

  it('unlocks a key once its lock has passed on the clock, and doubles the lock at the next failure', async () => {
    const keys = service.loginKeys('expiring@example.com', '192.0.2.40');
    const locks: number[] = [];
    for (let i = 0; i < 3; i++) locks.push(await service.failed(await service.attempt(keys)));
    expect(locks).toEqual([0, 0, 60]);
    expect((await service.attempt(keys)).retryAfter).toBe(60);
    expect((await service.check(keys)).retryAfter).toBe(60);

    clock.advance(59_000);
    expect((await service.attempt(keys)).retryAfter).toBe(1);
    expect((await service.check(keys)).retryAfter).toBe(1);
    clock.advance(1_000);
    expect((await service.check(keys)).retryAfter).toBe(0);
    const after = await service.attempt(keys);
    expect(after.retryAfter).toBe(0);
    // A failure after the lock: locked again, twice as long.
    expect(await service.failed(after)).toBe(120);
    expect((await service.attempt(keys)).retryAfter).toBe(120);

    clock.advance(120_000);
    const right = await service.attempt(keys);
    expect(right.retryAfter).toBe(0);
    await service.succeed(right);
    expect(await service.check([keys[0], keys[1]])).toEqual({ retryAfter: 0, dirty: false });
    const row = await ds.getRepository(Lockout).findOneByOrFail({ key: keys[0].key });
    expect(row.failures).toBe(0);
  });

  it('forgets failures a day old on the clock (the database store keeps the times the clock gave)', async () => {
    const keys = service.loginKeys('once-a-week@example.com', '192.0.2.50');
    await service.failed(await service.attempt(keys));
    await service.failed(await service.attempt(keys));
    const failedAt = clock.now();
    const row = await ds.getRepository(Lockout).findOneByOrFail({ key: keys[0].key });
    expect(row).toMatchObject({ failures: 2, last_failure_at: new Date(failedAt) });
    clock.advance(24 * 3600_000 + 1);
    // Two failures a day apart do not add up to the threshold of 3.
    expect(await service.failed(await service.attempt(keys))).toBe(0);
    expect((await ds.getRepository(Lockout).findOneByOrFail({ key: keys[0].key })).failures).toBe(1);
  });
});
