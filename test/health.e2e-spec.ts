import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource, QueryRunner } from 'typeorm';
import { inTransaction } from '@idp/core';
import { READY_TIMEOUT_MS } from '../libs/identity/src/health.controller';
import { TestServer, onPostgres, startServer } from './support/server';

/**
 * GET /health/live and /health/ready (CONTRACT.md §6) on terminus: their bodies, and readiness
 * failing in the admin error format when the database is slower than READY_TIMEOUT_MS or gone.
 * The database is made slow for real: on SQLite an open transaction holds every other statement
 * (inTransaction, libs/core/src/transactions.ts); on PostgreSQL every connection of the pool (10) is taken.
 */

const DOWN = { statusCode: 503, error: 'temporarily_unavailable', message: 'database is down' };

async function get(s: TestServer, path: string): Promise<{ status: number; body: unknown; cacheControl: string | null; ms: number }> {
  const t0 = Date.now();
  const res = await s.fetch(path);
  return { status: res.status, body: await res.json(), cacheControl: res.headers.get('cache-control'), ms: Date.now() - t0 };
}

/** Makes the database answer nothing until the returned function is called. */
async function holdDatabase(ds: DataSource): Promise<() => Promise<void>> {
  if (onPostgres) {
    const runners: QueryRunner[] = [];
    for (let i = 0; i < 10; i++) {
      const qr = ds.createQueryRunner();
      await qr.connect();
      runners.push(qr);
    }
    return async () => {
      for (const qr of runners) await qr.release();
    };
  }
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let entered!: () => void;
  const inside = new Promise<void>((r) => (entered = r));
  const held = inTransaction(ds, async (m) => {
    await m.query('SELECT 1');
    entered();
    await released;
  });
  await inside;
  return async () => {
    release();
    await held;
  };
}

describe('health', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(() => s.close());

  it('is live and ready, in answers never cached', async () => {
    expect(await get(s, '/health/live')).toMatchObject({ status: 200, body: { status: 'ok' }, cacheControl: 'no-store' });
    expect(await get(s, '/health/ready')).toMatchObject({ status: 200, body: { status: 'ok', database: 'up' }, cacheControl: 'no-store' });
  });

  it(`is not ready while the database takes over ${READY_TIMEOUT_MS} ms to answer, stays live, and is ready again once it answers`, async () => {
    const release = await holdDatabase(s.app.get<DataSource>(getDataSourceToken()));
    try {
      const ready = await get(s, '/health/ready');
      expect(ready).toMatchObject({ status: 503, body: DOWN, cacheControl: 'no-store' });
      expect(ready.ms).toBeGreaterThanOrEqual(READY_TIMEOUT_MS - 50);
      expect(await get(s, '/health/live')).toMatchObject({ status: 200, body: { status: 'ok' } });
    } finally {
      await release();
    }
    expect(await get(s, '/health/ready')).toMatchObject({ status: 200, body: { status: 'ok', database: 'up' } });
  });
});

describe('health without a database', () => {
  it('is not ready, at once, when the database is gone; live stays 200', async () => {
    const s = await startServer();
    try {
      await s.app.get<DataSource>(getDataSourceToken()).destroy();
      const ready = await get(s, '/health/ready');
      expect(ready).toMatchObject({ status: 503, body: DOWN });
      expect(ready.ms).toBeLessThan(READY_TIMEOUT_MS);
      expect(await get(s, '/health/live')).toMatchObject({ status: 200, body: { status: 'ok' } });
    } finally {
      await s.close();
    }
  });
});
