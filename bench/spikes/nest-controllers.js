'use strict';
// Spike (issue 20): what serving the protocol endpoints through Nest controllers costs, on Express
// and on Fastify, against today's lean path. After `npm run build` and the --no-save install of
// @nestjs/platform-fastify and @fastify/formbody (bench/spikes/README.md):
//
//   node bench/spikes/nest-controllers.js [--rounds 2] [--warmup 2] [--duration 8] [--concurrency 16] [--variants A,B,C,D,E]
//
// One SQLite file, one signing key, one issuer (the same port) for every variant, each started in
// its own process, one at a time: the set-up (admin API: the bench API, a client_credentials
// client and its grant, a web client, a user) and the user's access tokens (a real code flow
// through the login and consent pages) are made once on today's server (A) and are valid on all.
// Then, for each round, each variant in turn (A B C D E …), each workload: wait for a quiet
// machine, warm up, measure: units/s and the server process's CPU ms per unit (/proc/PID/stat).
// Results: bench/spikes/results/nest-controllers.{json,md}.
const { mkdtempSync, rmSync, mkdirSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { tmpdir } = require('node:os');
const { performance } = require('node:perf_hooks');
const { execSync } = require('node:child_process');
const { Pool } = require('undici');
const servers = require('../lib/servers');
const { setupOurs } = require('../lib/setup');
const { HttpClient, Jar, FORM, basic, form, authorize, redeem } = require('../lib/http');

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const O = {
  rounds: Number(arg('rounds', 2)),
  warmup: Number(arg('warmup', 2)),
  duration: Number(arg('duration', 8)),
  concurrency: Number(arg('concurrency', 16)),
  variants: arg('variants', 'A,B,C,D,E').split(','),
  workloads: arg('workloads', 'client_credentials,userinfo,introspection').split(','),
  quietCpu: Number(arg('quiet-cpu', 25)),
  quietWait: Number(arg('quiet-wait', 120)),
};
const VARIANTS = {
  A: { label: 'A: today (lean path in front of Express)' },
  B: { label: 'B: Nest controllers on Express', spike: 'express' },
  C: { label: 'C: Nest controllers on Fastify', spike: 'fastify' },
  D: { label: 'D: C + one APP_GUARD + one APP_INTERCEPTOR', spike: 'fastify-seams' },
  E: { label: 'E: B + one APP_GUARD + one APP_INTERCEPTOR', spike: 'express-seams' },
};
const log = (...a) => console.log(new Date().toISOString().slice(11, 19), ...a);

async function main() {
  const tmp = mkdtempSync(join(tmpdir(), 'idp-spike-'));
  const port = await servers.freePort();
  const admin = { id: 'bench-admin', secret: servers.randomSecret(40) };
  const secretKey = servers.randomSecret(48);
  const databaseUrl = `sqlite:${join(tmp, 'spike.sqlite')}`;
  const start = async (v) => {
    const logFile = join(tmp, `${v}.log`);
    if (v === 'A') return servers.ours({ name: VARIANTS.A.label, databaseUrl, logFile, secretKey, admin, port });
    // As `npm start` runs the server (its node flags), with the bench's environment.
    const s = new servers.ServerProcess({
      name: VARIANTS[v].label, kind: 'ours', logFile, env: envOf(port, databaseUrl, secretKey, admin),
      args: ['--max-semi-space-size=8', '--heap-growing-percent=50', ...(process.env.SPIKE_NODE_ARGS ?? '').split(/\s+/).filter(Boolean), join(__dirname, 'nest-controllers-server.js'), VARIANTS[v].spike],
      readyUrl: `http://127.0.0.1:${port}/spike/ready`,
    });
    await s.start();
    s.issuer = `http://127.0.0.1:${port}`;
    return s;
  };

  log(`set-up on ${VARIANTS.A.label}, ${databaseUrl}`);
  let s = await start('A');
  const t = await setupOurs(s.issuer, admin);
  const http = new HttpClient(s.issuer, 2);
  const jar = new Jar();
  const userTokens = [];
  await redeem(http, t, await authorize(http, t, jar, { resource: false, pages: true }));
  for (let i = 0; i < O.concurrency; i++) userTokens.push((await redeem(http, t, await authorize(http, t, jar, { resource: false }))).access_token);
  await http.close();
  await s.stop();

  const results = [];
  for (let round = 1; round <= O.rounds; round++) {
    for (const v of O.variants) {
      s = await start(v);
      await check(s.issuer, t, userTokens[0], v);
      for (const w of O.workloads) {
        await waitQuiet();
        const r = await measure(s, t, userTokens, w);
        results.push({ round, variant: v, label: VARIANTS[v].label, workload: w, ...r });
        log(`round ${round} ${v} ${w}: ${r.rate.toFixed(0)}/s, ${r.cpuMs.toFixed(3)} CPU ms/unit (server ${r.cpuPct.toFixed(0)} % of a core), others ${r.othersPct.toFixed(0)} %, failures ${r.failures}${r.firstError ? ` (${r.firstError})` : ''}`);
      }
      await s.stop();
    }
  }
  const commit = execSync('git rev-parse --short HEAD', { cwd: servers.ROOT }).toString().trim();
  const out = join(__dirname, 'results');
  mkdirSync(out, { recursive: true });
  const meta = { date: new Date().toISOString(), commit, node: process.version, options: O, fastify: version('@nestjs/platform-fastify'), nest: version('@nestjs/core') };
  writeFileSync(join(out, 'nest-controllers.json'), JSON.stringify({ meta, results }, null, 2));
  writeFileSync(join(out, 'nest-controllers.md'), report(meta, results));
  console.log(report(meta, results));
  rmSync(tmp, { recursive: true, force: true });
}

function version(name) {
  try {
    return require(`${name}/package.json`).version;
  } catch {
    return null;
  }
}

function envOf(port, databaseUrl, secretKey, admin) {
  const issuer = `http://127.0.0.1:${port}`;
  return {
    PATH: process.env.PATH, HOME: process.env.HOME, TZ: process.env.TZ ?? 'UTC',
    NODE_ENV: 'production', PORT: String(port), HOST: '127.0.0.1', ISSUER: issuer, DATABASE_URL: databaseUrl,
    IDP_SECRET_KEY: secretKey, IDP_ADMIN_CLIENT_ID: admin.id, IDP_ADMIN_CLIENT_SECRET: admin.secret,
    IDP_RATE_LIMIT: 'off', LOG_LEVEL: 'warn', IDP_LOCKOUT_THRESHOLD: '1000', IDP_LOCKOUT_IP_THRESHOLD: '100000',
  };
}

/** One request of each kind, and the error format, before measuring: the variant answers as today's server does. */
async function check(issuer, t, userToken, v) {
  const pool = new Pool(issuer, { connections: 1 });
  try {
    const req = async (method, path, headers, body) => {
      const r = await pool.request({ method, path, headers, body });
      return { status: r.statusCode, headers: r.headers, body: await r.body.json() };
    };
    const cc = await req('POST', '/oauth/token', { authorization: basic(t.m2m.id, t.m2m.secret), 'content-type': FORM }, form({ grant_type: 'client_credentials', resource: t.api.identifier, scope: 'read:data' }));
    const ui = await req('GET', '/userinfo', { authorization: `Bearer ${userToken}` });
    const ii = await req('POST', '/oauth/introspect', { authorization: basic(t.web.id, t.web.secret), 'content-type': FORM }, form({ token: userToken }));
    const bad = await req('POST', '/oauth/token', { authorization: basic(t.m2m.id, 'wrong'), 'content-type': FORM }, form({ grant_type: 'client_credentials' }));
    const rev = await req('POST', '/oauth/revoke', { authorization: basic(t.web.id, t.web.secret), 'content-type': FORM }, form({ token: 'not-a-token' }));
    const ok = cc.status === 200 && typeof cc.body.access_token === 'string' && cc.headers['cache-control'] === 'no-store' && cc.headers['x-content-type-options'] === 'nosniff' && cc.headers['x-request-id'] &&
      ui.status === 200 && ui.body.sub === t.user.sub && ii.status === 200 && ii.body.active === true &&
      bad.status === 401 && bad.body.error === 'invalid_client' && rev.status === 200;
    const seams = cc.headers['x-acme-request'] === '1';
    log(`check ${v}: ${ok ? 'ok' : 'FAILED'} (token ${cc.status}, userinfo ${ui.status}, introspect ${ii.status} active=${ii.body.active}, bad secret ${bad.status} ${bad.body.error}, revoke ${rev.status}; X-Acme-Request ${seams ? 'present' : 'absent'})`);
    if (!ok) throw new Error(`variant ${v} does not answer as expected: ${JSON.stringify({ cc, ui, ii, bad, rev }).slice(0, 2000)}`);
  } finally {
    await pool.close();
  }
}

/** warmup + duration seconds at `concurrency`, undici Pool on loopback; every answer checked. */
async function measure(s, t, userTokens, workload) {
  const pool = new Pool(s.issuer, { connections: O.concurrency, pipelining: 1 });
  const cc = { method: 'POST', path: '/oauth/token', headers: { authorization: basic(t.m2m.id, t.m2m.secret), 'content-type': FORM }, body: form({ grant_type: 'client_credentials', resource: t.api.identifier, scope: 'read:data' }) };
  const webAuth = basic(t.web.id, t.web.secret);
  const unit = {
    client_credentials: async () => {
      const r = await pool.request(cc);
      const b = await r.body.json();
      if (r.statusCode !== 200 || typeof b.access_token !== 'string') throw new Error(`token ${r.statusCode} ${JSON.stringify(b).slice(0, 200)}`);
    },
    userinfo: async (i) => {
      const r = await pool.request({ method: 'GET', path: '/userinfo', headers: { authorization: `Bearer ${userTokens[i % userTokens.length]}` } });
      const b = await r.body.json();
      if (r.statusCode !== 200 || b.sub !== t.user.sub || b.email !== t.user.email) throw new Error(`userinfo ${r.statusCode} ${JSON.stringify(b).slice(0, 200)}`);
    },
    introspection: async (i) => {
      const r = await pool.request({ method: 'POST', path: '/oauth/introspect', headers: { authorization: webAuth, 'content-type': FORM }, body: form({ token: userTokens[i % userTokens.length] }) });
      const b = await r.body.json();
      if (r.statusCode !== 200 || b.active !== true || b.sub !== t.user.sub) throw new Error(`introspection ${r.statusCode} ${JSON.stringify(b).slice(0, 200)}`);
    },
  }[workload];
  let units = 0;
  let failures = 0;
  let firstError;
  let measuring = false;
  let stopped = false;
  const loop = async (i) => {
    while (!stopped) {
      try {
        await unit(i);
        if (measuring) units++;
      } catch (err) {
        failures++;
        firstError ??= err.message;
      }
    }
  };
  const loops = Array.from({ length: O.concurrency }, (_, i) => loop(i));
  await sleep(O.warmup * 1000);
  const cpu0 = s.cpu();
  const m0 = servers.machineCpuSeconds();
  const self0 = process.cpuUsage();
  const t0 = performance.now();
  measuring = true;
  await sleep(O.duration * 1000);
  measuring = false;
  const secs = (performance.now() - t0) / 1000;
  const cpu = s.cpu() - cpu0;
  const m1 = servers.machineCpuSeconds();
  const self = process.cpuUsage(self0);
  stopped = true;
  await Promise.all(loops);
  await pool.close();
  const selfS = (self.user + self.system) / 1e6;
  const othersPct = ((m1.busy - m0.busy - cpu - selfS) / secs) * 100;
  return { rate: units / secs, units, secs, cpuMs: (cpu * 1000) / units, cpuPct: (cpu / secs) * 100, loadGenPct: (selfS / secs) * 100, othersPct, failures, firstError };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitQuiet() {
  const until = Date.now() + O.quietWait * 1000;
  let said = false;
  for (;;) {
    const m0 = servers.machineCpuSeconds();
    await sleep(1000);
    const busy = (servers.machineCpuSeconds().busy - m0.busy) * 100;
    if (busy < O.quietCpu) return;
    if (Date.now() >= until) return log(`  (machine still busy: ${busy.toFixed(0)} % of a core; measuring anyway)`);
    if (!said) log(`  (waiting for the machine to calm down: ${busy.toFixed(0)} % of a core used)`);
    said = true;
  }
}

function report(meta, results) {
  const lines = [
    `# Spike: the protocol endpoints as Nest controllers (issue 20)`,
    '',
    `${meta.date}, commit ${meta.commit}, node ${meta.node}, @nestjs/core ${meta.nest}, @nestjs/platform-fastify ${meta.fastify ?? '(not installed)'}; SQLite; ${meta.options.concurrency} concurrent, ${meta.options.warmup} s warm-up + ${meta.options.duration} s, ${meta.options.rounds} rounds alternated.`,
    '',
    '| variant | workload | units/s (each round) | CPU ms / unit (each round) | others CPU % (worst) | failures |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  const keys = [...new Set(results.map((r) => `${r.variant}|${r.workload}`))];
  for (const k of keys) {
    const rs = results.filter((r) => `${r.variant}|${r.workload}` === k);
    const mean = (f) => rs.reduce((a, r) => a + f(r), 0) / rs.length;
    lines.push(`| ${rs[0].label} | ${rs[0].workload} | ${fmt(mean((r) => r.rate), 0)} (${rs.map((r) => fmt(r.rate, 0)).join(', ')}) | ${mean((r) => r.cpuMs).toFixed(3)} (${rs.map((r) => r.cpuMs.toFixed(3)).join(', ')}) | ${Math.max(...rs.map((r) => r.othersPct)).toFixed(0)} | ${rs.reduce((a, r) => a + r.failures, 0)} |`);
  }
  return `${lines.join('\n')}\n`;
}

const fmt = (n, d) => n.toLocaleString('en-US', { maximumFractionDigits: d });

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
