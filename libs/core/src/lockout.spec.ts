import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { Client as PgClient } from 'pg';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from '@idp/identity';
import { loadConfig } from './config';
import { sha256 } from './crypto';
import { DatabaseLockoutStore, LockKey, LockoutService, LockoutStore, RedisLockoutStore, lockSteps } from './lockout';

describe('LockoutService.clientKeys', () => {
  const config = loadConfig({ IDP_LOCKOUT_THRESHOLD: '4' });
  const service = () => new LockoutService({} as DataSource, config);

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

/**
 * The stores' step semantics, with the clock passed in: the database store on SQLite in memory
 * (and on PostgreSQL when TEST_DATABASE_URL says so), the Redis store when a Redis answers.
 */
const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const PG_URL = process.env.TEST_DATABASE_URL?.startsWith('postgres') ? process.env.TEST_DATABASE_URL : undefined;
const redisUp = (() => {
  const { port, hostname } = new URL(REDIS_URL);
  const probe = `require('net').connect(${Number(port) || 6379}, '${hostname}').on('connect', () => process.exit(0)).on('error', () => process.exit(1))`;
  return require('node:child_process').spawnSync(process.execPath, ['-e', probe], { timeout: 3000 }).status === 0;
})();
if (!redisUp) console.warn(`RedisLockoutStore specs skipped: no Redis at ${REDIS_URL} (.ci/run starts one)`);

interface StoreFixture {
  store: LockoutStore;
  close(): Promise<void>;
}
const fixtures: [string, () => Promise<StoreFixture>][] = [
  ['DatabaseLockoutStore on SQLite', async () => {
    const ds = await new DataSource({ ...dataSourceOptions('sqlite::memory:'), migrationsRun: true }).initialize();
    return { store: new DatabaseLockoutStore(ds), close: () => ds.destroy() };
  }],
  ...(PG_URL
    ? [['DatabaseLockoutStore on PostgreSQL', async () => {
        const schema = `t_${randomBytes(6).toString('hex')}`;
        const admin = new PgClient({ connectionString: PG_URL });
        await admin.connect();
        await admin.query(`CREATE SCHEMA ${schema}`);
        const url = new URL(PG_URL);
        url.searchParams.set('schema', schema);
        const ds = await new DataSource({ ...dataSourceOptions(url.toString()), migrationsRun: true }).initialize();
        return {
          store: new DatabaseLockoutStore(ds),
          close: async () => {
            await ds.destroy();
            await admin.query(`DROP SCHEMA ${schema} CASCADE`);
            await admin.end();
          },
        };
      }] as [string, () => Promise<StoreFixture>]]
    : []),
  ...(redisUp
    ? [['RedisLockoutStore', async () => {
        const redis = new Redis(REDIS_URL);
        const store = new RedisLockoutStore(redis, `spec:${randomBytes(6).toString('hex')}:`);
        return { store, close: () => store.close() };
      }] as [string, () => Promise<StoreFixture>]]
    : []),
];

describe.each(fixtures)('%s', (_, make) => {
  const schedule = { base: 60, max: 900 };
  const T0 = Date.UTC(2026, 11, 4, 12, 0, 0);
  let f: StoreFixture;
  let n = 0;
  /** Fresh keys for each test: the account from here (threshold 3), the account (15), the address (100). */
  let keys: LockKey[];
  beforeAll(async () => {
    f = await make();
  });
  afterAll(() => f.close());
  beforeEach(() => {
    n++;
    keys = [
      { key: `login:pair:t${n}`, threshold: 3 },
      { key: `login:acct:t${n}`, threshold: 15 },
      { key: `login:ip:10.9.0.${n}`, threshold: 100 },
    ];
  });
  const failures = async (k: LockKey) => (await f.store.check([k.key])).dirty;

  it('counts each attempt before it is checked, locks at the threshold, and refuses without counting while locked', async () => {
    expect(await f.store.take(keys, schedule, T0)).toEqual({ lockedUntil: 0, lockedFor: 0 });
    expect(await f.store.take(keys, schedule, T0 + 1)).toEqual({ lockedUntil: 0, lockedFor: 0 });
    // The third attempt is still checked, and locks the pair already, in case it fails.
    expect(await f.store.take(keys, schedule, T0 + 2)).toEqual({ lockedUntil: 0, lockedFor: 60 });
    const refused = await f.store.take(keys, schedule, T0 + 3);
    expect(refused.lockedFor).toBe(0);
    expect(refused.lockedUntil).toBe(T0 + 2 + 60_000);
    // Refused attempts counted nothing: once the lock has passed, the next failure doubles it (4th failure).
    for (let i = 0; i < 5; i++) await f.store.take(keys, schedule, T0 + 10 + i);
    expect(await f.store.take(keys, schedule, T0 + 62_003)).toEqual({ lockedUntil: 0, lockedFor: 120 });
    expect((await f.store.take(keys, schedule, T0 + 62_004)).lockedUntil).toBe(T0 + 62_003 + 120_000);
    expect(await failures(keys[1])).toBe(true);
  });

  it('caps the lock at the maximum as it doubles', async () => {
    const one = [{ key: `client:pair:cap${n}`, threshold: 1 }];
    let now = T0;
    const seen: number[] = [];
    for (let i = 0; i < 7; i++) {
      const { lockedFor } = await f.store.take(one, schedule, now);
      seen.push(lockedFor);
      now += lockedFor * 1000 + 1;
    }
    expect(seen).toEqual([60, 120, 240, 480, 900, 900, 900]);
  });

  it('gives a successful attempt back: the account starts again at zero and is unlocked, the address counts one failure less', async () => {
    await f.store.take(keys, schedule, T0);
    await f.store.take(keys, schedule, T0 + 1);
    expect((await f.store.take(keys, schedule, T0 + 2)).lockedFor).toBe(60);
    await f.store.release(keys.map((k) => ({ ...k, reset: !k.key.includes(':ip:') })), T0 + 3);
    expect(await f.store.check([keys[0].key, keys[1].key])).toEqual({ until: 0, dirty: false });
    // Three failures on the address, one given back: two remain.
    const ip = { ...keys[2], threshold: 3 };
    expect(await f.store.take([ip], schedule, T0 + 4)).toEqual({ lockedUntil: 0, lockedFor: 60 });
  });

  it('unlocks an address given back below its threshold, and keeps a lock it is still at', async () => {
    const ip = { key: `client:ip:192.0.2.${n}`, threshold: 2 };
    await f.store.take([ip], schedule, T0);
    expect((await f.store.take([ip], schedule, T0 + 1)).lockedFor).toBe(60);
    // Another attempt in flight succeeds: 1 failure is left, below 2, so the pessimistic lock goes.
    await f.store.release([{ ...ip, reset: false }], T0 + 2);
    expect((await f.store.check([ip.key])).until).toBe(0);
    expect((await f.store.take([ip], schedule, T0 + 3)).lockedFor).toBe(60);
    await f.store.take([ip], schedule, T0 + 4); // refused, counts nothing
    expect((await f.store.check([ip.key])).until).toBe(T0 + 3 + 60_000);
  });

  it('refuses the whole attempt when one key is locked, counting nothing on the others', async () => {
    const ip = { key: `login:ip:198.51.100.${n}`, threshold: 1 };
    const pair = { key: `login:pair:p${n}`, threshold: 2 };
    expect((await f.store.take([ip], schedule, T0)).lockedFor).toBe(60);
    for (let i = 0; i < 3; i++) expect((await f.store.take([pair, ip], schedule, T0 + 1 + i)).lockedUntil).toBe(T0 + 60_000);
    // The pair counted none of the three: its first failure after the address's lock does not lock it.
    expect(await f.store.take([pair], schedule, T0 + 61_000)).toEqual({ lockedUntil: 0, lockedFor: 0 });
  });

  // Redis forgets a counter by its expiry (EXPIRE a day after the last failure); the database by these two.
  if (_.startsWith('DatabaseLockoutStore')) {
    it('forgets failures a day old', async () => {
      const k = [{ key: `login:pair:f${n}`, threshold: 2 }];
      await f.store.take(k, schedule, T0);
      expect((await f.store.take(k, schedule, T0 + 1)).lockedFor).toBe(60);
      // A day and a minute later the lock has passed and the count starts again at one.
      expect(await f.store.take(k, schedule, T0 + 24 * 3600_000 + 60_000)).toEqual({ lockedUntil: 0, lockedFor: 0 });
    });

    it('purges idle counters that are not locked, and keeps the rest', async () => {
      const store = f.store as DatabaseLockoutStore;
      const idle = { key: `login:pair:idle${n}`, threshold: 5 };
      const locked = { key: `login:pair:locked${n}`, threshold: 1 };
      const fresh = { key: `login:pair:fresh${n}`, threshold: 5 };
      await store.take([idle], schedule, T0);
      await store.take([locked], { base: 900, max: 900 }, T0 + 86_000_000);
      await store.take([fresh], schedule, T0 + 86_400_000);
      await store.purge(T0 + 86_000_000 + 1, T0 + 86_400_001);
      expect(await store.check([idle.key])).toEqual({ until: 0, dirty: false });
      expect((await store.check([locked.key])).until).toBeGreaterThan(0);
      expect((await store.check([fresh.key])).dirty).toBe(true);
    });
  }
});

describe('lockSteps', () => {
  it.each([
    [{ base: 60, max: 900 }, [60, 120, 240, 480, 900]],
    [{ base: 2, max: 8 }, [2, 4, 8]],
    [{ base: 900, max: 900 }, [900]],
    [{ base: 1000, max: 900 }, [900]],
  ])('lists the lock lengths of %j up to the cap', (schedule, steps) => {
    expect(lockSteps(schedule)).toEqual(steps);
  });
});
