import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { Client as PgClient } from 'pg';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { BootClock, type Clock, type IdpConfig } from '@idp/core';
import type { DynamicModule, Type } from '@nestjs/common';
import { createIdentityApp } from '@idp/identity';
import { AppModule } from '../../apps/idp/src/app.module';

/** PostgreSQL for the suites when TEST_DATABASE_URL is set (CI runs every suite twice: SQLite, then PostgreSQL). */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL;
export const onPostgres = !!TEST_DATABASE_URL?.startsWith('postgres');

export const ADMIN_CLIENT_ID = 'test-admin';
export const ADMIN_CLIENT_SECRET = 'test-admin-secret-0123456789abcdefghijklmnop';

export interface TestServer {
  url: string;
  config: IdpConfig;
  app: NestFastifyApplication;
  /** Every log line the server wrote. */
  logs: string[];
  databaseUrl: string;
  adminToken(scope?: string): Promise<string>;
  /** fetch() relative to the server. */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  admin(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: any; headers: Headers }>;
  /** A provider of this server, by class (the class of this server's own modules: see inRegistry). */
  get<T>(token: abstract new (...args: never[]) => T): T;
  close(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** A fresh database for one server: SQLite in memory, or a new PostgreSQL schema dropped at close. */
export async function freshDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  if (!onPostgres) return { url: 'sqlite::memory:', drop: async () => undefined };
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const pg = new PgClient({ connectionString: TEST_DATABASE_URL });
  await pg.connect();
  await pg.query(`CREATE SCHEMA ${schema}`);
  await pg.end();
  const url = new URL(TEST_DATABASE_URL!);
  url.searchParams.set('schema', schema);
  return {
    url: url.toString(),
    drop: async () => {
      const c = new PgClient({ connectionString: TEST_DATABASE_URL });
      await c.connect();
      await c.query(`DROP SCHEMA ${schema} CASCADE`);
      await c.end();
    },
  };
}

/**
 * Where an application's code is loaded from. Passport keeps its strategies on one process-wide
 * object (`require('passport')`), on which @nestjs/passport registers each application's `local`
 * and session strategies by name: two applications alive in one process would share the last
 * one's strategies, and so its database. A production process runs one application; a test file
 * may run several at once (replicas, or servers with other settings). So the first live server
 * of a test file runs on the test's own modules, and each server started while another is alive
 * is created inside a module registry of its own (jest.isolateModulesAsync): its own Passport,
 * Nest, TypeORM and libs. (It is created there, not only loaded there: packages that Nest
 * requires while it builds the application, such as class-transformer for the ValidationPipe,
 * come from the registry that is current at that moment.) Reach its providers with
 * `server.get(Class)`, which finds that registry's class of the same name.
 */
interface Registry {
  createIdentityApp: typeof createIdentityApp;
  BootClock: typeof BootClock;
  AppModule: Type<unknown>;
  /** The registry's copies of the modules whose classes tests ask the application for (none: the test's own). */
  exports: Record<string, unknown>[];
}
const ISOLATED_EXPORTS = ['@idp/core', '@idp/keys', '@idp/users', '@idp/clients', '@idp/resources', '@idp/session', '@idp/consent', '@idp/authorization', '@idp/token', '@idp/identity', 'typeorm'];
const OWN: Registry = { createIdentityApp, BootClock, AppModule, exports: [] };
/** Whether a server on the test's own modules is alive. */
let ownInUse = false;

/** Runs `fn` on the test's own modules when no server uses them, else inside a fresh module registry. */
async function inRegistry<T>(fn: (registry: Registry) => Promise<T>): Promise<{ result: T; release: () => void }> {
  if (!ownInUse) {
    ownInUse = true;
    try {
      return { result: await fn(OWN), release: () => (ownInUse = false) };
    } catch (err) {
      ownInUse = false;
      throw err;
    }
  }
  let result: T | undefined;
  await jest.isolateModulesAsync(async () => {
    const exports = [];
    for (const name of ISOLATED_EXPORTS) exports.push(await import(name));
    exports.push(await import('../../libs/session/src/session.strategy'));
    const identity = exports[ISOLATED_EXPORTS.indexOf('@idp/identity')] as typeof import('@idp/identity');
    const core = exports[0] as typeof import('@idp/core');
    const { AppModule: isolatedApp } = await import('../../apps/idp/src/app.module');
    result = await fn({ createIdentityApp: identity.createIdentityApp, BootClock: core.BootClock, AppModule: isolatedApp, exports });
  });
  return { result: result!, release: () => undefined };
}

export interface StartOptions {
  /**
   * The clock the server decides by (lifetimes, lockouts, rate-limit windows, key schedules): a
   * ManualClock lets the test advance time instead of waiting for it. The system's by default.
   */
  clock?: Clock;
}

/** Boots the real server on a free port of 127.0.0.1 with a fresh database, as `npm start` would. */
export async function startServer(env: Record<string, string> = {}, rootModule: Type<unknown> | DynamicModule = AppModule, opts: StartOptions = {}): Promise<TestServer> {
  const port = await freePort();
  const db = env.DATABASE_URL ? { url: env.DATABASE_URL, drop: async () => undefined } : await freshDatabase();
  const url = `http://127.0.0.1:${port}`;
  const logs: string[] = [];
  let registry: Registry = OWN;
  const create = () => registry.createIdentityApp(
    registry !== OWN ? registry.AppModule : rootModule,
    {
      NODE_ENV: 'test', LOG_LEVEL: 'info', PORT: String(port), HOST: '127.0.0.1', ISSUER: url, DATABASE_URL: db.url,
      IDP_SECRET_KEY: randomBytes(32).toString('base64url'), IDP_ADMIN_CLIENT_ID: ADMIN_CLIENT_ID, IDP_ADMIN_CLIENT_SECRET: ADMIN_CLIENT_SECRET,
      // Lockouts and rate limits have their own suites (which pass their own values); elsewhere a
      // table of deliberate failures must not trip them.
      IDP_RATE_LIMIT: 'off', IDP_LOCKOUT_THRESHOLD: '1000', IDP_LOCKOUT_IP_THRESHOLD: '10000',
      ...env,
    },
    { logSink: (line) => logs.push(line) },
  );
  const { result: { app, config }, release } = await inRegistry(async (r) => {
    registry = r;
    if (r !== OWN && rootModule !== AppModule) {
      throw new Error('startServer: only one application with a custom root module may be alive at a time (a second one would share its Passport strategies)');
    }
    const created = await (opts.clock ? r.BootClock.run(opts.clock, create) : create());
    await created.app.listen(port, '127.0.0.1');
    return created;
  });
  const isolated = registry !== OWN;
  const tokens = new Map<string, string>();
  const server: TestServer = {
    url, config, app, logs, databaseUrl: db.url,
    async adminToken(scope?: string) {
      const key = scope ?? '*';
      if (!tokens.has(key)) {
        const res = await fetch(`${url}/oauth/token`, {
          method: 'POST',
          headers: { authorization: basic(ADMIN_CLIENT_ID, ADMIN_CLIENT_SECRET), 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ grant_type: 'client_credentials', audience: config.adminAudience, ...(scope !== undefined ? { scope } : {}) }),
        });
        const body = await res.json();
        if (res.status !== 200) throw new Error(`admin token: ${res.status} ${JSON.stringify(body)}`);
        tokens.set(key, body.access_token);
      }
      return tokens.get(key)!;
    },
    fetch: (path, init) => fetch(`${url}${path}`, init),
    async admin(method, path, body, token) {
      const res = await fetch(`${url}${path}`, {
        method,
        headers: { authorization: `Bearer ${token ?? (await server.adminToken())}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: body !== undefined ? JSON.stringify(body) : undefined,
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
    },
    get<T>(token: abstract new (...args: never[]) => T): T {
      const own = isolated ? registry.exports.map((m) => m[token.name]).find((c): c is typeof token => typeof c === 'function') : token;
      if (!own) throw new Error(`server.get: no ${token.name} in this server's modules`);
      return app.get(own as never, { strict: false });
    },
    async close() {
      try {
        await app.close();
        await db.drop();
      } finally {
        release();
      }
    },
  };
  return server;
}

export function basic(id: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

/** POST a form to the server. */
export function postForm(server: TestServer, path: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<Response> {
  return server.fetch(path, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: new URLSearchParams(form) });
}
