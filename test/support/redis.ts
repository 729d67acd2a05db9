import { spawnSync } from 'node:child_process';

/** Redis for the suites that keep lockout counters there (.ci/run starts one on 127.0.0.1:6379). */
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Whether a Redis answers at TEST_REDIS_URL, probed once, synchronously, so that suites can be declared with or without it. */
export const redisUp = (() => {
  const { port, hostname } = new URL(TEST_REDIS_URL);
  const probe = `require('net').connect(${Number(port) || 6379}, '${hostname}').on('connect', () => process.exit(0)).on('error', () => process.exit(1))`;
  return spawnSync(process.execPath, ['-e', probe], { timeout: 3000 }).status === 0;
})();
