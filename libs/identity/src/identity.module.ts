import { DynamicModule, Module, Type } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { CoreModule, IdpConfig } from '@idp/core';
import type { UserStore } from '@idp/users';
import type { ApiScope } from '@idp/resources';
import { DataSource } from 'typeorm';
import { KeysModule } from '@idp/keys';
import { UsersModule } from '@idp/users';
import { ClientsModule } from '@idp/clients';
import { ResourcesModule } from '@idp/resources';
import { TokenModule } from '@idp/token';
import { SessionModule } from '@idp/session';
import { ConsentModule } from '@idp/consent';
import { AuthorizationModule } from '@idp/authorization';
import { dataSourceOptions, runMigrations } from './database';
import { SqliteCheckpointer } from './sqlite-checkpointer';
import { CorsPolicy } from './http/cors.policy';
import { AdminOpenApi, AdminOpenApiController } from './admin/openapi.controller';

/** How a company's application composes the IdP (see docs/extending.md). */
export interface IdentityOptions {
  /** The extension's own TypeORM entities, added to the IdP's. */
  entities?: Function[];
  /** The extension's own migrations (classes), run after the IdP's at boot. */
  migrations?: Function[];
  /** Users from elsewhere: a class implementing UserStore. */
  userStore?: Type<UserStore>;
  /** Templates (login, consent, logout, logged-out, error; partials/head, partials/foot) and assets that replace the built-in ones, by file name. */
  theme?: { views?: string; assets?: string };
  /** Scopes added to the admin API for the extension's own admin routes. */
  adminScopes?: ApiScope[];
}

export const IDENTITY_OPTIONS = Symbol('IDENTITY_OPTIONS');
import { DiscoveryController } from './discovery.controller';
import { HealthController } from './health.controller';
import { TerminusModule } from '@nestjs/terminus';
import { AdminBootstrap } from './admin-bootstrap';
import { AuditModule } from './audit/audit.module';
import { ClientsAdminController } from './admin/clients.admin.controller';
import { UsersAdminController } from './admin/users.admin.controller';
import { ApisAdminController } from './admin/apis.admin.controller';
import { ClientGrantsAdminController } from './admin/client-grants.admin.controller';
import { KeysAdminController } from './admin/keys.admin.controller';
import { UserGrantsAdminController } from './admin/user-grants.admin.controller';

/**
 * The whole IdP as one module: the database, every lib module, the admin API, discovery and
 * health. `apps/idp` is this and nothing else; a company's app imports it beside its own modules:
 *
 *     @Module({ imports: [IdentityModule.forRoot({ entities: [Profile] }), ProfilesModule] })
 *     export class AppModule {}
 *     void runIdentityApp(AppModule);   // or createIdentityApp(AppModule) for the app object
 */
@Module({})
export class IdentityModule {
  static forRoot(options: IdentityOptions = {}): DynamicModule {
    return {
      module: IdentityModule,
      imports: [
        CoreModule.forRoot(undefined, undefined, { userStore: options.userStore, adminScopes: options.adminScopes }),
        // Pending migrations run at boot (runMigrations: one instance at a time); the schema is never
        // synchronized.
        TypeOrmModule.forRootAsync({
          inject: [IdpConfig],
          useFactory: (config: IdpConfig) => {
            const base = dataSourceOptions(config.databaseUrl, { sqliteSynchronous: config.sqliteSynchronous, sqliteCheckpoint: config.sqliteCheckpoint });
            return {
              ...base,
              entities: [...(base.entities as Function[]), ...(options.entities ?? [])],
              migrations: [...(base.migrations as Function[]), ...(options.migrations ?? [])],
              migrationsRun: false,
            };
          },
          dataSourceFactory: async (options) => {
            const ds = new DataSource(options!);
            await ds.initialize();
            try {
              await runMigrations(ds);
            } catch (err) {
              await ds.destroy().catch(() => undefined);
              throw err;
            }
            return ds;
          },
        }),
        KeysModule,
        UsersModule,
        ClientsModule,
        ResourcesModule,
        SessionModule,
        ConsentModule,
        AuthorizationModule,
        TokenModule,
        AuditModule,
        TerminusModule.forRoot({ logger: false }),
      ],
      controllers: [
        DiscoveryController, HealthController,
        ClientsAdminController, UsersAdminController, ApisAdminController, ClientGrantsAdminController, KeysAdminController, UserGrantsAdminController,
        AdminOpenApiController,
      ],
      providers: [AdminBootstrap, SqliteCheckpointer, CorsPolicy, AdminOpenApi, { provide: IDENTITY_OPTIONS, useValue: options }],
      exports: [IDENTITY_OPTIONS],
    };
  }
}
