import { ScopedStorage } from './scoped-storage';

/**
 * The time the IdP decides by: the lifetimes of codes, tokens and client assertions, lockouts,
 * rate-limit windows, the signing-key schedule, and the times it writes in its rows (created_at,
 * updated_at, revoked_at, audit events). Injected by class: CoreModule provides a SystemClock,
 * unless the application is given another (IdpOverrides.clock, or BootClock.run around its
 * creation). So a test moves time by advancing a ManualClock, without waiting and without faking
 * Date (which TypeORM's SQLite driver does not survive).
 *
 * Not on this clock: waits and timeouts (timers run on real time, and so do the deadlines that
 * bound them), how long a replica trusts what it cached (a bound on when a change made on another
 * replica is seen), ids (uuidv7), log lines and database column defaults.
 */
export abstract class Clock {
  /** Milliseconds since the Unix epoch. */
  abstract now(): number;

  /** Whole seconds since the epoch: a JWT NumericDate (RFC 7519 §2). */
  nowSeconds(): number {
    return Math.floor(this.now() / 1000);
  }

  /** Now, as a Date (a timestamp column, jose's `currentDate`). */
  date(): Date {
    return new Date(this.now());
  }
}

/** The machine's clock (Date.now()). */
export class SystemClock extends Clock {
  now(): number {
    return Date.now();
  }
}

/**
 * A clock that stands still until told: `advance(ms)` moves it forward, `set(at)` puts it anywhere
 * (back included). Starts at the machine's time unless given another, so that tokens it dates are
 * accepted by verifiers that read the real clock.
 */
export class ManualClock extends Clock {
  private ms: number;

  constructor(start: number | Date = Date.now()) {
    super();
    this.ms = instant(start);
  }

  now(): number {
    return this.ms;
  }

  /** Moves the clock forward by `ms` (>= 0); returns the new time. */
  advance(ms: number): number {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`ManualClock.advance: ${ms} is not a duration (finite, >= 0 ms)`);
    this.ms += ms;
    return this.ms;
  }

  /** Sets the clock to `at` (ms since the epoch, or a Date); returns the new time. */
  set(at: number | Date): number {
    this.ms = instant(at);
    return this.ms;
  }
}

function instant(at: number | Date): number {
  const ms = at instanceof Date ? at.getTime() : at;
  if (!Number.isFinite(ms)) throw new RangeError(`ManualClock: ${String(at)} is not a time`);
  return ms;
}

const booting = new ScopedStorage<Clock>();

/**
 * The clock of the applications created inside `run` (as IdpBootContext carries their
 * configuration): how a test gives the server it boots a ManualClock without changing the
 * application's modules (test/support/server.ts: `startServer(env, AppModule, { clock })`).
 * CoreModule reads it when it provides Clock; an explicit IdpOverrides.clock comes first.
 */
export const BootClock = {
  run<T>(clock: Clock, fn: () => Promise<T>): Promise<T> {
    return booting.run(clock, fn);
  },
  /** The clock of the application being created, if one was given; undefined otherwise. */
  current(): Clock | undefined {
    return booting.getStore();
  },
};
