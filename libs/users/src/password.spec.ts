import { availableParallelism } from 'node:os';
import { hashPassword, limited, verifyPassword } from './password';

describe('password hashing', () => {
  it('hashes with argon2id at the OWASP parameters and verifies', async () => {
    const h = await hashPassword('correct horse');
    expect(h).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(await verifyPassword(h, 'correct horse')).toBe(true);
    expect(await verifyPassword(h, 'wrong')).toBe(false);
    expect(await verifyPassword('not a hash', 'x')).toBe(false);
  });

  it('runs at most one hash per core at once; the rest wait their turn and all finish', async () => {
    let now = 0;
    let peak = 0;
    const started: number[] = [];
    const order: number[] = [];
    // The jobs hold their slots until the test lets them go, so every one of them is asked for while the first are running.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const job = (i: number) =>
      limited(async () => {
        started.push(i);
        peak = Math.max(peak, ++now);
        await gate;
        now--;
        order.push(i);
        if (i === 3) throw new Error('a failing hash frees its slot too');
        return i;
      });
    const n = availableParallelism() * 3 + 1;
    const all = Promise.allSettled(Array.from({ length: n }, (_, i) => job(i)));
    // One turn of the event loop later, only the first core's worth of jobs has started.
    await new Promise(setImmediate);
    expect(started).toEqual(Array.from({ length: availableParallelism() }, (_, i) => i));
    release();
    const results = await all;
    expect(started).toHaveLength(n);
    expect(peak).toBe(availableParallelism());
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(n - 1);
    expect(order).toHaveLength(n);
    expect(await limited(async () => 'free again')).toBe('free again');
  });
});
