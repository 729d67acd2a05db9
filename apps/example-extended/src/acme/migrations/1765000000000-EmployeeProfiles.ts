import { MigrationInterface, QueryRunner, Table, TableIndex } from 'typeorm';

/**
 * The employee_profiles table. Written with TypeORM's Table API (not raw SQL), so the one migration
 * serves SQLite and PostgreSQL. Its timestamp is later than the IdP's migrations: they run first.
 */
export class EmployeeProfiles1765000000000 implements MigrationInterface {
  name = 'EmployeeProfiles1765000000000';

  async up(q: QueryRunner): Promise<void> {
    const pg = q.connection.driver.options.type === 'postgres';
    const ts = pg ? 'timestamp' : 'datetime';
    await q.createTable(new Table({
      name: 'employee_profiles',
      columns: [
        { name: 'user_id', type: 'varchar', length: '36', isPrimary: true },
        { name: 'department', type: 'varchar', length: '64' },
        // A default is an SQL literal: SQLite stores booleans as 0/1.
        { name: 'flagged', type: 'boolean', default: pg ? 'false' : 0 },
        { name: 'updated_at', type: ts },
      ],
      indices: [new TableIndex({ name: 'idx_employee_profiles_department', columnNames: ['department'] })],
    }));
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('employee_profiles');
  }
}
