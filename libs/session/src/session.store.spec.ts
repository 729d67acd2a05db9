import { DataSource } from 'typeorm';
import type { SessionData } from 'express-session';
import { dataSourceOptions } from '@idp/identity';
import { SessionRecord } from './session.entity';
import { TOUCH_INTERVAL_MS, TypeOrmSessionStore } from './session.store';

const call = <T>(fn: (cb: (err?: unknown, value?: T) => void) => void) =>
  new Promise<T | undefined>((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value))));

describe('TypeOrmSessionStore', () => {
  let ds: DataSource;
  let store: TypeOrmSessionStore;
  const row = () => ds.getRepository(SessionRecord).findOneOrFail({ where: {} });
  const session = (expires: number) => ({ cookie: { expires: new Date(expires), originalMaxAge: 3600_000 }, user: { sub: 'u1' } }) as unknown as SessionData;

  beforeEach(async () => {
    ds = await new DataSource({ ...dataSourceOptions('sqlite::memory:'), migrationsRun: true }).initialize();
    store = new TypeOrmSessionStore(ds.getRepository(SessionRecord));
  });
  afterEach(async () => {
    store.close();
    await ds.destroy();
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
});
