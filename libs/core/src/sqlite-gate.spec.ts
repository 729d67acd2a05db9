import { DataSource } from 'typeorm';
import { gateSqliteTransactions } from './sqlite-gate';

describe('gateSqliteTransactions', () => {
  let ds: DataSource;
  beforeEach(async () => {
    ds = new DataSource({ type: 'better-sqlite3', database: ':memory:' });
    gateSqliteTransactions(ds);
    await ds.initialize();
    await ds.query('CREATE TABLE t (x INTEGER)');
  });
  afterEach(() => ds.destroy());
  const pause = () => new Promise((r) => setTimeout(r, 5));

  it('runs parallel transactions one after the other instead of failing', async () => {
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        ds.transaction(async (m) => {
          await m.query('INSERT INTO t VALUES (?)', [i]);
          await pause();
          await m.query('INSERT INTO t VALUES (?)', [i]);
        }),
      ),
    );
    expect((await ds.query('SELECT COUNT(*) AS c FROM t'))[0].c).toBe(20);
  });

  it('keeps a statement from outside out of an open transaction, so its rollback does not take it along', async () => {
    // Another request (another async context) writes 2 ms after the transaction opened.
    const outside = new Promise((resolve) => setTimeout(() => resolve(ds.query('INSERT INTO t VALUES (2)')), 2));
    await expect(
      ds.transaction(async (m) => {
        await m.query('INSERT INTO t VALUES (1)');
        await new Promise((r) => setTimeout(r, 20));
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    await outside;
    expect(await ds.query('SELECT x FROM t')).toEqual([{ x: 2 }]);
  });

  it('lets a transaction use the data source directly inside its callback (same async context)', async () => {
    await ds.transaction(async () => {
      await ds.query('INSERT INTO t VALUES (3)');
    });
    expect(await ds.query('SELECT x FROM t')).toEqual([{ x: 3 }]);
  });
});
