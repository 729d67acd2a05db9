'use strict';
// Reads what bench/lib/alloc-probe.js wrote (a V8 sampling heap profile that kept collected
// objects, and the GCs of the same window) and sums the bytes allocated by function, by file or
// package, and inclusively by our own functions, per unit of work.
//   node bench/lib/alloc.js file.json units
const { readFileSync } = require('node:fs');
const { where, ours } = require('./profile');

function analyze(file, units) {
  const { profile, gc, interval, kept, error } = JSON.parse(readFileSync(file, 'utf8'));
  if (error) throw new Error(`${file}: ${error}`);
  const fns = new Map();
  const files = new Map();
  const incl = new Map();
  let total = 0;
  const add = (m, k, v) => m.set(k, (m.get(k) ?? 0) + v);
  // Each node's selfSize is its samples' bytes, scaled by V8 to an estimate of all it allocated.
  const walk = (n, stack) => {
    const cf = n.callFrame;
    const here = [...stack, cf];
    if (n.selfSize) {
      total += n.selfSize;
      const special = cf.functionName.startsWith('(');
      add(fns, special ? cf.functionName : `${cf.functionName || '(anonymous)'}  ${where(cf.url, true)}${cf.url ? `:${cf.lineNumber + 1}` : ''}`, n.selfSize);
      add(files, special ? cf.functionName : where(cf.url), n.selfSize);
      const seen = new Set();
      for (const f of here) {
        if (!ours(f.url)) continue;
        const key = `${f.functionName || '(anonymous)'}  ${where(f.url)}:${f.lineNumber + 1}`;
        if (seen.has(key)) continue;
        seen.add(key);
        add(incl, key, n.selfSize);
      }
    }
    for (const c of n.children ?? []) walk(c, here);
  };
  walk(profile.head, []);
  const top = (m, k) => [...m].sort((a, b) => b[1] - a[1]).slice(0, k).map(([name, bytes]) => ({ name, perUnit: bytes / units, pct: (100 * bytes) / total }));
  const gcTotal = Object.values(gc).reduce((a, g) => ({ count: a.count + g.count, ms: a.ms + g.ms }), { count: 0, ms: 0 });
  return {
    units, interval, kept, bytesPerUnit: total / units, gc, gcMsPer1000: (1000 * gcTotal.ms) / units,
    functions: top(fns, 30), files: top(files, 20), ours: top(incl, 25),
    markdown(title, nf = 25, nfile = 15) {
      const kb = (b) => (b / 1024).toFixed(1);
      const lines = [
        `## ${title}`, '',
        kept
          ? `Allocated in the measured window and still on the heap at its end (BENCH_ALLOC_KEPT=1: what outlived the scavenges, promoted garbage included until a full GC): **${kb(this.bytesPerUnit)} KiB a unit** (${units.toLocaleString('en-US')} units; V8's sampling heap profiler, a sample every ${interval} bytes on average). GCs in the same window:`
          : `Allocated in the measured window: **${kb(this.bytesPerUnit)} KiB a unit** (${units.toLocaleString('en-US')} units; V8's sampling heap profiler, a sample every ${interval} bytes on average, collected objects kept). GCs in the same window:`,
        '',
        '| GC | count | per 1,000 units | ms per 1,000 units | longest ms |', '|---|---:|---:|---:|---:|',
        ...Object.entries(gc).sort((a, b) => b[1].ms - a[1].ms).map(([k, g]) => `| ${k} | ${g.count} | ${((1000 * g.count) / units).toFixed(1)} | ${((1000 * g.ms) / units).toFixed(1)} | ${g.maxMs.toFixed(1)} |`),
        '', 'Bytes allocated by the function itself (self), a unit:', '',
        '| self KiB | % | function  location |', '|---:|---:|---|', ...this.functions.slice(0, nf).map((r) => `| ${kb(r.perUnit)} | ${r.pct.toFixed(1)} | \`${r.name}\` |`),
        '', '| self KiB | % | file or package |', '|---:|---:|---|', ...this.files.slice(0, nfile).map((r) => `| ${kb(r.perUnit)} | ${r.pct.toFixed(1)} | \`${r.name}\` |`),
        '', 'Our functions by inclusive allocation (what they and their synchronous callees allocated):', '',
        '| incl. KiB | % | function  location |', '|---:|---:|---|', ...this.ours.slice(0, 20).map((r) => `| ${kb(r.perUnit)} | ${r.pct.toFixed(1)} | \`${r.name}\` |`),
      ];
      return lines.join('\n');
    },
  };
}

module.exports = { analyze };

if (require.main === module) {
  const a = analyze(process.argv[2], Number(process.argv[3] ?? 1));
  process.stdout.write(`${a.markdown(process.argv[2])}\n`);
}
