import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { DataSource, DataSourceOptions, Migration } from 'typeorm';
import { SigningKey } from '@idp/keys';
import { User } from '@idp/users';
import { Client, UsedAssertion } from '@idp/clients';
import { Api, ClientGrant } from '@idp/resources';
import { SessionRecord } from '@idp/session';
import { Consent } from '@idp/consent';
import { AuthorizationCode } from '@idp/authorization';
import { RefreshToken, RevokedToken } from '@idp/token';
import { InitialSchema1764000000000 } from './migrations/1764000000000-InitialSchema';
import { CodeFlow1764100000000 } from './migrations/1764100000000-CodeFlow';
import { Hardening1764200000000 } from './migrations/1764200000000-Hardening';
import { KeyActivation1764300000000 } from './migrations/1764300000000-KeyActivation';
import { LockoutLeases1764400000000 } from './migrations/1764400000000-LockoutLeases';
import { AuditEvent } from './audit/audit-event.entity';
import { Lockout, SqliteTransactions } from '@idp/core';

/** The single list of entities. An extension's entities are added by its own TypeOrmModule.forFeature. */
export const ENTITIES = [SigningKey, User, Client, UsedAssertion, Api, ClientGrant, SessionRecord, Consent, AuthorizationCode, RefreshToken, RevokedToken, AuditEvent, Lockout];

/** The migrations, oldest first. `npm run migration:generate` writes new ones to ./migrations. */
export const MIGRATIONS = [InitialSchema1764000000000, CodeFlow1764100000000, Hardening1764200000000, KeyActivation1764300000000, LockoutLeases1764400000000];

/**
 * Runs the pending migrations, one instance at a time. TypeORM takes no lock of its own: two
 * instances booting at once on a fresh PostgreSQL database would both see no migration applied and
 * both CREATE TABLE, and one fails. So on PostgreSQL they run under a session-level advisory lock
 * (per schema, as each schema is its own database to us), held on a dedicated connection and
 * released in `finally`; the instance that waited then finds nothing pending. Waiting for the lock
 * is exempt from the 10 s statement timeout, as a long migration may hold it. SQLite takes none:
 * one DataSource is one connection, and SQLite is for one process (two processes migrating one
 * SQLite file at the same moment are not covered).
 */
export async function runMigrations(ds: DataSource): Promise<Migration[]> {
  if (ds.options.type !== 'postgres') return ds.runMigrations({ transaction: 'all' });
  const lock = ds.createQueryRunner();
  await lock.connect();
  try {
    await lock.query('SET statement_timeout = 0');
    await lock.query(`SELECT pg_advisory_lock(hashtext('idp:migrations:' || current_schema()))`);
    try {
      return await ds.runMigrations({ transaction: 'all' });
    } finally {
      await lock.query(`SELECT pg_advisory_unlock(hashtext('idp:migrations:' || current_schema()))`);
    }
  } finally {
    await lock.query('RESET statement_timeout').catch(() => undefined);
    await lock.release();
  }
}

/** WAL pages between checkpoints when SQLite runs them itself, on the committing thread (`SQLITE_CHECKPOINT=inline`). */
export const INLINE_CHECKPOINT_PAGES = 4000;
/**
 * With `SQLITE_CHECKPOINT=background` the worker thread (sqlite-checkpointer.ts) keeps the WAL
 * short; SQLite's own checkpoint on the committing thread stays as a safety net, far out (64 MiB
 * of WAL), for when the worker falls behind.
 */
export const SAFETY_CHECKPOINT_PAGES = 16000;

/** SQLite's `synchronous` pragma value for SQLITE_SYNCHRONOUS, the same on every connection. */
export function synchronousPragma(setting?: 'normal' | 'full'): 'FULL' | 'NORMAL' {
  return setting === 'full' ? 'FULL' : 'NORMAL';
}

export interface SqliteOptions {
  sqliteSynchronous?: 'normal' | 'full';
  /** `background` only where a SqliteCheckpointer runs beside the DataSource (IdentityModule); default `inline`. */
  sqliteCheckpoint?: 'background' | 'inline';
}

/**
 * TypeORM options for `sqlite:PATH`, `sqlite::memory:` or `postgres://…` (a `?schema=NAME` query
 * parameter puts every table in that schema). Migrations, never `synchronize`.
 */
export function dataSourceOptions(databaseUrl: string, opts: SqliteOptions = {}): DataSourceOptions {
  const common = { entities: ENTITIES, migrations: MIGRATIONS, migrationsTableName: 'migrations', synchronize: false, logging: false } as const;
  if (databaseUrl.startsWith('sqlite:')) {
    const path = databaseUrl.slice('sqlite:'.length);
    const memory = path === ':memory:';
    if (!memory) mkdirSync(dirname(resolve(path)), { recursive: true });
    return {
      ...common,
      type: 'better-sqlite3',
      database: memory ? ':memory:' : resolve(path),
      // One connection: transactions one at a time, statements from outside one held while it is open (inTransaction).
      subscribers: [SqliteTransactions],
      // WAL lets readers proceed while one writer commits; wait up to 5 s for the write lock.
      enableWAL: !memory,
      timeout: 5000,
      // In WAL mode, `normal` fsyncs at checkpoints rather than at every commit: better-sqlite3 is
      // synchronous, so a per-commit fsync (≈ 0.3 ms here) would stall the whole event loop
      // (SQLITE_SYNCHRONOUS, docs/performance.md; the trade-off is in docs/security.md).
      prepareDatabase: (db: { pragma(source: string): unknown }) => {
        db.pragma(`synchronous = ${synchronousPragma(opts.sqliteSynchronous)}`);
        // A checkpoint copies each page changed since the last one from the WAL into the database
        // file, with two fsyncs. Run by SQLite itself, it happens on the committing thread, which
        // here is the event loop: every 4,000 pages a commit took 40 ms and stalled every request
        // in flight (docs/performance.md). So by default a worker thread runs them
        // (sqlite-checkpointer.ts) and SQLite's own is only a safety net. Inline, every 4,000 WAL
        // pages (16 MiB) rather than SQLite's 1,000: a longer interval copies the hot pages (index
        // roots, the tables' last leaves) fewer times and fsyncs less often. A page cache of 16 MiB
        // instead of 2 MiB keeps more of the random-keyed indexes (token and code hashes) in memory.
        db.pragma(`wal_autocheckpoint = ${opts.sqliteCheckpoint === 'background' && !memory ? SAFETY_CHECKPOINT_PAGES : INLINE_CHECKPOINT_PAGES}`);
        db.pragma('cache_size = -16384');
      },
    };
  }
  const url = new URL(databaseUrl);
  const schema = url.searchParams.get('schema') ?? undefined;
  url.searchParams.delete('schema');
  return {
    ...common,
    type: 'postgres',
    url: url.toString(),
    schema,
    extra: {
      max: 10,
      connectionTimeoutMillis: 5000,
      // No statement may hang a request: PostgreSQL cancels anything over 10 s.
      statement_timeout: 10_000,
      ...(schema ? { options: `-c search_path=${schema}` } : {}),
    },
  };
}
