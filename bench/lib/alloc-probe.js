'use strict';
// Loaded with `node --require` into our server by `npm run bench -- --alloc`. The first SIGUSR2
// starts V8's sampling heap profiler (every allocation of about `BENCH_ALLOC_INTERVAL` bytes is
// sampled with its stack, and kept even when a scavenge or a full GC collects the object, so
// the profile is what was allocated, not what survived) and counts the GCs; the second stops
// both and writes { interval, kept, profile, gc } as JSON to BENCH_ALLOC_OUT. Measuring starts and stops with
// the load generator's measured window.
const inspector = require('node:inspector');
const { writeFileSync, renameSync } = require('node:fs');
const { PerformanceObserver, constants } = require('node:perf_hooks');

const out = process.env.BENCH_ALLOC_OUT;
const interval = Number(process.env.BENCH_ALLOC_INTERVAL ?? 4096);
// BENCH_ALLOC_KEPT=1: only what is still on the heap when measuring stops (collected objects
// dropped): what the window allocated that outlived scavenges, promoted garbage included until a
// full GC collects it.
const kept = process.env.BENCH_ALLOC_KEPT === '1';
const KINDS = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'scavenge',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'mark-compact',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental marking',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak callbacks',
};
let session;
let gc;
let observer;

process.on('SIGUSR2', () => {
  if (!session) {
    session = new inspector.Session();
    session.connect();
    gc = {};
    observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        const k = KINDS[e.detail?.kind ?? e.kind] ?? 'other';
        const g = (gc[k] ??= { count: 0, ms: 0, maxMs: 0 });
        g.count++;
        g.ms += e.duration;
        g.maxMs = Math.max(g.maxMs, e.duration);
      }
    });
    observer.observe({ entryTypes: ['gc'] });
    session.post('HeapProfiler.startSampling', { samplingInterval: interval, includeObjectsCollectedByMajorGC: !kept, includeObjectsCollectedByMinorGC: !kept });
    return;
  }
  const s = session;
  session = undefined;
  s.post('HeapProfiler.stopSampling', (err, r) => {
    observer.disconnect();
    s.disconnect();
    const body = err ? { error: String(err.message ?? err) } : { interval, kept, profile: r.profile, gc };
    writeFileSync(`${out}.tmp`, JSON.stringify(body));
    renameSync(`${out}.tmp`, out);
  });
});
