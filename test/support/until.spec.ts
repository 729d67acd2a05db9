import { EventEmitter } from 'node:events';
import { until } from './until';

describe('until (test/support/until.ts)', () => {
  afterEach(() => jest.useRealTimers());

  it('returns what the condition returns once it holds, checked at each turn of the event loop', async () => {
    let turns = 0;
    const tick = () => void setImmediate(() => turns++ < 5 && tick());
    tick();
    await expect(until('five turns', () => turns >= 5 && `after ${turns}`)).resolves.toBe('after 5');
  });

  it('checks again after each event it is told of, including one emitted while a check is under way', async () => {
    const e = new EventEmitter();
    let checks = 0;
    let ready = false;
    const done = until('ready', async () => {
      checks++;
      if (checks === 1) {
        // The event comes before this check answers "not yet": the wait must not miss it.
        e.emit('change');
        ready = true;
        return false;
      }
      return ready;
    }, { wakeOn: [e, 'change'] });
    await expect(done).resolves.toBe(true);
    expect(checks).toBe(2);
    expect(e.listenerCount('change')).toBe(0);
  });

  it('fails the wait, naming it, when the condition does not hold in time', async () => {
    await expect(until('the impossible', () => false, { timeoutMs: 20 })).rejects.toThrow('not within 20 ms: the impossible');
    const e = new EventEmitter();
    await expect(until('an event that never comes', () => false, { timeoutMs: 20, wakeOn: [e, 'change'] })).rejects.toThrow('not within 20 ms');
    expect(e.listenerCount('change')).toBe(0);
  });

  it('ends the wait with the error of a condition that throws', async () => {
    await expect(until('a process alive', () => { throw new Error('exited with 1'); })).rejects.toThrow('exited with 1');
  });

  it('runs on real timers under jest fake timers: its turns go on, and faked time does not end it', async () => {
    jest.useFakeTimers();
    let checks = 0;
    await expect(until('three checks', () => ++checks >= 3)).resolves.toBe(true);
    const e = new EventEmitter();
    let heard = false;
    e.once('change', () => (heard = true));
    const done = until('the event', () => heard, { wakeOn: [e, 'change'] });
    jest.advanceTimersByTime(86_400_000); // a day of faked time, past any faked deadline
    e.emit('change');
    await expect(done).resolves.toBe(true);
  });
});
