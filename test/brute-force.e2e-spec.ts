import { randomBytes } from 'node:crypto';
import { LockoutService, ManualClock } from '@idp/core';
import { Browser, forms } from './support/browser';
import { TEST_REDIS_URL as REDIS_URL, redisUp } from './support/redis';
import { TestServer, basic, postForm, startServer } from './support/server';

const REDIRECT = 'https://app.example.com/callback';
const USER = { email: 'eve.target@example.com', password: 'the right password, long enough' };

if (!redisUp) console.warn(`brute-force suite on Redis skipped: no Redis at ${REDIS_URL} (.ci/run starts one)`);

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
