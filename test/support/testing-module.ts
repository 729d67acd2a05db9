import { randomBytes } from 'node:crypto';
import type { DynamicModule, ForwardReference, Type } from '@nestjs/common';
import { Test, TestingModule } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { CoreModule, IdpConfig, loadConfig } from '@idp/core';
import { dataSourceOptions } from '@idp/identity';
import { freshDatabase } from './server';

export interface LibTestingModule {
  moduleRef: TestingModule;
  config: IdpConfig;
  /** SQLite in memory, or (TEST_DATABASE_URL) a fresh PostgreSQL schema. */
  databaseUrl: string;
  /** Closes the module and drops its schema. */
  close(): Promise<void>;
}

/**
 * A Nest testing module of some libs, for their unit specs: the real CoreModule and a real
 * database, fresh for the module: SQLite in memory, or a new PostgreSQL schema when
 * TEST_DATABASE_URL is set (dropped at close). Migrations run; the options are the server's
 * (dataSourceOptions: on SQLite, transactions kept apart by SqliteTransactions), so concurrent
 * requests behave as they do in the server.
 */
export async function libTestingModule(imports: (Type<unknown> | DynamicModule | ForwardReference)[], env: Record<string, string> = {}): Promise<LibTestingModule> {
  const db = await freshDatabase();
  const config = loadConfig({ NODE_ENV: 'test', ISSUER: 'http://idp.test', DATABASE_URL: db.url, IDP_SECRET_KEY: randomBytes(32).toString('base64url'), ...env });
  let moduleRef: TestingModule | undefined;
  try {
    moduleRef = await Test.createTestingModule({
      imports: [
        CoreModule.forRoot(config),
        TypeOrmModule.forRootAsync({
          useFactory: () => ({ ...dataSourceOptions(db.url), migrationsRun: true }),
          dataSourceFactory: (options) => new DataSource(options!).initialize(),
        }),
        ...imports,
      ],
    }).compile();
    await moduleRef.init();
  } catch (err) {
    await moduleRef?.close().catch(() => undefined);
    await db.drop().catch(() => undefined);
    throw err;
  }
  const ref = moduleRef;
  return {
    moduleRef: ref, config, databaseUrl: db.url,
    close: async () => {
      await ref.close();
      await db.drop();
    },
  };
}
