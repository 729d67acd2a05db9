import { DynamicModule, Global, Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { IdpConfig } from './config';
import { IdpEvents } from './events';

/** Provides the validated configuration and the event bus to every module. */
@Global()
@Module({})
export class CoreModule {
  static forRoot(config: IdpConfig): DynamicModule {
    return {
      module: CoreModule,
      imports: [DiscoveryModule],
      providers: [{ provide: IdpConfig, useValue: config }, IdpEvents],
      exports: [IdpConfig, IdpEvents, DiscoveryModule],
    };
  }
}
