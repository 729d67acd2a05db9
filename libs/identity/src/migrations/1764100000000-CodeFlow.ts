import { MigrationInterface, QueryRunner, Table, TableColumnOptions, TableIndex } from 'typeorm';

/** Tables of the Authorization Code Flow: sessions, consents, codes, refresh tokens, the access-token deny-list. */
export class CodeFlow1764100000000 implements MigrationInterface {
  name = 'CodeFlow1764100000000';

  async up(q: QueryRunner): Promise<void> {
    const pg = q.connection.driver.options.type === 'postgres';
    const ts = pg ? 'timestamp' : 'datetime';
    const varchar = (name: string, length: number, extra: Partial<TableColumnOptions> = {}): TableColumnOptions => ({ name, type: 'varchar', length: String(length), ...extra });
    const text = (name: string): TableColumnOptions => ({ name, type: 'text' });
    const int = (name: string): TableColumnOptions => ({ name, type: 'integer' });
    const date = (name: string, extra: Partial<TableColumnOptions> = {}): TableColumnOptions => ({ name, type: ts, ...extra });

    await q.createTable(new Table({
      name: 'sessions',
      columns: [varchar('sid_hash', 64, { isPrimary: true }), text('data'), date('expires_at'), varchar('user_id', 36, { isNullable: true })],
      indices: [new TableIndex({ name: 'idx_sessions_expires_at', columnNames: ['expires_at'] }), new TableIndex({ name: 'idx_sessions_user_id', columnNames: ['user_id'] })],
    }));

    await q.createTable(new Table({
      name: 'consents',
      columns: [varchar('id', 36, { isPrimary: true }), varchar('user_id', 36), varchar('client_id', 128), text('scopes'), date('granted_at'), date('updated_at')],
      indices: [
        new TableIndex({ name: 'uq_consents_user_client', columnNames: ['user_id', 'client_id'], isUnique: true }),
        new TableIndex({ name: 'idx_consents_client_id', columnNames: ['client_id'] }),
      ],
    }));

    await q.createTable(new Table({
      name: 'authorization_codes',
      columns: [
        varchar('code_hash', 64, { isPrimary: true }), varchar('client_id', 128), varchar('user_id', 36), varchar('redirect_uri', 2048),
        varchar('code_challenge', 128, { isNullable: true }), text('scopes'), varchar('audience', 512, { isNullable: true }), varchar('nonce', 512, { isNullable: true }),
        int('auth_time'), varchar('sid', 64), varchar('amr', 255), date('expires_at'), date('used_at', { isNullable: true }),
        varchar('access_jti', 64, { isNullable: true }), date('access_exp', { isNullable: true }), date('created_at'),
      ],
      indices: [new TableIndex({ name: 'idx_authorization_codes_expires_at', columnNames: ['expires_at'] })],
    }));

    await q.createTable(new Table({
      name: 'refresh_tokens',
      columns: [
        varchar('token_hash', 64, { isPrimary: true }), varchar('family_id', 36), varchar('client_id', 128), varchar('user_id', 36), text('scopes'),
        varchar('audience', 512, { isNullable: true }), varchar('sid', 64), int('auth_time'), varchar('amr', 255), varchar('code_hash', 64, { isNullable: true }),
        date('created_at'), date('expires_at'), date('used_at', { isNullable: true }), date('revoked_at', { isNullable: true }),
        varchar('access_jti', 64, { isNullable: true }), date('access_exp', { isNullable: true }),
      ],
      indices: [
        new TableIndex({ name: 'idx_refresh_tokens_family_id', columnNames: ['family_id'] }),
        new TableIndex({ name: 'idx_refresh_tokens_user_client', columnNames: ['user_id', 'client_id'] }),
        new TableIndex({ name: 'idx_refresh_tokens_code_hash', columnNames: ['code_hash'] }),
      ],
    }));

    await q.createTable(new Table({
      name: 'revoked_tokens',
      columns: [varchar('jti', 64, { isPrimary: true }), date('expires_at')],
      indices: [new TableIndex({ name: 'idx_revoked_tokens_expires_at', columnNames: ['expires_at'] })],
    }));
  }

  async down(q: QueryRunner): Promise<void> {
    for (const t of ['revoked_tokens', 'refresh_tokens', 'authorization_codes', 'consents', 'sessions']) await q.dropTable(t);
  }
}
