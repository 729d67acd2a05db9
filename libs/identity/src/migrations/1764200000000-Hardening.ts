import { MigrationInterface, QueryRunner, Table, TableIndex } from 'typeorm';

/** Brute-force counters and the audit log. */
export class Hardening1764200000000 implements MigrationInterface {
  name = 'Hardening1764200000000';

  async up(q: QueryRunner): Promise<void> {
    const ts = q.connection.driver.options.type === 'postgres' ? 'timestamp' : 'datetime';
    await q.createTable(new Table({
      name: 'lockouts',
      columns: [
        { name: 'key', type: 'varchar', length: '128', isPrimary: true },
        { name: 'failures', type: 'integer' },
        { name: 'locked_until', type: ts, isNullable: true },
        { name: 'last_failure_at', type: ts },
      ],
    }));
    await q.createTable(new Table({
      name: 'audit_events',
      columns: [
        { name: 'id', type: 'varchar', length: '36', isPrimary: true },
        { name: 'type', type: 'varchar', length: '64' },
        { name: 'created_at', type: ts },
        { name: 'user_id', type: 'varchar', length: '36', isNullable: true },
        { name: 'client_id', type: 'varchar', length: '128', isNullable: true },
        { name: 'ip', type: 'varchar', length: '64', isNullable: true },
        { name: 'actor', type: 'varchar', length: '128', isNullable: true },
        { name: 'request_id', type: 'varchar', length: '64', isNullable: true },
        { name: 'data', type: 'text' },
      ],
      indices: [
        new TableIndex({ name: 'idx_audit_events_type', columnNames: ['type', 'id'] }),
        new TableIndex({ name: 'idx_audit_events_user', columnNames: ['user_id', 'id'] }),
        new TableIndex({ name: 'idx_audit_events_client', columnNames: ['client_id', 'id'] }),
      ],
    }));
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('audit_events');
    await q.dropTable('lockouts');
  }
}
