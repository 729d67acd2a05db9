import { Store, type SessionData } from 'express-session';
import { LessThan, Repository } from 'typeorm';
import { sha256 } from '@idp/core';
import { SessionRecord } from './session.entity';

const DEFAULT_TTL_MS = 24 * 3600 * 1000;
/** A rolling session's expiry is written again only once it would move by more than this. */
export const TOUCH_INTERVAL_MS = 60_000;
/** How many sessions' written expiry this replica remembers (forgotten all at once beyond it). */
const KNOWN_EXPIRIES = 50_000;

/** express-session store in the database (SQLite or PostgreSQL). Keys are hashed session ids. */
export class TypeOrmSessionStore extends Store {
  private readonly timer: NodeJS.Timeout;
  /** The expiry last read or written here, per hashed session id (to skip needless touches). */
  private readonly expiries = new Map<string, number>();
  /** The hash of the data (without the cookie) last read or written here, per hashed session id (to skip rewriting it unchanged). */
  private readonly contents = new Map<string, string>();
  private readSql?: string;
  private writeSql?: string;

  constructor(private readonly repo: Repository<SessionRecord>) {
    super();
    // Expired rows are swept every 10 minutes (a read also ignores them).
    this.timer = setInterval(() => void this.repo.delete({ expires_at: LessThan(new Date()) }).catch(() => undefined), 10 * 60_000);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
  }

  get(sid: string, cb: (err: unknown, session?: SessionData | null) => void): void {
    const key = sha256(sid);
    this.read(key)
      .then((row) => cb(null, this.live(key, row)))
      .catch((err) => cb(err));
  }

  /**
   * The stored row's data and expiry, read on every page request: one hand-written SELECT by the
   * primary key (a profile of the code flow put TypeORM's find, which builds the query and maps the
   * row anew each time, at several times the statement), the expiry converted by TypeORM's driver
   * as find() converts it.
   */
  private async read(key: string): Promise<Pick<SessionRecord, 'data' | 'expires_at'> | null> {
    const { driver } = this.repo.manager.connection;
    const meta = this.repo.metadata;
    this.readSql ??= `SELECT "data", "expires_at" FROM ${meta.tablePath} WHERE "sid_hash" = ${driver.createParameter('sid_hash', 0)}`;
    const [raw] = (await this.repo.query(this.readSql, [key])) as { data: string; expires_at: unknown }[];
    return raw ? { data: raw.data, expires_at: driver.prepareHydratedValue(raw.expires_at, meta.findColumnWithPropertyName('expires_at')!) } : null;
  }

  /**
   * Stores a session, new or not: written on every page response of a rolling session, so one
   * hand-written upsert (INSERT … ON CONFLICT (sid_hash) DO UPDATE, on SQLite and PostgreSQL; a
   * profile of the code flow put TypeORM's upsert builder at several times the statement), each
   * value converted by TypeORM's driver as upsert() converts it.
   */
  private async write(row: SessionRecord): Promise<void> {
    const { driver } = this.repo.manager.connection;
    const { columns, tablePath } = this.repo.metadata;
    if (!this.writeSql) {
      const names = columns.map((c) => `"${c.databaseName}"`);
      const updated = names.filter((n) => n !== '"sid_hash"').map((n) => `${n} = excluded.${n}`);
      this.writeSql = `INSERT INTO ${tablePath} (${names.join(', ')}) VALUES (${columns.map((c, i) => driver.createParameter(c.propertyName, i)).join(', ')}) ON CONFLICT ("sid_hash") DO UPDATE SET ${updated.join(', ')}`;
    }
    await this.repo.query(this.writeSql, columns.map((c) => driver.preparePersistentValue(c.getEntityValue(row), c)));
  }

  /** A stored row's session, or null when there is none or it expired. */
  private live(key: string, row: Pick<SessionRecord, 'data' | 'expires_at'> | null): SessionData | null {
    if (!row || row.expires_at.getTime() <= Date.now()) return null;
    this.remember(key, row.expires_at.getTime());
    const data = JSON.parse(row.data) as SessionData;
    this.contents.set(key, contentHash(data));
    return data;
  }

  /**
   * Stores a session. A rolling session is saved on every page response (@fastify/session calls
   * `set`, where express-session called `touch`): a session whose data is what was last read or
   * written here, and whose expiry moves by less than TOUCH_INTERVAL_MS, is not written again,
   * as `touch` skips it.
   */
  set(sid: string, session: SessionData, cb?: (err?: unknown) => void): void {
    const expires = session.cookie?.expires ? new Date(session.cookie.expires) : new Date(Date.now() + DEFAULT_TTL_MS);
    const userId = (session as { user?: { sub?: string } }).user?.sub ?? null;
    const key = sha256(sid);
    const content = contentHash(session);
    const known = this.expiries.get(key);
    if (known !== undefined && this.contents.get(key) === content && expires.getTime() - known < TOUCH_INTERVAL_MS) {
      cb?.();
      return;
    }
    this.write({ sid_hash: key, data: JSON.stringify(session), expires_at: expires, user_id: userId })
      .then(() => {
        this.remember(key, expires.getTime());
        this.contents.set(key, content);
        cb?.();
      })
      .catch((err) => cb?.(err));
  }

  destroy(sid: string, cb?: (err?: unknown) => void): void {
    const key = sha256(sid);
    this.forget(key);
    this.repo
      .delete({ sid_hash: key })
      .then(() => cb?.())
      .catch((err) => cb?.(err));
  }

  /**
   * A rolling session (express-session `rolling: true`) is touched on every response; the row's
   * expiry is only written when it moves by more than TOUCH_INTERVAL_MS, so a session in use is
   * not one write per request. The row may then expire up to that much before the cookie does.
   */
  touch(sid: string, session: SessionData, cb?: (err?: unknown) => void): void {
    const expires = session.cookie?.expires ? new Date(session.cookie.expires) : new Date(Date.now() + DEFAULT_TTL_MS);
    const key = sha256(sid);
    const known = this.expiries.get(key);
    if (known !== undefined && expires.getTime() - known < TOUCH_INTERVAL_MS) {
      cb?.();
      return;
    }
    this.repo
      .update({ sid_hash: key }, { expires_at: expires })
      .then(() => {
        this.remember(key, expires.getTime());
        cb?.();
      })
      .catch((err) => cb?.(err));
  }

  private remember(key: string, expires: number): void {
    if (this.expiries.size >= KNOWN_EXPIRIES) {
      this.expiries.clear();
      this.contents.clear();
    }
    this.expiries.set(key, expires);
  }

  private forget(key: string): void {
    this.expiries.delete(key);
    this.contents.delete(key);
  }
}

/** The hash of a session's data without its cookie (whose expiry moves on every answer of a rolling session). */
function contentHash(session: SessionData): string {
  const { cookie: _cookie, ...data } = session as SessionData & Record<string, unknown>;
  return sha256(JSON.stringify(data));
}
