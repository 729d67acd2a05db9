import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { dataSourceOptions, MIGRATIONS } from '../database';
import { freshDatabase, onPostgres } from '../../../../test/support/server';
import { LockoutLeases1764400000000 } from './1764400000000-LockoutLeases';

/** The lease columns arrive on existing counters (no lease yet: 0 and null) and go again on the way down. */
describe(`migration LockoutLeases (${onPostgres ? 'PostgreSQL' : 'SQLite'})`, () => {
  it('adds lease_end, leased and leased_next to the counters kept, and down removes them', async () => {
    // A file on SQLite: the database outlives the first DataSource.
    const dir = onPostgres ? '' : mkdtempSync(join(tmpdir(), 'idp-migration-'));
    const db = onPostgres ? await freshDatabase() : { url: `sqlite:${join(dir, 'idp.sqlite')}`, drop: async () => rmSync(dir, { recursive: true, force: true }) };
    const before = MIGRATIONS.slice(0, MIGRATIONS.indexOf(LockoutLeases1764400000000));
    let ds = await new DataSource({ ...dataSourceOptions(db.url), migrations: before }).initialize();
    try {
      await ds.runMigrations();
      const p = (i: number) => (onPostgres ? `$${i}` : '?');
      await ds.query(`INSERT INTO lockouts (key, failures, locked_until, last_failure_at) VALUES (${p(1)}, 4, NULL, ${p(2)})`, ['login:pair:x', '2026-12-01 10:00:00.000']);
      await ds.destroy();
      ds = await new DataSource({ ...dataSourceOptions(db.url), migrations: MIGRATIONS }).initialize();
      expect((await ds.runMigrations()).map((m) => m.name)).toEqual(['LockoutLeases1764400000000']);
      const [row] = await ds.query('SELECT key, failures, lease_end, leased, leased_next FROM lockouts');
      expect({ ...row, failures: Number(row.failures), leased: Number(row.leased), leased_next: Number(row.leased_next) }).toEqual({ key: 'login:pair:x', failures: 4, lease_end: null, leased: 0, leased_next: 0 });
      await ds.undoLastMigration();
      const columns = (await ds.query(onPostgres ? "SELECT column_name AS name FROM information_schema.columns WHERE table_name = 'lockouts' AND table_schema = current_schema()" : "SELECT name FROM pragma_table_info('lockouts')")).map((c: { name: string }) => c.name);
      expect(columns.sort()).toEqual(['failures', 'key', 'last_failure_at', 'locked_until']);
    } finally {
      await ds.destroy();
      await db.drop();
    }
  });
});
