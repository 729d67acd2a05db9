import { AsyncLocalStorage } from 'node:async_hooks';
import type { IdpConfig } from './config';
import type { JsonLogger } from './logger';

export interface IdpBoot {
  config: IdpConfig;
  logger: JsonLogger;
}

const storage = new AsyncLocalStorage<IdpBoot>();

/**
 * The configuration of the application being created. `createIdentityApp` runs Nest's creation
 * inside it, so the modules' providers read the configuration of their own application even when
 * several are created in one process (tests).
 */
export const IdpBootContext = {
  run<T>(boot: IdpBoot, fn: () => T): T {
    return storage.run(boot, fn);
  },
  current(): IdpBoot | undefined {
    return storage.getStore();
  },
};
