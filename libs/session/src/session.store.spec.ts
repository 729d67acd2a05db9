import { DataSource, IsNull } from 'typeorm';
import type { SessionData } from 'express-session';
import { dataSourceOptions } from '@idp/identity';
import { freshDatabase, onPostgres } from '../../../test/support/server';
import { SessionRecord } from './session.entity';
import { TOUCH_INTERVAL_MS, TypeOrmSessionStore } from './session.store';

const call = <T>(fn: (cb: (err?: unknown, value?: T) => void) => void) =>
  new Promise<T | undefined>((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value))));

/** The session store on SQLite in memory, or on PostgreSQL with TEST_DATABASE_URL. */
describe(`TypeOrmSessionStore (${onPostgres ? 'PostgreSQL' : 'SQLite'})`, () => {
  let ds: DataSource;
  let drop: () => Promise<void>;
  let store: TypeOrmSessionStore;
  const row = () => ds.getRepository(SessionRecord).findOneOrFail({ where: {} });
  const session = (expires: number) => ({ cookie: { expires: new Date(expires), originalMaxAge: 3600_000 }, user: { sub: 'u1' } }) as unknown as SessionData;

  beforeEach(async () => {
    const db = await freshDatabase();
    drop = db.drop;
    ds = await new DataSource({ ...dataSourceOptions(db.url), migrationsRun: true }).initialize();
    store = new TypeOrmSessionStore(ds.getRepository(SessionRecord));
  });
  afterEach(async () => {
    store.close();
    await ds.destroy();
    await drop();
  });

  it('writes a session again in place: its data, expiry and user replaced, one row', async () => {
    const t = Date.now() + 3600_000;
    await call((cb) => store.set('sid-3', session(t), cb));
    const again = { cookie: { expires: new Date(t + 5000), originalMaxAge: 3600_000 }, user: { sub: 'u2' }, extra: 'x' } as unknown as SessionData;
    await call((cb) => store.set('sid-3', again, cb));
    const rows = await ds.getRepository(SessionRecord).find();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ user_id: 'u2', expires_at: new Date(t + 5000) });
    expect(await call<SessionData | null>((cb) => store.get('sid-3', cb))).toMatchObject({ user: { sub: 'u2' }, extra: 'x' });
    // A session without a user is stored with none, and one that has expired reads as none.
    await call((cb) => store.set('sid-4', { cookie: { expires: new Date(Date.now() - 1000) } } as unknown as SessionData, cb));
    expect((await ds.getRepository(SessionRecord).findOneByOrFail({ user_id: IsNull() })).data).toContain('cookie');
    expect(await call<SessionData | null>((cb) => store.get('sid-4', cb))).toBeNull();
  });

  it('stores hashed ids, reads back the data, and forgets destroyed sessions', async () => {
    const t = Date.now() + 3600_000;
    await call((cb) => store.set('sid-1', session(t), cb));
    expect((await row()).sid_hash).not.toContain('sid-1');
    expect(await call<SessionData | null>((cb) => store.get('sid-1', cb))).toMatchObject({ user: { sub: 'u1' } });
    await call((cb) => store.destroy('sid-1', cb));
    expect(await call<SessionData | null>((cb) => store.get('sid-1', cb))).toBeNull();
  });

  it('writes a rolling expiry only when it moves by more than the touch interval', async () => {
    const t = Date.now() + 3600_000;
    await call((cb) => store.set('sid-2', session(t), cb));
    await call((cb) => store.touch('sid-2', session(t + TOUCH_INTERVAL_MS - 1000), cb));
    expect((await row()).expires_at.getTime()).toBe(t);
    await call((cb) => store.touch('sid-2', session(t + TOUCH_INTERVAL_MS + 1000), cb));
    expect((await row()).expires_at.getTime()).toBe(t + TOUCH_INTERVAL_MS + 1000);
    // A store that has not seen the session (another replica) writes the first touch.
    const other = new TypeOrmSessionStore(ds.getRepository(SessionRecord));
    await call((cb) => other.touch('sid-2', session(t + TOUCH_INTERVAL_MS + 2000), cb));
    expect((await row()).expires_at.getTime()).toBe(t + TOUCH_INTERVAL_MS + 2000);
    other.close();
  });

  it('does not write a rolling session again whose data is unchanged and whose expiry moves less than the touch interval (set, as @fastify/session saves it)', async () => {
    const t = Date.now() + 3600_000;
    await call((cb) => store.set('sid-3', session(t), cb));
    await call((cb) => store.set('sid-3', session(t + TOUCH_INTERVAL_MS - 1000), cb));
    expect((await row()).expires_at.getTime()).toBe(t);
    // Changed data is written at once, whatever the expiry.
    const changed = { ...session(t + 1000), csrf: 'new' } as SessionData;
    await call((cb) => store.set('sid-3', changed, cb));
    expect((await row()).expires_at.getTime()).toBe(t + 1000);
    expect(JSON.parse((await row()).data).csrf).toBe('new');
    // An expiry that moves by more than the interval is written too.
    await call((cb) => store.set('sid-3', { ...changed, cookie: { expires: new Date(t + TOUCH_INTERVAL_MS + 2000), originalMaxAge: 3600_000 } } as unknown as SessionData, cb));
    expect((await row()).expires_at.getTime()).toBe(t + TOUCH_INTERVAL_MS + 2000);
  });
});
