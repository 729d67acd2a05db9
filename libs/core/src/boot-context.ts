import type { IdpConfig } from './config';
import type { JsonLogger } from './logger';
import { ScopedStorage } from './scoped-storage';

export interface IdpBoot {
  config: IdpConfig;
  logger: JsonLogger;
}

const storage = new ScopedStorage<IdpBoot>();

/**
 * The configuration of the application being created. `createIdentityApp` runs Nest's creation
 * inside it, so the modules' providers read the configuration of their own application even when
 * several are created in one process (tests). Switched off once no creation is in progress.
 */
export const IdpBootContext = {
  run<T>(boot: IdpBoot, fn: () => Promise<T>): Promise<T> {
    return storage.run(boot, fn);
  },
  current(): IdpBoot | undefined {
    return storage.getStore();
  },
};
