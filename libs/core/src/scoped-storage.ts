import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * An AsyncLocalStorage that is switched on only while one of its runs is in progress.
 *
 * On Node.js 20 every AsyncLocalStorage that has been used keeps a promise hook running for
 * every promise of the process, request or not (7 % of a code flow, docs/performance.md, ninth
 * round). This one is disabled again when its last run settles, so a rare scope (an
 * application's creation, a TypeORM transaction on SQLite) costs nothing the rest of the time.
 *
 * For scopes whose work is awaited inside the run: what a run leaves behind (a timer, a promise
 * nobody awaits) may read `undefined` once the run has settled. Request-scoped data does not go
 * here: it is passed by hand (RequestContext).
 */
export class ScopedStorage<T> {
  private readonly storage = new AsyncLocalStorage<T>();
  private runs = 0;

  async run<R>(store: T, fn: () => Promise<R>): Promise<R> {
    this.runs++;
    try {
      return await this.storage.run(store, fn);
    } finally {
      if (--this.runs === 0) this.storage.disable();
    }
  }

  /** The store of the run the caller is in; undefined outside every run. */
  getStore(): T | undefined {
    return this.runs ? this.storage.getStore() : undefined;
  }

  /** Whether a run is in progress (the storage is switched on). */
  get active(): boolean {
    return this.runs > 0;
  }
}
