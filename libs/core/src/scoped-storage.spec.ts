import { AsyncLocalStorage } from 'node:async_hooks';
import { ScopedStorage } from './scoped-storage';

// Jest keeps an AsyncLocalStorage of its own switched on, so the process-wide promise hook cannot
// be observed here: these tests watch the storage being disabled. test/process.e2e-spec.ts
// checks the hook itself, in a real server process.
const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('ScopedStorage', () => {
  it('keeps each run its own store across awaits, and none outside', async () => {
    const s = new ScopedStorage<string>();
    expect(s.getStore()).toBeUndefined();
    const seen = await Promise.all(['a', 'b', 'c'].map((v) => s.run(v, async () => {
      await tick();
      const first = s.getStore();
      await tick();
      return `${first}${s.getStore()}`;
    })));
    expect(seen).toEqual(['aa', 'bb', 'cc']);
    expect(s.getStore()).toBeUndefined();
  });

  it('nests: the inner run sees its store, the outer its own again after it', async () => {
    const s = new ScopedStorage<string>();
    const order: (string | undefined)[] = [];
    await s.run('outer', async () => {
      order.push(s.getStore());
      await s.run('inner', async () => {
        await tick();
        order.push(s.getStore());
      });
      order.push(s.getStore());
    });
    expect(order).toEqual(['outer', 'inner', 'outer']);
  });

  it('is switched off once its last run has settled, and on again for the next', async () => {
    const disable = jest.spyOn(AsyncLocalStorage.prototype, 'disable');
    try {
      const s = new ScopedStorage<number>();
      const slow = s.run(1, async () => {
        await tick();
        await tick();
      });
      expect(await s.run(2, async () => (await tick(), s.getStore()))).toBe(2);
      // The first run is still going: still on.
      expect(s.active).toBe(true);
      expect(disable).not.toHaveBeenCalled();
      await slow;
      expect(s.active).toBe(false);
      expect(disable).toHaveBeenCalledTimes(1);
      expect(await s.run(3, async () => (await tick(), s.getStore()))).toBe(3);
      expect(disable).toHaveBeenCalledTimes(2);
      expect(s.getStore()).toBeUndefined();
    } finally {
      disable.mockRestore();
    }
  });

  it('is switched off after a run that throws', async () => {
    const disable = jest.spyOn(AsyncLocalStorage.prototype, 'disable');
    try {
      const s = new ScopedStorage<number>();
      await expect(s.run(1, async () => {
        await tick();
        throw new Error('boom');
      })).rejects.toThrow('boom');
      expect(s.active).toBe(false);
      expect(disable).toHaveBeenCalledTimes(1);
    } finally {
      disable.mockRestore();
    }
  });
});
