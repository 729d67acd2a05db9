import { MigrationInterface, QueryRunner, Table, TableColumnOptions, TableForeignKey, TableIndex } from 'typeorm';

/**
 * The platform's tables. Written with TypeORM's Table API so the one migration runs on SQLite and
 * PostgreSQL; `database.spec.ts` checks after migrating that the entities need no further change.
 */
export class InitialSchema1764000000000 implements MigrationInterface {
  name = 'InitialSchema1764000000000';

  async up(q: QueryRunner): Promise<void> {
    const pg = q.connection.driver.options.type === 'postgres';
    const ts = pg ? 'timestamp' : 'datetime';
    const varchar = (name: string, length: number, extra: Partial<TableColumnOptions> = {}): TableColumnOptions => ({ name, type: 'varchar', length: String(length), ...extra });
    const text = (name: string, extra: Partial<TableColumnOptions> = {}): TableColumnOptions => ({ name, type: 'text', ...extra });
    // Defaults are SQL literals: SQLite stores booleans as 0/1.
    const bool = (name: string, dflt: boolean): TableColumnOptions => ({ name, type: 'boolean', default: pg ? String(dflt) : dflt ? 1 : 0 });
    const date = (name: string, extra: Partial<TableColumnOptions> = {}): TableColumnOptions => ({ name, type: ts, ...extra });

    await q.createTable(new Table({
      name: 'signing_keys',
      columns: [
        varchar('kid', 64, { isPrimary: true }), varchar('alg', 16), text('public_jwk'), text('private_sealed'), varchar('status', 16),
        date('created_at'), date('publish_until', { isNullable: true }),
      ],
      indices: [new TableIndex({ name: 'idx_signing_keys_status', columnNames: ['status'] })],
    }));

    await q.createTable(new Table({
      name: 'users',
      columns: [
        varchar('id', 36, { isPrimary: true }), varchar('email', 320, { isUnique: true }), varchar('password_hash', 255),
        varchar('name', 255, { isNullable: true }), bool('email_verified', false), bool('blocked', false), date('created_at'), date('updated_at'),
      ],
    }));

    await q.createTable(new Table({
      name: 'clients',
      columns: [
        varchar('client_id', 128, { isPrimary: true }), varchar('client_name', 255, { isNullable: true }), varchar('secret_hash', 128, { isNullable: true }),
        text('redirect_uris'), text('post_logout_redirect_uris'), text('grant_types'), varchar('token_endpoint_auth_method', 64),
        text('jwks', { isNullable: true }), varchar('jwks_uri', 2048, { isNullable: true }), varchar('scope', 2048, { isNullable: true }),
        bool('first_party', false), text('allowed_origins'), bool('refresh_token_rotation', true), { name: 'client_id_issued_at', type: 'integer' },
        date('created_at'), date('updated_at'),
      ],
    }));

    await q.createTable(new Table({
      name: 'used_assertions',
      columns: [varchar('client_id', 128, { isPrimary: true }), varchar('jti', 255, { isPrimary: true }), date('expires_at')],
      indices: [new TableIndex({ name: 'idx_used_assertions_expires_at', columnNames: ['expires_at'] })],
    }));

    await q.createTable(new Table({
      name: 'apis',
      columns: [
        varchar('id', 36, { isPrimary: true }), varchar('identifier', 512, { isUnique: true }), varchar('name', 255), text('scopes'),
        { name: 'token_lifetime', type: 'integer', default: 86400 }, bool('allow_offline_access', false), bool('is_system', false),
        date('created_at'), date('updated_at'),
      ],
    }));

    await q.createTable(new Table({
      name: 'client_grants',
      columns: [varchar('id', 36, { isPrimary: true }), varchar('client_id', 128), varchar('api_id', 36), text('scope'), date('created_at')],
      indices: [
        new TableIndex({ name: 'uq_client_grants_client_api', columnNames: ['client_id', 'api_id'], isUnique: true }),
        new TableIndex({ name: 'idx_client_grants_api_id', columnNames: ['api_id'] }),
      ],
      foreignKeys: [
        new TableForeignKey({ name: 'fk_client_grants_client', columnNames: ['client_id'], referencedTableName: 'clients', referencedColumnNames: ['client_id'], onDelete: 'CASCADE' }),
        new TableForeignKey({ name: 'fk_client_grants_api', columnNames: ['api_id'], referencedTableName: 'apis', referencedColumnNames: ['id'], onDelete: 'CASCADE' }),
      ],
    }));
  }

  async down(q: QueryRunner): Promise<void> {
    for (const t of ['client_grants', 'apis', 'used_assertions', 'clients', 'users', 'signing_keys']) await q.dropTable(t);
  }
}
