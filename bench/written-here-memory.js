// `node --expose-gc bench/written-here-memory.js` (after `npm run build`): the heap that
// WrittenHere takes when full of codes and refresh tokens shaped as the bench's (docs/performance.md,
// sixth round). Prints MiB for 10,000 rows of each kind, and per row.
const { join } = require('node:path');
const { randomBytes, randomUUID } = require('node:crypto');
const { WrittenHere } = require(join(__dirname, '..', 'dist', 'libs', 'core', 'src', 'written-here.js'));

if (typeof global.gc !== 'function') throw new Error('run with node --expose-gc');
const N = 10_000;
const b64 = (n) => randomBytes(n).toString('base64url');
const scopes = () => ['openid', 'profile', 'email', 'offline_access', 'read:data'];

function heapAfter(fill) {
  global.gc();
  const before = process.memoryUsage().heapUsed;
  const kept = fill();
  global.gc();
  const mib = (process.memoryUsage().heapUsed - before) / 1048576;
  return { mib, size: kept.size };
}

const refresh = heapAfter(() => {
  const w = new WrittenHere(N);
  for (let i = 0; i < N; i++) {
    const now = new Date();
    const row = {
      token_hash: b64(32), family_id: randomUUID(), client_id: `web-${b64(12)}`, user_id: randomUUID(), scopes: scopes(),
      audience: 'https://api.bench.example/', sid: b64(16), auth_time: Math.floor(now / 1000), amr: 'pwd', code_hash: b64(32),
      created_at: now, expires_at: new Date(now.getTime() + 30 * 86400e3), used_at: null, revoked_at: null, access_jti: randomUUID(), access_exp: new Date(),
    };
    w.put(row.token_hash, row, row.expires_at.getTime());
  }
  return w;
});
const codes = heapAfter(() => {
  const w = new WrittenHere(N);
  for (let i = 0; i < N; i++) {
    const now = new Date();
    const row = {
      code_hash: b64(32), client_id: `web-${b64(12)}`, user_id: randomUUID(), redirect_uri: 'https://app.example.com/callback', code_challenge: b64(32),
      scopes: scopes(), audience: 'https://api.bench.example/', nonce: b64(16), auth_time: Math.floor(now / 1000), sid: b64(16), amr: 'pwd',
      expires_at: new Date(now.getTime() + 60e3), used_at: null, access_jti: null, access_exp: null, created_at: now,
    };
    w.put(row.code_hash, row, row.expires_at.getTime());
  }
  return w;
});
for (const [name, r] of [['refresh tokens', refresh], ['codes', codes]]) {
  console.log(`${name}: ${r.size.toLocaleString('en-US')} rows, ${r.mib.toFixed(1)} MiB, ${((r.mib * 1024) / r.size).toFixed(2)} KiB a row`);
}
