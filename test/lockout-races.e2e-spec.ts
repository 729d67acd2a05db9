import { randomBytes } from 'node:crypto';
import { UserStore } from '@idp/users';
import { ClientsService } from '@idp/clients';
import { Browser, Form, Page, forms } from './support/browser';
import { TEST_REDIS_URL as REDIS_URL, redisUp } from './support/redis';
import { TestServer, basic, freshDatabase, onPostgres, postForm, startServer } from './support/server';

/**
 * Issue 19 item 1: parallel guesses must not pass the lockout. Each attempt takes a slot of the
 * key's budget atomically before the credential is verified, so once the threshold is reached no
 * further attempt is even checked, whatever the concurrency, on one instance or on two sharing the
 * counters.
 *
 * To make the race deterministic, every credential check that starts is held at a gate: with the
 * old check-then-count order all 30 attempts reach it; with slots only the first `threshold` do,
 * and the rest wait for a slot (or are refused) until those have failed and locked the key. The
 * right password comes last, once those are at the gate.
 */
const THRESHOLD = 10;
const REDIRECT = 'https://app.example.com/callback';
const USER = { email: 'parallel.target@example.com', password: 'the right password, long enough' };

if (!redisUp) console.warn(`lockout races on Redis skipped: no Redis at ${REDIS_URL} (.ci/run starts one)`);
if (!onPostgres) console.warn('lockout races with two instances on one database skipped: set TEST_DATABASE_URL to a PostgreSQL URL (.ci/run does)');

interface Setup {
  name: string;
  instances: 1 | 2;
  env: () => Record<string, string>;
}
const redisEnv = () => ({ REDIS_URL, IDP_REDIS_PREFIX: `test:${randomBytes(6).toString('hex')}:` });
const setups: Setup[] = [
  { name: 'one instance, counters in the database', instances: 1, env: () => ({}) },
  ...(onPostgres ? [{ name: 'two instances on one database', instances: 2 as const, env: () => ({}) }] : []),
  ...(redisUp
    ? [
        { name: 'one instance, counters in Redis', instances: 1 as const, env: redisEnv },
        { name: 'two instances sharing Redis', instances: 2 as const, env: redisEnv },
      ]
    : []),
];

/** Holds every call of `obj[method]` until `open()`; `reached(n)` resolves once n calls are waiting. */
function gate<T extends object>(targets: T[], method: keyof T & string) {
  let calls = 0;
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  const waiters: { n: number; resolve: () => void }[] = [];
  for (const target of targets) {
    const original = (target[method] as (...a: unknown[]) => Promise<unknown>).bind(target);
    jest.spyOn(target, method as never).mockImplementation((async (...args: unknown[]) => {
      calls++;
      for (const w of waiters.filter((x) => calls >= x.n)) w.resolve();
      await opened;
      return original(...args);
    }) as never);
  }
  return {
    get calls() {
      return calls;
    },
    reached: (n: number) => new Promise<void>((resolve) => (calls >= n ? resolve() : waiters.push({ n, resolve }))),
    open,
  };
}

describe.each(setups)('lockout under 30 parallel guesses: $name', ({ instances, env }) => {
  let servers: TestServer[] = [];
  let drop: () => Promise<void> = async () => undefined;
  /** Whether the instances share one database (else they share only Redis, each with its own). */
  let sharedDb = true;
  /** The first-party web app, registered on each instance's database. */
  const apps = new Map<TestServer, string>();
  let worker: { client_id: string; client_secret: string };
  const API = 'https://api.example.com/parallel';

  beforeAll(async () => {
    const lockEnv: Record<string, string> = { IDP_LOCKOUT_THRESHOLD: String(THRESHOLD), IDP_LOCKOUT_IP_THRESHOLD: '100000', IDP_LOCKOUT_SECONDS: '60', IDP_LOCKOUT_MAX_SECONDS: '900', ...env() };
    if (instances === 2 && !lockEnv.REDIS_URL) {
      const db = await freshDatabase();
      drop = db.drop;
      // Replicas of one deployment: one database, one IDP_SECRET_KEY.
      const shared = { ...lockEnv, DATABASE_URL: db.url, IDP_SECRET_KEY: randomBytes(32).toString('base64url') };
      const first = await startServer(shared);
      servers = [first, await startServer({ ...shared, ISSUER: first.config.issuer })];
    } else {
      servers = [await startServer(lockEnv)];
      if (instances === 2) {
        // Two instances that share only Redis: each has its own database, with the same user.
        servers.push(await startServer(lockEnv));
        sharedDb = false;
      }
    }
    const [a] = servers;
    for (const s of servers) {
      if (s === a || !sharedDb) {
        await s.admin('POST', '/admin/users', USER);
        apps.set(s, (await s.admin('POST', '/admin/clients', { redirect_uris: [REDIRECT], first_party: true })).body.client_id);
      } else apps.set(s, apps.get(a)!);
    }
    worker = (await a.admin('POST', '/admin/clients', { grant_types: ['client_credentials'] })).body;
    await a.admin('POST', '/admin/apis', { identifier: API, name: 'Parallel' });
    await a.admin('POST', '/admin/client-grants', { client_id: worker.client_id, audience: API, scope: [] });
  });
  afterAll(async () => {
    jest.restoreAllMocks();
    for (const s of servers) await s.close();
    await drop();
  });
  afterEach(() => jest.restoreAllMocks());

  async function loginForm(s: TestServer): Promise<{ browser: Browser; page: Page; form: Form }> {
    const browser = new Browser(s.url);
    const params = new URLSearchParams({ client_id: apps.get(s)!, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' });
    const page = await browser.go(`${s.url}/authorize?${params}`);
    return { browser, page, form: forms(page.html)[0] };
  }

  it('checks at most the threshold of passwords, refuses the rest with 429, and refuses the right password sent last', async () => {
    // Sign-in counters are keyed by the account and address: shared through the database or Redis.
    const targets = servers;
    const checks = gate(targets.map((s) => s.get(UserStore)), 'checkPassword');
    const sessions = await Promise.all(Array.from({ length: 29 }, (_, i) => loginForm(targets[i % targets.length])));
    const last = await loginForm(targets[targets.length - 1]);
    const wrong = sessions.map(({ browser, page, form }, i) => browser.submit(page, form, { username: USER.email, password: `wrong guess ${i}` }));
    let rightPage: Promise<Page>;
    try {
      await checks.reached(THRESHOLD);
      // The budget is all in use: every other guess waits for a slot or is refused, none is checked.
      rightPage = last.browser.submit(last.page, last.form, { username: USER.email, password: USER.password });
    } finally {
      checks.open();
    }
    const results = await Promise.all(wrong);
    const finalRight = await rightPage!;

    expect(checks.calls).toBe(THRESHOLD);
    expect(finalRight.status).toBe(429);
    expect(finalRight.url).not.toMatch(/^https:\/\/app\.example\.com/);
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((x) => x === 429).length).toBeGreaterThanOrEqual(29 - THRESHOLD);
    expect(statuses.every((x) => x === 401 || x === 429)).toBe(true);
  });

  it('checks at most the threshold of client secrets, and refuses the right secret sent last', async () => {
    // A client exists in one database: with two databases (sharing only Redis), only A knows it.
    const targets = sharedDb ? servers : [servers[0]];
    const lookups = gate(targets.map((s) => s.get(ClientsService)), 'findForAuthentication');
    const token = (s: TestServer, secret: string) => postForm(s, '/oauth/token', { grant_type: 'client_credentials', audience: API }, { authorization: basic(worker.client_id, secret) });
    const wrong = Array.from({ length: 29 }, (_, i) => token(targets[i % targets.length], `wrong secret ${i}`));
    let right: Promise<Response>;
    try {
      await lookups.reached(THRESHOLD);
      right = token(targets[targets.length - 1], worker.client_secret);
    } finally {
      lookups.open();
    }
    const results = await Promise.all(wrong);
    const finalRight = await right!;

    expect(lookups.calls).toBe(THRESHOLD);
    expect(finalRight.status).toBe(429);
    expect(finalRight.headers.get('retry-after')).toBe('60');
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((x) => x === 429).length).toBeGreaterThanOrEqual(29 - THRESHOLD);
    expect(statuses.every((x) => x === 401 || x === 429)).toBe(true);
  });
});
