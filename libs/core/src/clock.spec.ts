import { Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { dataSourceOptions } from '@idp/identity';
import { BootClock, Clock, ManualClock, SystemClock } from './clock';
import { CoreModule } from './core.module';
import { loadConfig } from './config';

describe('ManualClock', () => {
  const T0 = Date.UTC(2026, 0, 2, 3, 4, 5, 678);

  it('stands still until advanced, and moves by exactly what it is told', () => {
    const clock = new ManualClock(T0);
    expect(clock.now()).toBe(T0);
    expect(clock.now()).toBe(T0);
    expect(clock.advance(2_100)).toBe(T0 + 2_100);
    expect(clock.advance(0)).toBe(T0 + 2_100);
    expect(clock.now()).toBe(T0 + 2_100);
  });

  it('is set anywhere, back included, from ms or a Date', () => {
    const clock = new ManualClock(new Date(T0));
    expect(clock.set(T0 - 60_000)).toBe(T0 - 60_000);
    expect(clock.set(new Date(T0 + 1))).toBe(T0 + 1);
    expect(clock.now()).toBe(T0 + 1);
  });

  it('answers whole seconds (NumericDate, rounded down) and Dates of its own time', () => {
    const clock = new ManualClock(T0);
    expect(clock.nowSeconds()).toBe(Math.floor(T0 / 1000));
    clock.advance(321); // .678 + .321 = .999: still the same second
    expect(clock.nowSeconds()).toBe(Math.floor(T0 / 1000));
    clock.advance(1);
    expect(clock.nowSeconds()).toBe(Math.floor(T0 / 1000) + 1);
    expect(clock.date()).toEqual(new Date(T0 + 322));
    expect(clock.date()).not.toBe(clock.date());
  });

  it('starts at the machine\'s time when given none', () => {
    const before = Date.now();
    const t = new ManualClock().now();
    expect(t).toBeGreaterThanOrEqual(before);
    expect(t).toBeLessThanOrEqual(Date.now());
  });

  it.each([[-1], [NaN], [Infinity]])('refuses to advance by %p', (ms) => {
    const clock = new ManualClock(T0);
    expect(() => clock.advance(ms)).toThrow(RangeError);
    expect(clock.now()).toBe(T0);
  });

  it.each([[NaN], [new Date('not a date')], [-Infinity]])('refuses to be set to %p', (at) => {
    expect(() => new ManualClock(at)).toThrow(RangeError);
    const clock = new ManualClock(T0);
    expect(() => clock.set(at)).toThrow(RangeError);
    expect(clock.now()).toBe(T0);
  });
});

describe('SystemClock', () => {
  it('reads the machine\'s time', () => {
    const clock = new SystemClock();
    const before = Date.now();
    const t = clock.now();
    expect(t).toBeGreaterThanOrEqual(before);
    expect(t).toBeLessThanOrEqual(Date.now());
    expect(Math.abs(clock.date().getTime() - Date.now())).toBeLessThan(1000);
  });
});

/** A provider of another module, as every lib's services are: it gets the clock CoreModule provides. */
@Injectable()
class Dated {
  constructor(readonly clock: Clock) {}
}
@Module({ providers: [Dated], exports: [Dated] })
class DatedModule {}

describe('CoreModule provides Clock', () => {
  const config = loadConfig({ NODE_ENV: 'test' });
  const create = async (overrides?: { clock?: Clock }) => {
    const moduleRef = await Test.createTestingModule({ imports: [CoreModule.forRoot(config, undefined, overrides), TypeOrmModule.forRoot(dataSourceOptions('sqlite::memory:')), DatedModule] }).compile();
    const clock = moduleRef.get(Dated).clock;
    await moduleRef.close();
    return clock;
  };

  it('as the system clock by default', async () => {
    expect(await create()).toBeInstanceOf(SystemClock);
  });

  it('as the clock given in the overrides', async () => {
    const manual = new ManualClock();
    expect(await create({ clock: manual })).toBe(manual);
  });

  it('as the clock the application is created with (BootClock.run), each application its own', async () => {
    const a = new ManualClock(1_000);
    const b = new ManualClock(2_000);
    const [ca, cb] = await Promise.all([BootClock.run(a, () => create()), BootClock.run(b, () => create())]);
    expect(ca).toBe(a);
    expect(cb).toBe(b);
    expect(BootClock.current()).toBeUndefined();
    expect(await create()).toBeInstanceOf(SystemClock);
  });

  it('preferring the overrides\' clock to the boot clock', async () => {
    const explicit = new ManualClock();
    expect(await BootClock.run(new ManualClock(), () => create({ clock: explicit }))).toBe(explicit);
  });
});
