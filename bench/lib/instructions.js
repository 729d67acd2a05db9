'use strict';
// Reads the per-thread dumps of a callgrind run (valgrind --tool=callgrind --separate-threads=yes)
// and sums the instructions executed, a unit of work: on the main thread (by function and by
// kind: JavaScript, V8's builtins, the GC, SQLite, OpenSSL…) and on the other threads (libuv's
// pool, V8's helpers). Instructions executed do not depend on what else the machine is doing
// (a shared host's steal, another process): the same code, inputs and environment give the same
// count, so two commits can be compared on a busy machine where their rates cannot.
//   node bench/lib/instructions.js units dumpfile…
const { readFileSync } = require('node:fs');

/** Self instructions by function name of one callgrind dump (the Ir event only). */
function parse(file) {
  const text = readFileSync(file, 'utf8');
  const names = { fn: new Map(), ob: new Map() };
  const self = new Map();
  let fn = '?';
  let ob = '';
  let skip = false;
  let thread;
  let totals = 0;
  // "fn=(12) name" defines id 12; "fn=(12)" refers to it.
  const resolve = (kind, v) => {
    const m = /^\((\d+)\)(?: (.*))?$/.exec(v);
    if (!m) return v;
    if (m[2] !== undefined) names[kind].set(m[1], m[2]);
    return names[kind].get(m[1]) ?? v;
  };
  for (const line of text.split('\n')) {
    if (line.startsWith('fn=')) {
      fn = resolve('fn', line.slice(3));
      fn = ob && /^0x[0-9a-f]+$/i.test(fn) ? `${fn} [${ob}]` : fn;
    } else if (line.startsWith('ob=')) ob = resolve('ob', line.slice(3));
    else if (line.startsWith('cfn=')) resolve('fn', line.slice(4));
    else if (line.startsWith('cob=')) resolve('ob', line.slice(4));
    else if (line.startsWith('calls=')) skip = true; // the next cost line is the call's inclusive cost
    else if (/^[0-9+*-]/.test(line)) {
      if (skip) {
        skip = false;
        continue;
      }
      const parts = line.trim().split(/\s+/);
      const ir = Number(parts[1] ?? 0);
      if (ir) self.set(fn, (self.get(fn) ?? 0) + ir);
    } else if (line.startsWith('thread: ')) thread = Number(line.slice(8));
    else if (line.startsWith('totals: ')) totals = Number(line.slice(8).trim().split(/\s+/)[0]);
  }
  return { file, thread, totals, self };
}

/** What a function of the node binary (or another object) is, for the summary by kind. */
function kind(name) {
  if (/^0x[0-9a-f]+( \[\?\?\?\])?$/i.test(name)) return 'JavaScript (JIT-compiled code, and V8 stubs)';
  if (/Scaveng|MarkCompact|Marking|Sweep|Heap::|Evacuat|Compactor|GCTracer|MemoryAllocator|ConcurrentMarking|RememberedSet|SlotSet|GlobalHandles|OldToNew|MemoryChunk|Page::|NewSpace|PagedSpace|LargeObjectSpace/.test(name)) return 'V8 GC';
  if (/^Builtins_/.test(name)) return 'V8 builtins (JSON, strings, promises, calls…)';
  if (/^sqlite3|^better_sqlite3|Statement::|Database::|^pcache|^btree|^sqlite/i.test(name)) return 'SQLite';
  if (/^(EVP|evp_|BN_|bn_|RSA|rsa|ossl_|OSSL_|sha256|sha512|SHA|CRYPTO_|OPENSSL|ERR_|HMAC|hmac|ecp_|EC_|ASN1|asn1|x25519|aes|AES|md5|MD5|OBJ_|CONF_|BIO_|PKCS|RAND_|rand_|drbg|ctr_drbg)/.test(name)) return 'OpenSSL';
  if (/^(uv_|uv__)/.test(name)) return 'libuv';
  if (/^llhttp|^node::http_parser|HTTPParser/.test(name)) return 'HTTP parser';
  if (/^v8::internal::(Compiler|compiler|maglev|baseline|interpreter|Parser|Scanner|PreParser|Bytecode)|Turbofan|Maglev/.test(name)) return 'V8 compilers';
  if (/^v8::internal::/.test(name)) return 'V8 runtime (other)';
  if (/^node::|^v8::/.test(name)) return 'Node.js bindings and V8 API';
  if (/^(__|mem|str|malloc|free|_int_|cfree|calloc|realloc|pthread|epoll|__libc|writev|read|write|open|close|clock_gettime)/.test(name)) return 'libc';
  return 'other native';
}

function analyze(units, files) {
  const threads = files.map(parse);
  const main = threads.find((t) => t.thread === 1);
  if (!main) throw new Error(`no main thread (thread 1) among ${files.join(', ')}`);
  const others = threads.filter((t) => t !== main);
  const sum = (ts) => ts.reduce((a, t) => a + t.totals, 0);
  const isPool = (t) => [...t.self.keys()].some((n) => /uv__work|worker\b|uv__threadpool|SignJob|CryptoJob|ThreadPoolWork/.test(n));
  const pool = others.filter(isPool);
  const helpers = others.filter((t) => !isPool(t));
  const byKind = new Map();
  for (const [name, ir] of main.self) byKind.set(kind(name), (byKind.get(kind(name)) ?? 0) + ir);
  const per = (ir) => ir / units;
  const top = (m, n) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n);
  return {
    units,
    main: per(main.totals), pool: per(sum(pool)), helpers: per(sum(helpers)), total: per(sum(threads)),
    kinds: top(byKind, 20).map(([k, ir]) => ({ kind: k, perUnit: per(ir), pct: (100 * ir) / main.totals })),
    functions: top(main.self, 25).map(([name, ir]) => ({ name, perUnit: per(ir), pct: (100 * ir) / main.totals })),
    markdown(title) {
      const k = (ir) => (ir / 1000).toLocaleString('en-US', { maximumFractionDigits: 0 });
      return [
        `## ${title}`, '',
        `Instructions executed a unit (thousands; ${units.toLocaleString('en-US')} units under callgrind): **main thread ${k(this.main)}**, libuv's pool ${k(this.pool)}, V8's helper threads ${k(this.helpers)}, all threads ${k(this.total)}.`, '',
        'The main thread by kind of code:', '',
        '| k instr. a unit | % | kind |', '|---:|---:|---|', ...this.kinds.map((r) => `| ${k(r.perUnit)} | ${r.pct.toFixed(1)} | ${r.kind} |`),
        '', 'The main thread by function (self; JIT-compiled JavaScript has no name here: use --profile for it):', '',
        '| k instr. a unit | % | function |', '|---:|---:|---|', ...this.functions.map((r) => `| ${k(r.perUnit)} | ${r.pct.toFixed(1)} | \`${r.name.length > 110 ? `${r.name.slice(0, 110)}…` : r.name}\` |`),
      ].join('\n');
    },
  };
}

module.exports = { analyze, parse };

if (require.main === module) {
  const [units, ...files] = process.argv.slice(2);
  process.stdout.write(`${analyze(Number(units), files).markdown(files[0])}\n`);
}
