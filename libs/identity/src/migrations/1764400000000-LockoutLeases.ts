import { MigrationInterface, QueryRunner, TableColumn } from 'typeorm';

/**
 * Lockout counters lease their attempts (libs/core/src/lockout.ts): each key's budget of attempts
 * still allowed is handed to the instances in slots that belong to a 30-second epoch. `lease_end`
 * is the end of the current epoch, `leased` the slots handed out in it, `leased_next` those handed
 * out for the epoch after (in the current one's last seconds).
 */
export class LockoutLeases1764400000000 implements MigrationInterface {
  name = 'LockoutLeases1764400000000';

  async up(q: QueryRunner): Promise<void> {
    const ts = q.connection.driver.options.type === 'postgres' ? 'timestamp' : 'datetime';
    await q.addColumns('lockouts', [
      new TableColumn({ name: 'lease_end', type: ts, isNullable: true }),
      new TableColumn({ name: 'leased', type: 'integer', default: 0 }),
      new TableColumn({ name: 'leased_next', type: 'integer', default: 0 }),
    ]);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('lockouts', 'leased_next');
    await q.dropColumn('lockouts', 'leased');
    await q.dropColumn('lockouts', 'lease_end');
  }
}
