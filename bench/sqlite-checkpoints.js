'use strict';
// A microbenchmark of SQLite's WAL checkpoints under refresh-token rotation, the way our server
// writes (better-sqlite3, WAL, synchronous=NORMAL, 16 MiB page cache, the refresh_tokens table
// with its indexes and an audit row per rotation): each rotation is BEGIN IMMEDIATE, a read, an
// UPDATE, an INSERT, COMMIT, at a fixed rate. It compares SQLite's own checkpoints on the
// committing thread (`inline`, every N WAL pages) with a worker thread running PASSIVE checkpoints
// as libs/identity/src/sqlite-checkpointer.ts does. Reports per rotation the time the (event-loop)
// thread was busy, the process CPU, and the commit latency percentiles (the stalls).
//   node bench/sqlite-checkpoints.js [rotations/s] [rotations]
const Database = require('better-sqlite3');
const { randomBytes, randomUUID } = require('node:crypto');
const { mkdtempSync, rmSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { Worker } = require('node:worker_threads');

const RATE = Number(process.argv[2] ?? 1000);
const N = Number(process.argv[3] ?? 10000);
const MODES = [
  { name: 'inline, every 4,000 pages', autocheckpoint: 4000 },
  { name: 'worker every 250 ms, safety net 16,000 pages', autocheckpoint: 16000, workerMs: 250 },
  { name: 'inline, every 1,000 pages (SQLite default)', autocheckpoint: 1000 },
  { name: 'worker every 20 ms, safety net 16,000 pages', autocheckpoint: 16000, workerMs: 20 },
  { name: 'worker every 250 ms, no safety net (WAL unbounded if it stops)', autocheckpoint: 0, workerMs: 250 },
];

const WORKER = `
const { workerData: w, parentPort } = require('node:worker_threads');
const db = new (require(w.module))(w.file);
db.pragma('synchronous = NORMAL');
// As libs/identity/src/sqlite-checkpointer.ts: passes until one finds the WAL as the one before left it.
const t = setInterval(() => {
  let last = -1;
  for (let i = 0; i < 16; i++) {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    if (!(r.log > 0) || (r.checkpointed >= r.log && r.log === last)) break;
    last = r.log;
  }
}, w.ms);
parentPort.on('message', () => { clearInterval(t); db.close(); parentPort.close(); });`;

function open(file, mode) {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma(`wal_autocheckpoint = ${mode.autocheckpoint}`);
  db.pragma('cache_size = -16384');
  db.exec(`CREATE TABLE refresh_tokens (token_hash varchar(64) PRIMARY KEY NOT NULL, family_id varchar(36) NOT NULL, client_id varchar(128) NOT NULL,
      user_id varchar(36) NOT NULL, scopes text NOT NULL, audience varchar(512), sid varchar(64) NOT NULL, auth_time integer NOT NULL, amr varchar(255) NOT NULL,
      code_hash varchar(64), created_at datetime NOT NULL, expires_at datetime NOT NULL, used_at datetime, revoked_at datetime, access_jti varchar(64), access_exp datetime);
    CREATE INDEX idx_family ON refresh_tokens (family_id); CREATE INDEX idx_code ON refresh_tokens (code_hash); CREATE INDEX idx_user_client ON refresh_tokens (user_id, client_id);
    CREATE TABLE audit_events (id varchar(36) PRIMARY KEY NOT NULL, type varchar(64) NOT NULL, created_at datetime NOT NULL, user_id varchar(36), client_id varchar(128), data text);
    CREATE INDEX idx_audit_created ON audit_events (created_at); CREATE INDEX idx_audit_type ON audit_events (type, created_at);`);
  return db;
}

async function run(mode) {
  const dir = mkdtempSync(join(tmpdir(), 'idp-ckpt-bench-'));
  const file = join(dir, 'db.sqlite');
  const db = open(file, mode);
  const worker = mode.workerMs && new Worker(WORKER, { eval: true, workerData: { module: require.resolve('better-sqlite3'), file, ms: mode.workerMs } });
  const insert = db.prepare('INSERT INTO refresh_tokens VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)');
  const read = db.prepare('SELECT * FROM refresh_tokens WHERE token_hash = ?');
  const use = db.prepare('UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL');
  const audit = db.prepare('INSERT INTO audit_events VALUES (?,?,?,?,?,?)');
  const now = () => new Date().toISOString();
  const row = (user, family, hash) => [hash, family, 'web', user, '["openid"]', 'https://api', 'sid', 1, 'pwd', null, now(), now(), null, null, 'jti', null];
  // 16 families, one per concurrent user of the bench.
  const current = Array.from({ length: 16 }, () => {
    const h = randomBytes(32).toString('hex');
    insert.run(...row(randomUUID(), randomUUID(), h));
    return h;
  });
  const latencies = [];
  let busy = 0;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    // Bursts of 16 at the given rate, as 16 concurrent clients would arrive.
    if (i % 16 === 0) {
      const due = t0 + BigInt(Math.round((i / RATE) * 1e9));
      while (process.hrtime.bigint() < due) await new Promise((r) => setTimeout(r, 1));
    }
    const s = process.hrtime.bigint();
    const k = i % 16;
    db.exec('BEGIN IMMEDIATE');
    const old = read.get(current[k]);
    use.run(now(), current[k]);
    current[k] = randomBytes(32).toString('hex');
    insert.run(...row(old.user_id, old.family_id, current[k]));
    audit.run(randomUUID(), 'token.refreshed', now(), old.user_id, 'web', '{}');
    db.exec('COMMIT');
    const d = Number(process.hrtime.bigint() - s) / 1e3;
    latencies.push(d);
    busy += d;
  }
  const cpu = process.cpuUsage(cpu0);
  if (worker) {
    const exited = new Promise((r) => worker.once('exit', r));
    worker.postMessage('stop');
    await exited;
  }
  db.close();
  rmSync(dir, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))];
  return {
    mode: mode.name,
    'busy µs/rotation': (busy / N).toFixed(0),
    'process CPU µs/rotation': ((cpu.user + cpu.system) / N).toFixed(0),
    'p50 µs': q(0.5).toFixed(0),
    'p99 µs': q(0.99).toFixed(0),
    'p99.9 µs': q(0.999).toFixed(0),
    'max ms': (latencies[latencies.length - 1] / 1e3).toFixed(1),
  };
}

(async () => {
  console.log(`${N} rotations at ${RATE}/s, node ${process.version}`);
  const rows = [];
  for (const m of MODES) rows.push(await run(m));
  console.table(rows);
})();
