'use strict';
// Microbenchmark: statements one at a time against statements of one shape batched (DirectSql's
// Lane) on PostgreSQL. `BENCH_DATABASE_URL=postgres://… node bench/pg-batch.js [seconds] [concurrency]`.
// Each unit is a code's life: an INSERT, a SELECT by key and a conditional UPDATE, as at /authorize
// and the token endpoint. "alone" sends every statement on its own through a pool of 10 (as before
// the Lane); "batched" sends a shape's statements that arrive while one is in flight together, as
// one statement over unnest() arrays. Reported: units/s, and the CPU the whole machine (this process
// and PostgreSQL) and this process alone spent per unit, from /proc/stat and process.cpuUsage().
// The table lives in a schema of its own, dropped at the end.
const fs = require('node:fs');
const crypto = require('node:crypto');
const { Pool } = require('pg');

const url = process.env.BENCH_DATABASE_URL;
if (!url) {
  console.error('set BENCH_DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/test)');
  process.exit(2);
}
const seconds = Number(process.argv[2] ?? 6);
const concurrency = Number(process.argv[3] ?? 16);
const schema = `bench_batch_${crypto.randomBytes(4).toString('hex')}`;
const pool = new Pool({ connectionString: url, max: 10, options: `-c search_path=${schema}` });
const q = (text, values, name) => pool.query({ text, values, name });

/** Busy and total jiffies of the whole machine. */
const machine = () => {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return { busy: f.reduce((a, b) => a + b, 0) - f[3] - f[4] };
};

/** One shape's statements: those that arrive while one is in flight go together (as DirectSql's Lane). */
function lane(run) {
  const queue = [];
  let busy = false;
  const sizes = [];
  const drain = async () => {
    busy = true;
    while (queue.length) {
      const batch = queue.splice(0, 100);
      sizes.push(batch.length);
      try {
        const out = await run(batch.map((b) => b.arg));
        batch.forEach((b, i) => b.resolve(out[i]));
      } catch (err) {
        batch.forEach((b) => b.reject(err));
      }
    }
    busy = false;
  };
  const submit = (arg) =>
    new Promise((resolve, reject) => {
      queue.push({ arg, resolve, reject });
      if (!busy) void drain();
    });
  submit.sizes = sizes;
  return submit;
}

const INSERT = 'INSERT INTO codes (code_hash, client_id, user_id, redirect_uri, scopes, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)';
const alone = {
  insert: (r) => q(INSERT, [r.hash, r.client, r.user, r.redirect, r.scopes, r.expires, r.created], 'insert1'),
  select: (hash) => q('SELECT * FROM codes WHERE code_hash = $1 LIMIT 1', [hash], 'select1').then((res) => res.rows[0]),
  use: (hash) => q('UPDATE codes SET used_at = $1, access_jti = $2 WHERE code_hash = $3 AND used_at IS NULL AND expires_at > $1', [new Date(), `jti-${hash.slice(0, 8)}`, hash], 'use1').then((res) => res.rowCount),
};
const batched = () => ({
  insert: lane(async (rows) => {
    const cols = ['hash', 'client', 'user', 'redirect', 'scopes', 'expires', 'created'];
    await q(
      'INSERT INTO codes (code_hash, client_id, user_id, redirect_uri, scopes, expires_at, created_at) SELECT * FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::varchar[], $5::text[], $6::timestamptz[], $7::timestamptz[])',
      cols.map((c) => rows.map((r) => r[c])),
      'insertN',
    );
    return rows.map(() => 1);
  }),
  select: lane(async (hashes) => {
    const res = await q('SELECT v._ord, x.* FROM unnest($1::varchar[]) WITH ORDINALITY AS v(h, _ord) CROSS JOIN LATERAL (SELECT * FROM codes WHERE code_hash = v.h LIMIT 1) x', [hashes], 'selectN');
    const out = hashes.map(() => undefined);
    for (const row of res.rows) out[Number(row._ord) - 1] = row;
    return out;
  }),
  use: lane(async (hashes) => {
    const res = await q(
      'UPDATE codes SET used_at = $1, access_jti = v.j FROM unnest($2::varchar[], $3::varchar[]) WITH ORDINALITY AS v(h, j, _ord) WHERE code_hash = v.h AND used_at IS NULL AND expires_at > $1 RETURNING v._ord',
      [new Date(), hashes, hashes.map((h) => `jti-${h.slice(0, 8)}`)],
      'useN',
    );
    const out = hashes.map(() => 0);
    for (const row of res.rows) out[Number(row._ord) - 1]++;
    return out;
  }),
});

async function measure(name, api, ms) {
  let units = 0;
  const end = Date.now() + ms;
  const m0 = machine();
  const c0 = process.cpuUsage();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) {
        const hash = crypto.randomBytes(32).toString('base64url');
        await api.insert({ hash, client: 'web-client', user: crypto.randomUUID(), redirect: 'https://app.example/callback', scopes: '["openid","profile"]', expires: new Date(Date.now() + 60_000), created: new Date() });
        if (!(await api.select(hash))) throw new Error('the code just inserted is not found');
        if ((await api.use(hash)) !== 1) throw new Error('the code was not used up');
        units++;
      }
    }),
  );
  const jiffies = machine().busy - m0.busy;
  const c = process.cpuUsage(c0);
  const sizes = api.insert.sizes ? [...api.insert.sizes, ...api.select.sizes, ...api.use.sizes] : null;
  const statements = sizes ? sizes.length / units : 3;
  console.log(
    `${name.padEnd(8)} ${String(Math.round(units / (ms / 1000))).padStart(6)} units/s   machine ${((jiffies * 10) / units).toFixed(3)} ms a unit   this process ${((c.user + c.system) / 1000 / units).toFixed(3)} ms a unit   ${statements.toFixed(2)} statements a unit`,
  );
}

(async () => {
  await pool.query(`CREATE SCHEMA ${schema}`);
  try {
    await q('CREATE TABLE codes (code_hash varchar(64) PRIMARY KEY, client_id varchar(128) NOT NULL, user_id varchar(36) NOT NULL, redirect_uri varchar(2048) NOT NULL, scopes text NOT NULL, expires_at timestamptz NOT NULL, used_at timestamptz, access_jti varchar(64), created_at timestamptz NOT NULL)');
    await q('CREATE INDEX codes_expires_at ON codes (expires_at)');
    console.log(`${seconds} s each, ${concurrency} at a time, alternating; warm-up first`);
    await measure('alone', alone, 1000);
    await measure('batched', batched(), 1000);
    for (let round = 0; round < 3; round++) {
      await measure('alone', alone, seconds * 1000);
      await measure('batched', batched(), seconds * 1000);
    }
  } finally {
    await pool.query(`DROP SCHEMA ${schema} CASCADE`);
    await pool.end();
  }
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
