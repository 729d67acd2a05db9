import { EventSubscriber, type DataSource, type EntityManager, type EntitySubscriberInterface } from 'typeorm';
import { ScopedStorage } from './scoped-storage';

/**
 * Runs `fn` in one transaction of `ds`: committed when it resolves, rolled back when it throws.
 * Every transaction of the IdP is opened here (an extension's should be too, for SQLite): on
 * PostgreSQL it is `ds.transaction(fn)`, each transaction on a pooled connection of its own. Work
 * that is to be part of an open transaction takes its manager `m` instead.
 *
 * On SQLite, `ds` must have been created with the SqliteTransactions subscriber (dataSourceOptions
 * adds it), and the transaction waits for the open one, if any, to end (see SqliteTransactions);
 * called from inside a transaction opened here, `fn` runs in it (as a savepoint).
 */
export async function inTransaction<T>(ds: DataSource, fn: (m: EntityManager) => Promise<T>): Promise<T> {
  if (ds.options.type !== 'better-sqlite3') return ds.transaction(fn);
  const queue = ds.subscribers.find((s): s is SqliteTransactions => (s as Partial<Record<typeof QUEUE, true>>)[QUEUE] === true);
  if (!queue) throw new Error('a SQLite DataSource needs the SqliteTransactions subscriber (dataSourceOptions adds it)');
  return queue.run(() => ds.transaction(fn));
}

/**
 * Runs a hand-written INSERT, UPDATE or DELETE in `m` (a transaction's manager, or the data
 * source's own) and returns how many rows it changed: TypeORM's structured result
 * (`QueryResult.affected`), the same on SQLite and PostgreSQL, where `m.query` answers a write
 * differently on each.
 */
export async function changedRows(m: EntityManager, sql: string, params: unknown[]): Promise<number> {
  const runner = m.queryRunner ?? m.connection.createQueryRunner();
  try {
    return (await runner.query(sql, params, true)).affected ?? 0;
  } finally {
    if (!m.queryRunner) await runner.release();
  }
}

/** Marks a SqliteTransactions, also one loaded by another module registry than the caller's (tests run several). */
const QUEUE = Symbol.for('idp.SqliteTransactions');

/**
 * One transaction at a time on a SQLite DataSource, and no statement from outside it while it is open.
 *
 * better-sqlite3 is one connection, and TypeORM hands every caller the same query runner on it, so
 * left alone two requests' transactions mix: a second `ds.transaction` begun while one is open
 * becomes a savepoint of it, and a statement of another request run meanwhile runs inside the open
 * transaction (it reads its uncommitted rows, and its write is undone by its rollback). Nothing in
 * TypeORM's options keeps them apart (its better-sqlite3 options are the file, WAL, timeouts and the
 * statement cache), and SQLite's own locking is between connections: a second connection in this
 * process would wait for the first one's write lock synchronously (busy_timeout), blocking the
 * event loop the first one needs to finish, so retrying on SQLITE_BUSY cannot help either. So this
 * queue does it, over TypeORM's public subscriber events:
 * - transactions (inTransaction) start one after the other, each once the statements from outside
 *   that are under way have run;
 * - while one is open or waiting to start, a statement from outside waits (`beforeQuery` returns
 *   a promise, which TypeORM awaits before it runs the statement) until it has ended.
 * A transaction's own statements are known by async context: a ScopedStorage, switched on only
 * while a transaction is open. PostgreSQL needs none of this.
 *
 * A transaction begun by calling `ds.transaction` directly is not one the queue knows: on SQLite,
 * use inTransaction.
 */
@EventSubscriber()
export class SqliteTransactions implements EntitySubscriberInterface {
  readonly [QUEUE] = true;
  private readonly inside = new ScopedStorage<symbol>();
  /** The open transaction. */
  private active: symbol | null = null;
  /** Transactions waiting to start (statements from outside queue behind them). */
  private pending = 0;
  /** Statements from outside under way (a transaction starts once they have run). */
  private running = 0;
  private waiters: (() => void)[] = [];

  /** Runs `begin` (which opens, runs and ends a transaction) as the only open transaction. */
  async run<T>(begin: () => Promise<T>): Promise<T> {
    if (this.ours()) return begin(); // nested: a savepoint of the open transaction
    // Every check-and-claim below runs without an await in between, so it is atomic.
    this.pending++;
    while (this.active || this.running > 0) await this.sleep();
    this.pending--;
    const token = Symbol('transaction');
    this.active = token;
    try {
      return await this.inside.run(token, begin);
    } finally {
      this.active = null;
      this.wake();
    }
  }

  beforeQuery(): Promise<void> | void {
    if (this.ours()) return;
    if (!this.active && this.pending === 0) {
      this.running++;
      return;
    }
    return this.enter();
  }

  afterQuery(): void {
    if (this.ours() || this.running === 0) return;
    if (--this.running === 0) this.wake();
  }

  private async enter(): Promise<void> {
    while (this.active || this.pending > 0) await this.sleep();
    this.running++;
  }

  private ours(): boolean {
    return this.active !== null && this.inside.getStore() === this.active;
  }

  private sleep(): Promise<void> {
    return new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  private wake(): void {
    const woken = this.waiters;
    this.waiters = [];
    for (const w of woken) w();
  }
}
