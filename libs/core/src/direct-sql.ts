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

  /**
   * Runs `fn`'s statements in one transaction (committed when it resolves, rolled back when it
   * throws). Each statement of it takes `tx`; on SQLite a statement without it would wait for the
   * transaction to end, so for itself.
   */
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
      const select = (p: Params) => `SELECT ${cols} FROM ${this.table} WHERE ${this.conditions(keys, where, p)} LIMIT 1`;
      return { text: select(placeholders), batch: () => lateralBatch(this.ds, select, this.paramColumns(keys, where)) };
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
      const select = (p: Params) => {
        const condition = [
          ...on.map(([theirsKey, mineKey]) => `b.${quote(other.column(theirsKey).databaseName)} = a.${quote(this.column(mineKey).databaseName)}`),
          other.conditions(joinKeys, join.where, p, 'b'),
        ].filter(Boolean).join(' AND ');
        return `SELECT ${[...mine, ...theirs].join(', ')} FROM ${this.table} a LEFT JOIN ${other.table} b ON ${condition} WHERE ${this.conditions(keys, where, p, 'a')} LIMIT 1`;
      };
      return { text: select(placeholders), batch: () => lateralBatch(this.ds, select, [...other.paramColumns(joinKeys, join.where), ...this.paramColumns(keys, where)]) };
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
    const sql = this.cached(`insert:${keys}`, () => {
      const cols = keys.map((k) => quote(this.column(k).databaseName)).join(', ');
      return {
        text: `INSERT INTO ${this.table} (${cols}) VALUES (${keys.map(() => '?').join(', ')})`,
        batch: () => {
          const types = arrayTypes(this.ds, keys.map((k) => this.column(k)));
          return types && { kind: 'insert', types, text: `INSERT INTO ${this.table} (${cols}) SELECT * FROM unnest(${types.map((t) => `?::${t}`).join(', ')})` };
        },
      };
    });
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
    const sql = this.cached(`update:${setKeys}:${keys}`, () => ({
      text: `UPDATE ${this.table} SET ${this.assignments(setKeys, placeholders)} WHERE ${this.conditions(keys, where, placeholders)}`,
      batch: () => {
        const types = arrayTypes(this.ds, [...setKeys.map((k) => this.column(k)), ...this.paramColumns(keys, where)]);
        const key = this.rowKey(keys, where, setKeys.length);
        if (!types || !key) return null;
        const p = batchParams();
        return { kind: 'count', types, key, text: `UPDATE ${this.table} SET ${this.assignments(setKeys, p)} FROM ${unnest(types)} WHERE ${this.conditions(keys, where, p)} RETURNING ${BATCH}."_ord"` };
      },
    }), where);
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
      const cols = rowKeys.map((k) => quote(into.column(k).databaseName)).join(', ');
      return {
        // The INSERT's SELECT leaves its parameters' types to the target columns (no casts needed).
        text: `WITH used AS (UPDATE ${this.table} SET ${this.assignments(setKeys, placeholders)} WHERE ${this.conditions(keys, where, placeholders)} RETURNING 1) INSERT INTO ${into.table} (${cols}) SELECT ${rowKeys.map(() => '?').join(', ')} FROM used`,
        // Batched: the rows of the UPDATE that changed one, then the INSERTs of exactly those rows.
        batch: () => {
          const types = arrayTypes(this.ds, [...setKeys.map((k) => this.column(k)), ...this.paramColumns(keys, where), ...rowKeys.map((k) => into.column(k))]);
          const key = this.rowKey(keys, where, setKeys.length);
          if (!types || !key) return null;
          const p = batchParams();
          const update = `UPDATE ${this.table} SET ${this.assignments(setKeys, p)} FROM ${BATCH} WHERE ${this.conditions(keys, where, p)} RETURNING ${BATCH}."_ord"`;
          const insert = `INSERT INTO ${into.table} (${cols}) SELECT ${rowKeys.map(() => p()).join(', ')} FROM "_used" JOIN ${BATCH} USING ("_ord")`;
          return { kind: 'count', types, key, text: `WITH ${BATCH} AS (SELECT * FROM ${unnest(types)}), "_used" AS (${update}), "_inserted" AS (${insert}) SELECT "_ord" FROM "_used"` };
        },
      };
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
   * takes no parameter, After is `>`). On PostgreSQL, with its batched form where the shape has one.
   */
  private cached(key: string, build: () => string | { text: string; batch: () => BatchForm | null }, where?: Record<string, unknown>): Sql {
    const full = where ? `${key}|${comparisons(where)}` : key;
    let sql = this.sql.get(full);
    if (!sql) {
      const built = build();
      sql = typeof built === 'string' ? this.exec.prepare(built) : this.exec.prepare(built.text, this.exec.dialect === 'postgres' ? built.batch() : null);
      this.sql.set(full, sql);
    }
    return sql;
  }

  private conditions(keys: string[], where: Record<string, unknown>, p: Params = placeholders, alias?: string): string {
    const prefix = alias ? `${alias}.` : '';
    return keys.map((k) => `${prefix}${quote(this.column(k).databaseName)} ${where[k] === null ? 'IS NULL' : where[k] instanceof After ? `> ${p()}` : `= ${p()}`}`).join(' AND ');
  }

  private assignments(keys: string[], p: Params): string {
    return keys.map((k) => `${quote(this.column(k).databaseName)} = ${p()}`).join(', ');
  }

  /** The columns of a `where`'s parameters, in order (IS NULL takes none). */
  private paramColumns(keys: string[], where: Record<string, unknown>): ColumnMetadata[] {
    return keys.filter((k) => where[k] !== null).map((k) => this.column(k));
  }

  /**
   * Where a `where` names one row by its primary key (by equality): the indexes of the key's
   * parameters among the statement's, whose own parameters start at `offset`. Otherwise null.
   */
  private rowKey(keys: string[], where: Record<string, unknown>, offset: number): number[] | null {
    const params = keys.filter((k) => where[k] !== null);
    const key: number[] = [];
    for (const c of this.meta.primaryColumns) {
      const i = params.indexOf(c.propertyName);
      if (i < 0 || where[c.propertyName] instanceof After) return null;
      key.push(offset + i);
    }
    return key.length ? key : null;
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

/** Where a statement's parameters go, in order: `?`, or the columns of a batch (`"_v"."_p1"`, ...). */
type Params = () => string;
const placeholders: Params = () => '?';
const BATCH = '"_v"';
const batchParams = (): Params => {
  let n = 0;
  return () => `${BATCH}."_p${++n}"`;
};

/** The batch as a table: one row per statement, a column per parameter, and its position `_ord` (from 1). */
const unnest = (types: string[]) => `unnest(${types.map((t) => `?::${t}`).join(', ')}) WITH ORDINALITY AS ${BATCH}(${types.map((_, i) => `"_p${i + 1}"`).join(', ')}, "_ord")`;

/** A batched SELECT: the single statement run once per row of the batch (LATERAL), its rows marked with `_ord`. */
const lateralBatch = (ds: DataSource, select: (p: Params) => string, columns: ColumnMetadata[]): BatchForm | null => {
  const types = arrayTypes(ds, columns);
  return types && { kind: 'rows', types, text: `SELECT ${BATCH}."_ord", x.* FROM ${unnest(types)} CROSS JOIN LATERAL (${select(batchParams())}) x` };
};

/** Column types whose values travel in a PostgreSQL array unchanged (no enums, no arrays, no fixed-length char). */
const BATCHABLE = new Set(['integer', 'bigint', 'smallint', 'character varying', 'text', 'uuid', 'boolean', 'timestamp without time zone', 'timestamp with time zone', 'double precision', 'real', 'numeric', 'json', 'jsonb']);

/** The PostgreSQL array type of each column, or null when one of them cannot be batched. */
const arrayTypes = (ds: DataSource, columns: ColumnMetadata[]): string[] | null => {
  const types: string[] = [];
  for (const c of columns) {
    const t = ds.driver.normalizeType(c);
    if (c.isArray || !BATCHABLE.has(t)) return null;
    types.push(`${t}[]`);
  }
  return types;
};

/**
 * A statement shape's batched form on PostgreSQL: one statement for several of the same shape,
 * each parameter an array (one element per statement), so one text serves any batch size.
 * `rows`: a SELECT whose rows carry the position `_ord` of the statement they answer; `count`: a
 * write returning `_ord` once per row it changed; `insert`: an INSERT of one row per statement.
 */
export interface BatchForm {
  kind: 'rows' | 'count' | 'insert';
  text: string;
  /** The array type of each parameter. */
  types: string[];
  /** For a write of one row: the parameters naming that row; two writes of one row never share a batch. */
  key?: number[];
}

/** A statement's text for its dialect (`?` for SQLite, `$n` for PostgreSQL) and its prepared-statement name. */
export interface Sql {
  text: string;
  name: string;
  /** PostgreSQL: the batched form of this shape, when it has one (DirectTable builds it). */
  batch?: BatchForm & { name: string };
}

interface Executor extends Omit<DirectTx, 'kind'> {
  readonly dialect: 'sqlite' | 'postgres';
  prepare(text: string, batch?: BatchForm | null): Sql;
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

  /** A statement's rows, run at once (the caller has the gate's leave). */
  private allNow(sql: Sql, params: unknown[]): Record<string, unknown>[] {
    return this.stmt(sql).all(...params.map(sqliteValue));
  }

  /** A statement's count of changed rows, run at once (the caller has the gate's leave). */
  private runNow(sql: Sql, params: unknown[]): number {
    return this.stmt(sql).run(...params.map(sqliteValue)).changes;
  }

  all(sql: Sql, params: unknown[]): Promise<Record<string, unknown>[]> {
    return this.gate.statement(() => this.allNow(sql, params));
  }

  run(sql: Sql, params: unknown[]): Promise<number> {
    return this.gate.statement(() => this.runNow(sql, params));
  }

  transaction<T>(fn: (tx: DirectTx) => Promise<T>): Promise<T> {
    // Nested in an open TypeORM transaction (ours): its statements are part of it.
    if (this.gate.inTransaction()) return fn({ kind: 'tx', all: (s, p) => this.all(s, p), run: (s, p) => this.run(s, p) });
    return this.gate.transaction(async (own) => {
      this.db.exec('BEGIN IMMEDIATE');
      try {
        const result = await fn({
          kind: 'tx',
          all: async (s, p) => own(() => this.allNow(s, p)),
          run: async (s, p) => own(() => this.runNow(s, p)),
        });
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
  private readonly lanes = new Map<Sql, Lane>();

  constructor(private readonly ds: DataSource) {}

  private get pool(): PgPool {
    return (this.ds.driver as unknown as { master: PgPool }).master;
  }

  prepare(text: string, batch?: BatchForm | null): Sql {
    const sql: Sql = pgStatement(text);
    if (batch) sql.batch = { ...batch, ...pgStatement(batch.text) };
    return sql;
  }

  /** Outside a transaction, a shape with a batched form goes through its lane (see Lane). */
  async all(sql: Sql, params: unknown[], client?: Pick<PgClient, 'query'>): Promise<Record<string, unknown>[]> {
    if (!client && sql.batch) return this.lane(sql).submit(params) as Promise<Record<string, unknown>[]>;
    return (await (client ?? this.pool).query({ text: sql.text, name: sql.name, values: params })).rows;
  }

  async run(sql: Sql, params: unknown[], client?: Pick<PgClient, 'query'>): Promise<number> {
    if (!client && sql.batch) return this.lane(sql).submit(params) as Promise<number>;
    return (await (client ?? this.pool).query({ text: sql.text, name: sql.name, values: params })).rowCount ?? 0;
  }

  private lane(sql: Sql): Lane {
    let lane = this.lanes.get(sql);
    if (!lane) {
      lane = new Lane(sql, () => this.pool);
      this.lanes.set(sql, lane);
    }
    return lane;
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

const pgStatement = (text: string): Sql => {
  let n = 0;
  const pg = text.replace(/\?/g, () => `$${++n}`);
  return { text: pg, name: `idp_${createHash('sha1').update(pg).digest('hex').slice(0, 20)}` };
};

/** The most statements one batch carries. */
const MAX_BATCH = 100;
/** How long a batch may hold up the statements of its shape that queue behind it. */
const STALL_MS = 25;

interface Pending {
  params: unknown[];
  resolve(result: Record<string, unknown>[] | number): void;
  reject(err: unknown): void;
}

/**
 * Group execution of one statement shape on PostgreSQL (group commit, for writes). A statement
 * that finds none of its shape in flight is sent at once, as it is; those that arrive while one is
 * in flight wait for it and then go together, as the shape's batched form: one round trip, one
 * backend woken, one commit, instead of one each. So an idle server sends each statement alone
 * (no added latency), and a busy one sends them in batches that grow with the load.
 *
 * A batch is one statement, so it is applied whole or not at all. When PostgreSQL refuses it for
 * something a single statement could cause (bad data, a constraint, a deadlock), nothing of it was
 * applied, and each statement runs again on its own, so each gets the answer it would have had
 * alone (a duplicate key fails only the statement that has it). Any other failure (the connection,
 * a timeout) is every statement's answer, as it would be alone. Two writes of one row never share a
 * batch: the second waits for the next, so both see what they would have seen one after the other.
 * A batch that waits (for a row lock, say) holds the queue up for STALL_MS at most.
 */
class Lane {
  private readonly queue: Pending[] = [];
  /** Batches in flight that have not stalled (at most one). */
  private fresh = 0;

  constructor(private readonly sql: Sql, private readonly pool: () => PgPool) {}

  submit(params: unknown[]): Promise<Record<string, unknown>[] | number> {
    return new Promise((resolve, reject) => {
      this.queue.push({ params, resolve, reject });
      if (this.fresh === 0) this.launch();
    });
  }

  /**
   * Sends the next batch; when it is back, the one after. A batch that stalls (a row lock another
   * transaction holds, say) stops holding up the queue after STALL_MS: the next batch goes without
   * waiting for it. alone and together settle every promise they take and never throw.
   */
  private launch(): void {
    const batch = this.next();
    this.fresh++;
    let stalled = false;
    const timer = setTimeout(() => {
      stalled = true;
      this.fresh--;
      if (this.queue.length && this.fresh === 0) this.launch();
    }, STALL_MS);
    void (batch.length === 1 ? this.alone(batch[0]) : this.together(batch)).then(() => {
      clearTimeout(timer);
      if (!stalled) this.fresh--;
      if (this.queue.length && this.fresh === 0) this.launch();
    });
  }

  /** The next batch, in order of arrival; a write to a row already in it stays queued for the next. */
  private next(): Pending[] {
    const key = this.sql.batch!.key;
    if (!key) return this.queue.splice(0, MAX_BATCH);
    const rows = new Set<string>();
    const batch: Pending[] = [];
    for (let i = 0; i < this.queue.length && batch.length < MAX_BATCH; ) {
      const p = this.queue[i];
      const row = key.map((k) => String(p.params[k])).join('\u0000');
      if (rows.has(row)) {
        i++;
        continue;
      }
      rows.add(row);
      batch.push(p);
      this.queue.splice(i, 1);
    }
    return batch;
  }

  private async alone(p: Pending): Promise<void> {
    try {
      const res = await this.pool().query({ text: this.sql.text, name: this.sql.name, values: p.params });
      p.resolve(this.sql.batch!.kind === 'rows' ? res.rows : (res.rowCount ?? 0));
    } catch (err) {
      p.reject(err);
    }
  }

  private async together(batch: Pending[]): Promise<void> {
    const form = this.sql.batch!;
    const values = form.types.map((_, i) => batch.map((p) => p.params[i]));
    let rows: Record<string, unknown>[];
    try {
      rows = (await this.pool().query({ text: form.text, name: form.name, values })).rows;
    } catch (err) {
      if (!causedByOne(err)) {
        for (const p of batch) p.reject(err);
        return;
      }
      await Promise.all(batch.map((p) => this.alone(p)));
      return;
    }
    if (form.kind === 'insert') {
      for (const p of batch) p.resolve(1);
      return;
    }
    const answers: Record<string, unknown>[][] = batch.map(() => []);
    for (const row of rows) answers[Number(row._ord) - 1]?.push(row);
    batch.forEach((p, i) => p.resolve(form.kind === 'rows' ? answers[i] : answers[i].length));
  }
}

/**
 * PostgreSQL refused the statement for its data (class 22), a constraint (23) or a transaction
 * conflict (40: deadlock, serialization): something one statement of a batch can cause alone.
 */
const causedByOne = (err: unknown): boolean => {
  const e = err as { code?: unknown; severity?: unknown };
  return typeof e?.code === 'string' && typeof e.severity === 'string' && ['22', '23', '40'].includes(e.code.slice(0, 2));
};
