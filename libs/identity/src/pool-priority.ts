import { pbkdf2 } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { setPriority } from 'node:os';

/** The threads of this process (Linux task ids), or [] where /proc is not there. */
function tasks(): number[] {
  try {
    return readdirSync('/proc/self/task').map(Number);
  } catch {
    return [];
  }
}

/**
 * Lowers the scheduling priority of libuv's thread pool, where JWT signing (node:crypto) and
 * argon2id hashing run, below the event loop's. On a machine with fewer cores than busy threads
 * (a 2-core machine signs on 4 pool threads), a woken pool thread otherwise preempts the event
 * loop, which then waits for a CPU with every request it holds; the profile showed a third of the event
 * loop's time lost that way (docs/performance.md). At a higher nice value the pool still gets every
 * cycle the event loop leaves.
 *
 * Linux only (setpriority applies to one thread there). The pool's threads are told apart as the
 * ones that appear when the pool starts: this must run before anything uses the pool. Returns the
 * threads reniced ([] when it could not tell them, or `nice` is 0).
 */
export async function lowerThreadPoolPriority(nice: number): Promise<number[]> {
  if (nice <= 0 || process.platform !== 'linux') return [];
  const before = new Set(tasks());
  if (!before.size) return [];
  const size = Math.max(1, Number(process.env.UV_THREADPOOL_SIZE) || 4);
  // One short job per pool thread, all at once: libuv starts every thread at its first job.
  await Promise.all(Array.from({ length: size }, () => new Promise((resolve) => pbkdf2('x', 'y', 1, 32, 'sha256', resolve))));
  const pool = tasks().filter((t) => !before.has(t));
  // Not the pool (already started, or something else appeared): leave everything alone.
  if (pool.length !== size) return [];
  const done: number[] = [];
  for (const tid of pool) {
    try {
      setPriority(tid, nice);
      done.push(tid);
    } catch {
      // not allowed here (a container's seccomp policy, say): the server runs as before
    }
  }
  return done;
}
