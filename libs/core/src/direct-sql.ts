import type { DataSource, EntityMetadata, EntityTarget, ObjectLiteral } from 'typeorm';
import type { ColumnMetadata } from 'typeorm/metadata/ColumnMetadata';
import { createHash } from 'node:crypto';
import { gateSqliteTransactions, sqliteGate } from './sqlite-gate';

/**
 * Single-table statements on the hot paths (sessions, codes, refresh tokens, consents), run on the
 * driver itself: better-sqlite3 prepared statements (synchronous, through the transaction gate),
 * or pg named prepared statements on TypeORM's own pool. TypeORM's query builder and query runner
 * cost several times the statement itself (docs/performance.md); the SQL is built once per shape
 * from the entity metadata, and values are converted by TypeORM's own driver functions both ways,
 * so rows read and written here are exactly the rows TypeORM reads and writes.
 */
export class DirectSql {
  private static readonly instances = new WeakMap<DataSource, DirectSql>();
  private readonly tables = new Map<unknown, DirectTable<ObjectLiteral>>();
  private readonly exec: Executor;

  static of(ds: DataSource): DirectSql {
    let d = DirectSql.instances.get(ds);
    if (!d) {
      d = new DirectSql(ds);
      DirectSql.instances.set(ds, d);
    }
    return d;
  }

  private constructor(private readonly ds: DataSource) {
    this.exec = ds.options.type === 'better-sqlite3' ? new SqliteExecutor(ds) : new PostgresExecutor(ds);
  }

  get dialect(): 'sqlite' | 'postgres' {
    return this.exec.dialect;
  }

  table<E extends ObjectLiteral>(entity: EntityTarget<E>): DirectTable<E> {
    let t = this.tables.get(entity);
    if (!t) {
      t = new DirectTable(this.ds, this.ds.getMetadata(entity), this.exec) as unknown as DirectTable<ObjectLiteral>;
      this.tables.set(entity, t);
    }
    return t as unknown as DirectTable<E>;
  }

  /** Runs `fn`'s statements in one transaction (committed when it resolves, rolled back when it throws). */
  transaction<T>(fn: (tx: DirectTx) => Promise<T>): Promise<T> {
    return this.exec.transaction(fn);
  }
}

/** The statements of one transaction: pass it to a DirectTable method to run inside it. */
export interface DirectTx {
  readonly kind: 'tx';
  all(sql: Sql, params: unknown[]): Promise<Record<string, unknown>[]>;
  run(sql: Sql, params: unknown[]): Promise<number>;
}

/** A `where` value that matches the column's values greater than it (`>`): `expires_at: new After(now)`. */
export class After<T = Date> {
  constructor(readonly value: T) {}
}

/** `where` values: a value matches by equality, `null` means IS NULL, `After` means greater than. */
export type Where<E> = { [K in keyof E]?: E[K] | null | After<E[K]> };

/**
 * A row of another table read with this one (DirectTable.findOneWith): the row of `table` whose
 * columns named in `on` equal the given columns of this table's row, and that matches `where`.
 */
export interface LeftJoin<E extends ObjectLiteral, F extends ObjectLiteral> {
  table: DirectTable<F>;
  on: { [K in keyof F & string]?: keyof E & string };
  where: Where<F>;
}

/** A conditional UPDATE of one row, described for the caller to run (DirectTable.updateThenInsert). */
export interface RowUpdate<E extends ObjectLiteral = ObjectLiteral> {
  table: DirectTable<E>;
  where: Where<E>;
  set: Partial<E>;
}

export class DirectTable<E extends ObjectLiteral> {
  private readonly sql = new Map<string, Sql>();
  private readonly table: string;
  private readonly byProperty: Map<string, ColumnMetadata>;

  constructor(private readonly ds: DataSource, private readonly meta: EntityMetadata, private readonly exec: Executor) {
    this.table = meta.tablePath.split('.').map(quote).join('.');
    this.byProperty = new Map(meta.columns.map((c) => [c.propertyName, c]));
  }

  async findOne(where: Where<E>, tx?: DirectTx): Promise<E | null> {
    const keys = Object.keys(where);
    const sql = this.cached(`select:${keys}`, () => {
      const cols = this.meta.columns.map((c) => quote(c.databaseName)).join(', ');
      return `SELECT ${cols} FROM ${this.table} WHERE ${this.conditions(keys, where)} LIMIT 1`;
    }, where);
    const rows = await (tx ?? this.exec).all(sql, this.values(keys, where, true));
    return rows.length ? this.hydrate(rows[0]) : null;
  }

  /**
   * The row matching `where`, and with it the row of another table that `join` names (null when
   * there is none): one statement (a LEFT JOIN) instead of two round trips.
   */
  async findOneWith<F extends ObjectLiteral>(where: Where<E>, join: LeftJoin<E, F>): Promise<{ row: E; joined: F | null } | null> {
    const keys = Object.keys(where);
    const joinKeys = Object.keys(join.where);
    const on = Object.entries(join.on) as [string, string][];
    const other = join.table;
    const sql = this.cached(`select-with:${keys}:${other.meta.name}:${on.map((p) => p.join('='))}:${joinKeys}|${comparisons(join.where)}`, () => {
      const mine = this.meta.columns.map((c, i) => `a.${quote(c.databaseName)} AS "a${i}"`);
      const theirs = other.meta.columns.map((c, i) => `b.${quote(c.databaseName)} AS "b${i}"`);
      const condition = [
        ...on.map(([theirsKey, mineKey]) => `b.${quote(other.column(theirsKey).databaseName)} = a.${quote(this.column(mineKey).databaseName)}`),
        other.conditions(joinKeys, join.where, 'b'),
      ].filter(Boolean).join(' AND ');
      return `SELECT ${[...mine, ...theirs].join(', ')} FROM ${this.table} a LEFT JOIN ${other.table} b ON ${condition} WHERE ${this.conditions(keys, where, 'a')} LIMIT 1`;
    }, where);
    // Parameters in the order of the text: the join's conditions (ON), then this table's (WHERE).
    const rows = await this.exec.all(sql, [...other.values(joinKeys, join.where, true), ...this.values(keys, where, true)]);
    if (!rows.length) return null;
    const raw = rows[0];
    const mineRaw: Record<string, unknown> = {};
    this.meta.columns.forEach((c, i) => (mineRaw[c.databaseName] = raw[`a${i}`]));
    const theirsRaw: Record<string, unknown> = {};
    other.meta.columns.forEach((c, i) => (theirsRaw[c.databaseName] = raw[`b${i}`]));
    const found = other.meta.primaryColumns.every((c) => theirsRaw[c.databaseName] !== null && theirsRaw[c.databaseName] !== undefined);
    return { row: this.hydrate(mineRaw), joined: found ? other.hydrate(theirsRaw) : null };
  }

  async insert(row: Partial<E>, tx?: DirectTx): Promise<void> {
    const keys = Object.keys(row);
    const sql = this.cached(`insert:${keys}`, () => `INSERT INTO ${this.table} (${keys.map((k) => quote(this.column(k).databaseName)).join(', ')}) VALUES (${keys.map(() => '?').join(', ')})`);
    await (tx ?? this.exec).run(sql, this.values(keys, row));
  }

  /**
   * Many rows with the same columns, in statements of at most 50 rows (one commit each, as
   * TypeORM's own multi-row insert), for batched writes such as the audit log.
   */
  async insertMany(rows: Partial<E>[]): Promise<void> {
    if (!rows.length) return;
    const keys = Object.keys(rows[0]);
    for (let at = 0; at < rows.length; at += INSERT_BATCH) {
      const chunk = rows.slice(at, at + INSERT_BATCH);
      const sql = this.cached(`insert-many:${keys}:${chunk.length}`, () => {
        const tuple = `(${keys.map(() => '?').join(', ')})`;
        return `INSERT INTO ${this.table} (${keys.map((k) => quote(this.column(k).databaseName)).join(', ')}) VALUES ${chunk.map(() => tuple).join(', ')}`;
      });
      await this.exec.run(sql, chunk.flatMap((row) => this.values(keys, row)));
    }
  }

  /** INSERT, or on a conflict of `conflict` columns, UPDATE every other column given. */
  async upsert(row: Partial<E>, conflict: (keyof E & string)[], tx?: DirectTx): Promise<void> {
    const keys = Object.keys(row);
    const sql = this.cached(`upsert:${keys}:${conflict}`, () => {
      const cols = keys.map((k) => quote(this.column(k).databaseName));
      const target = conflict.map((k) => quote(this.column(k).databaseName)).join(', ');
      const set = keys.filter((k) => !conflict.includes(k)).map((k) => `${quote(this.column(k).databaseName)} = excluded.${quote(this.column(k).databaseName)}`);
      return `INSERT INTO ${this.table} (${cols.join(', ')}) VALUES (${keys.map(() => '?').join(', ')}) ON CONFLICT (${target}) DO UPDATE SET ${set.join(', ')}`;
    });
    await (tx ?? this.exec).run(sql, this.values(keys, row));
  }

  /** The number of rows changed. */
  async update(where: Where<E>, set: Partial<E>, tx?: DirectTx): Promise<number> {
    const setKeys = Object.keys(set);
    const keys = Object.keys(where);
    const sql = this.cached(`update:${setKeys}:${keys}`, () => {
      const assignments = setKeys.map((k) => `${quote(this.column(k).databaseName)} = ?`).join(', ');
      return `UPDATE ${this.table} SET ${assignments} WHERE ${this.conditions(keys, where)}`;
    }, where);
    return (tx ?? this.exec).run(sql, [...this.values(setKeys, set), ...this.values(keys, where, true)]);
  }

  /**
   * Uses up one row and adds another, atomically: the UPDATE of `where` (a unique key: at most one
   * row) and, only when it changed that row, the INSERT of `row` into `into`. On PostgreSQL one
   * statement (a data-modifying WITH), so one round trip instead of BEGIN, two statements and
   * COMMIT; the UPDATE's row lock is held until the INSERT is committed with it. On SQLite one
   * transaction. Whether the UPDATE changed the row (and the INSERT happened).
   */
  async updateThenInsert<F extends ObjectLiteral>(where: Where<E>, set: Partial<E>, into: DirectTable<F>, row: Partial<F>): Promise<boolean> {
    if (this.exec.dialect === 'sqlite') {
      return this.exec.transaction(async (tx) => {
        if ((await this.update(where, set, tx)) !== 1) return false;
        await into.insert(row, tx);
        return true;
      });
    }
    const setKeys = Object.keys(set);
    const keys = Object.keys(where);
    const rowKeys = Object.keys(row);
    const sql = this.cached(`update-insert:${setKeys}:${keys}:${into.meta.name}:${rowKeys}`, () => {
      const assignments = setKeys.map((k) => `${quote(this.column(k).databaseName)} = ?`).join(', ');
      const cols = rowKeys.map((k) => quote(into.column(k).databaseName)).join(', ');
      // The INSERT's SELECT leaves its parameters' types to the target columns (no casts needed).
      return `WITH used AS (UPDATE ${this.table} SET ${assignments} WHERE ${this.conditions(keys, where)} RETURNING 1) INSERT INTO ${into.table} (${cols}) SELECT ${rowKeys.map(() => '?').join(', ')} FROM used`;
    }, where);
    const changed = await this.exec.run(sql, [...this.values(setKeys, set), ...this.values(keys, where, true), ...into.values(rowKeys, row)]);
    return changed === 1;
  }

  async delete(where: Where<E>, tx?: DirectTx): Promise<number> {
    const keys = Object.keys(where);
    const sql = this.cached(`delete:${keys}`, () => `DELETE FROM ${this.table} WHERE ${this.conditions(keys, where)}`, where);
    return (tx ?? this.exec).run(sql, this.values(keys, where, true));
  }

  private column(property: string): ColumnMetadata {
    const c = this.byProperty.get(property);
    if (!c) throw new Error(`${this.meta.name} has no column ${property}`);
    return c;
  }

  /**
   * The SQL of a shape, built once; the comparison of each `where` key is part of the shape (IS NULL
   * takes no parameter, After is `>`).
   */
  private cached(key: string, build: () => string, where?: Record<string, unknown>): Sql {
    const full = where ? `${key}|${comparisons(where)}` : key;
    let sql = this.sql.get(full);
    if (!sql) {
      sql = this.exec.prepare(build());
      this.sql.set(full, sql);
    }
    return sql;
  }

  private conditions(keys: string[], where: Record<string, unknown>, alias?: string): string {
    const prefix = alias ? `${alias}.` : '';
    return keys.map((k) => `${prefix}${quote(this.column(k).databaseName)} ${where[k] === null ? 'IS NULL' : where[k] instanceof After ? '> ?' : '= ?'}`).join(' AND ');
  }

  /** Parameters of `keys` in `source`; in a `where`, a null is IS NULL and takes none. */
  private values(keys: string[], source: Record<string, unknown>, where = false): unknown[] {
    const out: unknown[] = [];
    for (const k of keys) {
      let v = source[k];
      if (v === null && where) continue;
      if (v instanceof After) v = v.value;
      out.push(v === null || v === undefined ? null : this.ds.driver.preparePersistentValue(v, this.column(k)));
    }
    return out;
  }

  private hydrate(raw: Record<string, unknown>): E {
    const e = {} as Record<string, unknown>;
    for (const c of this.meta.columns) e[c.propertyName] = this.ds.driver.prepareHydratedValue(raw[c.databaseName], c);
    return e as E;
  }
}

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** How each key of a `where` compares: `n` IS NULL, `a` After, `=` equality (e.g. "=n=a"). */
const comparisons = (where: Record<string, unknown>): string => {
  let out = '';
  for (const k in where) out += where[k] === null ? 'n' : where[k] instanceof After ? 'a' : '=';
  return out;
};

/** Rows per statement of insertMany (so at most 50 statement shapes per column list). */
const INSERT_BATCH = 50;

/** A statement's text for its dialect (`?` for SQLite, `$n` for PostgreSQL) and its prepared-statement name. */
export interface Sql {
  text: string;
  name: string;
}

interface Executor extends Omit<DirectTx, 'kind'> {
  readonly dialect: 'sqlite' | 'postgres';
  prepare(text: string): Sql;
  transaction<T>(fn: (tx: DirectTx) => Promise<T>): Promise<T>;
}

interface SqliteStatement {
  reader: boolean;
  all(...params: unknown[]): Record<string, unknown>[];
  run(...params: unknown[]): { changes: number };
}
interface SqliteDb {
  prepare(sql: string): SqliteStatement;
  exec(sql: string): void;
}

class SqliteExecutor implements Executor {
  readonly dialect = 'sqlite' as const;
  private readonly statements = new Map<string, SqliteStatement>();
  private readonly gate;

  constructor(private readonly ds: DataSource) {
    // The identity module gates its DataSource at creation; one made elsewhere (a test module) is gated here.
    if (!sqliteGate(ds)) gateSqliteTransactions(ds);
    this.gate = sqliteGate(ds)!;
  }

  private get db(): SqliteDb {
    return (this.ds.driver as unknown as { databaseConnection: SqliteDb }).databaseConnection;
  }

  prepare(text: string): Sql {
    return { text, name: text };
  }

  private stmt(sql: Sql): SqliteStatement {
    let s = this.statements.get(sql.text);
    if (!s) {
      s = this.db.prepare(sql.text);
      this.statements.set(sql.text, s);
    }
    return s;
  }

  all(sql: Sql, params: unknown[]): Promise<Record<string, unknown>[]> {
    return this.gate.statement(() => this.stmt(sql).all(...params.map(sqliteValue)));
  }

  run(sql: Sql, params: unknown[]): Promise<number> {
    return this.gate.statement(() => this.stmt(sql).run(...params.map(sqliteValue)).changes);
  }

  transaction<T>(fn: (tx: DirectTx) => Promise<T>): Promise<T> {
    // Nested in an open transaction (ours): its statements are part of it.
    if (this.gate.inTransaction()) return fn({ kind: 'tx', all: (s, p) => this.all(s, p), run: (s, p) => this.run(s, p) });
    return this.gate.transaction(async () => {
      this.db.exec('BEGIN IMMEDIATE');
      try {
        const result = await fn({ kind: 'tx', all: (s, p) => this.all(s, p), run: (s, p) => this.run(s, p) });
        this.db.exec('COMMIT');
        return result;
      } catch (err) {
        try {
          this.db.exec('ROLLBACK');
        } catch {
          // already rolled back by SQLite (e.g. after SQLITE_FULL)
        }
        throw err;
      }
    });
  }
}

/** better-sqlite3 binds no booleans. */
const sqliteValue = (v: unknown) => (typeof v === 'boolean' ? (v ? 1 : 0) : v);

interface PgClient {
  on(event: 'error', listener: (err: Error) => void): unknown;
  off(event: 'error', listener: (err: Error) => void): unknown;
  query(q: { text: string; name?: string; values?: unknown[] }): Promise<{ rows: Record<string, unknown>[]; rowCount: number | null }>;
  release(err?: boolean | Error): void;
}
interface PgPool {
  query: PgClient['query'];
  connect(): Promise<PgClient>;
}

class PostgresExecutor implements Executor {
  readonly dialect = 'postgres' as const;

  constructor(private readonly ds: DataSource) {}

  private get pool(): PgPool {
    return (this.ds.driver as unknown as { master: PgPool }).master;
  }

  prepare(text: string): Sql {
    let n = 0;
    const pg = text.replace(/\?/g, () => `$${++n}`);
    return { text: pg, name: `idp_${createHash('sha1').update(pg).digest('hex').slice(0, 20)}` };
  }

  async all(sql: Sql, params: unknown[], client: Pick<PgClient, 'query'> = this.pool): Promise<Record<string, unknown>[]> {
    return (await client.query({ text: sql.text, name: sql.name, values: params })).rows;
  }

  async run(sql: Sql, params: unknown[], client: Pick<PgClient, 'query'> = this.pool): Promise<number> {
    return (await client.query({ text: sql.text, name: sql.name, values: params })).rowCount ?? 0;
  }

  async transaction<T>(fn: (tx: DirectTx) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    // A checked-out client that loses its connection emits 'error' (the pending query rejects too).
    const lost = (err: Error) => {
      broken = err;
    };
    client.on('error', lost);
    try {
      await client.query({ text: 'BEGIN' });
      const result = await fn({ kind: 'tx', all: (s, p) => this.all(s, p, client), run: (s, p) => this.run(s, p, client) });
      await client.query({ text: 'COMMIT' });
      return result;
    } catch (err) {
      try {
        await client.query({ text: 'ROLLBACK' });
      } catch (e) {
        broken = e as Error; // the connection is gone: do not return it to the pool
      }
      throw err;
    } finally {
      client.off('error', lost);
      client.release(broken);
    }
  }
}
