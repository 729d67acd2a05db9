import type { DataSource } from 'typeorm';
import { ScopedStorage } from './scoped-storage';

/**
 * SQLite through better-sqlite3 is one connection, and TypeORM hands every caller the same query
 * runner. Left alone, a second request's transaction starts inside the first ("cannot start a
 * transaction within a transaction"), and other requests' statements run inside an open
 * transaction and vanish with its rollback. This gate makes transactions exclusive: they run one
 * at a time, and while one is open, statements from outside it wait until it commits or rolls
 * back. PostgreSQL needs none of this (a pooled connection per transaction).
 *
 * A transaction's own statements are told apart from the others' two ways. DirectSql's (the
 * request path's) are handed a function that runs them, so they say so themselves. TypeORM's
 * (`DataSource.transaction`, rare: admin changes, revocations, lockouts) are known by async
 * context, kept in a ScopedStorage that is switched on only while such a transaction is open.
 */
export function gateSqliteTransactions(ds: DataSource): void {
  if (ds.options.type !== 'better-sqlite3' || gates.has(ds)) return;
  const inside = new ScopedStorage<symbol>();
  let active: symbol | null = null; // the open transaction
  let pending = 0; // transactions waiting to start (new outside statements queue behind them)
  let inflight = 0; // outside statements running (a transaction waits for them to finish)
  let waiters: (() => void)[] = [];
  const sleep = () => new Promise<void>((resolve) => waiters.push(resolve));
  const wake = () => {
    const woken = waiters;
    waiters = [];
    for (const w of woken) w();
  };
  const ours = () => active !== null && inside.getStore() === active;

  // Every check-and-claim below runs without an await in between, so it is atomic.
  const exclusive = async <T>(fn: (token: symbol) => Promise<T>): Promise<T> => {
    pending++;
    while (active || inflight > 0) await sleep();
    pending--;
    const token = Symbol('transaction');
    active = token;
    try {
      return await fn(token);
    } finally {
      active = null;
      wake();
    }
  };
  const manager = ds.manager as unknown as { transaction: (...args: unknown[]) => Promise<unknown> };
  const transaction = manager.transaction.bind(manager);
  manager.transaction = async (...args: unknown[]) => {
    if (ours()) return transaction(...args); // nested: a savepoint of the open transaction
    return exclusive((token) => inside.run(token, () => transaction(...args)));
  };

  const runner = ds.createQueryRunner();
  const query = runner.query.bind(runner);
  runner.query = (async (...args: Parameters<typeof runner.query>) => {
    if (ours()) return query(...args);
    while (active || pending > 0) await sleep();
    inflight++;
    try {
      return await query(...args);
    } finally {
      if (--inflight === 0) wake();
    }
  }) as typeof runner.query;

  gates.set(ds, {
    inTransaction: ours,
    transaction<T>(fn: (own: <S>(statement: () => S) => S) => Promise<T>): Promise<T> {
      return exclusive((token) =>
        fn((statement) => {
          if (active !== token) throw new Error('a statement of a transaction that has ended');
          return statement();
        }),
      );
    },
    async statement<T>(fn: () => T): Promise<T> {
      if (!ours()) while (active || pending > 0) await sleep();
      return fn();
    },
  });
}

/** The gate of a SQLite DataSource, for statements run on the connection directly (direct-sql.ts). */
export interface SqliteGate {
  /** Whether the caller runs inside the open TypeORM transaction. */
  inTransaction(): boolean;
  /**
   * Runs `fn` as the one open transaction, once the others have ended. Its statements go through
   * `own` (synchronous, at once); any other statement waits for it, so `fn` must not await one
   * that does not (it would wait for itself).
   */
  transaction<T>(fn: (own: <S>(statement: () => S) => S) => Promise<T>): Promise<T>;
  /** Runs a synchronous statement when no transaction of others is open (at once inside a TypeORM one of ours). */
  statement<T>(fn: () => T): Promise<T>;
}

const gates = new WeakMap<DataSource, SqliteGate>();

export function sqliteGate(ds: DataSource): SqliteGate | undefined {
  return gates.get(ds);
}
