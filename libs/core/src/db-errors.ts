import { QueryFailedError } from 'typeorm';

/** True when a write failed on a unique or primary-key constraint (SQLite and PostgreSQL). */
export function isUniqueViolation(err: unknown): boolean {
  if (!(err instanceof QueryFailedError)) return false;
  const d = (err as QueryFailedError & { driverError?: { code?: string } }).driverError;
  const code = d?.code ?? '';
  return code === '23505' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE';
}
