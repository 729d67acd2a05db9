// The bench's readers of what it measures from inside a server (bench/lib): a wrong sum there would
// put wrong numbers in docs/performance.md, so they are held to hand-made inputs here.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const instructions = require('../bench/lib/instructions');
const alloc = require('../bench/lib/alloc');

const dir = mkdtempSync(join(tmpdir(), 'bench-tools-'));

describe('bench/lib/instructions (callgrind dumps)', () => {
  // Name compression ("fn=(2)" refers to a name given once), a call's inclusive cost (the line
  // after calls=, not the caller's own), relative positions (+1), JIT code without a name.
  const main = [
    'version: 1', 'creator: callgrind-3.19.0', 'pid: 42', 'cmd: node main.js', 'part: 1', 'thread: 1',
    'positions: line', 'events: Ir', 'summary: 950',
    'ob=(1) /usr/bin/node', 'fl=(1) ???',
    'fn=(1) Builtins_LoadIC', '0 100',
    'cfn=(2) v8::internal::Heap::Scavenge()', 'calls=1 0', '0 500',
    'fn=(2)', '0 480', '+1 20',
    'ob=(2) ???', 'fn=(3) 0x000000000d046200', '0 300', '+2 50',
    'totals: 950', '',
  ].join('\n');
  const pool = ['part: 1', 'thread: 3', 'events: Ir', 'ob=(1) /usr/bin/node', 'fn=(1) worker', '0 5', 'fn=(2) bn_mul_mont', '0 7000', 'totals: 7005', ''].join('\n');
  const helper = ['part: 1', 'thread: 5', 'events: Ir', 'ob=(1) /usr/bin/node', 'fn=(1) v8::platform::DefaultJobWorker::Run()', '0 45', 'totals: 45', ''].join('\n');
  const files = [['cg.1-01', main], ['cg.1-03', pool], ['cg.1-05', helper]].map(([name, text]) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  });

  it('sums self instructions by function, leaving calls out', () => {
    const t = instructions.parse(files[0]);
    expect(t.thread).toBe(1);
    expect(t.totals).toBe(950);
    expect(Object.fromEntries(t.self)).toEqual({
      Builtins_LoadIC: 100,
      'v8::internal::Heap::Scavenge()': 500,
      '0x000000000d046200 [???]': 350,
    });
  });

  it('gives a unit the main thread by kind, the pool and the helpers', () => {
    const a = instructions.analyze(10, files);
    expect(a.main).toBe(95);
    expect(a.pool).toBe(700.5);
    expect(a.helpers).toBe(4.5);
    expect(a.total).toBe(800);
    expect(Object.fromEntries(a.kinds.map((k: { kind: string; perUnit: number }) => [k.kind, k.perUnit]))).toEqual({
      'V8 GC': 50,
      'JavaScript (JIT-compiled code, and V8 stubs)': 35,
      'V8 builtins (JSON, strings, promises, calls…)': 10,
    });
    expect(a.markdown('t')).toContain('**main thread 0**'); // thousands: 95 instructions round to 0
  });
});

describe('bench/lib/alloc (sampling heap profiles)', () => {
  it('sums bytes by function and, inclusively, by our own functions, a unit', () => {
    const ours = 'file:///srv/idp/dist/libs/token/src/token-issuer.js';
    const profile = {
      head: {
        callFrame: { functionName: '(root)', url: '', lineNumber: -1 }, selfSize: 0, children: [
          {
            callFrame: { functionName: 'idToken', url: ours, lineNumber: 64 }, selfSize: 2048, children: [
              { callFrame: { functionName: 'stringify', url: '', lineNumber: -1 }, selfSize: 1024, children: [] },
              { callFrame: { functionName: 'parse', url: 'file:///srv/idp/node_modules/qs/lib/parse.js', lineNumber: 9 }, selfSize: 512, children: [] },
            ],
          },
          { callFrame: { functionName: '(garbage collector)', url: '', lineNumber: -1 }, selfSize: 512, children: [] },
        ],
      },
      samples: [],
    };
    const gc = { scavenge: { count: 4, ms: 8, maxMs: 3 }, 'mark-compact': { count: 1, ms: 6, maxMs: 6 } };
    const file = join(dir, 'alloc.json');
    writeFileSync(file, JSON.stringify({ interval: 4096, kept: false, profile, gc }));
    const a = alloc.analyze(file, 2);
    expect(a.bytesPerUnit).toBe(2048);
    expect(a.gcMsPer1000).toBe(7000);
    expect(a.functions.map((f: { name: string; perUnit: number }) => [f.name, f.perUnit])).toEqual([
      ['idToken  dist/libs/token/src/token-issuer.js:65', 1024],
      ['stringify  (native / V8)', 512],
      ['parse  qs/parse.js:10', 256],
      ['(garbage collector)', 256],
    ]);
    expect(a.ours).toEqual([{ name: 'idToken  dist/libs/token/src/token-issuer.js:65', perUnit: 1792, pct: 87.5 }]);
    expect(a.markdown('t')).toContain('**2.0 KiB a unit**');
  });
});

describe('bench/lib/report (the main thread beside the whole server)', () => {
  const report = require('../bench/lib/report');
  const run = (units: number, serverCpu: number, serverMainCpu?: number) => ({
    units, seconds: 10, latencies: new Float64Array([1, 2, 3]), serverCpu, serverMainCpu, genCpu: 20, otherCpu: 0, irqCpu: 3, stealCpu: 0, rssMax: 100,
    failures: { measured: 0, warmup: 0, setup: 0, messages: {} }, verify: { issued: 0, checked: 0, failed: 0, messages: {}, keys: [], sample: {} },
  });

  it('gives the main thread its CPU ms a unit, from the mean of the rounds', () => {
    // 2,000 units in 20 s = 100/s; CPU 150 % and 160 % (mean 155): 15.5 ms a unit; main 60 % and 70 %: 6.5 ms.
    const s = report.summarize('refresh', 'ours (SQLite)', [run(1000, 150, 60), run(1000, 160, 70)]);
    expect(s.cpuMsPerUnit).toBeCloseTo(15.5, 6);
    expect(s.mainCpuMsPerUnit).toBeCloseTo(6.5, 6);
    const { head, rows } = report.table([s], () => '', 'ratio');
    expect(rows[0][head.indexOf('CPU ms / unit')]).toBe('15.50 (main 6.50)');
  });

  it('leaves the brackets out when a round has no main-thread figure', () => {
    const s = report.summarize('refresh', 'ours (SQLite)', [run(1000, 150, 60), run(1000, 160)]);
    const { head, rows } = report.table([s], () => '', 'ratio');
    expect(rows[0][head.indexOf('CPU ms / unit')]).toBe('15.50');
  });
});
