import { Column, DataSource, Entity, IsNull, MoreThan, PrimaryColumn } from 'typeorm';
import { SqliteTransactions, changedRows, inTransaction } from './transactions';
import { freshDatabase, onPostgres } from '../../../test/support/server';

@Entity('transaction_rows')
class Row {
  @PrimaryColumn({ type: 'varchar', length: 64 }) id: string;
  @Column({ type: 'integer' }) n: number;
  @Column() expires_at: Date;
  @Column({ nullable: true, type: Date }) used_at: Date | null;
}

const where = onPostgres ? 'PostgreSQL' : 'SQLite';
const onSqlite = onPostgres ? (name: string, fn: () => Promise<void>) => it.skip(`${name} [SQLite only: one connection]`, fn) : it;

/**
 * inTransaction on the database of the test run (SQLite in memory, or TEST_DATABASE_URL): on
 * SQLite, where one connection serves every caller, transactions one at a time and statements
 * from outside kept out of them; on both, the conditional UPDATE whose row count decides, as the
 * code and refresh-token redemptions use it.
 */
describe(`inTransaction (${where})`, () => {
  let ds: DataSource;
  let drop: () => Promise<void>;
  const row = (id: string, extra: Partial<Row> = {}): Row => ({ id, n: 0, expires_at: new Date('2026-11-25T10:11:12.345Z'), used_at: null, ...extra });
  const ids = async () => (await ds.getRepository(Row).find({ order: { id: 'ASC' } })).map((r) => r.id);
  /** Resolves after `ms` of real time: another request arriving while a transaction is open. */
  const later = <T>(ms: number, fn: () => Promise<T>) => new Promise<T>((resolve, reject) => setTimeout(() => fn().then(resolve, reject), ms));

  beforeEach(async () => {
    const db = await freshDatabase();
    drop = db.drop;
    const url = new URL(db.url);
    const schema = url.searchParams.get('schema') ?? undefined;
    url.searchParams.delete('schema');
    ds = db.url.startsWith('sqlite:')
      ? new DataSource({ type: 'better-sqlite3', database: db.url.slice('sqlite:'.length), entities: [Row], synchronize: true, subscribers: [SqliteTransactions] })
      : new DataSource({ type: 'postgres', url: url.toString(), schema, extra: { options: `-c search_path=${schema}` }, entities: [Row], synchronize: true });
    await ds.initialize();
  });
  afterEach(async () => {
    await ds.destroy();
    await drop();
  });

  it('commits a transaction whole, or rolls it back whole', async () => {
    await inTransaction(ds, async (m) => {
      await m.getRepository(Row).insert(row('a'));
      await m.getRepository(Row).insert(row('b'));
    });
    await expect(
      inTransaction(ds, async (m) => {
        await m.getRepository(Row).insert(row('c'));
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    expect(await ids()).toEqual(['a', 'b']);
  });

  it('runs parallel transactions apart: each sees only its own writes and commits them', async () => {
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        inTransaction(ds, async (m) => {
          const repo = m.getRepository(Row);
          await repo.insert(row(`t${i}`));
          await new Promise((r) => setTimeout(r, 2));
          await repo.insert(row(`t${i}x`));
          return repo.count();
        }),
      ),
    );
    // One at a time on SQLite (the i-th sees the 2i rows before it and its own 2); on PostgreSQL
    // under READ COMMITTED each counts at least its own two.
    expect(results.every((n) => n >= 2)).toBe(true);
    if (!onPostgres) expect([...results].sort((a, b) => a - b)).toEqual(Array.from({ length: 10 }, (_, i) => 2 * i + 2));
    expect(await ds.getRepository(Row).count()).toBe(20);
  });

  it('keeps a statement from outside out of an open transaction: it sees none of it and is not undone by its rollback', async () => {
    let inside!: () => void;
    const opened = new Promise<void>((r) => (inside = r));
    const outside = opened.then(() => later(2, async () => {
      await ds.getRepository(Row).insert(row('outside'));
      return ds.getRepository(Row).findOneBy({ id: 'inside' });
    }));
    await expect(
      inTransaction(ds, async (m) => {
        await m.getRepository(Row).insert(row('inside'));
        inside();
        await new Promise((r) => setTimeout(r, 20));
        expect(await m.getRepository(Row).findOneBy({ id: 'inside' })).toMatchObject({ id: 'inside' });
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    expect(await outside).toBeNull();
    expect(await ids()).toEqual(['outside']);
  });

  it('lets exactly one of 20 concurrent conditional updates win, each told by its row count (UpdateResult.affected)', async () => {
    await ds.getRepository(Row).insert(row('a'));
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        inTransaction(ds, async (m) => (await m.getRepository(Row).update({ id: 'a', used_at: IsNull() }, { used_at: new Date(), n: i })).affected),
      ),
    );
    expect(results.filter((n) => n === 1)).toHaveLength(1);
    expect(results.filter((n) => n === 0)).toHaveLength(19);
    expect((await ds.getRepository(Row).findOneByOrFail({ id: 'a' })).n).toBe(results.indexOf(1));
    // Outside a transaction too, and with nothing to match.
    expect((await ds.getRepository(Row).update({ id: 'a', used_at: IsNull() }, { n: 99 })).affected).toBe(0);
    expect((await ds.getRepository(Row).update({ id: 'none' }, { n: 99 })).affected).toBe(0);
  });

  it('tells how many rows a hand-written write changed (changedRows), in a transaction or not', async () => {
    await ds.getRepository(Row).insert([row('a'), row('b'), row('c', { n: 1 })]);
    const p = (i: number) => ds.driver.createParameter(`p${i}`, i);
    const use = `UPDATE transaction_rows SET n = ${p(0)} WHERE n = 0 AND id = ${p(1)}`;
    expect(await changedRows(ds.manager, use, [5, 'a'])).toBe(1);
    expect(await changedRows(ds.manager, use, [5, 'a'])).toBe(0);
    expect(await inTransaction(ds, (m) => changedRows(m, use, [5, 'b']))).toBe(1);
    expect(await inTransaction(ds, (m) => changedRows(m, `UPDATE transaction_rows SET n = n + 1`, []))).toBe(3);
    expect(await changedRows(ds.manager, `DELETE FROM transaction_rows WHERE n > ${p(0)}`, [5])).toBe(2);
  });

  it('compares a Date column with MoreThan as strictly later, in a conditional update', async () => {
    const at = new Date('2026-11-25T10:11:12.345Z');
    await ds.getRepository(Row).insert([row('a', { expires_at: at }), row('b', { expires_at: new Date(at.getTime() + 1) })]);
    const use = (id: string) => ds.getRepository(Row).update({ id, used_at: IsNull(), expires_at: MoreThan(at) }, { used_at: new Date() });
    expect((await use('a')).affected).toBe(0);
    expect((await use('b')).affected).toBe(1);
    expect((await ds.getRepository(Row).findOneByOrFail({ id: 'b' })).used_at).toBeInstanceOf(Date);
  });

  onSqlite('lets a transaction use the data source itself inside its callback (its async context), and nest one', async () => {
    await inTransaction(ds, async () => {
      await ds.getRepository(Row).insert(row('a'));
      await inTransaction(ds, async (m) => m.getRepository(Row).insert(row('b')));
      await expect(inTransaction(ds, async (m) => {
        await m.getRepository(Row).insert(row('c'));
        throw new Error('savepoint rolled back');
      })).rejects.toThrow('savepoint rolled back');
    });
    expect(await ids()).toEqual(['a', 'b']);
  });

  it('goes on after a statement from outside fails, and after a transaction whose statement fails', async () => {
    await expect(ds.query('SELECT * FROM no_such_table')).rejects.toThrow(/no such table|does not exist/);
    await ds.getRepository(Row).insert(row('a'));
    const outcome = await inTransaction(ds, (m) => m.getRepository(Row).insert(row('a'))).then(() => 'committed', (err: Error) => err.message);
    expect(outcome).toMatch(/UNIQUE|duplicate key/);
    await inTransaction(ds, (m) => m.getRepository(Row).insert(row('b')));
    expect(await ids()).toEqual(['a', 'b']);
  });

  onSqlite('refuses a SQLite DataSource created without the subscriber, rather than mixing transactions', async () => {
    const bare = await new DataSource({ type: 'better-sqlite3', database: ':memory:' }).initialize();
    try {
      await expect(inTransaction(bare, async () => 1)).rejects.toThrow('needs the SqliteTransactions subscriber');
    } finally {
      await bare.destroy();
    }
  });
});
