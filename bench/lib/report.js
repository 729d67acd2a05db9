'use strict';
// Summaries, the table (console and Markdown) and the machine description.
const os = require('node:os');
const { execSync } = require('node:child_process');
const { readFileSync } = require('node:fs');
const { join } = require('node:path');

const UNIT = { client_credentials: 'req/s', code: 'flows/s', refresh: 'req/s', userinfo: 'req/s', introspection: 'req/s', login: 'logins/s' };
const LABEL = {
  client_credentials: 'client_credentials',
  code: 'code flow',
  refresh: 'refresh (rotation)',
  userinfo: 'userinfo',
  introspection: 'introspection',
  login: 'login (argon2id)',
};

function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Merges the rounds of one (workload, target). */
function summarize(workload, target, runs) {
  const units = runs.reduce((a, r) => a + r.units, 0);
  const seconds = runs.reduce((a, r) => a + r.seconds, 0);
  const all = new Float64Array(runs.reduce((a, r) => a + r.latencies.length, 0));
  let o = 0;
  for (const r of runs) {
    all.set(r.latencies, o);
    o += r.latencies.length;
  }
  all.sort();
  const failures = runs.reduce((a, r) => a + r.failures.measured + r.failures.warmup + r.failures.setup, 0);
  const messages = {};
  for (const r of runs) for (const [m, n] of Object.entries(r.failures.messages)) messages[m] = (messages[m] ?? 0) + n;
  const verify = { issued: 0, checked: 0, failed: 0, messages: {}, keys: runs[0]?.verify.keys ?? [], sample: runs[0]?.verify.sample ?? {} };
  for (const r of runs) {
    verify.issued += r.verify.issued ?? 0;
    verify.checked += r.verify.checked;
    verify.failed += r.verify.failed;
    for (const [m, n] of Object.entries(r.verify.messages)) verify.messages[m] = (verify.messages[m] ?? 0) + n;
  }
  const summary = {
    workload, target, unit: UNIT[workload],
    rate: units / seconds,
    rounds: runs.map((r) => r.units / r.seconds),
    p50: percentile(all, 50), p90: percentile(all, 90), p99: percentile(all, 99), max: all.length ? all[all.length - 1] : NaN,
    units, failures, failureMessages: messages,
    rssMiB: Math.max(...runs.map((r) => r.rssMax)),
    cpuPct: runs.reduce((a, r) => a + r.serverCpu, 0) / runs.length,
    mainCpuPct: runs.reduce((a, r) => a + (r.serverMainCpu ?? NaN), 0) / runs.length,
    dbCpuPct: runs[0]?.dbCpu === undefined ? undefined : runs.reduce((a, r) => a + (r.dbCpu ?? 0), 0) / runs.length,
    genCpuPct: runs.reduce((a, r) => a + (r.genCpu ?? 0), 0) / runs.length,
    otherCpuPct: Math.max(0, ...runs.map((r) => r.otherCpu ?? 0)),
    irqCpuPct: runs.reduce((a, r) => a + (r.irqCpu ?? 0), 0) / runs.length,
    stealCpuPct: Math.max(0, ...runs.map((r) => r.stealCpu ?? 0)),
    verify,
  };
  summary.cpuMsPerUnit = cpuMsPerUnit(summary);
  summary.mainCpuMsPerUnit = msPerUnit(summary.mainCpuPct, summary.rate);
  return summary;
}

const f0 = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–');
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '–');
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '–');

/**
 * CPU time the server spent per unit (its process, plus PostgreSQL's on PostgreSQL), in ms: what a
 * unit costs whatever the machine's other load. On a machine whose cores are all busy, the ratio of
 * two servers' rates can be no larger than the inverse ratio of these.
 */
function cpuMsPerUnit(s) {
  return msPerUnit(s.cpuPct + (s.dbCpuPct ?? 0), s.rate);
}

/** CPU ms a unit from CPU % of one core (10 ms a second per %) and units a second. */
function msPerUnit(cpuPct, rate) {
  return (cpuPct * 10) / rate;
}

/** "CPU ms / unit" with, in brackets, the server's main thread's share (the rest: libuv's pool, V8's helpers). */
function cpuCell(s) {
  return Number.isFinite(s.mainCpuMsPerUnit) ? `${f2(s.cpuMsPerUnit)} (main ${f2(s.mainCpuMsPerUnit)})` : f2(s.cpuMsPerUnit);
}

/**
 * Rows: one per (workload, target), with `compare(summary, all)` giving the last column
 * (e.g. ours / oidc-provider).
 */
function table(summaries, compare, compareTitle) {
  const head = ['workload', 'server', 'rate', 'p50 ms', 'p99 ms', 'failures', 'RSS MiB', 'CPU %', 'CPU ms / unit', 'load gen CPU %', 'others CPU %', 'irq %', 'steal %', compareTitle];
  const rows = summaries.map((s) => [
    LABEL[s.workload], s.target, `${f0(s.rate)} ${s.unit}`, f1(s.p50), f1(s.p99), String(s.failures), f0(s.rssMiB), s.dbCpuPct === undefined ? f0(s.cpuPct) : `${f0(s.cpuPct)} + ${f0(s.dbCpuPct)} PostgreSQL`, cpuCell(s), f0(s.genCpuPct), f0(s.otherCpuPct), f0(s.irqCpuPct), f0(s.stealCpuPct),
    compare(s, summaries) ?? '',
  ]);
  return { head, rows };
}

function markdownTable({ head, rows }) {
  const line = (cells) => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map((_, i) => (i < 2 ? '---' : '---:'))), ...rows.map(line)].join('\n');
}

function consoleTable({ head, rows }) {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => cells.map((c, i) => (i < 2 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ');
  return [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n');
}

function machine(serverDir = join(__dirname, '..', '..')) {
  const cpus = os.cpus();
  let commit = `unknown (server from ${serverDir})`;
  let dirty = false;
  try {
    commit = execSync('git rev-parse --short HEAD', { cwd: serverDir, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    dirty = execSync('git status --porcelain -- apps libs', { cwd: serverDir, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() !== '';
  } catch {
    /* not a git checkout */
  }
  const version = (pkg) => {
    try {
      return JSON.parse(readFileSync(join(__dirname, '..', '..', 'node_modules', pkg, 'package.json'), 'utf8')).version;
    } catch {
      return 'unknown';
    }
  };
  return {
    cpu: cpus[0]?.model?.trim(), cores: cpus.length, memGiB: Math.round(os.totalmem() / 2 ** 30), os: `${os.type()} ${os.release()}`,
    node: process.version, commit: commit + (dirty ? ' (+ uncommitted changes in apps/ or libs/)' : ''),
    oidcProvider: version('oidc-provider'), jose: version('jose'),
  };
}

function failureNotes(summaries) {
  const notes = [];
  for (const s of summaries) {
    for (const [m, n] of Object.entries(s.failureMessages)) notes.push(`- ${LABEL[s.workload]} / ${s.target}: ${n} × ${m}`);
    for (const [m, n] of Object.entries(s.verify.messages)) notes.push(`- ${LABEL[s.workload]} / ${s.target}: token verification failed ${n} × ${m}`);
  }
  return notes;
}

function verifyLine(summaries) {
  let issued = 0;
  let checked = 0;
  let failed = 0;
  for (const s of summaries) {
    issued += s.verify.issued;
    checked += s.verify.checked;
    failed += s.verify.failed;
  }
  return { issued, checked, failed };
}

/** What each side's tokens carry: header and claim names of the first token of each kind. */
function tokenNotes(summaries) {
  const lines = [];
  for (const s of summaries) {
    for (const [kind, { header, payload }] of Object.entries(s.verify.sample ?? {})) {
      const keys = s.verify.keys.map((k) => `${k.kty} ${k.bits}`).join(', ');
      lines.push(`- ${LABEL[s.workload]}, ${kind === 'at' ? 'access token' : 'ID token'}, ${s.target}: header ${Object.keys(header).join(' ')} (${header.alg}${header.typ ? `, ${header.typ}` : ''}; JWKS ${keys}); claims ${Object.keys(payload).join(' ')}`);
    }
  }
  return lines;
}

module.exports = { tokenNotes, UNIT, LABEL, summarize, table, markdownTable, consoleTable, machine, failureNotes, verifyLine, f0, f1 };
