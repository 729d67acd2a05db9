import { MigrationInterface, QueryRunner, TableColumn } from 'typeorm';

/**
 * Publish before signing: a signing key gets `activates_at`, the time it starts signing (null for
 * the published "next" key). Every existing key signed from its creation, so it activated then.
 */
export class KeyActivation1764300000000 implements MigrationInterface {
  name = 'KeyActivation1764300000000';

  async up(q: QueryRunner): Promise<void> {
    const ts = q.connection.driver.options.type === 'postgres' ? 'timestamp' : 'datetime';
    await q.addColumn('signing_keys', new TableColumn({ name: 'activates_at', type: ts, isNullable: true }));
    await q.query(`UPDATE signing_keys SET activates_at = created_at`);
  }

  async down(q: QueryRunner): Promise<void> {
    // The code before this migration knows no "next" key: one that never signed is retired (its
    // publication ends at once), so that code neither publishes it forever nor signs with it.
    await q.query(`UPDATE signing_keys SET status = 'previous', publish_until = created_at WHERE status = 'next' AND activates_at IS NULL`);
    await q.dropColumn('signing_keys', 'activates_at');
  }
}
