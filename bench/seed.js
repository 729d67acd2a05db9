'use strict';
// Seeds a migrated database with bulk data for the scale benchmark: users, clients (each with a
// client grant for the bench API), refresh tokens and consents. Writes straight into the tables
// (the server must be stopped): better-sqlite3 prepared statements in large transactions on SQLite,
// multi-row INSERT … SELECT FROM unnest(arrays) on PostgreSQL.
//
// The data is shaped to catch per-request scans and whole-list loads: the bench web client has a
// consent from every seeded user and 10 % of all refresh tokens; the bench user has 1 % of them
// (old, rotated or revoked families); every seeded client holds a grant for the bench API.
//
//   node bench/seed.js --db sqlite:/path/db.sqlite --secret-key KEY [--users N --clients N --refresh-tokens N --consents N]
//   node bench/seed.js --db postgres://…/db?schema=S --secret-key KEY …
// (run the server once on that database first so that the migrations ran and, for the bench
// clients to be covered, bench/run.js's set-up was applied).
const { createHmac, hkdfSync, randomBytes } = require('node:crypto');

const BENCH_API = 'https://api.bench.example/';
const BENCH_WEB_CLIENT_NAME = 'Bench web app';
const BENCH_USER_EMAIL = 'bench@example.com';
const SEED_PASSWORD = 'seeded user password';
const DAY = 86_400_000;

const uuidBuf = Buffer.alloc(16);
let uuidPool = Buffer.alloc(0);
let uuidPos = 0;
function uuidv7(now) {
  if (uuidPos + 10 > uuidPool.length) {
    uuidPool = randomBytes(1 << 20);
    uuidPos = 0;
  }
  const b = uuidBuf;
  uuidPool.copy(b, 6, uuidPos, uuidPos + 10);
  uuidPos += 10;
  b.writeUIntBE(now, 0, 6);
  b[6] = (b[6] & 0x0f) | 0x70;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Random base64url strings from one buffer (fast for millions). */
class Rand {
  constructor() {
    this.buf = Buffer.alloc(0);
    this.pos = 0;
  }
  str(bytes) {
    if (this.pos + bytes > this.buf.length) {
      this.buf = randomBytes(1 << 20);
      this.pos = 0;
    }
    const s = this.buf.toString('base64url', this.pos, this.pos + bytes);
    this.pos += bytes;
    return s;
  }
}

async function passwordHash() {
  const { Algorithm, hash } = require('@node-rs/argon2');
  // One real argon2id hash (same parameters as the server) shared by every seeded user.
  return hash(SEED_PASSWORD, { algorithm: Algorithm.Argon2id, memoryCost: 19456, timeCost: 2, parallelism: 1 });
}

/**
 * The rows, table by table, as column lists and a row function. `fmt` turns dates and booleans
 * into what the driver wants. `bench` = ids of the bench set-up found in the database.
 */
function tables(counts, secretKey, bench, pwHash, rawFmt) {
  const r = new Rand();
  const dates = new Map();
  const fmt = {
    bool: rawFmt.bool,
    date: (d) => {
      const k = d.getTime();
      let v = dates.get(k);
      if (v === undefined) dates.set(k, (v = rawFmt.date(d)));
      return v;
    },
  };
  const now = Date.now();
  const secretKeyBytes = Buffer.from(hkdfSync('sha256', Buffer.from(secretKey, 'utf8'), Buffer.alloc(0), 'idp:secret-hash', 32));
  const created = new Date(now - 90 * DAY);
  const userIds = new Array(counts.users);
  const clientIds = new Array(counts.clients);
  for (let i = 0; i < counts.users; i++) userIds[i] = uuidv7(now - 90 * DAY + i);
  for (let i = 0; i < counts.clients; i++) clientIds[i] = r.str(18);
  const consentScopes = JSON.stringify({ '': ['openid', 'profile', 'email', 'offline_access'], [BENCH_API]: ['read:data'] });
  const rtScopes = JSON.stringify(['openid', 'profile', 'email', 'offline_access', 'read:data']);
  const perUser = Math.max(1, Math.round(counts.consents / Math.max(1, counts.users)));

  return [
    {
      name: 'users', total: counts.users,
      columns: [['id', 'varchar'], ['email', 'varchar'], ['password_hash', 'varchar'], ['name', 'varchar'], ['email_verified', 'boolean'], ['blocked', 'boolean'], ['created_at', 'timestamp'], ['updated_at', 'timestamp']],
      row: (i) => [userIds[i], `seed-user-${i}@seed.example`, pwHash, `Seed User ${i}`, fmt.bool(i % 3 !== 0), fmt.bool(i % 97 === 0), fmt.date(created), fmt.date(created)],
    },
    {
      name: 'clients', total: counts.clients,
      columns: [
        ['client_id', 'varchar'], ['client_name', 'varchar'], ['secret_hash', 'varchar'], ['redirect_uris', 'text'], ['post_logout_redirect_uris', 'text'], ['grant_types', 'text'],
        ['token_endpoint_auth_method', 'varchar'], ['jwks', 'text'], ['jwks_uri', 'varchar'], ['scope', 'varchar'], ['first_party', 'boolean'], ['allowed_origins', 'text'],
        ['refresh_token_rotation', 'boolean'], ['client_id_issued_at', 'integer'], ['created_at', 'timestamp'], ['updated_at', 'timestamp'],
      ],
      row: (i) => [
        clientIds[i], `Seed client ${i}`, createHmac('sha256', secretKeyBytes).update(r.str(32), 'utf8').digest('base64url'),
        JSON.stringify([`https://app${i}.seed.example/callback`]), JSON.stringify([`https://app${i}.seed.example/`]),
        JSON.stringify(i % 2 ? ['authorization_code', 'refresh_token'] : ['client_credentials']), 'client_secret_basic', null, null, null,
        fmt.bool(i % 10 === 0), '[]', fmt.bool(true), Math.floor(created.getTime() / 1000), fmt.date(created), fmt.date(created),
      ],
    },
    ...(bench.apiId ? [{
      name: 'client_grants', total: counts.clients,
      columns: [['id', 'varchar'], ['client_id', 'varchar'], ['api_id', 'varchar'], ['scope', 'text'], ['created_at', 'timestamp']],
      row: (i) => [uuidv7(created.getTime() + i), clientIds[i], bench.apiId, JSON.stringify(['read:data']), fmt.date(created)],
    }] : []),
    {
      name: 'consents', total: counts.users * perUser,
      columns: [['id', 'varchar'], ['user_id', 'varchar'], ['client_id', 'varchar'], ['scopes', 'text'], ['granted_at', 'timestamp'], ['updated_at', 'timestamp']],
      row: (n) => {
        const u = Math.floor(n / perUser);
        const k = n % perUser;
        // The first consent of every seeded user is for the bench web client; the others for seeded clients.
        const client = k === 0 && bench.webClientId ? bench.webClientId : clientIds[(u * perUser + k) % counts.clients];
        return [uuidv7(created.getTime() + n), userIds[u], client, consentScopes, fmt.date(created), fmt.date(created)];
      },
    },
    {
      name: 'refresh_tokens', total: counts.refreshTokens,
      columns: [
        ['token_hash', 'varchar'], ['family_id', 'varchar'], ['client_id', 'varchar'], ['user_id', 'varchar'], ['scopes', 'text'], ['audience', 'varchar'], ['sid', 'varchar'],
        ['auth_time', 'integer'], ['amr', 'varchar'], ['code_hash', 'varchar'], ['created_at', 'timestamp'], ['expires_at', 'timestamp'], ['used_at', 'timestamp'],
        ['revoked_at', 'timestamp'], ['access_jti', 'varchar'], ['access_exp', 'timestamp'],
      ],
      row: (n) => {
        // 1 % for the bench user and web client, 10 % for the web client, the rest anywhere.
        const m = n % 100;
        const user = m === 0 && bench.userId ? bench.userId : userIds[(n * 7919) % counts.users];
        const client = m <= 10 && bench.webClientId ? bench.webClientId : clientIds[(n * 104729) % counts.clients];
        const age = (n % 29) * DAY;
        const at = new Date(now - age);
        const used = n % 4 !== 0; // three in four were rotated already
        const revoked = n % 50 === 0;
        return [
          r.str(32), uuidv7(at.getTime()), client, user, rtScopes, n % 3 ? BENCH_API : null, r.str(16), Math.floor(at.getTime() / 1000), 'pwd',
          n % 5 === 0 ? r.str(32) : null, fmt.date(at), fmt.date(new Date(at.getTime() + 30 * DAY)), used ? fmt.date(at) : null,
          revoked ? fmt.date(at) : null, r.str(16), fmt.date(new Date(at.getTime() + 3600_000)),
        ];
      },
    },
  ];
}

const BATCH = 20_000;

async function seedSqliteAsync(file, counts, secretKey) {
  const Database = require('better-sqlite3');
  const db = new Database(file);
  try {
    // A bulk load into a stopped server's file: no journal, a large page cache (random-key index
    // inserts), back to WAL (what the server uses) at the end.
    db.pragma('journal_mode = OFF');
    db.pragma('synchronous = OFF');
    db.pragma('cache_size = -2000000');
    const one = (sql, ...p) => db.prepare(sql).get(...p);
    const bench = {
      apiId: one('SELECT id FROM apis WHERE identifier = ?', BENCH_API)?.id,
      webClientId: one('SELECT client_id FROM clients WHERE client_name = ?', BENCH_WEB_CLIENT_NAME)?.client_id,
      userId: one('SELECT id FROM users WHERE email = ?', BENCH_USER_EMAIL)?.id,
    };
    const fmt = { date: (d) => d.toISOString().replace('T', ' ').slice(0, 23), bool: (b) => (b ? 1 : 0) };
    const out = {};
    const all = tables(counts, secretKey, bench, await passwordHash(), fmt);
    // Secondary indexes are dropped during the load and built again after it (sorting once beats
    // millions of random-order inserts into each of them).
    const names = all.map((t) => t.name);
    const indexes = db.prepare(`SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN (${names.map(() => '?').join(', ')})`).all(...names);
    for (const ix of indexes) db.exec(`DROP INDEX "${ix.name}"`);
    for (const t of all) {
      const stmt = db.prepare(`INSERT INTO "${t.name}" (${t.columns.map(([c]) => `"${c}"`).join(', ')}) VALUES (${t.columns.map(() => '?').join(', ')})`);
      const insert = db.transaction((from, to) => {
        for (let i = from; i < to; i++) stmt.run(t.row(i));
      });
      for (let i = 0; i < t.total; i += BATCH * 5) insert(i, Math.min(t.total, i + BATCH * 5));
      out[t.name] = t.total;
    }
    for (const ix of indexes) db.exec(ix.sql);
    db.pragma('journal_mode = WAL');
    return out;
  } finally {
    db.close();
  }
}

async function seedPostgres(url, schema, counts, secretKey) {
  const { Client } = require('pg');
  const u = new URL(url);
  u.searchParams.delete('schema');
  const c = new Client({ connectionString: u.toString() });
  await c.connect();
  try {
    const q = (name) => (schema ? `"${schema}"."${name}"` : `"${name}"`);
    const one = async (sql, p) => (await c.query(sql, p)).rows[0];
    const bench = {
      apiId: (await one(`SELECT id FROM ${q('apis')} WHERE identifier = $1`, [BENCH_API]))?.id,
      webClientId: (await one(`SELECT client_id FROM ${q('clients')} WHERE client_name = $1`, [BENCH_WEB_CLIENT_NAME]))?.client_id,
      userId: (await one(`SELECT id FROM ${q('users')} WHERE email = $1`, [BENCH_USER_EMAIL]))?.id,
    };
    const fmt = { date: (d) => d, bool: (b) => b };
    const out = {};
    const all = tables(counts, secretKey, bench, await passwordHash(), fmt);
    await c.query("SET synchronous_commit = off; SET maintenance_work_mem = '512MB'");
    // As on SQLite: plain secondary indexes (not those behind primary keys or unique constraints)
    // are dropped for the load and built again after it.
    const { rows: indexes } = await c.query(
      `SELECT i.indexname, i.indexdef FROM pg_indexes i
        WHERE i.schemaname = $1 AND i.tablename = ANY($2)
          AND NOT EXISTS (SELECT 1 FROM pg_constraint k JOIN pg_class ic ON ic.oid = k.conindid JOIN pg_namespace n ON n.oid = ic.relnamespace
                           WHERE ic.relname = i.indexname AND n.nspname = i.schemaname)`,
      [schema ?? 'public', all.map((t) => t.name)],
    );
    for (const ix of indexes) await c.query(`DROP INDEX ${q(ix.indexname)}`);
    for (const t of all) {
      const cast = t.columns.map(([, type], i) => `$${i + 1}::${type === 'integer' ? 'int' : type === 'timestamp' ? 'timestamp' : type === 'boolean' ? 'boolean' : 'text'}[]`);
      const sql = `INSERT INTO ${q(t.name)} (${t.columns.map(([col]) => `"${col}"`).join(', ')}) SELECT * FROM unnest(${cast.join(', ')})`;
      await c.query('BEGIN');
      for (let i = 0; i < t.total; i += BATCH) {
        const cols = t.columns.map(() => []);
        for (let n = i; n < Math.min(t.total, i + BATCH); n++) {
          const row = t.row(n);
          for (let k = 0; k < row.length; k++) cols[k].push(row[k]);
        }
        await c.query(sql, cols);
      }
      await c.query('COMMIT');
      out[t.name] = t.total;
    }
    for (const ix of indexes) await c.query(ix.indexdef);
    // What autovacuum would soon do after a bulk load.
    for (const t of ['users', 'clients', 'client_grants', 'consents', 'refresh_tokens']) await c.query(`ANALYZE ${q(t)}`);
    return out;
  } finally {
    await c.end();
  }
}

module.exports = { seedSqlite: seedSqliteAsync, seedPostgres };

if (require.main === module) {
  const argv = process.argv.slice(2);
  const arg = (name, dflt) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : dflt;
  };
  const db = arg('db');
  const secretKey = arg('secret-key', process.env.IDP_SECRET_KEY);
  if (!db || !secretKey) {
    process.stderr.write('usage: node bench/seed.js --db sqlite:PATH|postgres://… --secret-key KEY [--users N --clients N --refresh-tokens N --consents N]\n');
    process.exit(2);
  }
  const counts = {
    users: Number(arg('users', 100_000)), clients: Number(arg('clients', 10_000)),
    refreshTokens: Number(arg('refresh-tokens', 1_000_000)), consents: Number(arg('consents', 1_000_000)),
  };
  const t0 = Date.now();
  const p = db.startsWith('sqlite:') ? seedSqliteAsync(db.slice(7), counts, secretKey) : seedPostgres(db, new URL(db).searchParams.get('schema'), counts, secretKey);
  p.then((out) => process.stderr.write(`seeded ${JSON.stringify(out)} in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`), (err) => {
    process.stderr.write(`${err.stack}\n`);
    process.exit(1);
  });
}
