import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { AddressInfo, Server, Socket, connect, createServer } from 'node:net';
import { Client as PgClient } from 'pg';
import { createLocalJWKSet, decodeJwt, jwtVerify, type JSONWebKeySet } from 'jose';
import { Browser, signIn } from './support/browser';
import { TEST_DATABASE_URL, TestServer, basic, freshDatabase, onPostgres, startServer } from './support/server';
import { until } from './support/until';

/**
 * The database goes away under load, and comes back (PostgreSQL only).
 *
 * A TCP proxy the test controls sits between the server and PostgreSQL. `cut('blackhole')`
 * destroys every open connection and then accepts new ones without ever answering (a network
 * partition: only the pool's connection timeout ends the wait); `cut('refuse')` destroys every
 * connection and closes new ones at once (PostgreSQL restarting). While it is cut, every request
 * answers 200 or 503 in the endpoint's own format within 15 s; once restored, the server recovers by
 * itself; afterwards every issued token verifies and no write is left half done.
 *
 * The load is open-loop (requests keep coming at their pace, whatever became of the ones before),
 * and the scenario moves on at what it observes, never after a fixed time: the cut comes once every
 * kind of request has been served, right after a burst of redemptions is sent; it lasts until
 * readiness is down and every kind that needs the database has answered 503 (in a black hole, only
 * after the pool's connection timeout); the load stops once every kind has been served again.
 */

const REQUEST_TIMEOUT_MS = 15_000;
/** How soon after the restore a new token request must succeed, without restarting anything. */
const RECOVERY_MS = 10_000;
const API = 'https://api.example.com/fault';
const REDIRECT = 'https://app.example.com/callback';
const USER = { email: 'fault@example.com', password: 'correct horse battery staple' };

type CutMode = 'refuse' | 'blackhole';

/** A TCP proxy in front of PostgreSQL that the test can cut and restore. */
class DbProxy {
  port = 0;
  private server?: Server;
  private mode: 'open' | CutMode = 'open';
  /** Both ends of every forwarded connection. */
  private readonly forwarded = new Set<Socket>();
  /** Connections accepted while black-holed: nothing is read from them or sent to them. */
  private readonly held = new Set<Socket>();
  /** Connections accepted in all, for the report. */
  accepted = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  async start(): Promise<void> {
    const server = createServer((socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
  }

  /** Destroys every open connection; new ones are then closed at once (`refuse`) or never answered (`blackhole`). */
  cut(mode: CutMode): void {
    this.mode = mode;
    for (const s of this.forwarded) s.destroy();
    this.forwarded.clear();
  }

  /** Accepts again; a black-holed connection still waiting is connected now, as when a partition heals. */
  restore(): void {
    this.mode = 'open';
    for (const s of this.held) if (!s.destroyed) this.forward(s);
    this.held.clear();
  }

  async close(): Promise<void> {
    for (const s of [...this.forwarded, ...this.held]) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private accept(socket: Socket): void {
    this.accepted++;
    socket.on('error', () => undefined);
    if (this.mode === 'refuse') {
      socket.destroy();
    } else if (this.mode === 'blackhole') {
      socket.pause();
      this.held.add(socket);
      socket.once('close', () => this.held.delete(socket));
    } else {
      this.forward(socket);
    }
  }

  private forward(client: Socket): void {
    const upstream = connect(this.target.port, this.target.host);
    upstream.on('error', () => undefined);
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      this.forwarded.add(a);
      a.once('close', () => {
        this.forwarded.delete(a);
        b.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }
}

type Kind = 'client_credentials' | 'authorization_code' | 'admin_read' | 'admin_write';
const KINDS: Kind[] = ['client_credentials', 'authorization_code', 'admin_read', 'admin_write'];
/** The kinds that cannot be answered without the database (a client_credentials token can be, from the caches). */
const NEED_THE_DATABASE: Kind[] = ['authorization_code', 'admin_read', 'admin_write'];
interface Outcome {
  kind: Kind;
  /** ms since the cycle started. */
  start: number;
  ms: number;
  status: number | 'timeout' | 'network_error';
  headers?: Headers;
  body?: any;
  /** The code redeemed, or the client_name created. */
  ref?: string;
}

/**
 * The open-loop load's pace: the time between two requests of one kind, whatever became of the ones
 * before. It is the scenario (requests keep arriving through the outage), not a wait for something.
 */
const pace = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Codes redeemed before and during the cut, then once recovered: one every REDEEM_EVERY_MS. */
const REDEEM_EVERY_MS = 150;
/** The burst redeemed as the cut comes: one every BURST_EVERY_MS, so that the cut finds them at every step. */
const BURST_EVERY_MS = 3;
const sha256 = (v: string) => createHash('sha256').update(v).digest('base64url');
const form = { 'content-type': 'application/x-www-form-urlencoded' };

const suite = onPostgres ? describe : describe.skip;
if (!onPostgres) {
  // eslint-disable-next-line no-console
  console.log('db-fault.e2e-spec: skipped, it needs PostgreSQL (set TEST_DATABASE_URL=postgres://…)');
}

suite('database outage under load (PostgreSQL behind a controllable TCP proxy)', () => {
  jest.setTimeout(60_000);
  let proxy: DbProxy;
  let db: { url: string; drop(): Promise<void> };
  let schema: string;
  let s: TestServer;
  let worker: { client_id: string; client_secret: string };
  let web: { client_id: string; client_secret: string };
  let adminToken: string;
  let browser: Browser;

  /** A direct connection to the test schema (not through the proxy) to look at the rows. */
  async function sql<T = Record<string, unknown>>(text: string, params: unknown[] = []): Promise<T[]> {
    const c = new PgClient({ connectionString: TEST_DATABASE_URL });
    await c.connect();
    try {
      return (await c.query(text.replace(/\$schema\./g, `${schema}.`), params)).rows as T[];
    } finally {
      await c.end();
    }
  }

  beforeAll(async () => {
    const target = new URL(TEST_DATABASE_URL!);
    proxy = new DbProxy({ host: target.hostname, port: Number(target.port || 5432) });
    await proxy.start();
    db = await freshDatabase();
    const viaProxy = new URL(db.url);
    schema = viaProxy.searchParams.get('schema')!;
    viaProxy.host = `127.0.0.1:${proxy.port}`;
    s = await startServer({ DATABASE_URL: viaProxy.toString() });
    adminToken = await s.adminToken();
    expect((await s.admin('POST', '/admin/apis', { identifier: API, name: 'Fault', scopes: [{ value: 'read:fault', description: 'Read' }], token_lifetime: 600 })).status).toBe(201);
    worker = (await s.admin('POST', '/admin/clients', { client_name: 'Worker', grant_types: ['client_credentials'] })).body;
    expect((await s.admin('POST', '/admin/client-grants', { client_id: worker.client_id, audience: API, scope: ['read:fault'] })).status).toBe(201);
    web = (await s.admin('POST', '/admin/clients', { client_name: 'Web', redirect_uris: [REDIRECT], first_party: true })).body;
    expect((await s.admin('POST', '/admin/users', { ...USER, name: 'Fault', email_verified: true })).status).toBe(201);
    browser = new Browser(s.url);
    const landed = await signIn(browser, authorizeUrl('login'), USER);
    expect(landed.url.startsWith(REDIRECT)).toBe(true);
  });

  afterAll(async () => {
    proxy?.restore();
    await s?.close();
    await proxy?.close();
    await db?.drop();
  });

  function authorizeUrl(state: string): string {
    const q = new URLSearchParams({ response_type: 'code', client_id: web.client_id, redirect_uri: REDIRECT, scope: 'openid profile', state });
    return `${s.url}/authorize?${q}`;
  }

  /** A code from the signed-in browser (first-party client: no consent page). */
  async function issueCode(state: string): Promise<string> {
    const page = await browser.go(authorizeUrl(state));
    const code = new URL(page.url).searchParams.get('code');
    if (!code) throw new Error(`no code: HTTP ${page.status} ${page.url}`);
    return code;
  }

  async function call(kind: Kind, t0: number, path: string, init: RequestInit, ref?: string): Promise<Outcome> {
    const started = Date.now();
    try {
      const res = await fetch(`${s.url}${path}`, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      const text = await res.text();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        /* kept as text */
      }
      return { kind, start: started - t0, ms: Date.now() - started, status: res.status, headers: res.headers, body, ref };
    } catch (err) {
      return { kind, start: started - t0, ms: Date.now() - started, status: (err as Error).name === 'TimeoutError' ? 'timeout' : 'network_error', body: String(err), ref };
    }
  }

  const clientCredentials = (t0: number) =>
    call('client_credentials', t0, '/oauth/token', {
      method: 'POST', headers: { ...form, authorization: basic(worker.client_id, worker.client_secret) },
      body: new URLSearchParams({ grant_type: 'client_credentials', audience: API }),
    });
  const redeem = (t0: number, code: string) =>
    call('authorization_code', t0, '/oauth/token', {
      method: 'POST', headers: { ...form, authorization: basic(web.client_id, web.client_secret) },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT }),
    }, code);
  const adminRead = (t0: number) => call('admin_read', t0, '/admin/clients?limit=1', { headers: { authorization: `Bearer ${adminToken}` } });
  const adminWrite = (t0: number, name: string) =>
    call('admin_write', t0, '/admin/clients', {
      method: 'POST', headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ client_name: name, grant_types: ['client_credentials'] }),
    }, name);

  const status = async (path: string) => (await fetch(`${s.url}${path}`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })).status;

  /** A token-endpoint 503: RFC 6749 §5.2 JSON, temporarily_unavailable, Retry-After, no-store. */
  function expectTokenUnavailable(o: Outcome): void {
    expect(o.headers!.get('content-type')).toMatch(/^application\/json/);
    expect(o.headers!.get('cache-control')).toBe('no-store');
    expect(o.headers!.get('retry-after')).toMatch(/^\d+$/);
    expect(o.body).toEqual({ error: 'temporarily_unavailable', error_description: expect.any(String) });
  }

  /** An admin-API 503: `{ statusCode: 503, error, message }` and Retry-After. */
  function expectAdminUnavailable(o: Outcome): void {
    expect(o.headers!.get('content-type')).toMatch(/^application\/json/);
    expect(o.headers!.get('retry-after')).toMatch(/^\d+$/);
    expect(o.body).toEqual({ statusCode: 503, error: 'temporarily_unavailable', message: expect.any(String) });
  }

  const summary = (outcomes: Outcome[]) => {
    const by: Record<string, Record<string, number>> = {};
    for (const o of outcomes) (by[o.kind] ??= {})[String(o.status)] = (by[o.kind][String(o.status)] ?? 0) + 1;
    return by;
  };

  it.each<[CutMode]>([['blackhole'], ['refuse']])('keeps answering 200 or 503 while the database is cut (%s), recovers by itself, and leaves nothing half written', async (mode) => {
    // 24 codes issued before the cut, redeemed one by one before and during it, and 12 redeemed once recovered.
    const codes: string[] = [];
    for (let i = 0; i < 24; i++) codes.push(await issueCode(`${mode}-${i}`));
    const afterCodes: string[] = [];
    for (let i = 0; i < 12; i++) afterCodes.push(await issueCode(`${mode}-after-${i}`));
    // And a burst redeemed just as the cut comes, to catch redemptions half way through.
    const burst: string[] = [];
    for (let i = 0; i < 12; i++) burst.push(await issueCode(`${mode}-burst-${i}`));
    const countsBefore = (await sql<{ clients: number; grants: number }>(
      `SELECT (SELECT count(*)::int FROM $schema.clients) AS clients, (SELECT count(*)::int FROM $schema.client_grants) AS grants`,
    ))[0];

    const outcomes: Promise<Outcome>[] = [];
    /** The outcomes answered so far, in order; `answers` emits 'answer' at each. */
    const answered: Outcome[] = [];
    const answers = new EventEmitter();
    const track = (p: Promise<Outcome>) => {
      outcomes.push(p);
      void p.then((o) => {
        answered.push(o);
        answers.emit('answer');
      });
    };
    const okStatus = (o: Outcome) => (o.kind === 'admin_write' ? 201 : 200);
    /** Waits until every kind of `kinds` has an answer that `ok` accepts, woken at each answer. */
    const untilEvery = (what: string, kinds: Kind[], ok: (o: Outcome) => boolean, timeoutMs?: number) =>
      until(what, () => kinds.every((k) => answered.some((o) => o.kind === k && ok(o))), { wakeOn: [answers, 'answer'], timeoutMs });

    let firing = true;
    const t0 = Date.now();
    // Open-loop load: requests are fired at their pace, whether or not earlier ones have answered.
    const fire = async (everyMs: number, make: (i: number) => Promise<Outcome> | undefined, untilDone = false) => {
      for (let i = 0; firing || untilDone; i++) {
        const p = make(i);
        if (!p) break;
        track(p);
        await pace(everyMs);
      }
    };
    const names: string[] = [];
    const loops: Promise<void>[] = [
      // ~20 token requests a second. While the pool waits for connections that never come, they
      // queue; after the restore that backlog drains first, so the load is kept moderate.
      fire(100, () => clientCredentials(t0)),
      fire(100, () => clientCredentials(t0)),
      // Every code is redeemed once, spread over before and during the cut (and after it, in refuse mode's short one).
      fire(REDEEM_EVERY_MS, (i) => (i < codes.length ? redeem(t0, codes[i]) : undefined), true),
      fire(250, () => adminRead(t0)),
      fire(400, (i) => {
        const name = `fault-${mode}-${i}-${randomBytes(3).toString('hex')}`;
        names.push(name);
        return adminWrite(t0, name);
      }),
    ];

    await untilEvery('every kind of request served before the cut', KINDS, (o) => o.status === okStatus(o));
    // The burst, at its pace and then the cut at once: redemptions at every step of their transaction.
    for (const code of burst) {
      track(redeem(t0, code));
      await pace(BURST_EVERY_MS);
    }
    const cutAt = Date.now() - t0;
    proxy.cut(mode);

    // While cut: readiness fails (within its own 2 s budget), liveness does not.
    await until('GET /health/ready answers 503', async () => (await status('/health/ready')) === 503, { timeoutMs: 4000 });
    const readyDown = Date.now() - t0 - cutAt;
    expect(await status('/health/live')).toBe(200);
    // The cut lasts until every kind that needs the database has answered 503 (a black hole's only
    // once the pool's 5 s connection timeout has passed).
    await untilEvery('every kind that needs the database answered 503 during the cut', NEED_THE_DATABASE, (o) => o.status === 503 && o.start >= cutAt, REQUEST_TIMEOUT_MS);
    expect(await status('/health/ready')).toBe(503);

    const restoredAt = Date.now() - t0;
    proxy.restore();
    // The first answers wait for the backlog queued in the pool during the cut (a few seconds at most).
    await until('a client_credentials token after the restore', async () => (await clientCredentials(t0)).status === 200, { timeoutMs: RECOVERY_MS });
    const recoveryMs = Date.now() - t0 - restoredAt;
    expect(await status('/health/ready')).toBe(200);
    const recoveredAt = Date.now() - t0;
    // Once recovered, the load goes on (and the last codes are redeemed) until every kind has been served again.
    loops.push(fire(REDEEM_EVERY_MS, (i) => (i < afterCodes.length ? redeem(t0, afterCodes[i]) : undefined), true));
    await untilEvery('every kind of request served after the recovery', KINDS, (o) => o.status === okStatus(o) && o.start >= recoveredAt);
    firing = false;
    await Promise.all(loops);
    const all = await Promise.all(outcomes);
    const elapsed = Date.now() - t0;

    // 1. Every answer is 200/201 or 503, and in time.
    const unexpected = all.filter((o) => o.status !== okStatus(o) && o.status !== 503);
    expect(unexpected.map(({ kind, status, body, start, ms }) => ({ kind, status, body, start, ms }))).toEqual([]);
    expect(Math.max(...all.map((o) => o.ms))).toBeLessThan(REQUEST_TIMEOUT_MS);
    const unavailable = all.filter((o) => o.status === 503);
    expect(unavailable.length).toBeGreaterThan(0);
    for (const o of unavailable) {
      if (o.kind === 'client_credentials' || o.kind === 'authorization_code') expectTokenUnavailable(o);
      else expectAdminUnavailable(o);
    }
    // Before the cut and after the recovery, nothing failed.
    expect(all.filter((o) => o.status === 503 && (o.start + o.ms < cutAt || o.start >= recoveredAt)).map((o) => [o.kind, o.start, o.ms])).toEqual([]);

    // 2. Recovery without a restart (checked above: a token within RECOVERY_MS, then /health/ready 200).
    expect(recoveryMs).toBeLessThan(RECOVERY_MS);

    // 3a. Every access token issued verifies against the JWKS.
    const jwks = createLocalJWKSet((await (await fetch(`${s.url}/.well-known/jwks.json`)).json()) as JSONWebKeySet);
    const issued = all.filter((o) => o.status === 200 && (o.kind === 'client_credentials' || o.kind === 'authorization_code'));
    for (const o of issued) {
      const audience = o.kind === 'client_credentials' ? API : `${s.url}/userinfo`;
      await expect(jwtVerify(o.body.access_token, jwks, { issuer: s.url, audience, typ: 'at+jwt' })).resolves.toBeDefined();
      if (o.kind === 'authorization_code') await expect(jwtVerify(o.body.id_token, jwks, { issuer: s.url, audience: web.client_id })).resolves.toBeDefined();
    }

    // 3b. Codes: redeemed at most once; a 200 means the code is used and bound to that access token;
    // a code is either fully redeemed (used_at and access_jti) or untouched (neither).
    const everyCode = [...codes, ...afterCodes, ...burst];
    const rows = await sql<{ code_hash: string; used_at: Date | null; access_jti: string | null }>(
      `SELECT code_hash, used_at, access_jti FROM $schema.authorization_codes WHERE code_hash = ANY($1)`, [everyCode.map(sha256)],
    );
    expect(rows.length).toBe(everyCode.length);
    const row = new Map(rows.map((r) => [r.code_hash, r]));
    const redemptions = all.filter((o) => o.kind === 'authorization_code');
    expect(redemptions.length).toBe(everyCode.length);
    const halfWritten = rows.filter((r) => (r.used_at === null) !== (r.access_jti === null));
    expect(halfWritten).toEqual([]);
    let ambiguous = 0;
    const untouched: string[] = [];
    for (const o of redemptions) {
      const r = row.get(sha256(o.ref!))!;
      if (o.status === 200) {
        expect(r.used_at).not.toBeNull();
        expect(r.access_jti).toBe(decodeJwt(o.body.access_token).jti);
      } else if (r.used_at !== null) {
        ambiguous++; // the commit went through, its answer was lost with the connection
      } else {
        untouched.push(o.ref!);
      }
    }
    // An untouched code is still good: redeeming it now works, once.
    for (const code of untouched) {
      const retry = await redeem(t0, code);
      expect(retry.status).toBe(200);
      expect((await redeem(t0, code)).status).toBe(400);
    }

    // 3c. Clients created through the admin API: every 201 is there exactly once, nothing else appeared.
    const created = await sql<{ client_name: string }>(`SELECT client_name FROM $schema.clients WHERE client_name = ANY($1)`, [names]);
    const createdNames = created.map((c) => c.client_name);
    expect(new Set(createdNames).size).toBe(createdNames.length);
    const writes = all.filter((o) => o.kind === 'admin_write');
    for (const o of writes.filter((w) => w.status === 201)) expect(createdNames).toContain(o.ref);
    const countsAfter = (await sql<{ clients: number; grants: number }>(
      `SELECT (SELECT count(*)::int FROM $schema.clients) AS clients, (SELECT count(*)::int FROM $schema.client_grants) AS grants`,
    ))[0];
    expect(countsAfter.grants).toBe(countsBefore.grants);
    expect(countsAfter.clients).toBe(countsBefore.clients + createdNames.length);
    const lostAnswers = createdNames.length - writes.filter((w) => w.status === 201).length;

    // eslint-disable-next-line no-console
    console.log(JSON.stringify({
      mode, requests: all.length, elapsedMs: elapsed, cutAt, restoredAt, readyDownMs: readyDown, recoveryMs,
      slowestMs: Math.max(...all.map((o) => o.ms)), slowest503Ms: Math.max(0, ...unavailable.map((o) => o.ms)),
      byKind: summary(all), codes: { redeemed: redemptions.filter((o) => o.status === 200).length, untouchedThenRedeemed: untouched.length, ambiguous },
      adminWritesCommittedWithout201: lostAnswers,
    }));
  });

  it('answers 503 with the HTML error page (not a stack, not JSON) at /authorize while the database is cut', async () => {
    proxy.cut('refuse');
    try {
      const fresh = await fetch(authorizeUrl('html-fresh'), { redirect: 'manual', signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      // The signed-in browser: its session must be read from the database first.
      const signedIn = await fetch(authorizeUrl('html-session'), { redirect: 'manual', headers: { cookie: browser.cookieHeader() }, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      const login = await fetch(`${s.url}/login`, { redirect: 'manual', headers: { cookie: browser.cookieHeader() }, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
      for (const res of [fresh, signedIn, login]) {
        const html = await res.text();
        expect({ url: res.url, status: res.status }).toEqual({ url: res.url, status: 503 });
        expect(res.headers.get('content-type')).toMatch(/^text\/html/);
        expect(res.headers.get('location')).toBeNull();
        expect(html).toMatch(/<html/i);
        expect(html).toMatch(/temporarily unavailable/i);
        expect(html).not.toMatch(/\bat .*\.(ts|js):\d+|QueryFailedError|ECONNREFUSED|Connection terminated/);
      }
    } finally {
      proxy.restore();
    }
    await until('/health/ready after the restore', async () => (await status('/health/ready')) === 200);
    const page = await browser.go(authorizeUrl('html-after'));
    expect(new URL(page.url).searchParams.get('code')).toEqual(expect.any(String));
  });
});
