import { DynamicModule, Global, Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { ConfigModule, registerAs } from '@nestjs/config';
import { IdpConfig, loadConfig } from './config';
import { IdpEvents } from './events';
import { JsonLogger } from './logger';
import { LockoutService } from './lockout';
import { IDP_OVERRIDES, IdpOverrides } from './overrides';
import { IdpBootContext } from './boot-context';
import { OutboundClient } from './outbound';
import { BootClock, Clock, SystemClock } from './clock';

/** IdpConfig's namespace in ConfigService: `config.get<IdpConfig>('idp')`, `config.get('idp.issuer')`. */
export const IDP_CONFIG_NAMESPACE = 'idp';

/**
 * Provides the validated configuration, the logger, the overrides, the clock, the event bus and the
 * outbound HTTP client to every module. Without an explicit configuration, the one of the application
 * being created (IdpBootContext) is used, else the environment's. The clock is `overrides.clock`, else
 * the one the application is created with (BootClock), else the system's.
 */
@Global()
@Module({})
export class CoreModule {
  static forRoot(config?: IdpConfig, logger?: JsonLogger, overrides: IdpOverrides = {}): DynamicModule {
    // The configuration enters through ConfigModule (global: ConfigService everywhere), as the
    // `idp` namespace; it is read when the application is created, from its own environment
    // (createIdentityApp's), so that several applications in one process each have theirs.
    const idp = registerAs(IDP_CONFIG_NAMESPACE, (): IdpConfig => config ?? IdpBootContext.current()?.config ?? loadConfig());
    return {
      module: CoreModule,
      imports: [DiscoveryModule, ConfigModule.forRoot({ isGlobal: true, ignoreEnvFile: true, load: [idp] })],
      providers: [
        { provide: IdpConfig, useExisting: idp.KEY },
        logger
          ? { provide: JsonLogger, useValue: logger }
          : { provide: JsonLogger, inject: [IdpConfig], useFactory: (c: IdpConfig) => IdpBootContext.current()?.logger ?? new JsonLogger(c.logLevel) },
        { provide: IDP_OVERRIDES, useValue: overrides },
        { provide: Clock, useFactory: () => overrides.clock ?? BootClock.current() ?? new SystemClock() },
        IdpEvents,
        LockoutService,
        { provide: OutboundClient, inject: [IdpConfig], useFactory: (c: IdpConfig) => new OutboundClient({ mode: c.outbound }) },
      ],
      exports: [IdpConfig, JsonLogger, IDP_OVERRIDES, Clock, IdpEvents, LockoutService, OutboundClient, DiscoveryModule],
    };
  }
}
