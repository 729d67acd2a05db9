'use strict';
// Starting and stopping the measured servers as child processes, and reading their CPU time and
// RSS from /proc (process.cpuUsage only covers the calling process).
const { spawn } = require('node:child_process');
const { createWriteStream, readFileSync, readdirSync, writeFileSync } = require('node:fs');
const { createServer } = require('node:net');
const { join, resolve } = require('node:path');
const { request } = require('undici');

const ROOT = join(__dirname, '..', '..');
const CLK_TCK = 100; // Linux USER_HZ: /proc times are in 1/100 s on every common kernel config

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** utime + stime of a process (or, with `tid`, of one of its threads), in seconds. */
function cpuSeconds(pid, tid) {
  const stat = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields after "pid (comm) ": state=0 … utime=11, stime=12
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

/**
 * CPU seconds of the whole machine (all cores, /proc/stat): `busy` in processes (user, nice,
 * system), `irq` in interrupt handlers (irq, softirq: on this bench mostly the loopback network
 * stack, which no process is charged for), and `steal` (what the hypervisor gave to other guests).
 */
function machineCpuSeconds() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number);
  return { busy: (f[0] + f[1] + f[2]) / CLK_TCK, irq: (f[5] + f[6]) / CLK_TCK, steal: (f[7] ?? 0) / CLK_TCK };
}

/**
 * CPU seconds of every `postgres` process on the machine (the database server's share of a
 * PostgreSQL run), with the CPU of the backends that have exited: the postmaster reaps them, so
 * their time is in its cutime/cstime. Without those, a window in which another server's idle
 * connections closed would lose their whole past CPU (a negative share).
 */
function postgresCpuSeconds() {
  let sum = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (!stat.includes('(postgres)')) continue;
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // utime, stime, and cutime, cstime (children waited for)
      sum += (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK;
    } catch {
      /* gone */
    }
  }
  return sum;
}

/** Resident set size in MiB. */
function rssMiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function waitHttp(url, proc, timeoutMs = 60_000) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode} before it was ready`);
    try {
      const res = await request(url);
      await res.body.dump();
      if (res.statusCode === 200) return;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms`);
}

let nice;
/**
 * Every process started from now on runs under `nice -n value` (all its threads). With the
 * kernel's autogroup scheduling (sched_autogroup_enabled = 1) nice only weighs within a session's
 * group, so the whole group of this process (the harness and its children) gets that nice too.
 */
function setNice(value) {
  nice = value;
  try {
    writeFileSync('/proc/self/autogroup', String(value));
  } catch {
    /* no autogroup scheduling here */
  }
}

/** [command, args] to run `node …args`, under nice when set, and under `wrap` (e.g. valgrind and its options) when given. */
function command(args, wrap = []) {
  const run = [...wrap, process.execPath, ...args];
  return nice === undefined ? [run[0], run.slice(1)] : ['nice', ['-n', String(nice), ...run]];
}

/**
 * A server child process. `kind`: 'ours' | 'oidc-provider' | 'ceiling'. Output goes to `logFile`.
 */
class ServerProcess {
  constructor({ name, kind, args, env, readyUrl, logFile, cwd = ROOT, wrap = [] }) {
    Object.assign(this, { name, kind, args, env, readyUrl, logFile, cwd, wrap });
  }

  async start() {
    const log = createWriteStream(this.logFile, { flags: 'a' });
    this.proc = spawn(...command(this.args, this.wrap), { cwd: this.cwd, env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout.pipe(log);
    this.proc.stderr.pipe(log);
    this.exited = new Promise((resolve) => this.proc.once('exit', (code, signal) => resolve({ code, signal })));
    try {
      await waitHttp(this.readyUrl, this.proc);
    } catch (err) {
      await new Promise((r) => setTimeout(r, 200));
      let tail = '';
      try {
        tail = readFileSync(this.logFile, 'utf8').split('\n').slice(-20).join('\n');
      } catch {
        /* none */
      }
      throw new Error(`${this.name}: ${err.message}\n--- ${this.logFile} ---\n${tail}`);
    }
    return this;
  }

  get pid() {
    return this.proc.pid;
  }

  cpu() {
    return cpuSeconds(this.pid);
  }

  /** CPU seconds of the main thread alone (the event loop's: its thread id is the process id). */
  mainCpu() {
    return cpuSeconds(this.pid, this.pid);
  }

  rss() {
    return rssMiB(this.pid);
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode) return;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 15_000);
    await this.exited;
    clearTimeout(t);
  }
}

function randomSecret(n = 48) {
  return require('node:crypto').randomBytes(n).toString('base64url').slice(0, n);
}

/** BENCH_OURS_NODE_ARGS="--trace-gc …": node flags for our server only (V8 flags NODE_OPTIONS refuses). */
function oursNodeArgs() {
  return words(process.env.BENCH_OURS_NODE_ARGS);
}

function words(value) {
  return (value ?? '').split(/\s+/).filter(Boolean);
}

/**
 * The node flags of `npm start` (the `start` script of the server's package.json), so that the
 * bench runs our server exactly as it is started, V8's memory settings included.
 */
function startNodeArgs(serverDir) {
  const start = JSON.parse(readFileSync(join(serverDir, 'package.json'), 'utf8')).scripts.start.split(/\s+/);
  if (start[0] !== 'node') throw new Error(`package.json: the start script does not run node: ${start.join(' ')}`);
  return start.slice(1).filter((a) => a.startsWith('--'));
}

/** BENCH_OURS_ENV="NAME=value NAME2=value2": settings for our server only (to compare one setting against another). */
function oursEnv() {
  return envPairs('BENCH_OURS_ENV');
}

/** The NAME=value pairs of the variable `name`, as an object. */
function envPairs(name) {
  const out = {};
  for (const pair of words(process.env[name])) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new Error(`${name}: expected NAME=value, got ${pair}`);
    out[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return out;
}

/**
 * BENCH_B_ENV="NAME=value …", BENCH_B_NODE_ARGS="--flag …" and BENCH_B_SERVER_DIR=DIR: a second
 * server of ours, "ours (SQLite, B)" (and "ours (PostgreSQL, B)" with BENCH_DATABASE_URL), with
 * these settings on top of the first one's, or built from another checkout (an older commit, say),
 * measured in the same rounds (A B A B with everything else), so that the machine's drift touches
 * both alike. Null when none is set.
 */
function variantB() {
  const { BENCH_B_ENV: env, BENCH_B_NODE_ARGS: args, BENCH_B_SERVER_DIR: dir } = process.env;
  if (!env && !args && !dir) return null;
  const serverDir = dir ? resolve(dir) : undefined;
  return { env: envPairs('BENCH_B_ENV'), nodeArgs: words(args), serverDir, label: [env, args, dir && `the server of ${dir}`].filter(Boolean).join(' ') };
}

/** Our server as `npm start` runs it (its node flags, dist/apps/idp/src/main.js), production mode, rate limits off. */
async function ours({ name, databaseUrl, logFile, secretKey, admin, nodeArgs = [], extraEnv = {}, serverDir = ROOT, port: fixedPort, wrap }) {
  const port = fixedPort ?? (await freePort());
  const issuer = `http://127.0.0.1:${port}`;
  const env = {
    PATH: process.env.PATH, HOME: process.env.HOME, TZ: process.env.TZ ?? 'UTC',
    NODE_ENV: 'production', PORT: String(port), HOST: '127.0.0.1', ISSUER: issuer, DATABASE_URL: databaseUrl,
    IDP_SECRET_KEY: secretKey, IDP_ADMIN_CLIENT_ID: admin.id, IDP_ADMIN_CLIENT_SECRET: admin.secret,
    IDP_RATE_LIMIT: 'off', LOG_LEVEL: 'warn', IDP_LOCKOUT_THRESHOLD: '1000', IDP_LOCKOUT_IP_THRESHOLD: '100000',
    ...oursEnv(),
    ...extraEnv,
  };
  const s = new ServerProcess({ name, kind: 'ours', args: [...nodeArgs, ...startNodeArgs(serverDir), ...oursNodeArgs(), 'dist/apps/idp/src/main.js'], env, readyUrl: `${issuer}/health/ready`, logFile, cwd: serverDir, wrap });
  s.issuer = issuer;
  s.port = port;
  return s.start();
}

async function oidcProvider({ name, logFile, config }) {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'production', BENCH_OIDC: JSON.stringify({ ...config, port, issuer }) };
  const s = new ServerProcess({ name, kind: 'oidc-provider', args: ['bench/oidc-provider-server.mjs'], env, readyUrl: `${issuer}/.well-known/openid-configuration`, logFile });
  s.issuer = issuer;
  s.port = port;
  return s.start();
}

async function ceiling({ name, logFile, audience }) {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, NODE_ENV: 'production', BENCH_CEILING: JSON.stringify({ port, issuer, audience }) };
  const s = new ServerProcess({ name, kind: 'ceiling', args: ['bench/ceiling-server.mjs'], env, readyUrl: `${issuer}/.well-known/openid-configuration`, logFile });
  s.issuer = issuer;
  s.port = port;
  return s.start();
}

module.exports = { variantB, setNice, command, ROOT, freePort, cpuSeconds, machineCpuSeconds, postgresCpuSeconds, rssMiB, ServerProcess, ours, oidcProvider, ceiling, randomSecret };
