'use strict';
// Reads a V8 .cpuprofile (node --cpu-prof) and sums self time by function and by file/package.
//   node bench/lib/profile.js file.cpuprofile [top]
const { readFileSync } = require('node:fs');

/** Package (or our file under dist/, or node:…) of a script URL; with `file`, the file within the package too. */
function where(url, file = false) {
  if (!url) return '(native / V8)';
  const u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = u.slice(nm + '/node_modules/'.length).split('/');
    const n = rest[0].startsWith('@') ? 2 : 1;
    const pkg = rest.slice(0, n).join('/');
    return file ? `${pkg}/${rest.slice(n).join('/').replace(/^(dist|build|lib)\//, '')}` : pkg;
  }
  if (u.startsWith('node:')) return u;
  const d = u.indexOf('/dist/');
  return d >= 0 ? u.slice(d + 1) : u;
}

const ours = (url) => /\/dist\/(apps|libs)\//.test(url ?? '');

/** `window`: { from, to } in µs of the monotonic clock (process.hrtime), to keep only those samples. */
function analyze(file, window) {
  const p = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map();
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    t += dt;
    if (window && (t < window.from || t > window.to)) continue;
    self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + dt);
  }
  let total = 0;
  let idle = 0;
  const fns = new Map();
  const files = new Map();
  for (const [id, us] of self) {
    const n = byId.get(id);
    const cf = n.callFrame;
    total += us;
    if (cf.functionName === '(idle)') {
      idle += us;
      continue;
    }
    const w = where(cf.url);
    const special = cf.functionName.startsWith('(');
    const fkey = special ? cf.functionName : `${cf.functionName || '(anonymous)'}  ${where(cf.url, true)}${cf.url ? `:${cf.lineNumber + 1}` : ''}`;
    fns.set(fkey, (fns.get(fkey) ?? 0) + us);
    const k = special ? cf.functionName : w;
    files.set(k, (files.get(k) ?? 0) + us);
  }
  const busy = total - idle;
  // Inclusive time of our own functions (dist/apps, dist/libs): each sample counts once for every
  // distinct function of ours on its (synchronous) stack.
  const incl = new Map();
  for (const [id, us] of self) {
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const cf = byId.get(cur).callFrame;
      if (!ours(cf.url)) continue;
      const key = `${cf.functionName || '(anonymous)'}  ${where(cf.url)}:${cf.lineNumber + 1}`;
      if (seen.has(key)) continue;
      seen.add(key);
      incl.set(key, (incl.get(key) ?? 0) + us);
    }
  }
  const top = (m, n) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, us]) => ({ name: k, ms: us / 1000, pct: (100 * us) / busy }));
  return {
    totalMs: total / 1000, idleMs: idle / 1000, busyMs: busy / 1000,
    functions: top(fns, 30), files: top(files, 20), ours: top(incl, 25),
    markdown(title, nf = 25, nfile = 15) {
      const lines = [`## ${title}`, '', `Measured window: ${(total / 1e6).toFixed(1)} s, of which the main thread was busy ${(busy / 1e6).toFixed(1)} s (the rest idle, e.g. waiting for the thread pool or the network). Self time, % of busy:`, ''];
      lines.push('| self ms | % | function  location |', '|---:|---:|---|', ...this.functions.slice(0, nf).map((r) => `| ${r.ms.toFixed(0)} | ${r.pct.toFixed(1)} | \`${r.name}\` |`));
      lines.push('', '| self ms | % | file or package |', '|---:|---:|---|', ...this.files.slice(0, nfile).map((r) => `| ${r.ms.toFixed(0)} | ${r.pct.toFixed(1)} | \`${r.name}\` |`));
      lines.push('', 'Our functions by inclusive time (their synchronous stacks only: time after an `await` counts for the continuation, not the caller):', '');
      lines.push('| incl. ms | % | function  location |', '|---:|---:|---|', ...this.ours.slice(0, 20).map((r) => `| ${r.ms.toFixed(0)} | ${r.pct.toFixed(1)} | \`${r.name}\` |`));
      return lines.join('\n');
    },
  };
}

module.exports = { analyze, where, ours };

if (require.main === module) {
  // The measured window, when bench/run.js --profile saved it beside the profile.
  let window;
  try {
    window = JSON.parse(readFileSync(process.argv[2].replace(/\.cpuprofile$/, '.window.json'), 'utf8'));
  } catch {
    /* whole profile */
  }
  const a = analyze(process.argv[2], window);
  process.stdout.write(`${a.markdown(process.argv[2], Number(process.argv[3] ?? 25))}\n`);
}
