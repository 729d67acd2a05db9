import { DynamicModule, Global, Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { IdpConfig } from './config';
import { IdpEvents } from './events';
import { JsonLogger } from './logger';
import { LockoutService } from './lockout';
import { IDP_OVERRIDES, IdpOverrides } from './overrides';

/** Provides the validated configuration and the event bus to every module. */
@Global()
@Module({})
export class CoreModule {
  static forRoot(config: IdpConfig, logger: JsonLogger = new JsonLogger(config.logLevel), overrides: IdpOverrides = {}): DynamicModule {
    return {
      module: CoreModule,
      imports: [DiscoveryModule],
      providers: [{ provide: IdpConfig, useValue: config }, { provide: JsonLogger, useValue: logger }, { provide: IDP_OVERRIDES, useValue: overrides }, IdpEvents, LockoutService],
      exports: [IdpConfig, JsonLogger, IDP_OVERRIDES, IdpEvents, LockoutService, DiscoveryModule],
    };
  }
}
