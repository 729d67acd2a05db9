import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { Client as PgClient } from 'pg';
import type { NestExpressApplication } from '@nestjs/platform-express';
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
  app: NestExpressApplication;
  /** Every log line the server wrote. */
  logs: string[];
  databaseUrl: string;
  adminToken(scope?: string): Promise<string>;
  /** fetch() relative to the server. */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  admin(method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; body: any; headers: Headers }>;
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
  const create = () => createIdentityApp(
    rootModule,
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
  const { app, config } = await (opts.clock ? BootClock.run(opts.clock, create) : create());
  await app.listen(port, '127.0.0.1');
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
    async close() {
      await app.close();
      await db.drop();
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
