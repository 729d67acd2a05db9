import { Store, type SessionData } from 'express-session';
import { LessThan, Repository } from 'typeorm';
import { sha256 } from '@idp/core';
import { SessionRecord } from './session.entity';

const DEFAULT_TTL_MS = 24 * 3600 * 1000;

/** express-session store on TypeORM (SQLite or PostgreSQL). Keys are hashed session ids. */
export class TypeOrmSessionStore extends Store {
  private readonly timer: NodeJS.Timeout;

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
    this.repo
      .findOne({ where: { sid_hash: sha256(sid) } })
      .then((row) => {
        if (!row || row.expires_at.getTime() <= Date.now()) return cb(null, null);
        cb(null, JSON.parse(row.data));
      })
      .catch((err) => cb(err));
  }

  set(sid: string, session: SessionData, cb?: (err?: unknown) => void): void {
    const expires = session.cookie?.expires ? new Date(session.cookie.expires) : new Date(Date.now() + DEFAULT_TTL_MS);
    const userId = (session as SessionData & { passport?: { user?: { sub?: string } } }).passport?.user?.sub ?? null;
    this.repo
      .upsert({ sid_hash: sha256(sid), data: JSON.stringify(session), expires_at: expires, user_id: userId }, ['sid_hash'])
      .then(() => cb?.())
      .catch((err) => cb?.(err));
  }

  destroy(sid: string, cb?: (err?: unknown) => void): void {
    this.repo
      .delete({ sid_hash: sha256(sid) })
      .then(() => cb?.())
      .catch((err) => cb?.(err));
  }

  touch(sid: string, session: SessionData, cb?: (err?: unknown) => void): void {
    const expires = session.cookie?.expires ? new Date(session.cookie.expires) : new Date(Date.now() + DEFAULT_TTL_MS);
    this.repo
      .update({ sid_hash: sha256(sid) }, { expires_at: expires })
      .then(() => cb?.())
      .catch((err) => cb?.(err));
  }
}
