import { Column, DataSource, Entity, PrimaryColumn } from 'typeorm';
import { After, DirectSql, DirectTx } from './direct-sql';
import { gateSqliteTransactions } from './sqlite-gate';
import { freshDatabase, onPostgres } from '../../../test/support/server';

@Entity('direct_sql_rows')
class Row {
  @PrimaryColumn({ type: 'varchar', length: 64 }) id: string;
  @Column({ type: 'simple-json' }) scopes: string[];
  @Column({ type: 'varchar', length: 64, nullable: true }) note: string | null;
  @Column({ type: 'integer' }) n: number;
  @Column() at: Date;
  @Column({ nullable: true, type: Date }) used_at: Date | null;
}

@Entity('direct_sql_children')
class Child {
  @PrimaryColumn({ type: 'varchar', length: 64 }) id: string;
  @Column({ type: 'varchar', length: 64 }) row_id: string;
  @Column({ type: 'varchar', length: 64 }) kind: string;
  @Column({ type: 'simple-json' }) tags: Record<string, string[]>;
  @Column({ nullable: true, type: Date }) gone_at: Date | null;
}

const where = onPostgres ? 'PostgreSQL' : 'SQLite';

describe(`DirectSql (${where})`, () => {
  let ds: DataSource;
  let drop: () => Promise<void>;
  let direct: DirectSql;
  const row = (id: string, extra: Partial<Row> = {}): Row => ({ id, scopes: ['openid', 'x y'], note: null, n: 7, at: new Date('2026-11-25T10:11:12.345Z'), used_at: null, ...extra });

  beforeEach(async () => {
    const db = await freshDatabase();
    drop = db.drop;
    const url = new URL(db.url);
    const schema = url.searchParams.get('schema') ?? undefined;
    url.searchParams.delete('schema');
    ds = db.url.startsWith('sqlite:')
      ? new DataSource({ type: 'better-sqlite3', database: db.url.slice('sqlite:'.length), entities: [Row, Child], synchronize: true })
      : new DataSource({ type: 'postgres', url: url.toString(), schema, extra: { options: `-c search_path=${schema}` }, entities: [Row, Child], synchronize: true });
    gateSqliteTransactions(ds);
    await ds.initialize();
    direct = DirectSql.of(ds);
  });
  afterEach(async () => {
    await ds.destroy();
    await drop();
  });

  it('writes rows TypeORM reads back the same, and reads rows TypeORM wrote', async () => {
    await direct.table(Row).insert(row('a'));
    expect(await ds.getRepository(Row).findOneByOrFail({ id: 'a' })).toEqual(Object.assign(new Row(), row('a')));
    await ds.getRepository(Row).insert(row('b', { note: 'n', used_at: new Date('2027-01-02T03:04:05.006Z') }));
    expect(await direct.table(Row).findOne({ id: 'b' })).toEqual(row('b', { note: 'n', used_at: new Date('2027-01-02T03:04:05.006Z') }));
    expect(await direct.table(Row).findOne({ id: 'none' })).toBeNull();
  });

  it('updates with IS NULL conditions (exactly once), upserts and deletes', async () => {
    const t = direct.table(Row);
    await t.insert(row('a'));
    const used = new Date('2026-11-25T12:00:00.000Z');
    expect(await t.update({ id: 'a', used_at: null }, { used_at: used })).toBe(1);
    expect(await t.update({ id: 'a', used_at: null }, { used_at: new Date() })).toBe(0);
    expect((await t.findOne({ id: 'a' }))?.used_at).toEqual(used);
    await t.upsert(row('a', { n: 8, scopes: ['z'] }), ['id']);
    await t.upsert(row('c'), ['id']);
    expect(await t.findOne({ id: 'a' })).toMatchObject({ n: 8, scopes: ['z'], used_at: null });
    expect(await ds.getRepository(Row).count()).toBe(2);
    expect(await t.delete({ id: 'c' })).toBe(1);
    expect(await ds.getRepository(Row).count()).toBe(1);
  });

  it('matches After(value) as greater than, in reads and in conditional writes', async () => {
    const t = direct.table(Row);
    const at = new Date('2026-11-25T10:11:12.345Z');
    await t.insert(row('a', { at }));
    expect(await t.findOne({ id: 'a', at: new After(new Date(at.getTime() - 1)) })).toEqual(row('a', { at }));
    expect(await t.findOne({ id: 'a', at: new After(at) })).toBeNull();
    expect(await t.findOne({ id: 'a', at })).toEqual(row('a', { at })); // the same shape with = is another statement
    expect(await t.update({ id: 'a', used_at: null, at: new After(at) }, { used_at: new Date() })).toBe(0);
    expect(await t.updateThenInsert({ id: 'a', used_at: null, at: new After(new Date(at.getTime() - 1000)) }, { used_at: new Date() }, t, row('b'))).toBe(true);
    expect(await t.findOne({ id: 'b' })).toEqual(row('b'));
  });

  it('commits a transaction whole, or rolls it back whole', async () => {
    const t = direct.table(Row);
    await direct.transaction(async (tx) => {
      await t.insert(row('a'), tx);
      await t.update({ id: 'a' }, { n: 9 }, tx);
    });
    await expect(
      direct.transaction(async (tx) => {
        await t.insert(row('b'), tx);
        await t.update({ id: 'a' }, { n: 10 }, tx);
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    expect(await ds.getRepository(Row).find({ order: { id: 'ASC' } })).toEqual([Object.assign(new Row(), row('a', { n: 9 }))]);
  });

  it('keeps its statements out of an open TypeORM transaction (and out of its rollback)', async () => {
    const outside = new Promise((resolve) => setTimeout(() => resolve(direct.table(Row).insert(row('outside'))), 2));
    await expect(
      ds.transaction(async (m) => {
        await m.getRepository(Row).insert(row('inside'));
        await new Promise((r) => setTimeout(r, 20));
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    await outside;
    expect((await ds.getRepository(Row).find()).map((r) => r.id)).toEqual(['outside']);
  });

  it('keeps statements from outside out of an open DirectSql transaction (and out of its rollback)', async () => {
    const t = direct.table(Row);
    // Another request writes and reads 2 ms after the transaction opened: it sees none of it.
    const outside = new Promise<unknown>((resolve) =>
      setTimeout(() => resolve(t.insert(row('outside')).then(() => t.findOne({ id: 'inside' }))), 2),
    );
    await expect(
      direct.transaction(async (tx) => {
        await t.insert(row('inside'), tx);
        await new Promise((r) => setTimeout(r, 20));
        expect(await t.findOne({ id: 'inside' }, tx)).toEqual(row('inside'));
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    expect(await outside).toBeNull();
    expect((await ds.getRepository(Row).find()).map((r) => r.id)).toEqual(['outside']);
  });

  // On PostgreSQL the ended transaction's client is back in the pool: this shows as skipped there, with the reason.
  const onSqlite = onPostgres ? (name: string, fn: () => Promise<void>) => it.skip(`${name} [SQLite only: its gate runs the statements]`, fn) : it;
  onSqlite('refuses a statement of a DirectSql transaction that has ended (SQLite: it would run outside it)', async () => {
    const t = direct.table(Row);
    let kept: DirectTx | undefined;
    await direct.transaction(async (tx) => {
      kept = tx;
      await t.insert(row('a'), tx);
    });
    await expect(t.insert(row('b'), kept)).rejects.toThrow('a statement of a transaction that has ended');
    expect((await ds.getRepository(Row).find()).map((r) => r.id)).toEqual(['a']);
  });

  it('lets exactly one of 20 concurrent conditional updates win', async () => {
    const t = direct.table(Row);
    await t.insert(row('a'));
    const results = await Promise.all(Array.from({ length: 20 }, () => direct.transaction((tx) => t.update({ id: 'a', used_at: null }, { used_at: new Date() }, tx))));
    expect(results.filter((n) => n === 1)).toHaveLength(1);
  });

  it('inserts many rows in statements of at most 50, as TypeORM reads them back', async () => {
    const rows = Array.from({ length: 123 }, (_, i) => row(`m${String(i).padStart(3, '0')}`, { n: i, note: i % 2 ? 'odd' : null }));
    await direct.table(Row).insertMany(rows);
    await direct.table(Row).insertMany([]);
    expect(await ds.getRepository(Row).find({ order: { id: 'ASC' } })).toEqual(rows.map((r) => Object.assign(new Row(), r)));
    // A failing statement (a duplicate key) writes none of its rows.
    const failed = await direct.table(Row).insertMany([row('x1'), row('m000')]).then(() => 'resolved', (err: Error) => err.message);
    expect(failed).toMatch(/UNIQUE|duplicate key/);
    expect(await direct.table(Row).findOne({ id: 'x1' })).toBeNull();
  });

  it('reads a row and the matching row of another table in one statement (findOneWith), or null for either', async () => {
    const t = direct.table(Row);
    const children = direct.table(Child);
    await t.insert(row('a'));
    await t.insert(row('b'));
    const child = { id: 'c1', row_id: 'a', kind: 'k1', tags: { '': ['openid'], api: ['read'] }, gone_at: null };
    await children.insert(child);
    await children.insert({ ...child, id: 'c2', kind: 'k2', gone_at: new Date('2026-11-25T01:02:03.004Z') });
    const join = (kind: string, goneAt: Date | null = null) => ({ table: children, on: { row_id: 'id' as const }, where: { kind, gone_at: goneAt } });
    expect(await t.findOneWith({ id: 'a' }, join('k1'))).toEqual({ row: row('a'), joined: child });
    // The join's own conditions (an IS NULL among them) narrow it: k2 is gone, so it is not found.
    expect(await t.findOneWith({ id: 'a' }, join('k2'))).toEqual({ row: row('a'), joined: null });
    expect(await t.findOneWith({ id: 'b' }, join('k1'))).toEqual({ row: row('b'), joined: null });
    expect(await t.findOneWith({ id: 'none' }, join('k1'))).toBeNull();
    expect(await t.findOneWith({ id: 'a', used_at: null }, join('k1'))).toEqual({ row: row('a'), joined: child });
  });

  it('uses a row up and adds another atomically (updateThenInsert): once, never twice, never half', async () => {
    const t = direct.table(Row);
    await t.insert(row('a'));
    const used = new Date('2026-11-25T12:00:00.000Z');
    expect(await t.updateThenInsert({ id: 'a', used_at: null }, { used_at: used }, t, row('b', { note: 'from a' }))).toBe(true);
    expect(await t.findOne({ id: 'a' })).toEqual(row('a', { used_at: used }));
    // The added row is exactly what insert() would have written (types come from the target columns).
    expect(await ds.getRepository(Row).findOneByOrFail({ id: 'b' })).toEqual(Object.assign(new Row(), row('b', { note: 'from a' })));
    // Already used: nothing is changed, nothing added.
    expect(await t.updateThenInsert({ id: 'a', used_at: null }, { used_at: new Date() }, t, row('c'))).toBe(false);
    expect(await t.findOne({ id: 'c' })).toBeNull();
    expect((await t.findOne({ id: 'a' }))?.used_at).toEqual(used);
    // The INSERT fails (the key exists): the UPDATE is undone with it.
    await t.insert(row('d'));
    // Not `.rejects.toThrow()`: better-sqlite3's SqliteError is not a real Error, and its native
    // part keeps the constructor of the first test file that loaded it in this jest worker, so
    // in a later file `instanceof Error` is false and jest reports "did not throw".
    const outcome = await t.updateThenInsert({ id: 'd', used_at: null }, { used_at: new Date() }, t, row('b')).then(
      (changed) => ({ changed, rows: [] as unknown[] }),
      (err: Error) => ({ error: err.message }),
    );
    if (!('error' in outcome)) outcome.rows = await ds.getRepository(Row).find({ order: { id: 'ASC' } });
    expect(outcome).toEqual({ error: expect.stringMatching(/UNIQUE|duplicate key/) });
    expect((await t.findOne({ id: 'd' }))?.used_at).toBeNull();
    // 20 at once: exactly one wins, and exactly one row is added.
    await t.insert(row('e'));
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => t.updateThenInsert({ id: 'e', used_at: null }, { used_at: new Date() }, t, row(`e${i}`))));
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(await ds.getRepository(Row).count()).toBe(5); // a, b, d, e and one of e0…e19
  });

  // PostgreSQL only: statements of one shape that arrive while one is in flight go as one batch (Lane).
  // On SQLite (where statements run one at a time anyway) these show as skipped, with the reason.
  const onPg = onPostgres ? it : (name: string, fn: () => Promise<void>) => it.skip(`${name} [PostgreSQL only: set TEST_DATABASE_URL]`, fn);
  /** Counts the statements sent to the pool. */
  const counting = () => {
    const pool = (ds.driver as unknown as { master: { query: (...a: unknown[]) => unknown } }).master;
    const real = pool.query.bind(pool);
    const sent: string[] = [];
    pool.query = (q: unknown, ...rest: unknown[]) => {
      sent.push(typeof q === 'string' ? q : (q as { text: string }).text);
      return real(q, ...rest);
    };
    return sent;
  };

  onPg('answers concurrent reads of one shape in batches, each with its own row, exactly as alone', async () => {
    const t = direct.table(Row);
    const at = new Date('2026-11-25T10:11:12.345Z');
    for (let i = 0; i < 10; i++) await t.insert(row(`r${i}`, { n: i, note: i % 2 ? `n${i}` : null, used_at: i % 3 ? null : at }));
    const alone = [];
    for (let i = 0; i < 12; i++) alone.push(await t.findOne({ id: `r${i}`, at: new After(new Date(at.getTime() - 1)) }));
    const sent = counting();
    const together = await Promise.all(Array.from({ length: 12 }, (_, i) => t.findOne({ id: `r${i}`, at: new After(new Date(at.getTime() - 1)) })));
    expect(together).toEqual(alone);
    expect(together.slice(10)).toEqual([null, null]);
    expect(together[3]).toEqual(row('r3', { n: 3, note: 'n3', used_at: at }));
    // The first goes alone, the other eleven wait for it and go together.
    expect(sent).toHaveLength(2);
    expect(sent[1]).toMatch(/unnest/);
    // The same key twice in one batch: both get the row.
    const twice = await Promise.all([t.findOne({ id: 'r1' }), t.findOne({ id: 'r1' }), t.findOne({ id: 'r1' })]);
    expect(twice).toEqual([row('r1', { n: 1, note: 'n1' }), row('r1', { n: 1, note: 'n1' }), row('r1', { n: 1, note: 'n1' })]);
  });

  onPg('batches reads with a join (findOneWith), each with its own joined row or null', async () => {
    const t = direct.table(Row);
    const children = direct.table(Child);
    for (const id of ['a', 'b', 'c']) await t.insert(row(id));
    await children.insert({ id: 'c1', row_id: 'a', kind: 'k1', tags: { '': ['openid'] }, gone_at: null });
    await children.insert({ id: 'c2', row_id: 'b', kind: 'k2', tags: {}, gone_at: null });
    const join = (kind: string) => ({ table: children, on: { row_id: 'id' as const }, where: { kind, gone_at: null } });
    const sent = counting();
    const got = await Promise.all([t.findOneWith({ id: 'a' }, join('k1')), t.findOneWith({ id: 'a' }, join('k2')), t.findOneWith({ id: 'b' }, join('k2')), t.findOneWith({ id: 'c' }, join('k1')), t.findOneWith({ id: 'x' }, join('k1'))]);
    expect(got).toEqual([
      { row: row('a'), joined: { id: 'c1', row_id: 'a', kind: 'k1', tags: { '': ['openid'] }, gone_at: null } },
      { row: row('a'), joined: null },
      { row: row('b'), joined: { id: 'c2', row_id: 'b', kind: 'k2', tags: {}, gone_at: null } },
      { row: row('c'), joined: null },
      null,
    ]);
    expect(sent).toHaveLength(2);
  });

  onPg('inserts concurrent rows in one batch; a row PostgreSQL refuses fails alone, and the others are written', async () => {
    const t = direct.table(Row);
    await t.insert(row('taken'));
    const sent = counting();
    const rows = Array.from({ length: 8 }, (_, i) => row(`i${i}`, { n: i, note: i % 2 ? null : `note ${i}` }));
    const outcomes = await Promise.all(
      [row('first'), ...rows.slice(0, 4), row('taken'), row('long', { note: 'x'.repeat(65) }), ...rows.slice(4)].map((r) =>
        t.insert(r).then(() => 'ok', (err: { code?: string }) => err.code),
      ),
    );
    expect(outcomes).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', '23505', '22001', 'ok', 'ok', 'ok', 'ok']);
    expect(await ds.getRepository(Row).find({ order: { id: 'ASC' } })).toEqual(
      [row('first'), ...rows, row('taken')].sort((a, b) => a.id.localeCompare(b.id)).map((r) => Object.assign(new Row(), r)),
    );
    // first alone; the batch of ten, refused whole; then each of the ten on its own.
    expect(sent).toHaveLength(12);
    const clean = counting();
    await Promise.all(Array.from({ length: 6 }, (_, i) => t.insert(row(`j${i}`))));
    expect(clean).toHaveLength(2);
    expect(await ds.getRepository(Row).count()).toBe(16);
  });

  onPg('lets one of concurrent conditional writes of one row win, and runs each write of a row in turn', async () => {
    const t = direct.table(Row);
    for (const id of ['a', 'b', 'c']) await t.insert(row(id));
    const used = () => ({ used_at: new Date() });
    const sent = counting();
    const results = await Promise.all([
      ...Array.from({ length: 5 }, () => t.update({ id: 'a', used_at: null }, used())),
      t.update({ id: 'b', used_at: null }, used()),
      t.update({ id: 'c', used_at: null }, used()),
      t.update({ id: 'missing', used_at: null }, used()),
    ]);
    expect(results).toEqual([1, 0, 0, 0, 0, 1, 1, 0]);
    // a alone; then a, b, c, missing together; then the three other writes of a, one batch each.
    expect(sent).toHaveLength(5);
    // Unconditional writes of one row: each changes it, one after the other (the last one stays).
    const ns = await Promise.all(Array.from({ length: 4 }, (_, i) => t.update({ id: 'b' }, { n: 100 + i })));
    expect(ns).toEqual([1, 1, 1, 1]);
    expect((await t.findOne({ id: 'b' }))?.n).toBe(103);
  });

  onPg('batches updateThenInsert: each row used up once, and exactly its winners add their rows', async () => {
    const t = direct.table(Row);
    const children = direct.table(Child);
    for (const id of ['a', 'b', 'c', 'd']) await t.insert(row(id));
    await t.update({ id: 'd' }, { used_at: new Date() });
    const child = (id: string, rowId: string) => ({ id, row_id: rowId, kind: 'k', tags: { at: [id] }, gone_at: null });
    const sent = counting();
    const results = await Promise.all([
      t.updateThenInsert({ id: 'a', used_at: null }, { used_at: new Date() }, children, child('a1', 'a')),
      t.updateThenInsert({ id: 'a', used_at: null }, { used_at: new Date() }, children, child('a2', 'a')),
      t.updateThenInsert({ id: 'b', used_at: null }, { used_at: new Date() }, children, child('b1', 'b')),
      t.updateThenInsert({ id: 'c', used_at: null }, { used_at: new Date() }, children, child('c1', 'c')),
      t.updateThenInsert({ id: 'c', used_at: null }, { used_at: new Date() }, children, child('c2', 'c')),
      t.updateThenInsert({ id: 'd', used_at: null }, { used_at: new Date() }, children, child('d1', 'd')),
    ]);
    expect(results).toEqual([true, false, true, true, false, false]);
    expect(sent.length).toBeLessThanOrEqual(4);
    expect((await ds.getRepository(Child).find({ order: { id: 'ASC' } })).map((c) => ({ ...c }))).toEqual([child('a1', 'a'), child('b1', 'b'), child('c1', 'c')]);
    // An INSERT that fails (its key exists) undoes its batch, and each runs again alone: only it fails.
    for (const id of ['e', 'f']) await t.insert(row(id));
    const outcomes = await Promise.all([
      t.updateThenInsert({ id: 'x', used_at: null }, { used_at: new Date() }, children, child('x1', 'x')),
      t.updateThenInsert({ id: 'e', used_at: null }, { used_at: new Date() }, children, child('a1', 'e')),
      t.updateThenInsert({ id: 'f', used_at: null }, { used_at: new Date() }, children, child('f1', 'f')),
    ].map((p) => p.then((changed) => changed, (err: { code?: string }) => err.code)));
    expect(outcomes).toEqual([false, '23505', true]);
    expect((await t.findOne({ id: 'e' }))?.used_at).toBeNull();
    expect((await t.findOne({ id: 'f' }))?.used_at).toBeInstanceOf(Date);
  });

  onPg('does not let a write that waits for a row lock hold up the other writes of its shape', async () => {
    const t = direct.table(Row);
    for (const id of ['a', 'b', 'c']) await t.insert(row(id));
    // Another transaction holds a's row lock.
    const pool = (ds.driver as unknown as { master: { connect(): Promise<{ query(q: string): Promise<unknown>; release(): void }> } }).master;
    const other = await pool.connect();
    await other.query('BEGIN');
    await other.query(`SELECT * FROM direct_sql_rows WHERE id = 'a' FOR UPDATE`);
    const order: string[] = [];
    const blocked = t.update({ id: 'a', used_at: null }, { used_at: new Date() }).then((n) => order.push(`a:${n}`));
    const others = Promise.all(['b', 'c'].map((id) => t.update({ id, used_at: null }, { used_at: new Date() }).then((n) => order.push(`${id}:${n}`))));
    await others;
    expect(order.sort()).toEqual(['b:1', 'c:1']);
    await other.query('COMMIT');
    other.release();
    await blocked;
    expect(order).toEqual(['b:1', 'c:1', 'a:1']);
  });
});
