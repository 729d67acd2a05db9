import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from './database';
import { freshDatabase, onPostgres } from '../../../test/support/server';

describe('migrations', () => {
  const where = onPostgres ? 'PostgreSQL' : 'SQLite';

  it(`create exactly the schema the entities describe (${where})`, async () => {
    const db = await freshDatabase();
    const ds = new DataSource(dataSourceOptions(db.url));
    try {
      await ds.initialize();
      const ran = await ds.runMigrations();
      expect(ran.length).toBeGreaterThan(0);
      // What `migration:generate` would still want to change: nothing.
      const pending = await ds.driver.createSchemaBuilder().log();
      expect(pending.upQueries.map((q) => q.query)).toEqual([]);
    } finally {
      await ds.destroy();
      await db.drop();
    }
  });

  it(`revert cleanly, down to an empty database, and apply again (${where})`, async () => {
    const db = await freshDatabase();
    const ds = new DataSource(dataSourceOptions(db.url));
    try {
      await ds.initialize();
      await ds.runMigrations();
      for (let i = 0; i < ds.migrations.length; i++) await ds.undoLastMigration();
      const qr = ds.createQueryRunner();
      for (const entity of ds.entityMetadatas) expect([entity.tableName, await qr.hasTable(entity.tableName)]).toEqual([entity.tableName, false]);
      await qr.release();
      expect((await ds.runMigrations()).length).toBe(ds.migrations.length);
    } finally {
      await ds.destroy();
      await db.drop();
    }
  });

  it('opens a SQLite file in WAL mode, synchronous NORMAL unless FULL is asked for, checkpoints every 4,000 pages (16,000 as a safety net beside the background worker), 16 MiB of page cache', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'idp-sqlite-'));
    try {
      const cases = [
        [{}, 1, 4000],
        [{ sqliteSynchronous: 'normal' }, 1, 4000],
        [{ sqliteSynchronous: 'full' }, 2, 4000],
        [{ sqliteCheckpoint: 'inline' }, 1, 4000],
        [{ sqliteCheckpoint: 'background' }, 1, 16000],
      ] as const;
      for (const [opts, expected, pages] of cases) {
        const ds = new DataSource(dataSourceOptions(`sqlite:${join(dir, 'x.sqlite')}`, opts));
        await ds.initialize();
        try {
          expect(await ds.query('PRAGMA journal_mode')).toEqual([{ journal_mode: 'wal' }]);
          expect(await ds.query('PRAGMA synchronous')).toEqual([{ synchronous: expected }]);
          expect(await ds.query('PRAGMA wal_autocheckpoint')).toEqual([{ wal_autocheckpoint: pages }]);
          expect(await ds.query('PRAGMA cache_size')).toEqual([{ cache_size: -16384 }]);
        } finally {
          await ds.destroy();
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
