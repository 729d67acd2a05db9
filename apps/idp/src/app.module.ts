import { DynamicModule, Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { CoreModule, IdpConfig, JsonLogger, gateSqliteTransactions } from '@idp/core';
import { DataSource } from 'typeorm';
import { KeysModule } from '@idp/keys';
import { UsersModule } from '@idp/users';
import { ClientsModule } from '@idp/clients';
import { ResourcesModule } from '@idp/resources';
import { TokenModule } from '@idp/token';
import { SessionModule } from '@idp/session';
import { ConsentModule } from '@idp/consent';
import { AuthorizationModule } from '@idp/authorization';
import { dataSourceOptions } from './database';
import { DiscoveryController } from './discovery.controller';
import { HealthController } from './health.controller';
import { AdminBootstrap } from './admin-bootstrap';
import { AuditModule } from './audit/audit.module';
import { ClientsAdminController } from './admin/clients.admin.controller';
import { UsersAdminController } from './admin/users.admin.controller';
import { ApisAdminController } from './admin/apis.admin.controller';
import { ClientGrantsAdminController } from './admin/client-grants.admin.controller';
import { KeysAdminController } from './admin/keys.admin.controller';
import { UserGrantsAdminController } from './admin/user-grants.admin.controller';

/** The composition root: the database, every lib module, the admin API, discovery and health. */
@Module({})
export class AppModule {
  static forRoot(config: IdpConfig, logger?: JsonLogger): DynamicModule {
    return {
      module: AppModule,
      imports: [
        CoreModule.forRoot(config, logger),
        // Pending migrations run at boot; the schema is never synchronized.
        TypeOrmModule.forRootAsync({
          useFactory: () => ({ ...dataSourceOptions(config.databaseUrl), migrationsRun: true }),
          dataSourceFactory: async (options) => {
            const ds = new DataSource(options!);
            gateSqliteTransactions(ds);
            return ds.initialize();
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
      ],
      controllers: [
        DiscoveryController, HealthController,
        ClientsAdminController, UsersAdminController, ApisAdminController, ClientGrantsAdminController, KeysAdminController, UserGrantsAdminController,
      ],
      providers: [AdminBootstrap],
    };
  }
}
