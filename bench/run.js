'use strict';
// `npm run bench`: our server (SQLite; and PostgreSQL with BENCH_DATABASE_URL) against
// oidc-provider and a bare node:http + jose ceiling, same load generator, workloads alternated
// A B A B. `npm run bench -- --scale`: our server on an empty database against the same on a
// seeded one. `npm run bench -- --profile`: CPU profiles of our server. See bench/README.md.
const { spawn, execSync, execFile } = require('node:child_process');
const { mkdtempSync, mkdirSync, writeFileSync, rmSync, readdirSync, existsSync, copyFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { performance } = require('node:perf_hooks');
const servers = require('./lib/servers');
const { setupOurs, oidcConfig, describeRemote } = require('./lib/setup');
const report = require('./lib/report');

const ALL = ['client_credentials', 'code', 'refresh', 'userinfo', 'introspection', 'login'];
const SUPPORTS = {
  ours: new Set(ALL),
  'oidc-provider': new Set(['client_credentials', 'code', 'refresh', 'userinfo', 'introspection']),
  ceiling: new Set(['client_credentials']),
};

function options() {
  const argv = process.argv.slice(2);
  const flag = (name) => argv.includes(`--${name}`);
  const value = (name, env, dflt) => {
    const i = argv.indexOf(`--${name}`);
    if (i >= 0 && argv[i + 1] !== undefined) return argv[i + 1];
    const eq = argv.find((a) => a.startsWith(`--${name}=`));
    if (eq) return eq.slice(name.length + 3);
    return process.env[env] ?? dflt;
  };
  const o = {
    duration: Number(value('duration', 'BENCH_DURATION', 10)),
    warmup: Number(value('warmup', 'BENCH_WARMUP', 2)),
    concurrency: Number(value('concurrency', 'BENCH_CONCURRENCY', 16)),
    rounds: Number(value('rounds', 'BENCH_ROUNDS', 2)),
    workloads: String(value('workloads', 'BENCH_WORKLOADS', ALL.join(','))).split(',').map((s) => s.trim()).filter(Boolean),
    databaseUrl: value('database-url', 'BENCH_DATABASE_URL', ''),
    scale: flag('scale'),
    profile: flag('profile'),
    // --alloc: what our server allocates a unit, and its GCs (V8's sampling heap profiler).
    alloc: flag('alloc'),
    // --instructions: instructions our server executes a unit, under valgrind's callgrind.
    instructions: flag('instructions'),
    build: !flag('no-build'),
    // Another checkout of the server (e.g. a baseline commit): its dist/ is built and run instead.
    serverDir: require('node:path').resolve(value('server-dir', 'BENCH_SERVER_DIR', servers.ROOT)),
    keep: flag('keep'),
    // Base name of the result files in bench/results/ (default latest, scale).
    out: value('out', 'BENCH_OUT', ''),
    oidcAdapter: value('oidc-adapter', 'BENCH_OIDC_ADAPTER', 'map'),
    // Before each run, wait (up to quietWait s) until other processes use less than quietCpu % of a core.
    quietWait: Number(value('quiet-wait', 'BENCH_QUIET_WAIT', 60)),
    quietCpu: Number(value('quiet-cpu', 'BENCH_QUIET_CPU', 25)),
    // On a shared VM: a measurement whose steal (% of one core, as in the table) went above this is
    // discarded and taken again, up to stealRetries times; before each, the harness also waits for
    // a second with steal below it. Unset: every measurement counts, whatever its steal.
    maxSteal: value('max-steal', 'BENCH_MAX_STEAL', undefined),
    stealRetries: Number(value('steal-retries', 'BENCH_STEAL_RETRIES', 3)),
    // On a shared machine: run the servers and the load generator at this nice value (negative needs root).
    nice: value('nice', 'BENCH_NICE', undefined),
    seed: {
      users: Number(value('users', 'BENCH_SEED_USERS', 100_000)),
      clients: Number(value('clients', 'BENCH_SEED_CLIENTS', 10_000)),
      refreshTokens: Number(value('refresh-tokens', 'BENCH_SEED_REFRESH_TOKENS', 1_000_000)),
      consents: Number(value('consents', 'BENCH_SEED_CONSENTS', 1_000_000)),
    },
  };
  for (const w of o.workloads) if (!ALL.includes(w)) throw new Error(`unknown workload ${w} (known: ${ALL.join(', ')})`);
  if (o.maxSteal !== undefined) {
    o.maxSteal = Number(o.maxSteal);
    if (!(o.maxSteal >= 0)) throw new Error('bad --max-steal');
  }
  if (!(o.stealRetries >= 0)) throw new Error('bad --steal-retries');
  for (const k of ['duration', 'warmup', 'concurrency', 'rounds']) if (!(o[k] >= 0) || (k !== 'warmup' && !(o[k] > 0))) throw new Error(`bad --${k}`);
  return o;
}

const log = (...a) => process.stderr.write(`${a.join(' ')}\n`);

/**
 * Forks the load generator; samples the server's CPU and RSS over the measured window.
 * `hooks.measure()` / `hooks.end()`: called as the measured window opens and closes.
 */
function runWorker(spec, server, hooks = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(...servers.command([join(__dirname, 'load.js')]), { serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let done = false;
    let cpu0;
    let mainCpu0;
    let wall0;
    let timer;
    let serverCpu = NaN;
    let serverMainCpu = NaN;
    let from;
    let to;
    let machine0;
    let machineCpu = NaN;
    let irqCpu = NaN;
    let stealCpu = NaN;
    let pg0;
    let dbCpu;
    const rss = [];
    const sample = () => {
      try {
        rss.push(server.rss());
      } catch {
        /* exited */
      }
    };
    child.on('message', (m) => {
      if (m.type === 'phase' && m.phase === 'measure') {
        from = Number(process.hrtime.bigint() / 1000n);
        machine0 = servers.machineCpuSeconds();
        if (server.postgres) pg0 = servers.postgresCpuSeconds();
        cpu0 = server.cpu();
        mainCpu0 = server.mainCpu();
        wall0 = performance.now();
        sample();
        timer = setInterval(sample, 250);
        hooks.measure?.();
      } else if (m.type === 'phase' && m.phase === 'end') {
        clearInterval(timer);
        to = Number(process.hrtime.bigint() / 1000n);
        hooks.end?.();
        const secs = (performance.now() - wall0) / 1000;
        serverCpu = ((server.cpu() - cpu0) / secs) * 100;
        serverMainCpu = ((server.mainCpu() - mainCpu0) / secs) * 100;
        const machine1 = servers.machineCpuSeconds();
        machineCpu = ((machine1.busy - machine0.busy) / secs) * 100;
        irqCpu = ((machine1.irq - machine0.irq) / secs) * 100;
        stealCpu = ((machine1.steal - machine0.steal) / secs) * 100;
        if (server.postgres) dbCpu = ((servers.postgresCpuSeconds() - pg0) / secs) * 100;
        sample();
      } else if (m.type === 'result') {
        done = true;
        clearInterval(timer);
        resolve({ ...m, serverCpu, serverMainCpu, dbCpu, otherCpu: machineCpu - serverCpu - (m.genCpu ?? 0) - (dbCpu ?? 0), irqCpu, stealCpu, window: { from, to }, rssMax: rss.length ? Math.max(...rss) : server.rss(), rssSamples: rss.length });
      } else if (m.type === 'error') {
        done = true;
        clearInterval(timer);
        reject(new Error(`load generator (${spec.workload} on ${server.name}): ${m.message}`));
      }
    });
    child.on('exit', (code) => {
      clearInterval(timer);
      if (!done) reject(new Error(`load generator exited with ${code}`));
    });
    child.send(spec);
  });
}

/**
 * Waits until the machine is quiet: other processes' CPU below `cpu` % of a core and, when
 * `maxSteal` is set, the hypervisor's steal below it, over one second; at most `maxS` seconds.
 */
async function waitQuiet(maxS, cpu, maxSteal) {
  const until = Date.now() + maxS * 1000;
  let said = false;
  for (;;) {
    const m0 = servers.machineCpuSeconds();
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, 1000));
    const m1 = servers.machineCpuSeconds();
    const secs = (performance.now() - t0) / 1000;
    const busy = ((m1.busy - m0.busy) / secs) * 100;
    const steal = ((m1.steal - m0.steal) / secs) * 100;
    const stolen = maxSteal !== undefined && steal > maxSteal;
    if (busy < cpu && !stolen) return;
    const what = `${busy.toFixed(0)} % of a core used by other processes${maxSteal !== undefined ? `, steal ${steal.toFixed(0)} %` : ''}`;
    if (Date.now() >= until) {
      log(`  (machine still busy: ${what}; measuring anyway)`);
      return;
    }
    if (!said) log(`  (waiting for the machine to calm down: ${what})`);
    said = true;
  }
}

class Bench {
  constructor(o) {
    this.o = o;
    this.tmp = mkdtempSync(join(tmpdir(), 'idp-bench-'));
    this.procs = [];
    this.cleanups = [];
  }

  async startOurs(name, databaseUrl, extra = {}) {
    const admin = extra.admin ?? { id: 'bench-admin', secret: servers.randomSecret(40) };
    const secretKey = extra.secretKey ?? servers.randomSecret(48);
    const s = await servers.ours({ name, databaseUrl, logFile: join(this.tmp, `${name}.log`), secretKey, admin, nodeArgs: extra.nodeArgs, extraEnv: extra.env, wrap: extra.wrap, serverDir: extra.serverDir ?? this.o.serverDir, port: extra.port });
    this.procs.push(s);
    s.admin = admin;
    s.secretKey = secretKey;
    s.databaseUrl = databaseUrl;
    s.postgres = databaseUrl.startsWith('postgres');
    return s;
  }

  async stop(s) {
    await s.stop();
    this.procs = this.procs.filter((p) => p !== s);
  }

  async pgSchema(tag) {
    const { Client } = require('pg');
    const schema = `bench_${tag}_${Date.now().toString(36)}`;
    const c = new Client({ connectionString: this.o.databaseUrl });
    await c.connect();
    await c.query(`CREATE SCHEMA ${schema}`);
    await c.end();
    if (!this.o.keep) {
      this.cleanups.push(async () => {
        const d = new Client({ connectionString: this.o.databaseUrl });
        await d.connect();
        await d.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
        await d.end();
      });
    }
    const u = new URL(this.o.databaseUrl);
    u.searchParams.set('schema', schema);
    return { url: u.toString(), schema };
  }

  /** One target = a running server + the description the load generator needs + its sessions. */
  async target(server, t) {
    const target = { server, name: server.name, kind: server.kind, t: { ...t, kind: server.kind }, sessions: [] };
    if (server.kind !== 'ceiling') {
      const r = await runWorker({ mode: 'prepare', target: target.t, concurrency: this.o.concurrency }, server);
      target.sessions = r.sessions;
    }
    return target;
  }

  /** Each workload: rounds × every target that supports it, in turn (A B A B). */
  async measure(targets) {
    const o = this.o;
    const runs = [];
    for (const workload of o.workloads) {
      const here = targets.filter((x) => SUPPORTS[x.kind].has(workload));
      for (let round = 1; round <= o.rounds; round++) {
        for (const x of here) {
          const stolen = [];
          let r;
          for (;;) {
            if (o.quietWait > 0) await waitQuiet(o.quietWait, o.quietCpu, o.maxSteal);
            r = await runWorker({
              mode: 'run', workload, target: x.t, sessions: x.sessions, concurrency: o.concurrency, duration: o.duration, warmup: o.warmup,
            }, x.server);
            if (o.maxSteal === undefined || !(r.stealCpu > o.maxSteal) || stolen.length >= o.stealRetries) break;
            // A measurement with a failure is kept, whatever its steal: failures are never dropped.
            if (r.failures.measured + r.failures.warmup + r.failures.setup || r.verify.failed) break;
            // Discarded (its tokens were verified all the same).
            stolen.push(Math.round(r.stealCpu));
            log(`  ${workload.padEnd(18)} ${x.name.padEnd(22)} round ${round}: steal ${report.f0(r.stealCpu)} % > ${o.maxSteal} %, measuring again`);
          }
          r.stolen = stolen;
          const fails = r.failures.measured + r.failures.warmup + r.failures.setup;
          log(`  ${workload.padEnd(18)} ${x.name.padEnd(22)} round ${round}: ${report.f0(r.units / r.seconds).padStart(7)} ${report.UNIT[workload].padEnd(8)} failures ${fails}, verified ${r.verify.checked}/${r.verify.issued}${r.verify.failed ? ` (${r.verify.failed} BAD)` : ''}, CPU ${report.f0(r.serverCpu)} %${r.dbCpu !== undefined ? ` (+ PostgreSQL ${report.f0(r.dbCpu)} %)` : ''}, load gen CPU ${report.f0(r.genCpu)} %, other processes ${report.f0(Math.max(0, r.otherCpu))} %, irq ${report.f0(r.irqCpu)} %, steal ${report.f0(r.stealCpu)} %`);
          runs.push({ workload, target: x.name, round, ...r });
        }
      }
    }
    return runs;
  }

  async close() {
    for (const s of [...this.procs].reverse()) await s.stop().catch(() => {});
    for (const c of this.cleanups) await c().catch((e) => log(`cleanup: ${e.message}`));
    if (!this.o.keep) rmSync(this.tmp, { recursive: true, force: true });
    else log(`kept ${this.tmp}`);
  }
}

function summaries(runs, workloads, names) {
  const out = [];
  for (const w of workloads) {
    for (const n of names) {
      const rs = runs.filter((r) => r.workload === w && r.target === n);
      if (rs.length) out.push(report.summarize(w, n, rs));
    }
  }
  return out;
}

function write(base, data, md) {
  const dir = join(__dirname, 'results');
  mkdirSync(dir, { recursive: true });
  // No latency arrays (the percentiles are there) and no database URL (it may carry a password).
  const slim = JSON.stringify(data, (k, v) => (k === 'latencies' ? undefined : k === 'databaseUrl' ? (v ? 'set' : '') : v), 2);
  writeFileSync(join(dir, `${base}.json`), `${slim}\n`);
  writeFileSync(join(dir, `${base}.md`), `${md}\n`);
  log(`\nwrote bench/results/${base}.json and bench/results/${base}.md`);
}

function header(title, o, m, command) {
  return [
    `# ${title}`,
    '',
    `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC · \`${command}\` · ${o.duration} s per run after ${o.warmup} s warm-up, ${o.concurrency} concurrent, ${o.rounds} rounds alternated${o.nice !== undefined ? `, servers and load generator at nice ${o.nice}` : ''}`,
    '',
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.memGiB} GiB, ${m.os}, Node.js ${m.node}; idp ${m.commit}; oidc-provider ${m.oidcProvider}; jose ${m.jose}.`,
  ].join('\n');
}

/** --max-steal: how many measurements were taken again, and how many kept more steal than allowed. */
function stealLine(runs, o) {
  const again = runs.reduce((a, r) => a + (r.stolen?.length ?? 0), 0);
  const over = runs.filter((r) => r.stealCpu > o.maxSteal);
  return `Steal: a measurement with more than ${o.maxSteal} % steal was taken again, up to ${o.stealRetries} times: ${again} of ${runs.length + again} measurements were discarded${over.length ? `; ${over.length} kept more than ${o.maxSteal} % after the last retry (${over.map((r) => `${r.workload} ${r.target} round ${r.round}: ${Math.round(r.stealCpu)} %`).join('; ')})` : ', and every measurement kept had less'}.`;
}

function commandLine() {
  const args = process.argv.slice(2);
  const env = Object.keys(process.env).filter((k) => k.startsWith('BENCH_') && k !== 'BENCH_DATABASE_URL').map((k) => `${k}=${process.env[k]}`);
  if (process.env.BENCH_DATABASE_URL) env.push('BENCH_DATABASE_URL=…');
  return `${env.length ? `${env.join(' ')} ` : ''}npm run bench${args.length ? ` -- ${args.join(' ')}` : ''}`;
}

async function compare(b) {
  const o = b.o;
  log('starting our server on SQLite …');
  const sqlite = await b.startOurs('ours (SQLite)', `sqlite:${join(b.tmp, 'ours.sqlite')}`);
  const t = await setupOurs(sqlite.issuer, sqlite.admin);
  const started = [[sqlite, t]];
  const b2 = servers.variantB();
  const variant = b2 && { env: b2.env, nodeArgs: b2.nodeArgs, serverDir: b2.serverDir };
  if (b2) {
    log(`starting our server on SQLite with ${b2.label} …`);
    const sqliteB = await b.startOurs('ours (SQLite, B)', `sqlite:${join(b.tmp, 'ours-b.sqlite')}`, variant);
    started.push([sqliteB, await setupOurs(sqliteB.issuer, sqliteB.admin)]);
  }
  if (o.databaseUrl) {
    log('starting our server on PostgreSQL …');
    const { url } = await b.pgSchema('cmp');
    const pg = await b.startOurs('ours (PostgreSQL)', url);
    started.push([pg, await setupOurs(pg.issuer, pg.admin)]);
    if (b2) {
      log(`starting our server on PostgreSQL with ${b2.label} …`);
      const pgB = await b.startOurs('ours (PostgreSQL, B)', (await b.pgSchema('cmpb')).url, variant);
      started.push([pgB, await setupOurs(pgB.issuer, pgB.admin)]);
    }
  }
  log('starting oidc-provider and the ceiling …');
  const op = await servers.oidcProvider({ name: 'oidc-provider', logFile: join(b.tmp, 'oidc-provider.log'), config: oidcConfig(t, o.oidcAdapter) });
  b.procs.push(op);
  started.push([op, await describeRemote(op.issuer, t)]);
  const ceil = await servers.ceiling({ name: 'ceiling (http+jose)', logFile: join(b.tmp, 'ceiling.log'), audience: t.api.identifier });
  b.procs.push(ceil);
  started.push([ceil, await describeRemote(ceil.issuer, t)]);

  log('establishing browser sessions …');
  const targets = [];
  for (const [s, d] of started) targets.push(await b.target(s, d));
  log('measuring …');
  const runs = await b.measure(targets);
  // The issue's memory target is the RSS after the whole run: read once the load has stopped and
  // the servers had 2 s to finish what was in flight.
  await new Promise((r) => setTimeout(r, 2000));
  const rssAfter = started.filter(([s]) => !s.name.startsWith('ceiling')).map(([s]) => ({ target: s.name, mb: rssMb(s) }));

  const names = targets.map((x) => x.name);
  const sums = summaries(runs, o.workloads, names);
  const ratio = (s, all) => {
    if (s.target.startsWith('ceiling')) {
      const ours = all.filter((x) => x.workload === s.workload && x.target.startsWith('ours'));
      return ours.map((x) => `${x.target.replace(/^ours \((.*)\)$/, '$1')} = ${report.f0((100 * x.rate) / s.rate)} % of it`).join(', ');
    }
    if (!s.target.startsWith('ours')) return '';
    const ref = all.find((x) => x.workload === s.workload && x.target === 'oidc-provider');
    if (!ref) return 'ours only';
    // Each round's ratio too: the two sides of a round ran one after the other, so the machine's
    // drift between rounds (which can move a ratio by 15 % or more) shows as their spread.
    return `${(s.rate / ref.rate).toFixed(2)} ×${s.rounds.length > 1 ? roundRatios(s, ref) : ''}`;
  };
  const tbl = report.table(sums, ratio, 'ours / oidc-provider');
  const abLines = b2 ? variantLines(sums, b2.label) : [];
  const m = report.machine(o.serverDir);
  const v = report.verifyLine(sums);
  const notes = report.failureNotes(sums);
  const cmd = commandLine();
  const md = [
    header('Benchmark: idp vs oidc-provider', o, m, cmd),
    '',
    report.markdownTable(tbl),
    '',
    `Rate: completed units per second (a code flow = /authorize + token request; a login = /authorize + login page + POST /login + redirect back). p50/p99: latency of one unit. Failures: every unit whose status or body was wrong (setup and warm-up included). RSS: peak during the measured window. CPU: server process, % of one core (the machine has ${m.cores}), plus, on PostgreSQL, every postgres process of the machine; CPU ms / unit: that CPU time per unit (when every core is busy, two servers' rates can differ by no more than the inverse ratio of these), and in brackets the server's main thread's part of it (the event loop's thread; the rest is libuv's thread pool, where both servers sign, and V8's helper threads); load gen: the load generator process; others: the machine's other processes (the worst round), which should be near 0 for a clean run; irq: the kernel's interrupt handling, which no process is charged for (mostly the loopback network, so it grows with the request rate; the mean of the rounds); steal: CPU time the hypervisor gave to other guests (the worst round); above a few % the rates are noisy (a round can lose a third of its CPU), so compare the rounds' ratios and CPU ms / unit, which A B A B alternation keeps fair. Tokens verified against the JWKS: ${v.checked.toLocaleString('en-US')} of ${v.issued.toLocaleString('en-US')} issued, ${v.failed} failed.`,
    ...(notes.length ? ['', 'Failures:', ...notes] : []),
    ...(o.maxSteal !== undefined ? ['', stealLine(runs, o)] : []),
    ...(abLines.length ? ['', ...abLines] : []),
    '',
    `RSS after the whole run (every workload, every round; 2 s after the last load): ${rssAfter.map((x) => `${x.target} ${x.mb} MiB`).join(', ')}.`,
    '',
    'Token contents (the first token of each kind):',
    ...report.tokenNotes(sums),
  ].join('\n');
  log(`\n${report.consoleTable(tbl)}\n`);
  if (o.maxSteal !== undefined) log(stealLine(runs, o));
  if (abLines.length) log(abLines.join('\n'));
  log(`tokens verified: ${v.checked} of ${v.issued} issued, ${v.failed} failed`);
  log(`RSS after the whole run: ${rssAfter.map((x) => `${x.target} ${x.mb} MiB`).join(', ')}`);
  if (notes.length) log(notes.join('\n'));
  // A run with a variant B is an experiment: it leaves latest.* (what the README quotes) alone.
  write(o.out || (b2 ? 'ab' : 'latest'), { kind: 'compare', date: new Date().toISOString(), command: cmd, machine: m, options: o, summaries: sums, runs, rssAfter }, md);
}

/** " (rounds: …)": the ratio of `s` to `ref` in each round, where both ran the same rounds. */
function roundRatios(s, ref) {
  if (s.rounds.length !== ref.rounds.length) return '';
  return ` (rounds: ${s.rounds.map((r, i) => (r / ref.rounds[i]).toFixed(2)).join(', ')})`;
}

/** "B / A" per workload, with each round's ratio (B ran right after A in each round). */
function variantLines(sums, label) {
  const lines = [`B = ours with ${label}; B / A, the whole run and each round:`];
  for (const db of ['SQLite', 'PostgreSQL']) {
    for (const a of sums.filter((x) => x.target === `ours (${db})`)) {
      const bs = sums.find((x) => x.workload === a.workload && x.target === `ours (${db}, B)`);
      if (!bs) continue;
      lines.push(`- ${report.LABEL[a.workload]}, ${db}: ${(bs.rate / a.rate).toFixed(2)} ×${roundRatios(bs, a)}; CPU ms / unit ${a.cpuMsPerUnit.toFixed(2)} → ${bs.cpuMsPerUnit.toFixed(2)}; p99 ${a.p99.toFixed(1)} → ${bs.p99.toFixed(1)} ms`);
    }
  }
  return lines;
}

/** A server's resident memory now, in MiB (as the table's RSS column), or null once it has exited. */
function rssMb(server) {
  try {
    return Math.round(server.rss());
  } catch {
    return null;
  }
}

async function scale(b) {
  const o = b.o;
  const { seedSqlite, seedPostgres } = require('./seed');
  const pairs = [['SQLite', (tag) => ({ url: `sqlite:${join(b.tmp, `${tag}.sqlite`)}` })]];
  if (o.databaseUrl) pairs.push(['PostgreSQL', (tag) => b.pgSchema(tag)]);
  const started = [];
  for (const [db, make] of pairs) {
    for (const seeded of [false, true]) {
      const tag = seeded ? 'seeded' : 'empty';
      const name = `ours ${db} ${tag}`;
      const { url, schema } = await make(tag);
      log(`starting ${name} …`);
      let s = await b.startOurs(name, url);
      const t = await setupOurs(s.issuer, s.admin);
      if (seeded) {
        await b.stop(s);
        const t0 = performance.now();
        log(`seeding ${db}: ${o.seed.users} users, ${o.seed.clients} clients, ${o.seed.refreshTokens} refresh tokens, ${o.seed.consents} consents …`);
        const counts = await (db === 'SQLite' ? seedSqlite(url.slice('sqlite:'.length), o.seed, s.secretKey) : seedPostgres(o.databaseUrl, schema, o.seed, s.secretKey));
        log(`  seeded in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${JSON.stringify(counts)}`);
        s = await b.startOurs(name, url, { admin: s.admin, secretKey: s.secretKey, port: s.port });
      }
      started.push([s, t]);
    }
  }
  log('establishing browser sessions …');
  const targets = [];
  for (const [s, t] of started) targets.push(await b.target(s, t));
  log('measuring …');
  const runs = await b.measure(targets);
  const sums = summaries(runs, o.workloads, targets.map((x) => x.name));
  const ratio = (s, all) => {
    if (!s.target.endsWith('seeded')) return '';
    const ref = all.find((x) => x.workload === s.workload && x.target === s.target.replace(/seeded$/, 'empty'));
    return ref ? `${(s.rate / ref.rate).toFixed(2)} ×` : '';
  };
  const tbl = report.table(sums, ratio, 'seeded / empty');
  const m = report.machine(o.serverDir);
  const v = report.verifyLine(sums);
  const notes = report.failureNotes(sums);
  const cmd = commandLine();
  const md = [
    header('Benchmark at scale: empty database vs seeded', o, m, cmd),
    '',
    `Seeded: ${o.seed.users.toLocaleString('en-US')} users, ${o.seed.clients.toLocaleString('en-US')} clients, ${o.seed.refreshTokens.toLocaleString('en-US')} refresh tokens, ${o.seed.consents.toLocaleString('en-US')} consents (bench/seed.js), besides the bench's own API, clients and user.`,
    '',
    report.markdownTable(tbl),
    '',
    `Tokens verified against the JWKS: ${v.checked.toLocaleString('en-US')} of ${v.issued.toLocaleString('en-US')} issued, ${v.failed} failed.`,
    ...(notes.length ? ['', 'Failures:', ...notes] : []),
  ].join('\n');
  log(`\n${report.consoleTable(tbl)}\n`);
  log(`tokens verified: ${v.checked} of ${v.issued} issued, ${v.failed} failed`);
  if (notes.length) log(notes.join('\n'));
  write(o.out || 'scale', { kind: 'scale', date: new Date().toISOString(), command: cmd, machine: m, options: o, summaries: sums, runs }, md);
}

/**
 * One server of ours per workload, measured from inside:
 * - --profile: under --cpu-prof, self time by function and by file/package;
 * - --alloc: with bench/lib/alloc-probe.js, bytes allocated a unit by function, and the GCs;
 * - --instructions: under valgrind's callgrind, instructions executed a unit (main thread by kind
 *   and function, the pool, V8's helpers), which steal and other processes do not change.
 * The measured window is the load generator's (warm-up excluded).
 */
async function profile(b) {
  const o = b.o;
  const mode = o.instructions ? 'instructions' : o.alloc ? 'alloc' : 'cpu';
  const M = {
    cpu: { title: 'CPU profile', file: 'profile', label: 'profiled', under: 'under the profiler', defaults: ['client_credentials', 'code'] },
    alloc: { title: 'Allocations', file: 'alloc', label: 'allocations sampled', under: 'while sampling allocations', defaults: ['client_credentials', 'code', 'refresh'] },
    instructions: { title: 'Instructions', file: 'instructions', label: 'under callgrind', under: 'under callgrind', defaults: ['client_credentials', 'code', 'refresh'] },
  }[mode];
  const dir = join(__dirname, 'results', 'profiles');
  mkdirSync(dir, { recursive: true });
  const workloads = o.workloads.length === ALL.length ? M.defaults : o.workloads;
  const parts = [`# ${M.title} of our server (${o.databaseUrl && !o.scale ? 'PostgreSQL' : 'SQLite'}${o.scale ? ', seeded database' : ''})`, '', `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC · \`${commandLine()}\` · ${o.duration} s after ${o.warmup} s warm-up, ${o.concurrency} concurrent${o.serverDir === servers.ROOT ? '' : ` · the server of ${o.serverDir} (${report.machine(o.serverDir).commit})`}`];
  for (const workload of workloads) {
    const profDir = join(b.tmp, `prof-${workload}`);
    mkdirSync(profDir, { recursive: true });
    const allocFile = join(profDir, 'alloc.json');
    const cgOut = join(profDir, 'callgrind.out');
    // On PostgreSQL when BENCH_DATABASE_URL is set (not with --scale, which seeds SQLite here).
    const onPg = !!o.databaseUrl && !o.scale;
    const url = onPg ? (await b.pgSchema(`prof_${workload}`)).url : `sqlite:${join(b.tmp, `prof-${workload}.sqlite`)}`;
    const prof = {
      cpu: { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`] },
      alloc: { nodeArgs: ['--require', join(__dirname, 'lib', 'alloc-probe.js')], env: { BENCH_ALLOC_OUT: allocFile } },
      // Instrumentation off until the measured window (start-up and warm-up run at valgrind's
      // uninstrumented speed); one dump file a thread. --smc-check: V8 writes code on the heap.
      instructions: { wrap: ['valgrind', '--tool=callgrind', '--instr-atstart=no', '--separate-threads=yes', `--callgrind-out-file=${cgOut}.%p`, '--smc-check=all-non-file', '--quiet'] },
    }[mode];
    let s = await b.startOurs(`ours (${onPg ? 'PostgreSQL' : 'SQLite'}, ${M.label})`, url, o.scale ? {} : prof);
    const t = await setupOurs(s.issuer, s.admin);
    if (o.scale) {
      // --profile --scale: the same on the seeded database.
      await b.stop(s);
      await require('./seed').seedSqlite(url.slice('sqlite:'.length), o.seed, s.secretKey);
      s = await b.startOurs(`ours (SQLite seeded, ${M.label})`, url, { ...prof, admin: s.admin, secretKey: s.secretKey, port: s.port });
    }
    const x = await b.target(s, t);
    const pending = [];
    // With the server's environment: valgrind names its control pipes after USER and HOSTNAME as it saw them.
    const callgrind = (...args) => pending.push(new Promise((res, rej) => execFile('callgrind_control', [...args, String(s.pid)], { env: s.env }, (err) => (err ? rej(err) : res()))));
    const hooks = {
      cpu: {},
      alloc: { measure: () => process.kill(s.pid, 'SIGUSR2'), end: () => process.kill(s.pid, 'SIGUSR2') },
      instructions: { measure: () => callgrind('--instr=on'), end: () => callgrind('--dump') },
    }[mode];
    const r = await runWorker({ mode: 'run', workload, target: x.t, sessions: x.sessions, concurrency: o.concurrency, duration: o.duration, warmup: o.warmup }, s, hooks);
    await Promise.all(pending);
    log(`  ${workload}: ${report.f0(r.units / r.seconds)} ${report.UNIT[workload]} ${M.under}, failures ${r.failures.measured + r.failures.warmup + r.failures.setup}`);
    if (mode === 'alloc') for (let i = 0; i < 100 && !existsSync(allocFile); i++) await new Promise((res) => setTimeout(res, 100));
    await b.stop(s);
    const base = `${workload}${o.scale ? '-seeded' : ''}`;
    const title = `${workload} (${report.f0(r.units / r.seconds)} ${report.UNIT[workload]} ${M.under})`;
    let md;
    // The units finished within the measured window (a few may finish just after it closed).
    if (mode === 'alloc') {
      md = require('./lib/alloc').analyze(allocFile, r.units).markdown(title);
      copyFileSync(allocFile, join(dir, `${base}.alloc.json`));
    } else if (mode === 'instructions') {
      // The dump of the window: callgrind.out.<pid>.1-<thread> (the final dump at exit is part 2).
      const dumps = readdirSync(profDir).filter((f) => f.startsWith('callgrind.out.') && /\.1-\d+$/.test(f)).map((f) => join(profDir, f));
      if (!dumps.length) throw new Error(`no callgrind dump in ${profDir}`);
      const a = require('./lib/instructions').analyze(r.units, dumps);
      md = a.markdown(title);
      writeFileSync(join(dir, `${base}.instructions.json`), `${JSON.stringify({ units: a.units, main: a.main, pool: a.pool, helpers: a.helpers, total: a.total, kinds: a.kinds, functions: a.functions })}\n`);
    } else {
      const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
      if (!file) throw new Error(`no .cpuprofile in ${profDir}`);
      md = require('./lib/profile').analyze(join(profDir, file), r.window).markdown(title);
      copyFileSync(join(profDir, file), join(dir, `${base}.cpuprofile`));
      writeFileSync(join(dir, `${base}.window.json`), `${JSON.stringify(r.window)}\n`);
    }
    log(`\n${md}\n`);
    parts.push('', md);
  }
  const name = `${M.file}${o.scale ? '-scale' : ''}${o.out ? `-${o.out}` : ''}.md`;
  writeFileSync(join(__dirname, 'results', name), `${parts.join('\n')}\n`);
  log(`wrote bench/results/${name}${mode === 'cpu' ? ' (profiles in bench/results/profiles/, open them in Chrome DevTools)' : ''}`);
}

async function main() {
  const o = options();
  if (o.nice !== undefined) servers.setNice(Number(o.nice));
  if (o.build) {
    const b2 = servers.variantB();
    for (const dir of new Set([o.serverDir, ...(b2?.serverDir ? [b2.serverDir] : [])])) {
      log(`npm run build${dir === servers.ROOT ? '' : ` in ${dir}`} …`);
      execSync('npm run build', { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
    }
  }
  const b = new Bench(o);
  const stop = () => {
    b.close().finally(() => process.exit(130));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    if (o.profile || o.alloc || o.instructions) await profile(b); // with --scale: on a seeded database
    else if (o.scale) await scale(b);
    else await compare(b);
  } finally {
    await b.close();
  }
}

main().catch((err) => {
  log(err?.stack ?? String(err));
  process.exit(1);
});
