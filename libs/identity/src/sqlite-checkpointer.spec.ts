import { Logger } from '@nestjs/common';
import { EventEmitter } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { loadConfig } from '@idp/core';
import { until } from '../../../test/support/until';
import { dataSourceOptions } from './database';
import { SqliteCheckpointer } from './sqlite-checkpointer';

// SQLite files only: the checkpointer does nothing on PostgreSQL or in memory.
describe('SqliteCheckpointer (SQLite WAL checkpoints on a worker thread)', () => {
  let dir: string;
  const open: Array<{ ds: DataSource; cp: SqliteCheckpointer }> = [];
  /** The checkpointer's debug lines: one for each round of the worker that found new WAL pages. */
  const rounds = new EventEmitter();

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'idp-ckpt-'));
    jest.spyOn(Logger.prototype, 'debug').mockImplementation((line) => void rounds.emit('round', line));
  });
  afterEach(async () => {
    for (const { ds, cp } of open.splice(0)) {
      await cp.onModuleDestroy();
      if (ds.isInitialized) await ds.destroy();
    }
    rmSync(dir, { recursive: true, force: true });
    jest.restoreAllMocks();
  });

  async function start(mode: 'background' | 'inline', url = `sqlite:${join(dir, 'idp.sqlite')}`, before?: (ds: DataSource) => void) {
    const config = loadConfig({ DATABASE_URL: url, SQLITE_CHECKPOINT: mode, IDP_SECRET_KEY: 'k'.repeat(32) });
    const ds = await new DataSource({ ...dataSourceOptions(url, { sqliteCheckpoint: mode }), migrationsRun: false }).initialize();
    const cp = new SqliteCheckpointer(config, ds);
    open.push({ ds, cp });
    await ds.query('CREATE TABLE scratch (id INTEGER PRIMARY KEY, data BLOB NOT NULL)');
    before?.(ds);
    await cp.onModuleInit();
    return { ds, cp, file: url.slice('sqlite:'.length) };
  }

  /** About 1,000 pages into the WAL, in 100 commits. */
  async function write(ds: DataSource) {
    for (let i = 0; i < 100; i++) {
      await ds.query("INSERT INTO scratch (data) SELECT randomblob(3900) FROM (SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9 UNION ALL SELECT 10)");
    }
  }

  it('copies the WAL into the database file from the worker, while SQLite itself would wait for 16,000 pages', async () => {
    const { ds, cp, file } = await start('background');
    expect(cp.running).toBe(true);
    expect(await ds.query('PRAGMA wal_autocheckpoint')).toEqual([{ wal_autocheckpoint: 16000 }]);
    const before = statSync(file).size;
    await write(ds);
    // ~4 MB of rows: in the WAL first; only a checkpoint puts them into the database file, and the
    // event loop's own would not run before 16,000 pages.
    await until('the rows are in the database file', () => statSync(file).size > before + 3_000_000);
    expect(await ds.query('SELECT count(*) AS n FROM scratch')).toEqual([{ n: 1000 }]);
  });

  it('lets the WAL start over from the beginning once the worker has copied it all', async () => {
    const { ds, file } = await start('background');
    // The WAL header's checkpoint sequence number (bytes 12–15) goes up each time SQLite starts
    // the WAL over, which the first commit after a complete checkpoint does.
    const sequence = () => readFileSync(`${file}-wal`).readUInt32BE(12);
    await write(ds);
    const before = sequence();
    await until('the rows are in the database file', () => statSync(file).size > 3_000_000);
    // A commit after a round that copied the whole WAL starts it over. Each commit here adds pages
    // that the worker's next round reports (a debug line): so commit, and if the WAL went on, wait
    // for that round and commit again.
    await until('a commit starts the WAL over', async () => {
      await ds.query('INSERT INTO scratch (data) VALUES (randomblob(10))');
      return sequence() > before;
    }, { wakeOn: [rounds, 'round'] });
  });

  it('stops its worker before the database closes, so that the last close removes the WAL as usual', async () => {
    const { ds, cp, file } = await start('background');
    await write(ds);
    await cp.onModuleDestroy();
    expect(cp.running).toBe(false);
    await ds.destroy();
    expect(existsSync(`${file}-wal`)).toBe(false);
    const again = await new DataSource(dataSourceOptions(`sqlite:${file}`)).initialize();
    expect(await again.query('SELECT count(*) AS n FROM scratch')).toEqual([{ n: 1000 }]);
    await again.destroy();
  });

  it('leaves checkpoints to SQLite every 4,000 pages with SQLITE_CHECKPOINT=inline, and in memory', async () => {
    const inline = await start('inline');
    expect(inline.cp.running).toBe(false);
    expect(await inline.ds.query('PRAGMA wal_autocheckpoint')).toEqual([{ wal_autocheckpoint: 4000 }]);
    const memory = await start('background', 'sqlite::memory:');
    expect(memory.cp.running).toBe(false);
  });

  it('hands checkpoints back to SQLite (every 4,000 pages) with a warning when the worker dies', async () => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    const { ds, cp } = await start('background');
    await (cp as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    await until('the checkpointer sees its worker gone', () => !cp.running);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0][0])).toMatch(/checkpoint worker stopped .*every 4000 WAL pages/);
    // The PRAGMA it then sends, on the DataSource's connection.
    await until('SQLite checkpoints every 4000 pages again', async () => (await ds.query('PRAGMA wal_autocheckpoint'))[0].wal_autocheckpoint === 4000);
  });

  it('starts without it, checkpointing as SQLite does, when the worker cannot open the database', async () => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    // The event loop's connection stays open on the unlinked file; the worker's cannot find it.
    const { ds, cp } = await start('background', undefined, (d) => unlinkSync((d.options as { database: string }).database));
    expect(cp.running).toBe(false);
    expect(String(warn.mock.calls[0]?.[0])).toMatch(/checkpoint worker did not start/);
    expect(await ds.query('PRAGMA wal_autocheckpoint')).toEqual([{ wal_autocheckpoint: 4000 }]);
  });
});
