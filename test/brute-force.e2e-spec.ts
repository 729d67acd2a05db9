import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { type AddressInfo, type Socket, connect, createServer } from 'node:net';
import Redis from 'ioredis';
import { LockoutService, ManualClock } from '@idp/core';
import { Browser, forms } from './support/browser';
import { TEST_REDIS_URL as REDIS_URL, redisUp } from './support/redis';
import { TestServer, basic, freePort, postForm, startServer } from './support/server';
import { until } from './support/until';

const REDIRECT = 'https://app.example.com/callback';
const USER = { email: 'eve.target@example.com', password: 'the right password, long enough' };

if (!redisUp) console.warn(`brute-force and rate-limit suites on Redis skipped: no Redis at ${REDIS_URL} (.ci/run starts one)`);

const stores: [string, Record<string, string>][] = [
  ['in the database', {}],
  ...(redisUp ? [['in Redis (REDIS_URL)', { REDIS_URL, IDP_REDIS_PREFIX: `test:${randomBytes(6).toString('hex')}:` }] as [string, Record<string, string>]] : []),
];

/**
 * CONTRACT §5 with small thresholds: 3 failures lock an account or client for 2 s, doubling to 8 s.
 * The server runs on a ManualClock: a lock passes when the test advances the clock, not by waiting.
 */
describe.each(stores)('brute-force protection, counters %s', (_, storeEnv) => {
  let s: TestServer;
  let client: { client_id: string; client_secret: string };
  let worker: { client_id: string; client_secret: string };
  const clock = new ManualClock();

  beforeAll(async () => {
    s = await startServer({ IDP_LOCKOUT_THRESHOLD: '3', IDP_LOCKOUT_IP_THRESHOLD: '1000', IDP_LOCKOUT_SECONDS: '2', IDP_LOCKOUT_MAX_SECONDS: '8', ...storeEnv }, undefined, { clock });
    await s.admin('POST', '/admin/users', USER);
    client = (await s.admin('POST', '/admin/clients', { redirect_uris: [REDIRECT], first_party: true })).body;
    worker = (await s.admin('POST', '/admin/clients', { grant_types: ['client_credentials'] })).body;
    await s.admin('POST', '/admin/apis', { identifier: 'https://api.example.com/bf', name: 'BF' });
    await s.admin('POST', '/admin/client-grants', { client_id: worker.client_id, audience: 'https://api.example.com/bf', scope: [] });
  });
  afterAll(() => s.close());

  async function loginPage(browser: Browser) {
    const params = new URLSearchParams({ client_id: client.client_id, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' });
    const page = await browser.go(`${s.url}/authorize?${params}`);
    return { page, form: forms(page.html)[0] };
  }
  const alert = (html: string) => /role="alert">([^<]*)</.exec(html)?.[1];

  it('locks an account after the threshold, politely, with Retry-After, and unlocks after the window', async () => {
    const browser = new Browser(s.url);
    const { page, form } = await loginPage(browser);
    for (let i = 0; i < 2; i++) {
      const res = await browser.submit(page, form, { username: USER.email, password: `wrong ${i}` });
      expect(res.status).toBe(401);
    }
    const third = await browser.submit(page, form, { username: USER.email, password: 'wrong 3' });
    expect(third.status).toBe(429);
    expect(alert(third.html)).toMatch(/Too many failed sign-in attempts/);
    // Even the right password is refused while locked.
    const right = await browser.submit(page, form, { username: USER.email, password: USER.password });
    expect(right.status).toBe(429);
    expect(right.headers.get('retry-after')).toBe('2');
    clock.advance(1_900);
    const almost = await browser.submit(page, form, { username: USER.email, password: USER.password });
    expect(almost.status).toBe(429);
    expect(almost.headers.get('retry-after')).toBe('1');
    clock.advance(100);
    const after = await browser.submit(page, form, { username: USER.email, password: USER.password });
    expect(after.url).toMatch(/^https:\/\/app.example.com\/callback/);
  });

  it('answers an unknown account exactly like a known one (no enumeration), including the lock', async () => {
    const a = new Browser(s.url);
    const b = new Browser(s.url);
    const pa = await loginPage(a);
    const pb = await loginPage(b);
    const known: { status: number; message?: string; ms: number }[] = [];
    const unknown: typeof known = [];
    await s.admin('POST', '/admin/users', { email: 'known.user@example.com', password: 'some long password here' });
    for (let i = 0; i < 4; i++) {
      let t = Date.now();
      const k = await a.submit(pa.page, pa.form, { username: 'known.user@example.com', password: `bad ${i}` });
      known.push({ status: k.status, message: alert(k.html), ms: Date.now() - t });
      t = Date.now();
      const u = await b.submit(pb.page, pb.form, { username: 'nobody.here@example.com', password: `bad ${i}` });
      unknown.push({ status: u.status, message: alert(u.html), ms: Date.now() - t });
    }
    expect(unknown.map(({ status, message }) => ({ status, message }))).toEqual(known.map(({ status, message }) => ({ status, message })));
    expect(known.map((k) => k.status)).toEqual([401, 401, 429, 429]);
    // Both paths verify one argon2id hash, so an unknown account is not answered markedly faster
    // (without the dummy verification it would take a small fraction of an argon2id verification).
    const argon = await import('@node-rs/argon2');
    const hash = await argon.hash('x'.repeat(20), { algorithm: argon.Algorithm.Argon2id, memoryCost: 19456, timeCost: 2, parallelism: 1 });
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t = Date.now();
      await argon.verify(hash, 'y'.repeat(20));
      times.push(Date.now() - t);
    }
    const argonMs = times.sort((x, y) => x - y)[1];
    const unknownFailures = unknown.slice(0, 2).map((u) => u.ms).sort((x, y) => x - y);
    expect(unknownFailures[0]).toBeGreaterThanOrEqual(argonMs * 0.5);
  });

  it('does not let failures from one address lock the account for the user elsewhere', async () => {
    await s.admin('POST', '/admin/users', { email: 'far.away@example.com', password: 'far away password 123' });
    // The test server sees every request from 127.0.0.1; the account-from-this-address key is the
    // one that locks at the threshold, the account-wide key only at 5 x the threshold.
    const lockout = s.app.get(LockoutService);
    const browser = new Browser(s.url);
    const { page, form } = await loginPage(browser);
    for (let i = 0; i < 3; i++) await browser.submit(page, form, { username: 'far.away@example.com', password: `bad ${i}` });
    const [pairHere, account] = lockout.loginKeys('far.away@example.com', '127.0.0.1');
    const [pairElsewhere] = lockout.loginKeys('far.away@example.com', '203.0.113.7');
    expect((await lockout.check([pairHere])).retryAfter).toBeGreaterThan(0);
    expect((await lockout.check([account])).retryAfter).toBe(0);
    expect((await lockout.check([pairElsewhere, account])).retryAfter).toBe(0);
  });

  it('locks a client after failed authentications with 429 and Retry-After, and doubles the lock', async () => {
    const token = (secret: string) => postForm(s, '/oauth/token', { grant_type: 'client_credentials', audience: 'https://api.example.com/bf' }, { authorization: basic(worker.client_id, secret) });
    // The third failure answers invalid_client and sets the lock; from then on, 429.
    for (let i = 0; i < 3; i++) expect((await token('wrong')).status).toBe(401);
    const locked = await token('wrong');
    expect(locked.status).toBe(429);
    expect(locked.headers.get('retry-after')).toBe('2');
    expect(await locked.json()).toEqual({ error: 'slow_down', error_description: expect.any(String) });
    expect((await token(worker.client_secret)).status).toBe(429);
    clock.advance(2_000);
    // One more failure after the lock: the lock doubles.
    expect((await token('wrong')).status).toBe(401);
    const again = await token(worker.client_secret);
    expect(again.status).toBe(429);
    expect(again.headers.get('retry-after')).toBe('4');
  });

  it('records lockouts in the audit log', async () => {
    const events = await s.admin('GET', '/admin/audit-events?type=client.locked');
    expect(events.status).toBe(200);
    expect(events.body.items.length).toBeGreaterThan(0);
    expect(events.body.items[0]).toMatchObject({ type: 'client.locked', client_id: worker.client_id, ip: expect.any(String) });
    const logins = await s.admin('GET', '/admin/audit-events?type=user.locked');
    expect(logins.body.items.length).toBeGreaterThan(0);
    // The lock names the account tried: its user_id when it exists, and the identifier typed.
    const user = (await s.admin('GET', `/admin/users?email=${encodeURIComponent(USER.email)}`)).body.items[0];
    const ofUser = logins.body.items.filter((e: { user_id: string | null }) => e.user_id === user.user_id);
    expect(ofUser.length).toBeGreaterThan(0);
    expect(ofUser[0].data).toMatchObject({ identifier: USER.email, reason: 'account' });
    expect(JSON.stringify(logins.body)).not.toContain(USER.password);
  });
});

describe('rate limits', () => {
  let s: TestServer;
  // Windows are aligned on the server's clock: it stands at the start of one until the test moves it.
  const clock = new ManualClock(Math.floor(Date.now() / 10_000) * 10_000);
  beforeAll(async () => {
    s = await startServer({ IDP_RATE_LIMIT: 'on', IDP_RATE_LIMIT_PROTOCOL: '60', IDP_RATE_LIMIT_PAGES: '30' }, undefined, { clock });
  });
  afterAll(() => s.close());

  it('answers 429 with Retry-After past the per-address limit, in each endpoint format, until the window ends', async () => {
    // 60 a minute = 10 per 10-second window.
    const results = await Promise.all(Array.from({ length: 15 }, () => s.fetch('/.well-known/jwks.json')));
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((x) => x === 200)).toHaveLength(10);
    expect(statuses.filter((x) => x === 429)).toHaveLength(5);
    const limited = results.find((r) => r.status === 429)!;
    expect(limited.headers.get('retry-after')).toBe('10');
    const tokens = await Promise.all(Array.from({ length: 12 }, () => postForm(s, '/oauth/token', { grant_type: 'client_credentials' })));
    const t429 = tokens.find((r) => r.status === 429)!;
    expect(await t429.json()).toMatchObject({ error: 'slow_down' });
    const pages = await Promise.all(Array.from({ length: 8 }, () => s.fetch('/login')));
    const p429 = pages.find((r) => r.status === 429)!;
    expect(p429.headers.get('content-type')).toMatch(/text\/html/);
    clock.advance(9_001);
    expect((await s.fetch('/.well-known/jwks.json')).headers.get('retry-after')).toBe('1');
    // The next window: the address is served again.
    clock.advance(999);
    expect((await s.fetch('/.well-known/jwks.json')).status).toBe(200);
  });

  it('counts /LOGIN and /login/ as the pages, whatever their case or trailing slash, apart from the protocol endpoints', async () => {
    clock.advance(10_000);
    // 30 a minute = 5 per 10-second window; the protocol endpoints' 10 are another bucket.
    const pages: Response[] = [];
    for (const path of ['/LOGIN', '/login/', '/Login', '/LOGIN/', '/login']) pages.push(await s.fetch(path));
    expect(pages.map((r) => r.status)).not.toContain(429);
    const sixth = await s.fetch('/LOGIN/');
    expect(sixth.status).toBe(429);
    expect(sixth.headers.get('content-type')).toMatch(/text\/html/);
    expect(sixth.headers.get('retry-after')).toBe('10');
    expect((await s.fetch('/.well-known/jwks.json')).status).toBe(200);
  });

  it('is generous by default: hundreds of token requests a second from one address pass', async () => {
    const generous = await startServer({ IDP_RATE_LIMIT: 'on' });
    try {
      const results = await Promise.all(Array.from({ length: 300 }, () => generous.fetch('/.well-known/openid-configuration')));
      expect(results.every((r) => r.status === 200)).toBe(true);
    } finally {
      await generous.close();
    }
  });
});

const UNREACHABLE = /rate limits: Redis unreachable/;
const REACHABLE = /rate limits: Redis reachable again/;
const statusesOf = async (server: TestServer, n: number, path = '/.well-known/jwks.json') => (await Promise.all(Array.from({ length: n }, () => server.fetch(path)))).map((r) => r.status);
const count = (statuses: number[], status: number) => statuses.filter((x) => x === status).length;

describe('rate limits with Redis away from the start (REDIS_URL on a closed port)', () => {
  let s: TestServer;
  const clock = new ManualClock();
  beforeAll(async () => {
    const REDIS_URL = `redis://127.0.0.1:${await freePort()}`;
    s = await startServer({ IDP_RATE_LIMIT: 'on', IDP_RATE_LIMIT_PROTOCOL: '60', REDIS_URL }, undefined, { clock });
  });
  afterAll(() => s.close());

  it('answers every request, counting them per replica with the same limits, and says so once', async () => {
    const first = await statusesOf(s, 15);
    expect([count(first, 200), count(first, 429)]).toEqual([10, 5]);
    const limited = await s.fetch('/.well-known/jwks.json');
    expect([limited.status, limited.headers.get('retry-after')]).toEqual([429, '10']);
    clock.advance(10_000);
    const next = await statusesOf(s, 12);
    expect([count(next, 200), count(next, 429)]).toEqual([10, 2]);
    expect(s.logs.filter((line) => UNREACHABLE.test(line))).toHaveLength(1);
  });
});

/** A TCP relay to Redis that the test can stop and start again on the same port: Redis going away, and coming back. */
class RedisRelay extends EventEmitter {
  private server = createServer((client) => this.relay(client));
  private readonly sockets = new Set<Socket>();
  port = 0;
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.server = createServer((client) => this.relay(client));
    await new Promise<void>((resolve) => this.server.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  private relay(client: Socket): void {
    const target = new URL(REDIS_URL);
    const upstream = connect(Number(target.port) || 6379, target.hostname);
    for (const [from, to] of [[client, upstream], [upstream, client]]) {
      this.sockets.add(from);
      from.pipe(to);
      from.on('error', () => from.destroy());
      from.on('close', () => {
        this.sockets.delete(from);
        to.destroy();
      });
    }
  }
}

(redisUp ? describe : describe.skip)('rate limits in Redis (REDIS_URL)', () => {
  const relay = new RedisRelay();
  const prefix = `test:${randomBytes(6).toString('hex')}:`;
  const clock = new ManualClock();
  let a: TestServer;
  let b: TestServer;
  let redis: Redis;
  beforeAll(async () => {
    await relay.start();
    const env = { IDP_RATE_LIMIT: 'on', IDP_RATE_LIMIT_PROTOCOL: '60', IDP_RATE_LIMIT_PAGES: '30', IDP_RATE_LIMIT_ADMIN: '6000', REDIS_URL: relay.url, IDP_REDIS_PREFIX: prefix };
    a = await startServer(env, undefined, { clock });
    b = await startServer(env, undefined, { clock });
    redis = new Redis(REDIS_URL);
  });
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await relay.stop();
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    await redis.quit();
  });

  it('holds one limit across two servers, in keys under IDP_REDIS_PREFIX', async () => {
    // 60 a minute = 10 per window, for the address, on both servers together.
    const onA = await statusesOf(a, 6);
    expect(count(onA, 200)).toBe(6);
    const onB = await statusesOf(b, 6);
    expect([count(onB, 200), count(onB, 429)]).toEqual([4, 2]);
    const limited = await a.fetch('/.well-known/jwks.json');
    expect(limited.status).toBe(429);
    // Redis's clock decides the window (the servers' ManualClock has not moved): at most 10 s left.
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(Number(limited.headers.get('retry-after'))).toBeLessThanOrEqual(10);
    expect(await limited.json()).toMatchObject({ statusCode: 429 });
    const keys = await redis.keys(`${prefix}rl:*`);
    expect(keys).toEqual([expect.stringMatching(new RegExp(`^${prefix}rl:protocol:`))]);
    expect([...a.logs, ...b.logs].filter((line) => UNREACHABLE.test(line))).toEqual([]);
  });

  it('takes a large limit from Redis in batches, and still holds it exactly across the servers', async () => {
    // 6,000 a minute = 1,000 per window, taken in batches of 10 (1 %).
    const burst = async (server: TestServer, n: number) => {
      const statuses: number[] = [];
      for (let i = 0; i < n; i += 50) statuses.push(...(await statusesOf(server, 50, '/admin/clients')));
      return statuses;
    };
    const onA = await burst(a, 600);
    expect(count(onA, 429)).toBe(0);
    const onB = await burst(b, 600);
    expect(count(onB, 429)).toBe(200);
    expect(onB.slice(0, 400).filter((status) => status === 429)).toEqual([]);
    // 60 batches for A, 40 for B, and the one that found the limit reached: B refuses the rest itself.
    const [key] = await redis.keys(`${prefix}rl:admin:*`);
    expect(await redis.get(key)).toBe('1010');
  });

  it('when Redis stops, still answers every request, counted per replica, logged once; and shares again when it is back', async () => {
    await relay.stop();
    // The pages' bucket, which Redis has not counted: 30 a minute = 5 per window, here on A alone.
    const away = await statusesOf(a, 8, '/login');
    expect(away.filter((status) => status >= 500)).toEqual([]);
    expect(count(away, 429)).toBe(3);
    const more = await statusesOf(a, 8, '/login');
    expect(count(more, 429)).toBe(8);
    expect(a.logs.filter((line) => UNREACHABLE.test(line))).toHaveLength(1);

    await relay.start();
    // Once ioredis has reconnected, a request that Redis counts says so (each check a new window here).
    await until('the rate limit counted in Redis again', async () => {
      clock.advance(10_000);
      expect((await a.fetch('/login')).status).toBeLessThan(500);
      return a.logs.some((line) => REACHABLE.test(line));
    }, { timeoutMs: 10_000 });
    expect(a.logs.filter((line) => UNREACHABLE.test(line))).toHaveLength(1);
    expect(await redis.keys(`${prefix}rl:pages:*`)).toHaveLength(1);
  });
});
