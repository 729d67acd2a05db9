import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { dataSourceOptions, MIGRATIONS } from '../database';
import { KeyActivation1764300000000 } from './1764300000000-KeyActivation';
import { freshDatabase, onPostgres } from '../../../../test/support/server';

/** The upgrade to "publish before signing" on a database the version before left. */
describe(`migration KeyActivation (${onPostgres ? 'PostgreSQL' : 'SQLite'})`, () => {
  let db: { url: string; drop(): Promise<void> };
  let ds: DataSource;
  beforeEach(async () => {
    // A file on SQLite: the database outlives the first DataSource.
    if (onPostgres) db = await freshDatabase();
    else {
      const dir = mkdtempSync(join(tmpdir(), 'idp-migration-'));
      db = { url: `sqlite:${join(dir, 'idp.sqlite')}`, drop: async () => rmSync(dir, { recursive: true, force: true }) };
    }
    const before = MIGRATIONS.slice(0, MIGRATIONS.indexOf(KeyActivation1764300000000));
    ds = await new DataSource({ ...dataSourceOptions(db.url), migrations: before }).initialize();
    await ds.runMigrations();
  });
  afterEach(async () => {
    await ds?.destroy();
    await db.drop();
  });

  const p = (i: number) => (onPostgres ? `$${i}` : '?');
  async function insert(kid: string, status: string, createdAt: string, publishUntil: string | null): Promise<void> {
    await ds.query(
      `INSERT INTO signing_keys (kid, alg, public_jwk, private_sealed, status, created_at, publish_until) VALUES (${[1, 2, 3, 4, 5, 6, 7].map(p).join(', ')})`,
      [kid, 'RS256', '{}', 'sealed', status, createdAt, publishUntil],
    );
  }
  const rows = async (): Promise<{ kid: string; status: string; activates_at: Date | null; created_at: Date; publish_until: Date | null }[]> =>
    (await ds.query('SELECT kid, status, created_at, activates_at, publish_until FROM signing_keys ORDER BY kid')).map((r: Record<string, unknown>) => ({
      ...r,
      created_at: toDate(r.created_at),
      activates_at: toDate(r.activates_at),
      publish_until: toDate(r.publish_until),
    }));
  const toDate = (v: unknown) => (v === null ? null : v instanceof Date ? v : new Date(`${String(v).replace(' ', 'T')}Z`));

  it('dates the activation of every existing key at its creation (each signed from then), and back down retires a next key that never signed', async () => {
    await insert('old', 'previous', '2026-01-01 00:00:00.000', '2026-01-02 00:00:00.000');
    await insert('cur', 'current', '2026-02-01 00:00:00.000', null);
    await ds.destroy();
    // Up to this migration only: the ones after it are not what this spec is about.
    ds = await new DataSource({ ...dataSourceOptions(db.url), migrations: MIGRATIONS.slice(0, MIGRATIONS.indexOf(KeyActivation1764300000000) + 1) }).initialize();
    expect((await ds.runMigrations()).map((m) => m.name)).toEqual(['KeyActivation1764300000000']);
    expect(await rows()).toEqual([
      { kid: 'cur', status: 'current', created_at: new Date('2026-02-01T00:00:00Z'), activates_at: new Date('2026-02-01T00:00:00Z'), publish_until: null },
      { kid: 'old', status: 'previous', created_at: new Date('2026-01-01T00:00:00Z'), activates_at: new Date('2026-01-01T00:00:00Z'), publish_until: new Date('2026-01-02T00:00:00Z') },
    ]);

    await ds.query(`INSERT INTO signing_keys (kid, alg, public_jwk, private_sealed, status, created_at) VALUES (${[1, 2, 3, 4, 5, 6].map(p).join(', ')})`, [
      'nxt', 'RS256', '{}', 'sealed', 'next', '2026-03-01 00:00:00.000',
    ]);
    await ds.undoLastMigration();
    const down = await ds.query('SELECT kid, status, publish_until FROM signing_keys ORDER BY kid');
    expect(down.map((r: { kid: string; status: string; publish_until: unknown }) => [r.kid, r.status, toDate(r.publish_until)])).toEqual([
      ['cur', 'current', null],
      ['nxt', 'previous', new Date('2026-03-01T00:00:00Z')],
      ['old', 'previous', new Date('2026-01-02T00:00:00Z')],
    ]);
  });
});
