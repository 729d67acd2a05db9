import { QueryFailedError } from 'typeorm';

/** True when a write failed on a unique or primary-key constraint (SQLite and PostgreSQL). */
export function isUniqueViolation(err: unknown): boolean {
  if (!(err instanceof QueryFailedError)) return false;
  const d = (err as QueryFailedError & { driverError?: { code?: string } }).driverError;
  const code = d?.code ?? '';
  return code === '23505' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE';
}

/**
 * True when the database gave up on a statement that may simply be run again: PostgreSQL's
 * serialization failure (40001), deadlock (40P01) and lock-not-available (55P03), SQLite's busy.
 */
export function isRetryableDbError(err: unknown): boolean {
  const d = (err as { driverError?: { code?: string }; code?: string } | undefined);
  const code = d?.driverError?.code ?? d?.code ?? '';
  return code === '40001' || code === '40P01' || code === '55P03' || code === 'SQLITE_BUSY';
}

/** Runs `fn`, again (up to `attempts` times in all) when it fails with a retryable database error. */
export async function retryOnDbConflict<T>(fn: () => Promise<T>, attempts = 4): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i >= attempts || !isRetryableDbError(err)) throw err;
    }
  }
}
