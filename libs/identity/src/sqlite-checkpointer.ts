import { Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { DataSource } from 'typeorm';
import { IdpConfig } from '@idp/core';
import { INLINE_CHECKPOINT_PAGES, synchronousPragma } from './database';

/** How often the worker looks for WAL pages to copy. */
export const CHECKPOINT_INTERVAL_MS = 250;
/** Passes per round at most: each one copies what the event loop committed during the one before. */
const MAX_PASSES = 16;

/**
 * The worker thread's code (a string, so that it runs the same from dist/ and under jest). It opens
 * its own connection to the database file and, every CHECKPOINT_INTERVAL_MS, runs PASSIVE
 * checkpoints until the WAL is copied into the database file. A PASSIVE checkpoint never waits for
 * a lock nor holds one a writer needs: the event loop's reads and commits go on meanwhile, and its
 * next commit after a complete checkpoint starts the WAL over from the beginning. (`log` and
 * `checkpointed` are the WAL's pages and those in the database file, as of the pass's start.)
 */
const WORKER_SOURCE = `
const { parentPort, workerData: w } = require('node:worker_threads');
const { readlinkSync } = require('node:fs');
const { setPriority } = require('node:os');
const Database = require(w.module);
const db = new Database(w.file, { fileMustExist: true });
db.pragma('synchronous = ' + w.synchronous);
if (w.nice > 0) {
  // Below the event loop, like libuv's pool (pool-priority.ts): Linux renices one thread at a time.
  try { setPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()), w.nice); } catch {}
}
let reported = -1;
function round() {
  const started = process.hrtime.bigint();
  // A pass copies the WAL as it was when the pass began; what the event loop commits meanwhile
  // waits for the next one. Only when a pass finds the WAL as the one before left it is the WAL
  // wholly in the database file, so that the event loop's next commit starts it over from the
  // beginning (the WAL stays short and the safety net idle). Under a steady stream of commits
  // that moment may not come within maxPasses: the next round tries again.
  let r, last = -1, passes = 0;
  while (passes < w.maxPasses) {
    [r] = db.pragma('wal_checkpoint(PASSIVE)');
    passes++;
    if (!(r.log > 0) || (r.checkpointed >= r.log && r.log === last)) break;
    last = r.log;
  }
  if (r.log > 0 && r.log !== reported) {
    reported = r.log;
    parentPort.postMessage({ type: 'round', frames: r.checkpointed, log: r.log, passes, ms: Number(process.hrtime.bigint() - started) / 1e6 });
  }
}
const timer = setInterval(round, w.intervalMs);
parentPort.on('message', (m) => {
  if (m !== 'stop') return;
  clearInterval(timer);
  db.close();
  parentPort.close();
});
parentPort.postMessage({ type: 'ready' });
`;

/**
 * Runs SQLite's WAL checkpoints on a worker thread (`SQLITE_CHECKPOINT=background`, the default
 * for a SQLite file). better-sqlite3 is synchronous, so a checkpoint run by SQLite itself happens
 * inside a commit on the event loop: copying 4,000 pages and two fsyncs stalled every request in
 * flight for about 40 ms, several times a second under load (docs/performance.md). Here the event
 * loop only appends to the WAL; SQLite's own checkpoint stays as a safety net at
 * SAFETY_CHECKPOINT_PAGES (database.ts), and comes back at its usual interval if the worker dies.
 *
 * Durability is unchanged or better: commits are in the WAL either way, `synchronous` is the same
 * on both connections (the checkpoint fsyncs the WAL before copying and the database after), and
 * the WAL is synced every round that finds new commits rather than every 4,000 pages.
 */
@Injectable()
export class SqliteCheckpointer implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('SqliteCheckpointer');
  private worker?: Worker;
  private stopping = false;

  constructor(private readonly config: IdpConfig, @InjectDataSource() private readonly ds: DataSource) {}

  /** Whether the worker runs the checkpoints now. */
  get running(): boolean {
    return this.worker !== undefined;
  }

  async onModuleInit(): Promise<void> {
    const file = this.ds.options.type === 'better-sqlite3' ? this.ds.options.database : undefined;
    if (this.config.sqliteCheckpoint !== 'background' || typeof file !== 'string' || file === ':memory:') return;
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      // It allocates a few small objects per round: a small heap keeps its memory small.
      resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 16 },
      workerData: {
        module: require.resolve('better-sqlite3'),
        file,
        synchronous: synchronousPragma(this.config.sqliteSynchronous),
        nice: this.config.poolNice,
        intervalMs: CHECKPOINT_INTERVAL_MS,
        maxPasses: MAX_PASSES,
      },
    });
    // Its first message says that its connection is open. If it cannot start, SQLite checkpoints
    // on the committing thread as it would without the worker: slower, never wrong.
    try {
      const [first] = (await Promise.race([
        once(worker, 'message'),
        once(worker, 'exit').then(([code]) => Promise.reject(new Error(`exited with code ${code}`))),
      ])) as [{ type: string }];
      if (first.type !== 'ready') throw new Error(`sent ${first.type} first`);
    } catch (err) {
      await worker.terminate();
      await this.checkpointInline(`did not start (${(err as Error).message})`);
      return;
    }
    worker.on('message', (m: { type: string; frames: number; log: number; passes: number; ms: number }) => {
      if (m.type === 'round') this.logger.debug(`checkpoint: ${m.frames} of ${m.log} WAL pages in the database file, ${m.passes} passes, ${m.ms.toFixed(1)} ms`);
    });
    worker.on('error', (err) => void this.fallBack(`failed: ${err.message}`));
    worker.on('exit', (code) => void this.fallBack(`stopped (exit code ${code})`));
    // Never what keeps the process alive.
    worker.unref();
    this.worker = worker;
  }

  async onModuleDestroy(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    this.stopping = true;
    this.worker = undefined;
    // Its connection is closed before the DataSource's, so that the last one to close (the
    // DataSource's) checkpoints the rest and removes the WAL, as SQLite does without a worker.
    // The timer is what keeps the process alive meanwhile (the worker is unref'd): without it a
    // process shutting down after a failed start would end here, with exit code 0.
    let timer: NodeJS.Timeout | undefined;
    const exited = once(worker, 'exit').then(() => true);
    const timedOut = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), 2000)));
    worker.postMessage('stop');
    const done = await Promise.race([exited, timedOut]);
    clearTimeout(timer);
    if (!done) await worker.terminate();
  }

  /** The worker is gone without being asked: SQLite checkpoints on the committing thread again. */
  private async fallBack(why: string): Promise<void> {
    if (this.stopping || !this.worker) return;
    this.worker = undefined;
    await this.checkpointInline(why);
  }

  /** SQLite's own checkpoints at their usual interval, on the committing thread. */
  private async checkpointInline(why: string): Promise<void> {
    this.logger.warn(`SQLite checkpoint worker ${why}; checkpoints run on the event loop, every ${INLINE_CHECKPOINT_PAGES} WAL pages`);
    try {
      await this.ds.query(`PRAGMA wal_autocheckpoint = ${INLINE_CHECKPOINT_PAGES}`);
    } catch {
      // the DataSource is closing or closed: nothing left to checkpoint for
    }
  }
}
