import { WrittenHere } from './written-here';

describe('WrittenHere', () => {
  afterEach(() => jest.useRealTimers());

  it('hands a row out once, then forgets it', () => {
    const w = new WrittenHere<{ n: number }>();
    w.put('a', { n: 1 }, Date.now() + 60_000);
    expect(w.take('a')).toEqual({ n: 1 });
    expect(w.take('a')).toBeUndefined();
    expect(w.take('never')).toBeUndefined();
  });

  it('does not hand out a row past its until, and drops the expired rows at the front as new ones come', () => {
    jest.useFakeTimers({ now: new Date('2026-12-02T10:00:00Z') });
    const w = new WrittenHere<number>();
    w.put('a', 1, Date.now() + 1_000);
    w.put('b', 2, Date.now() + 1_000);
    w.put('c', 3, Date.now() + 10_000);
    jest.advanceTimersByTime(2_000);
    expect(w.take('a')).toBeUndefined();
    expect(w.size).toBe(2);
    w.put('d', 4, Date.now() + 10_000);
    expect(w.size).toBe(2); // b went; c, d stay
    expect([w.take('b'), w.take('c'), w.take('d')]).toEqual([undefined, 3, 4]);
  });

  it('keeps at most max rows, forgetting the oldest', () => {
    const w = new WrittenHere<number>(3);
    for (let i = 0; i < 5; i++) w.put(`k${i}`, i, Date.now() + 60_000);
    expect(w.size).toBe(3);
    expect(w.take('k0')).toBeUndefined();
    expect(w.take('k1')).toBeUndefined();
    expect([w.take('k2'), w.take('k3'), w.take('k4')]).toEqual([2, 3, 4]);
  });
});
