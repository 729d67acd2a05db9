import { availableParallelism } from 'node:os';
import { Algorithm, hash, verify } from '@node-rs/argon2';

/** OWASP Password Storage Cheat Sheet: argon2id, m = 19 MiB, t = 2, p = 1. */
const PARAMS = { algorithm: Algorithm.Argon2id, memoryCost: 19456, timeCost: 2, parallelism: 1 } as const;

/**
 * argon2id is CPU-bound and takes 19 MiB while it runs: more at once than there are cores only
 * adds memory (19 MiB each, on the 4 threads of the pool) and lengthens every one of them. So at
 * most one per core runs; the others wait their turn in order.
 */
const MAX_CONCURRENT = Math.max(1, availableParallelism());
let running = 0;
const queue: (() => void)[] = [];

export async function limited<T>(fn: () => Promise<T>): Promise<T> {
  if (running >= MAX_CONCURRENT) await new Promise<void>((resolve) => queue.push(resolve));
  else running++;
  try {
    return await fn();
  } finally {
    const next = queue.shift();
    if (next) next(); // the slot passes on
    else running--;
  }
}

export function hashPassword(password: string): Promise<string> {
  return limited(() => hash(password, PARAMS));
}

export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  try {
    return await limited(() => verify(passwordHash, password));
  } catch {
    return false;
  }
}

let dummy: Promise<string> | undefined;
/** A real hash of a random value, verified when an account does not exist so both paths cost the same. */
export function dummyHash(): Promise<string> {
  return (dummy ??= hashPassword(`dummy-${Math.random()}-${Date.now()}`));
}
