import { getDataSourceToken } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { LibTestingModule, libTestingModule } from '../../../../test/support/testing-module';
import { onPostgres } from '../../../../test/support/server';
import { AuditEvent } from './audit-event.entity';
import { AuditModule } from './audit.module';
import { AuditService } from './audit.service';

/**
 * The audit log's writes: events are buffered and written in multi-row INSERTs of at most 50 rows,
 * each read back by TypeORM as it was recorded; a write the database refuses keeps, for the next
 * flush, only the events it did not store. A real AuditModule on SQLite in memory, or on
 * PostgreSQL with TEST_DATABASE_URL.
 */
describe('AuditService', () => {
  let lib: LibTestingModule;
  let audit: AuditService;
  let ds: DataSource;
  /** The stored events in the order they were recorded (`u<n>`; ids are ordered by the millisecond only). */
  const stored = async () => (await ds.getRepository(AuditEvent).find()).sort((a, b) => Number(a.user_id!.slice(1)) - Number(b.user_id!.slice(1)));

  beforeAll(async () => {
    lib = await libTestingModule([AuditModule]);
    audit = lib.moduleRef.get(AuditService);
    ds = lib.moduleRef.get<DataSource>(getDataSourceToken());
  });
  afterAll(() => lib.close());
  beforeEach(() => ds.getRepository(AuditEvent).clear());

  it('writes each event as it was recorded, more than 50 at a time included', async () => {
    // Recorded in one synchronous run, so that no timer flushes part of them first.
    for (let i = 0; i < 123; i++) {
      void audit.record('token.issued', { userId: `u${i}`, clientId: 'web', grantType: 'refresh_token', n: i, nested: { a: [1, 'b'] } }, i % 2 ? { requestId: `r${i}`, ip: '192.0.2.1' } : undefined);
    }
    await audit.flush();
    const rows = await stored();
    expect(rows).toHaveLength(123);
    expect(rows.map((r) => r.user_id)).toEqual(Array.from({ length: 123 }, (_, i) => `u${i}`));
    expect(rows[1]).toMatchObject({ type: 'token.issued', client_id: 'web', actor: null, ip: '192.0.2.1', request_id: 'r1', data: { grantType: 'refresh_token', n: 1, nested: { a: [1, 'b'] } } });
    expect(rows[2]).toMatchObject({ ip: null, request_id: null });
    expect(rows[0].created_at).toBeInstanceOf(Date);
    expect(Math.abs(rows[0].created_at.getTime() - Date.now())).toBeLessThan(60_000);
  });

  it('keeps for the next flush only the events a refused write did not store', async () => {
    // The database refuses any event of type audit.refused (a trigger), which fails the second statement of 60 events.
    const refuse = onPostgres
      ? [
          `CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN IF NEW.type = 'audit.refused' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql`,
          `CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION refuse_audit()`,
        ]
      : [`CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events WHEN NEW.type = 'audit.refused' BEGIN SELECT RAISE(ABORT, 'refused'); END`];
    for (const sql of refuse) await ds.query(sql);
    try {
      for (let i = 0; i < 60; i++) void audit.record(i === 55 ? 'audit.refused' : 'token.issued', { userId: `u${i}` });
      await audit.flush();
      expect((await stored()).map((r) => r.user_id)).toEqual(Array.from({ length: 50 }, (_, i) => `u${i}`));
    } finally {
      await ds.query('DROP TRIGGER refuse_audit' + (onPostgres ? ' ON audit_events' : ''));
      if (onPostgres) await ds.query('DROP FUNCTION refuse_audit()');
    }
    await audit.flush();
    expect((await stored()).map((r) => r.user_id)).toEqual(Array.from({ length: 60 }, (_, i) => `u${i}`));
  });
});
