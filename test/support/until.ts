import type { EventEmitter } from 'node:events';
import { once } from 'node:events';
import * as timers from 'node:timers';

// The real timers, taken when this module loads: a test that fakes timers or Date later
// (jest.useFakeTimers) neither stops the wait nor moves its deadline.
const nextTurn = timers.setImmediate;
const startTimer = timers.setTimeout;
const stopTimer = timers.clearTimeout;

export interface UntilOptions {
  /** How long, in real time, before the wait fails the test (default 5 s). Never a pace: only a bound. */
  timeoutMs?: number;
  /**
   * The event after which the condition may have come to hold: it is checked again after each one
   * (listened for before each check, so none is missed). Without it, at each turn of the event loop,
   * which suits a condition that holds within a few turns or whose check awaits I/O itself.
   */
  wakeOn?: [emitter: EventEmitter, event: string];
}

/**
 * Waits until `condition` returns a truthy value (a boolean, or what the test waits for: a log
 * line, a row), and returns it: for an event the test cannot await directly (a child process's line,
 * a notification heard, a background flush, a reconnection), never for time to pass (advance a
 * ManualClock for that). A condition that throws ends the wait with its error; one that does not
 * hold within `timeoutMs` fails it, naming `what`.
 */
export async function until<T>(what: string, condition: () => T | Promise<T>, options: UntilOptions = {}): Promise<NonNullable<T>> {
  const { timeoutMs = 5_000, wakeOn } = options;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = startTimer(() => reject(new Error(`not within ${timeoutMs} ms: ${what}`)), timeoutMs);
  });
  const stopListening = new AbortController();
  try {
    for (;;) {
      const woken: Promise<unknown> = wakeOn
        ? once(wakeOn[0], wakeOn[1], { signal: stopListening.signal })
        : new Promise((resolve) => nextTurn(resolve));
      woken.catch(() => undefined); // the abort below, once the wait is over
      const value = await Promise.race([condition(), deadline]);
      if (value) return value as NonNullable<T>;
      await Promise.race([woken, deadline]);
    }
  } finally {
    stopTimer(timer);
    stopListening.abort();
  }
}
