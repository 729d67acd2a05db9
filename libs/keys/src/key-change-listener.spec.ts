import { EventEmitter } from 'node:events';
import { Client as PgClient } from 'pg';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from '@idp/identity';
import { freshDatabase, onPostgres, TEST_DATABASE_URL } from '../../../test/support/server';
import { until } from '../../../test/support/until';
import { KEYS_CHANNEL, KeyChangeListener, NOTIFY_KEYS_CHANGED } from './key-change-listener';

/** The PostgreSQL announcement of key changes: heard in its own schema only, and again after its connection is killed. */
const describeOnPostgres = onPostgres ? describe : describe.skip;
if (!onPostgres) console.warn('key-change-listener.spec: needs PostgreSQL (TEST_DATABASE_URL=postgres://…): skipped on SQLite');

describeOnPostgres('KeyChangeListener', () => {
  const dbs: { url: string; drop(): Promise<void> }[] = [];
  const sources: DataSource[] = [];
  let listener: KeyChangeListener;
  afterEach(async () => {
    await listener?.stop();
    for (const ds of sources.splice(0)) await ds.destroy();
    for (const db of dbs.splice(0)) await db.drop();
  });

  async function dataSource(): Promise<DataSource> {
    const db = await freshDatabase();
    dbs.push(db);
    const ds = await new DataSource(dataSourceOptions(db.url)).initialize();
    sources.push(ds);
    return ds;
  }

  /** A `changed` callback that says when it is called, so that a test waits for the call itself. */
  function heard(): jest.Mock & { calls(n: number): Promise<unknown> } {
    const calls = new EventEmitter();
    const changed = jest.fn(() => calls.emit('call'));
    return Object.assign(changed, {
      calls: (n: number) => until(`changed is called ${n} times`, () => changed.mock.calls.length >= n, { wakeOn: [calls, 'call'] }),
    });
  }

  it('hears a change announced for its schema, not one for another schema nor one rolled back', async () => {
    const ds = await dataSource();
    const schema = (ds.options as { schema: string }).schema;
    const changed = heard();
    listener = new KeyChangeListener(ds, changed);
    await listener.start();

    await ds.transaction(async (m) => {
      await m.query(NOTIFY_KEYS_CHANGED);
      throw new Error('rolled back');
    }).catch(() => undefined);
    // Another schema's announcement, then ours, committed together: delivered together, in this order.
    await ds.transaction(async (m) => {
      await m.query(`SELECT pg_notify('${KEYS_CHANNEL}', $1)`, [`${schema}_other`]);
      await m.query(NOTIFY_KEYS_CHANGED);
    });
    await changed.calls(1);
    expect(changed).toHaveBeenCalledTimes(1);
    await ds.query(NOTIFY_KEYS_CHANGED);
    await changed.calls(2);
  });

  it('reconnects when its connection is killed, reports what it may have missed, and hears changes again', async () => {
    const ds = await dataSource();
    const changed = heard();
    listener = new KeyChangeListener(ds, changed);
    await listener.start();
    const pid = listener.backendPid!;
    expect(pid).toEqual(expect.any(Number));

    const admin = new PgClient({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
    try {
      await admin.query('SELECT pg_terminate_backend($1)', [pid]);
    } finally {
      await admin.end();
    }
    await changed.calls(1); // after the reconnection (1 s later): a reload for what was missed
    expect(listener.backendPid).not.toBe(pid);
    await ds.query(NOTIFY_KEYS_CHANGED);
    await changed.calls(2);
  });
});
