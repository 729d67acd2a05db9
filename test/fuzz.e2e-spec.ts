import { createHash, randomBytes } from 'node:crypto';
import { Agent, IncomingHttpHeaders, request } from 'node:http';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { DataSource } from 'typeorm';
import { Browser, forms, signIn } from './support/browser';
import { ADMIN_CLIENT_ID, ADMIN_CLIENT_SECRET, TestServer, basic, startServer } from './support/server';

/**
 * Property-based fuzzing (fast-check) of every public surface over real HTTP: /authorize (GET and
 * POST), /oauth/token, /userinfo, /oauth/introspect, /oauth/revoke and the admin API. Whatever the
 * junk, every answer is below 500, in the endpoint's own format (CONTRACT.md §2, §4), shows no
 * stack trace, and a rejected request leaves every table as it was.
 *
 * Reproducible: FUZZ_SEED=<integer> replays a run (fast-check prints the seed and path of a
 * failure), FUZZ_SEED=random explores a new one; FUZZ_RUNS scales the number of cases per group;
 * FUZZ_STATS=1 prints what the cases got back (to see that the junk reaches past the first checks).
 */

const SEED = process.env.FUZZ_SEED === 'random' ? Date.now() % 2 ** 31 : Number(process.env.FUZZ_SEED ?? 20251130);
const SCALE = Number(process.env.FUZZ_RUNS ?? 1);
const runs = (n: number) => Math.max(1, Math.round(n * SCALE));
/** Per group: generous (a loaded CI machine), and more for more cases. */
const TIMEOUT = 150_000 * Math.max(1, SCALE);
/** Per group: authorize 450, token 450, userinfo 300, introspect 250, revoke 250, admin 500 = 2,200 cases. */
const RUNS = { authorize: runs(450), token: runs(450), userinfo: runs(300), introspect: runs(250), revoke: runs(250), admin: runs(500) };

const REDIRECT = 'https://app.example.com/callback';
const REDIRECT_Q = 'https://app.example.com/cb?tenant=1';
const API = 'https://api.example.com/fuzz';
const USER = { email: 'fuzz@example.com', password: 'a long and secret passphrase' };

/**
 * Tables a rejected request may change, by design:
 * - sessions: /authorize keeps the pending request (an interaction) in the browser's session, a
 *   new one without a cookie, and drops it again on an error; the store sweeps expired sessions;
 * - audit_events: failures are security events (client-authentication failure, sign-in failure,
 *   refresh-token reuse), recorded precisely because the request was rejected (CONTRACT §4);
 * - lockouts: the failure counters of CONTRACT §5 count rejected client authentications;
 * - used_assertions: a private_key_jwt `jti` is spent when the client authenticates, whatever the
 *   grant then decides (replay protection), and expired ones are swept on a timer.
 */
const MAY_CHANGE_ON_REJECTION = new Set(['sessions', 'audit_events', 'lockouts', 'used_assertions']);

// ---------------------------------------------------------------------------------------------
// Raw HTTP: fetch() refuses or normalizes much of what a fuzzer wants to send.

interface Sent {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
}
interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

const agent = new Agent({ keepAlive: true, maxSockets: 4 });

function send(base: string, r: Sent): Promise<Answer> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname, port: url.port, method: r.method, path: r.path, agent,
        headers: { ...r.headers, ...(r.body && r.headers['content-length'] === undefined ? { 'content-length': String(r.body.length) } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(r.body);
  });
}

/** Percent-encodes the UTF-8 bytes of a string (a lone surrogate becomes U+FFFD, as a browser sends it). */
const pct = (s: string) => Buffer.from(s, 'utf8').toString('hex').replace(/../g, (h) => {
  const c = String.fromCharCode(parseInt(h, 16));
  return /[A-Za-z0-9\-._~]/.test(c) ? c : `%${h.toUpperCase()}`;
});
const formText = (pairs: [string, string][]) => pairs.map(([k, v]) => `${pct(k)}=${pct(v)}`).join('&');
/** What the server decodes from pct(): the string after a UTF-8 round trip. */
const utf8 = (s: string) => Buffer.from(s, 'utf8').toString('utf8');
/** A header value node:http will send: the UTF-8 bytes as latin1, control characters replaced. */
const headerValue = (s: string) => Buffer.from(s, 'utf8').toString('latin1').replace(/[^\t\x20-\x7e\x80-\xff]/g, '?');
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const b64u = (s: string) => Buffer.from(s, 'utf8').toString('base64url');
const safeDecode = (s: string) => {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
};

/** The request as text: what the server may legitimately echo back (a 404 names the path it did not find). */
function haystack(r: Sent): string {
  const body = r.body?.toString('utf8') ?? '';
  const headers = Object.values(r.headers).map((v) => Buffer.from(v, 'latin1').toString('utf8'));
  return [r.path, safeDecode(r.path), ...r.path.split(/[&?=/]/).map(safeDecode), body, safeDecode(body), ...body.split(/[&=]/).map(safeDecode), ...headers].join('\n');
}

/** Stack traces and raw exceptions: none may reach a client (unless the client sent that very text). */
const LEAKS = [/at Object\./, /\n\s+at /, / {4}at /, /\.ts:/, /\.js:\d/, /Error:/, /node_modules/, /QueryFailed|SQLITE_|violates .*constraint|syntax error at or near|invalid byte sequence/i];

/** Patterns some earlier request carried: the admin API may show them back from what it stored (a client name, an audit event). */
const sentBefore = new Set<RegExp>();

function expectNoLeak(r: Sent, a: Answer): void {
  const sent = haystack(r);
  const stored = r.path.startsWith('/admin') ? sentBefore : new Set<RegExp>();
  const leaked = LEAKS.filter((p) => p.test(a.text) && !p.test(sent) && !stored.has(p));
  for (const p of LEAKS) if (p.test(sent)) sentBefore.add(p);
  if (leaked.length) throw new Error(`leaked internals (${leaked.join(', ')}) in ${summary(r, a)}`);
}

function summary(r: Sent, a?: Answer): string {
  const body = r.body ? ` body(${r.body.length}B)=${JSON.stringify(r.body.subarray(0, 300).toString('utf8'))}` : '';
  const auth = r.headers.authorization !== undefined ? ` auth=${JSON.stringify(r.headers.authorization.slice(0, 120))}` : '';
  const ct = r.headers['content-type'] !== undefined ? ` ct=${JSON.stringify(r.headers['content-type'])}` : '';
  return `${r.method} ${r.path.slice(0, 300)}${ct}${auth}${body} -> ${a ? `${a.status} ${a.headers.location ? `Location: ${a.headers.location} ` : ''}${a.text.slice(0, 400)}` : '(no answer)'}`;
}

function check(ok: unknown, what: string, r: Sent, a: Answer): void {
  if (!ok) throw new Error(`${what}: ${summary(r, a)}`);
}

function parseJson(r: Sent, a: Answer): any {
  check(/^application\/json/.test(a.headers['content-type'] ?? ''), 'answers JSON', r, a);
  try {
    return JSON.parse(a.text);
  } catch {
    throw new Error(`the body is not JSON: ${summary(r, a)}`);
  }
}

/** RFC 6749 §5.2 (and RFC 6750 §3 for UserInfo): `{error, error_description}`, no-store. */
function expectOAuthError(r: Sent, a: Answer): { error: string; error_description: string } {
  const body = parseJson(r, a);
  check(body && typeof body === 'object' && !Array.isArray(body), 'the error is a JSON object', r, a);
  check(Object.keys(body).sort().join() === 'error,error_description', 'the error has exactly error and error_description', r, a);
  check(/^[a-z_]+$/.test(body.error), 'error is an error code', r, a);
  check(typeof body.error_description === 'string' && /^[\x20\x21\x23-\x5B\x5D-\x7E]*$/.test(body.error_description), 'error_description uses the RFC 6749 §5.2 characters', r, a);
  check(a.headers['cache-control'] === 'no-store', 'Cache-Control: no-store', r, a);
  return body;
}

/** The admin API's `{statusCode, error, message}`. */
function expectAdminError(r: Sent, a: Answer): void {
  const body = parseJson(r, a);
  check(body && typeof body === 'object' && !Array.isArray(body), 'the error is a JSON object', r, a);
  check(Object.keys(body).sort().join() === 'error,message,statusCode', 'the error has exactly statusCode, error and message', r, a);
  check(body.statusCode === a.status, 'statusCode is the HTTP status', r, a);
  check(/^[a-z_]+$/.test(body.error), 'error is an error code', r, a);
  const messages = ([] as unknown[]).concat(body.message);
  check(messages.length > 0 && messages.every((m) => typeof m === 'string' && m.length > 0), 'message is a string or a list of strings', r, a);
}

// ---------------------------------------------------------------------------------------------
// Junk.

const CONTROL = ['\0', '\x01', '\x08', '\x0b', '\x1b', '\x7f', '\r', '\n', '\r\n', '\t', '\u0085', '\u00a0', '\u2028', '\u2029', '\u200b', '\u202e', '\ufeff', '\ufffe', '\uffff', '\ud800', '\udc00', '\udbff\udfff', '😀', '𝔘', 'é', 'ß', 'İ', 'K', '中', 'e\u0301'];
const SPECIAL = ['%', '%%', '%0', '%00', '%zz', '%C0%AE', '%ED%A0%80', '&', '=', '+', '#', '?', '/', '\\', '"', "'", '`', '<', '>', '{', '}', '[', ']', '[]', ';', ',', ':', '..', '../', '*', '${x}', '{{x}}', '<%= 1 %>', '<script>'];
const WORDS = [
  '', ' ', 'null', 'undefined', 'true', 'false', '0', '-1', '1e309', 'NaN', 'Infinity', '9007199254740993', '[object Object]', '__proto__', 'constructor',
  'prototype', 'toString', 'hasOwnProperty', 'openid', 'code', 'S256', 'none', 'Bearer', 'Basic', "' OR '1'='1", '"; DROP TABLE users; --', 'https://evil.example.com/cb',
  'javascript:alert(1)', 'data:text/html,x', 'file:///etc/passwd', 'eyJhbGciOiJub25lIn0.e30.', 'a'.repeat(43),
];

const pick = <T>(...values: T[]) => fc.constantFrom(...values);

/** Junk text: any code point, control characters, lone surrogates, URL syntax, words parsers love. */
function junk(hugeMax = 0): fc.Arbitrary<string> {
  const parts: fc.WeightedArbitrary<string>[] = [
    { weight: 5, arbitrary: fc.string({ unit: 'binary', maxLength: 24 }) },
    { weight: 3, arbitrary: fc.string({ maxLength: 24 }) },
    { weight: 3, arbitrary: fc.array(fc.constantFrom(...CONTROL, ...SPECIAL, ...WORDS), { minLength: 1, maxLength: 6 }).map((a) => a.join('')) },
    { weight: 2, arbitrary: fc.constantFrom(...WORDS) },
  ];
  if (hugeMax > 0) parts.push({ weight: 1, arbitrary: huge(hugeMax) });
  return fc.oneof(...parts);
}

/** A long value: past every length check (2,048, 8,192), and past the 64 kB form limit. */
function huge(max: number): fc.Arbitrary<string> {
  const sizes = [2049, 4097, 8193, 20_000, 70_000].filter((n) => n <= max);
  return fc.tuple(fc.constantFrom('a', 'é', '%', '\0', '😀', ' ', 'Zz9'), fc.constantFrom(...sizes)).map(([c, n]) => c.repeat(Math.ceil(n / c.length)));
}

/** Long ASCII: fits in a request line (node's 16 kB header limit) while past the 2,048 / 8,192 checks. */
function hugeAscii(max: number): fc.Arbitrary<string> {
  const sizes = [2049, 4097, 8193].filter((n) => n <= max);
  return fc.tuple(pick('a', 'Zz9', '-', '.'), fc.constantFrom(...sizes)).map(([c, n]) => c.repeat(Math.ceil(n / c.length)));
}

/** HTTP Basic as RFC 6749 §2.3.1 wants it: form-urlencoded id and secret (any junk, lone surrogates too). */
const basicOf = (id: string, secret: string) => `Basic ${b64(`${pct(id)}:${pct(secret)}`)}`;

/** A value that is sometimes `absent`. */
const maybe = <T>(arb: fc.Arbitrary<T>, absentWeight = 1, presentWeight = 3): fc.Arbitrary<T | undefined> =>
  fc.oneof({ weight: absentWeight, arbitrary: fc.constant(undefined) }, { weight: presentWeight, arbitrary: arb });

/**
 * Mutation-based cases, so that many reach past the first checks: a valid request with up to
 * `max` of its slots replaced by their generated (junk or absent) value; or, in a third of the
 * cases, every slot as generated.
 */
function mutated<T extends Record<string, unknown>>(valid: { [K in keyof T]: T[K] | fc.Arbitrary<T[K]> }, generated: fc.Arbitrary<Partial<T>>, max = 3): fc.Arbitrary<Partial<T>> {
  const names = Object.keys(valid);
  const base = fc.record(Object.fromEntries(Object.entries(valid).map(([k, v]) => [k, v instanceof fc.Arbitrary ? v : fc.constant(v)]))) as fc.Arbitrary<T>;
  return fc
    .tuple(base, generated, fc.oneof({ weight: 2, arbitrary: fc.subarray(names, { maxLength: max }) }, { weight: 1, arbitrary: fc.constant(null) }))
    .map(([b, g, chosen]) => (chosen === null ? g : { ...b, ...Object.fromEntries(chosen.map((k) => [k, g[k]])) }));
}

/** Something shaped like a JWT: random or plausible header and payload, any signature. */
function jwtLike(realKid: string, realToken: string, issuer: string): fc.Arbitrary<string> {
  const header = fc.oneof(
    fc.record(
      {
        alg: pick('none', 'RS256', 'HS256', 'ES256', 'EdDSA', 'PS256', '', 'RSA-OAEP'),
        typ: pick('at+jwt', 'JWT', 'jwt', 'application/at+jwt', 'x'),
        kid: fc.oneof(pick(realKid, 'x', '../../x', '', '__proto__'), fc.integer().map(String)),
        crit: pick(['b64'], ['exp'], []),
        b64: fc.boolean(),
        jwk: pick({ kty: 'oct', k: 'c2VjcmV0' }, { kty: 'RSA', n: 'AQAB', e: 'AQAB' }),
        jku: pick('https://evil.example.com/jwks.json'),
        enc: pick('A128GCM'),
      },
      { requiredKeys: [] },
    ).map((h) => JSON.stringify(h)),
    fc.jsonValue({ maxDepth: 2 }).map((j) => JSON.stringify(j)),
    junk(),
  );
  const payload = fc.oneof(
    fc.record(
      {
        iss: fc.oneof(pick(issuer, `${issuer}/`, 'https://evil.example.com'), junk()),
        sub: fc.oneof(pick('fuzz', ADMIN_CLIENT_ID), junk()),
        aud: fc.oneof(pick<unknown>(`${issuer}/userinfo`, `${issuer}/admin`, API, [`${issuer}/userinfo`, API]), junk()),
        exp: fc.oneof(fc.integer(), pick<unknown>(Math.floor(Date.now() / 1000) + 3600, 1e300, -1, '9999999999', null)),
        iat: fc.oneof(fc.integer(), pick('now', null)),
        nbf: fc.integer(),
        jti: fc.oneof(junk(), fc.integer()),
        client_id: fc.oneof(pick(ADMIN_CLIENT_ID), junk()),
        scope: fc.oneof(pick('openid', 'openid profile email', 'read:clients write:clients'), junk(), fc.array(junk())),
      },
      { requiredKeys: [] },
    ).map((p) => JSON.stringify(p)),
    fc.jsonValue({ maxDepth: 2 }).map((j) => JSON.stringify(j)),
    junk(),
  );
  const signature = fc.oneof(pick('', 'c2ln', realToken.split('.')[2] ?? '', 'A'.repeat(342)), junk().map(b64u));
  const segments = fc.oneof(
    { weight: 6, arbitrary: fc.tuple(header, payload, signature).map(([h, p, s]) => `${b64u(h)}.${b64u(p)}.${s}`) },
    { weight: 1, arbitrary: fc.tuple(header, payload).map(([h, p]) => `${b64u(h)}.${b64u(p)}`) },
    { weight: 1, arbitrary: fc.tuple(header, payload, signature).map(([h, p, s]) => `${b64u(h)}.${b64u(p)}.${s}.${s}.${s}`) },
    { weight: 1, arbitrary: fc.tuple(header, payload, signature).map(([h, p, s]) => `${b64(h)}.${b64(p)}.${s}`) },
  );
  /** A real token of ours with one character changed (a bit flip in header, payload or signature). */
  const tampered = fc.tuple(fc.nat(), pick(...'AQgw_-0/+.=')).map(([i, c]) => {
    const at = i % realToken.length;
    return realToken.slice(0, at) + (realToken[at] === c ? 'B' : c) + realToken.slice(at + 1);
  });
  return fc.oneof({ weight: 4, arbitrary: segments }, { weight: 2, arbitrary: tampered });
}

// ---------------------------------------------------------------------------------------------

describe('fuzzing every endpoint (fast-check)', () => {
  let s: TestServer;
  let ds: DataSource;
  let adminToken: string;
  let adminAudience: string;
  /** Confidential, first party, code + refresh; two redirect URIs. */
  let web: { client_id: string; client_secret: string };
  /** Public (none), code + refresh. */
  let spa: { client_id: string };
  /** client_secret_basic with client_credentials and a grant for API. */
  let m2m: { client_id: string; client_secret: string };
  /** client_secret_post with client_credentials and a grant for API. */
  let poster: { client_id: string; client_secret: string };
  /** private_key_jwt (an ES256 key) with client_credentials and a grant for API. */
  let jwtClient: { client_id: string };
  let jwtKey: CryptoKey;
  /** A signed-in user's cookies: /authorize then answers with codes, consent pages and their errors. */
  let sessionCookie: string;
  let realKid: string;
  /** Real tokens to mix with the junk; `spareAdmin` may be revoked (the admin fuzz keeps its own). */
  const tokens = { user: '', refresh: '', id: '', m2m: '', readOnlyAdmin: '', spareAdmin: '' };
  /** What the admin fuzz may read and change (never the fixtures the protocol groups rely on). */
  const victim = { clientId: '', ccClientId: '', userId: '', apiId: '', apiIdentifier: 'https://api.example.com/victim', grantId: '', adminApiId: '' };

  beforeAll(async () => {
    // Lockouts (CONTRACT §5) are not under test and thousands of failed client authentications
    // must not trip them; rate limits stay off as in every suite.
    s = await startServer({ IDP_LOCKOUT_THRESHOLD: '100000', IDP_LOCKOUT_IP_THRESHOLD: '10000000' });
    ds = s.app.get(DataSource);
    adminToken = await s.adminToken();
    adminAudience = `${s.url}/admin`;
    tokens.readOnlyAdmin = await s.adminToken('read:clients read:users');
    tokens.spareAdmin = await s.adminToken('read:keys');
    const ok = async (method: string, path: string, body?: unknown) => {
      const res = await s.admin(method, path, body);
      if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body;
    };
    await ok('POST', '/admin/users', { ...USER, name: 'Fuzz', email_verified: true });
    await ok('POST', '/admin/apis', { identifier: API, name: 'Fuzz API', scopes: [{ value: 'read:x', description: 'Read' }, { value: 'write:x', description: 'Write' }], allow_offline_access: true });
    web = await ok('POST', '/admin/clients', { client_name: 'Web', redirect_uris: [REDIRECT, REDIRECT_Q], grant_types: ['authorization_code', 'refresh_token'], first_party: true });
    spa = await ok('POST', '/admin/clients', { client_name: 'SPA', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'] });
    m2m = await ok('POST', '/admin/clients', { client_name: 'M2M', grant_types: ['client_credentials'] });
    poster = await ok('POST', '/admin/clients', { client_name: 'Poster', grant_types: ['client_credentials'], token_endpoint_auth_method: 'client_secret_post' });
    const pair = await generateKeyPair('ES256', { extractable: true });
    jwtKey = pair.privateKey as CryptoKey;
    jwtClient = await ok('POST', '/admin/clients', {
      client_name: 'JWT', grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt',
      jwks: { keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'fuzz-es256', alg: 'ES256', use: 'sig' }] },
    });
    for (const c of [m2m, poster, jwtClient]) await ok('POST', '/admin/client-grants', { client_id: c.client_id, audience: API, scope: ['read:x', 'write:x'] });

    // Victims of the admin fuzz.
    victim.clientId = (await ok('POST', '/admin/clients', { client_name: 'Victim', redirect_uris: ['https://victim.example.com/cb'] })).client_id;
    victim.ccClientId = (await ok('POST', '/admin/clients', { client_name: 'Victim CC', grant_types: ['client_credentials'] })).client_id;
    victim.userId = (await ok('POST', '/admin/users', { email: 'victim@example.com', password: 'victim passphrase 123' })).user_id;
    victim.apiId = (await ok('POST', '/admin/apis', { identifier: victim.apiIdentifier, name: 'Victim API', scopes: [{ value: 'read:v', description: 'Read' }] })).id;
    victim.grantId = (await ok('POST', '/admin/client-grants', { client_id: victim.ccClientId, audience: victim.apiIdentifier, scope: ['read:v'] })).id;
    victim.adminApiId = (await ok('GET', '/admin/apis')).items.find((a: { is_system: boolean }) => a.is_system).id;

    // Real tokens, to mix with the junk: a user's access, refresh and ID tokens, and a machine token.
    const verifier = randomBytes(32).toString('base64url');
    const challenge = createHash('sha256').update(verifier).digest('base64url');
    const browser = new Browser(s.url);
    const page = await signIn(browser, `${s.url}/authorize?${new URLSearchParams({
      client_id: web.client_id, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid profile email offline_access', state: 's', code_challenge: challenge, code_challenge_method: 'S256',
    })}`, USER);
    const code = new URL(page.url).searchParams.get('code');
    if (!code) throw new Error(`no code: ${page.url}`);
    sessionCookie = browser.cookieHeader();
    const exchanged = await s.fetch('/oauth/token', {
      method: 'POST', headers: { authorization: basic(web.client_id, web.client_secret), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier }),
    }).then((r) => r.json());
    Object.assign(tokens, { user: exchanged.access_token, refresh: exchanged.refresh_token, id: exchanged.id_token });
    tokens.m2m = (await s.fetch('/oauth/token', {
      method: 'POST', headers: { authorization: basic(m2m.client_id, m2m.client_secret), 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', audience: API }),
    }).then((r) => r.json())).access_token;
    for (const [name, t] of Object.entries(tokens)) if (!t) throw new Error(`fixture token ${name} missing`);
    realKid = JSON.parse(Buffer.from(tokens.user.split('.')[0], 'base64url').toString()).kid;
    last = await snapshot();
  }, 60_000);
  afterAll(async () => {
    if (process.env.FUZZ_STATS && ds) {
      const rows = await Promise.all(ds.entityMetadatas.map(async (m) => `${String(await ds.createQueryBuilder().from(m.target, 't').getCount()).padStart(5)}  rows in ${m.tableName}`));
      console.log([...[...outcomes].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${String(v).padStart(5)}  ${k}`), ...rows].join('\n'));
    }
    agent.destroy();
    await s?.close();
  });

  // ---- the rows of every table, before and after ----

  let last: Map<string, string>;
  /** How often each answer came back (FUZZ_STATS). */
  const outcomes = new Map<string, number>();
  function tally(r: Sent, a: Answer): void {
    if (!process.env.FUZZ_STATS) return;
    const path = r.path.startsWith('/admin') ? `${r.method} ${r.path.split('?')[0].split('/').slice(0, 3).join('/')}` : `${r.method} ${r.path.split('?')[0]}`;
    let detail = '';
    try {
      const body = JSON.parse(a.text);
      detail = body.error ? `${body.error} ${process.env.FUZZ_STATS === '2' ? String(body.error_description ?? body.message).slice(0, 60) : ''}` : body.active !== undefined ? `active=${body.active}` : '';
    } catch {
      const location = a.headers.location;
      const posted = formPostOf(a)?.fields;
      detail = posted ? `form_post ${posted.error ?? 'code'}` : !location ? '' : /^\/(login|consent)\?/.test(location) ? `${location.slice(1, location.indexOf('?'))} page` : (new URL(location).searchParams.get('error') ?? 'code');
    }
    const key = `${path} ${a.status} ${detail}`;
    outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
  }

  /**
   * Row count and a digest of the content of every table but those a rejection may change: more
   * than a count, so that an UPDATE made by a rejected request shows too.
   */
  async function snapshot(): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    await Promise.all(
      ds.entityMetadatas
        .filter((m) => !MAY_CHANGE_ON_REJECTION.has(m.tableName))
        .map(async (m) => {
          const rows: Record<string, unknown>[] = await ds.createQueryBuilder().select('*').from(m.target, 't').getRawMany();
          const digest = createHash('sha256').update(rows.map((r) => JSON.stringify(r)).sort().join('\n')).digest('hex').slice(0, 16);
          out.set(m.tableName, `${rows.length} rows (${digest})`);
        }),
    );
    return out;
  }

  /**
   * Sends one case and checks what every case must satisfy: no 5xx, no leaked internals, and,
   * when `rejected` says so, not a row changed. Cases run one at a time, so the snapshot taken
   * after one case is the "before" of the next.
   */
  async function exchange(r: Sent, rejected: (a: Answer) => boolean): Promise<Answer> {
    let a: Answer | undefined;
    try {
      a = await send(s.url, r);
    } finally {
      const before = last;
      last = await snapshot();
      if (a && a.status < 500 && rejected(a)) {
        const changed = [...last].filter(([table, now]) => before.get(table) !== now).map(([table, now]) => `${table}: ${before.get(table)} -> ${now}`);
        if (changed.length) throw new Error(`a rejected request changed ${changed.join('; ')}: ${summary(r, a)}`);
      }
    }
    tally(r, a!);
    check(a!.status < 500, 'never a 5xx', r, a!);
    expectNoLeak(r, a!);
    return a!;
  }

  const property = <T>(name: keyof typeof RUNS, arb: fc.Arbitrary<T>, predicate: (t: T) => Promise<void>) =>
    fc.assert(fc.asyncProperty(arb, predicate), { numRuns: RUNS[name], seed: SEED + Object.keys(RUNS).indexOf(name) });

  // ---- request shapes shared by the protocol endpoints ----

  type Pairs = [string, string][];
  const FORM = 'application/x-www-form-urlencoded';

  /** How a form is put on the wire: mostly right, sometimes in another content type or encoding. */
  const bodyShape = fc.oneof(
    { weight: 60, arbitrary: fc.constant({ kind: 'form', type: FORM }) },
    { weight: 3, arbitrary: pick(`${FORM}; charset=utf-8`, `${FORM}; charset=ISO-8859-1`, `${FORM}; charset=utf-16`, `${FORM}; charset=x-junk`, 'APPLICATION/X-WWW-FORM-URLENCODED', `${FORM};;;`, `${FORM}, application/json`).map((type) => ({ kind: 'form', type })) },
    { weight: 2, arbitrary: fc.constant({ kind: 'json', type: 'application/json' }) },
    { weight: 2, arbitrary: fc.constant({ kind: 'multipart', type: 'multipart/form-data; boundary=fuzzBoundary' }) },
    { weight: 1, arbitrary: pick('text/plain', 'application/xml', 'application/octet-stream', '', '*/*', 'multipart/form-data').map((type) => ({ kind: 'form', type })) },
    { weight: 1, arbitrary: fc.constant({ kind: 'form', type: undefined }) },
    { weight: 1, arbitrary: pick('gzip', 'deflate', 'br', 'identity', 'x-junk', 'gzip, gzip').map((encoding) => ({ kind: 'form', type: FORM, encoding })) },
    { weight: 1, arbitrary: fc.constant({ kind: 'gzip', type: FORM, encoding: 'gzip' }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'too-many', type: FORM }) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((bytes) => ({ kind: 'bytes', type: FORM, bytes })) },
    { weight: 1, arbitrary: fc.constant({ kind: 'empty', type: FORM }) },
  ) as fc.Arbitrary<{ kind: string; type?: string; encoding?: string; bytes?: Uint8Array }>;

  function encodeBody(pairs: Pairs, shape: { kind: string; type?: string; encoding?: string; bytes?: Uint8Array }): { body: Buffer; headers: Record<string, string> } {
    const headers: Record<string, string> = {};
    if (shape.type !== undefined) headers['content-type'] = shape.type;
    if (shape.encoding) headers['content-encoding'] = shape.encoding;
    let body: Buffer;
    switch (shape.kind) {
      case 'json':
        body = Buffer.from(JSON.stringify(Object.fromEntries(pairs)));
        break;
      case 'multipart':
        body = Buffer.from(pairs.map(([k, v]) => `--fuzzBoundary\r\nContent-Disposition: form-data; name="${k.replace(/["\r\n]/g, '_')}"\r\n\r\n${v}\r\n`).join('') + '--fuzzBoundary--\r\n');
        break;
      case 'gzip':
        body = gzipSync(formText(pairs));
        break;
      case 'too-many':
        body = Buffer.from(`${formText(pairs)}&${Array.from({ length: 120 }, (_, i) => `p${i}=${i}`).join('&')}`);
        break;
      case 'bytes':
        body = Buffer.from(shape.bytes!);
        break;
      case 'empty':
        body = Buffer.alloc(0);
        break;
      default:
        body = Buffer.from(formText(pairs));
    }
    return { body, headers };
  }

  interface Auth {
    header?: string;
    pairs: Pairs;
    basicTried: boolean;
    /** A private_key_jwt assertion to sign with the client's real key (claims right or wrong). */
    sign?: { header: Record<string, unknown>; claims: Record<string, unknown>; clientId?: string };
  }

  /** Claims of an assertion signed with jwtClient's real key: valid, or wrong in one or two ways. */
  function signedAssertion(validOnly = false): fc.Arbitrary<Auth> {
    const now = () => Math.floor(Date.now() / 1000);
    const claim = <T>(valid: T, wrong: fc.Arbitrary<unknown>) => validOnly ? fc.constant<unknown>(valid) : fc.oneof({ weight: 12, arbitrary: fc.constant<unknown>(valid) }, { weight: 2, arbitrary: wrong }, { weight: 1, arbitrary: fc.constant(undefined) });
    return fc
      .record({
        iss: claim('self', fc.oneof(pick(m2m.client_id, ''), junk())),
        sub: claim('self', fc.oneof(pick(m2m.client_id, ''), junk())),
        aud: claim('issuer', fc.oneof(pick<unknown>('token', [s.url, 'https://other.example.com'], 'https://other.example.com', `${s.url}/`), junk())),
        exp: claim(60, fc.oneof(pick<unknown>(-60, 700, 1e10, 'soon', null), fc.integer())),
        iat: claim(0, fc.oneof(pick<unknown>(-700, 120, 'now'), fc.integer())),
        nbf: validOnly ? fc.constant(undefined) : fc.oneof(fc.constant(undefined), pick<unknown>(0, 300, 'x')),
        jti: claim('fresh', fc.oneof(pick<unknown>('', 'x'.repeat(256), 'replayed-jti', 42), junk())),
        alg: claim('ES256', pick('RS256', 'HS256', 'none', 'ES384')),
        kid: claim('fuzz-es256', fc.oneof(pick('', 'other'), junk())),
        bodyClientId: validOnly ? pick(undefined, 'self') : fc.oneof({ weight: 3, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: pick('self', m2m.client_id) }),
        fresh: fc.uuid(),
      })
      .map((c) => {
        const at = (v: unknown, self: unknown) => (v === 'self' ? self : v);
        const claims: Record<string, unknown> = {
          iss: at(c.iss, jwtClient.client_id), sub: at(c.sub, jwtClient.client_id),
          aud: c.aud === 'issuer' ? s.url : c.aud === 'token' ? `${s.url}/oauth/token` : c.aud,
          exp: typeof c.exp === 'number' && Math.abs(c.exp) < 1e9 ? now() + c.exp : c.exp,
          iat: typeof c.iat === 'number' && Math.abs(c.iat) < 1e9 ? now() + c.iat : c.iat,
          nbf: typeof c.nbf === 'number' ? now() + c.nbf : c.nbf,
          jti: c.jti === 'fresh' ? c.fresh : c.jti,
        };
        for (const k of Object.keys(claims)) if (claims[k] === undefined) delete claims[k];
        const header: Record<string, unknown> = { alg: c.alg ?? 'ES256', ...(c.kid !== undefined ? { kid: c.kid } : {}) };
        return { pairs: [], basicTried: false, sign: { header, claims, clientId: at(c.bodyClientId, jwtClient.client_id) as string | undefined } };
      });
  }

  /** Right credentials of the three confidential clients with the client_credentials grant. */
  const validAuth = (): fc.Arbitrary<Auth> =>
    fc.oneof(
      fc.constant<Auth>({ header: basic(m2m.client_id, m2m.client_secret), pairs: [], basicTried: true }),
      fc.constant<Auth>({ pairs: [['client_id', poster.client_id], ['client_secret', poster.client_secret]], basicTried: false }),
      signedAssertion(true),
    );

  /** The form pairs of an Auth, its assertion signed now (with the real ES256 key whatever `alg` says). */
  async function authPairs(auth: Auth): Promise<Pairs> {
    if (!auth.sign) return auth.pairs;
    const { header, claims, clientId } = auth.sign;
    const signed = await new SignJWT(claims as never).setProtectedHeader({ ...header, alg: 'ES256' }).sign(jwtKey);
    // A header claiming another alg keeps its ES256 signature: the server must refuse the mismatch.
    const [, payload, signature] = signed.split('.');
    const assertion = header.alg === 'ES256' ? signed : `${b64u(JSON.stringify(header))}.${payload}.${signature}`;
    return [['client_assertion_type', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'], ['client_assertion', assertion], ...(clientId !== undefined ? [['client_id', clientId]] as Pairs : []), ...auth.pairs];
  }
  const noAuth: Auth = { pairs: [], basicTried: false };

  /** Client authentication, right or wrong, by every method (CONTRACT §2). */
  function clientAuth(): fc.Arbitrary<Auth> {
    const jwt = jwtLike(realKid, tokens.m2m, s.url);
    const viaHeader = (header: string) => ({ header, pairs: [] as Pairs, basicTried: /^basic(\s|$)/i.test(header.replace(/^[ \t]+|[ \t]+$/g, '')) });
    const viaForm = (pairs: Pairs) => ({ pairs, basicTried: false });
    return fc.oneof(
      { weight: 6, arbitrary: pick(basic(m2m.client_id, m2m.client_secret), basic(web.client_id, web.client_secret), basic(poster.client_id, poster.client_secret), basic(ADMIN_CLIENT_ID, ADMIN_CLIENT_SECRET)).map(viaHeader) },
      { weight: 2, arbitrary: fc.tuple(pick(m2m.client_id, web.client_id, spa.client_id, ''), junk()).map(([id, secret]) => viaHeader(basicOf(id, secret))) },
      { weight: 2, arbitrary: fc.tuple(junk(), junk()).map(([id, secret]) => viaHeader(basicOf(id, secret))) },
      { weight: 1, arbitrary: fc.tuple(junk(), junk()).map(([id, secret]) => viaHeader(headerValue(`Basic ${b64(`${id}:${secret}`)}`))) },
      { weight: 1, arbitrary: fc.oneof(pick('Basic', 'Basic ', 'basic  ', 'Basic ===', 'Basic Og==', `Basic ${b64(':')}`, `Basic ${b64('%zz:%zz')}`, 'Bearer x', 'Digest x'), junk().map((j) => `Basic ${j}`), jwt.map((j) => `Bearer ${j}`), junk()).map((h) => viaHeader(headerValue(h))) },
      { weight: 3, arbitrary: pick<Pairs>([['client_id', poster.client_id], ['client_secret', poster.client_secret]], [['client_id', m2m.client_id], ['client_secret', m2m.client_secret]], [['client_secret', poster.client_secret]]).map(viaForm) },
      { weight: 2, arbitrary: fc.tuple(fc.oneof(pick(poster.client_id, m2m.client_id), junk()), junk()).map(([id, secret]) => viaForm([['client_id', id], ['client_secret', secret]])) },
      { weight: 2, arbitrary: fc.oneof(pick(spa.client_id, web.client_id), junk()).map((id) => viaForm([['client_id', id]])) },
      { weight: 2, arbitrary: fc.tuple(maybe(fc.oneof(pick('urn:ietf:params:oauth:client-assertion-type:jwt-bearer'), junk())), jwt, maybe(fc.oneof(pick(m2m.client_id), junk())))
        .map(([type, assertion, id]) => viaForm([...(type !== undefined ? [['client_assertion_type', type]] : []), ['client_assertion', assertion], ...(id !== undefined ? [['client_id', id]] : [])] as Pairs)) },
      { weight: 4, arbitrary: signedAssertion() },
      { weight: 1, arbitrary: fc.constant(viaForm([])) },
    );
  }

  /**
   * Extra parameters: none (so that a good share of cases reaches the deeper checks), junk names
   * and values (to be ignored), or also known names given again (to be refused).
   */
  const extras = (known: string[], hugeMax = 8193): fc.Arbitrary<Pairs> => {
    const junkNamed = fc.array(fc.tuple(fc.oneof(pick('CLIENT_ID', 'client_id[]', 'a[b][c]', '__proto__', 'constructor', 'hasOwnProperty', ''), junk()), junk(hugeMax)), { minLength: 1, maxLength: 4 });
    return fc.oneof(
      { weight: 3, arbitrary: fc.constant<Pairs>([]) },
      { weight: 2, arbitrary: junkNamed },
      { weight: 1, arbitrary: fc.tuple(junkNamed, fc.array(fc.tuple(pick(...known), junk(hugeMax)), { minLength: 1, maxLength: 2 })).map(([a, b]) => [...a, ...b]) },
    );
  };

  /** A form_post answer (an HTML page whose one form posts the response to the client): its target and fields. */
  function formPostOf(a: Answer): { action: string; fields: Record<string, string> } | undefined {
    if (a.status !== 200 || !/^text\/html/.test(a.headers['content-type'] ?? '')) return undefined;
    const found = forms(a.text);
    return found.length === 1 && found[0].method === 'post' && /<script>/.test(a.text) ? { action: found[0].action, fields: found[0].fields } : undefined;
  }

  /** Shared checks of the token, revocation and introspection endpoints' error answers. */
  function expectProtocolError(r: Sent, a: Answer, auth: { basicTried: boolean }): void {
    const body = expectOAuthError(r, a);
    check([400, 401, 413].includes(a.status), 'a protocol error is 400, 401 or 413', r, a);
    if (a.status === 401) {
      check(body.error === 'invalid_client', '401 is invalid_client', r, a);
      if (auth.basicTried) check(/^Basic /.test(String(a.headers['www-authenticate'])), 'a failed Basic authentication gets the Basic challenge', r, a);
    }
  }

  // ---------------------------------------------------------------------------------------------

  it('/authorize (GET query and POST form, with and without a session): an error page, a redirect to the registered URI (error or code), or the login or consent page', async () => {
    const registered = [REDIRECT, REDIRECT_Q, 'https://victim.example.com/cb'];
    const challenge = createHash('sha256').update('verifier').digest('base64url');
    const slot = (valid: fc.Arbitrary<string>, others: fc.Arbitrary<string>, validWeight = 6) =>
      fc.oneof({ weight: validWeight, arbitrary: valid }, { weight: 3, arbitrary: others }, { weight: 1, arbitrary: fc.constant(undefined) });
    const generated = fc.record({
      client_id: slot(pick(web.client_id), fc.oneof(pick(spa.client_id, m2m.client_id, victim.clientId, `${web.client_id} `, web.client_id.toUpperCase()), junk())),
      redirect_uri: slot(pick(REDIRECT, REDIRECT_Q), fc.oneof(pick(`${REDIRECT}/`, REDIRECT.toUpperCase(), `${REDIRECT}?x=1`, `${REDIRECT}#f`, 'https://evil.example.com/callback'), junk(), junk().map((j) => REDIRECT + j))),
      response_type: slot(pick('code'), fc.oneof(pick('token', 'code id_token', 'CODE', 'code ', 'id_token'), junk())),
      scope: slot(pick('openid', 'openid profile email offline_access', 'read:x', 'openid read:x write:x'), junk()),
      state: maybe(junk()),
      code_challenge: slot(pick(challenge), fc.oneof(pick('a'.repeat(42), 'a'.repeat(129), `${challenge}=`), junk()), 4),
      code_challenge_method: slot(pick('S256'), fc.oneof(pick('plain', 's256', 'S512'), junk()), 4),
      prompt: maybe(fc.oneof(pick('none', 'login', 'consent', 'select_account', 'none login', 'login consent', ' '), junk()), 3, 1),
      max_age: maybe(fc.oneof(pick('0', '3600', '-1', '1e3', '99999999999', '1.5', ' 1'), junk()), 3, 1),
      nonce: maybe(junk(), 2, 1),
      login_hint: maybe(junk(), 2, 1),
      display: maybe(junk(), 3, 1),
      ui_locales: maybe(junk(), 3, 1),
      claims_locales: maybe(junk(), 3, 1),
      acr_values: maybe(junk(), 3, 1),
      claims: maybe(fc.oneof(pick('{"userinfo":{"email":null}}'), junk()), 3, 1),
      id_token_hint: maybe(fc.oneof(pick(tokens.id, tokens.user), jwtLike(realKid, tokens.id, s.url)), 3, 1),
      audience: maybe(fc.oneof(pick(API, adminAudience, victim.apiIdentifier, `${API}/`), junk()), 3, 1),
      resource: maybe(fc.oneof(pick(API, 'urn:x', `${API}#f`), junk()), 4, 1),
      response_mode: maybe(fc.oneof(pick('query', 'form_post', 'fragment', 'jwt'), junk()), 4, 1),
      request: maybe(jwtLike(realKid, tokens.id, s.url), 12, 1),
      request_uri: maybe(pick('urn:example:req', 'https://evil.example.com/r'), 12, 1),
    }, { requiredKeys: [] });
    const none = undefined as string | undefined;
    const params = mutated({
      client_id: web.client_id, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid profile', state: 'xyz', code_challenge: challenge, code_challenge_method: 'S256',
      prompt: none, max_age: none, nonce: none, login_hint: none, display: none, ui_locales: none, claims_locales: none, acr_values: none, claims: none,
      id_token_hint: none, audience: none, resource: none, request: none, request_uri: none,
      // A third of the valid requests ask for the form post response mode.
      response_mode: pick<string | undefined>(undefined, undefined, 'form_post'),
    }, generated);
    const arb = fc.record({
      post: fc.boolean(),
      params,
      extra: extras(['client_id', 'redirect_uri', 'response_type', 'scope', 'state', 'prompt', 'code_challenge'], 0),
      // One long value: any text in a POST body (up to past the 64 kB limit), ASCII in a URL.
      hugeParam: maybe(fc.tuple(pick('state', 'nonce', 'scope', 'login_hint', 'client_id', 'redirect_uri', 'id_token_hint', 'junk'), huge(70_000), hugeAscii(4097)), 6, 1),
      rawTail: maybe(fc.string({ unit: fc.constantFrom(...'&=%+;#[]?/\\az09.~!$\'()*,:@^`{|}"<>'.split('')), maxLength: 30 }), 5, 1),
      shape: bodyShape,
      reversed: fc.boolean(),
      // With the cookies of a signed-in user: codes, the consent page, login_required / consent_required.
      session: fc.oneof({ weight: 2, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    });

    await property('authorize', arb, async (c) => {
      let pairs = Object.entries(c.params).filter((e): e is [string, string] => e[1] !== undefined);
      pairs.push(...c.extra);
      if (c.hugeParam) pairs.push([c.hugeParam[0], c.post ? c.hugeParam[1] : c.hugeParam[2]]);
      if (c.reversed) pairs = pairs.reverse();
      let text = formText(pairs);
      if (c.rawTail !== undefined) text += `&${c.rawTail}`;
      let r: Sent;
      let plainForm = true;
      if (c.post) {
        const { body, headers } = encodeBody(pairs, c.shape);
        plainForm = c.shape.kind === 'form' && c.shape.type === FORM && !c.shape.encoding;
        r = { method: 'POST', path: '/authorize', headers, body: plainForm && c.rawTail !== undefined ? Buffer.from(text) : body };
      } else {
        r = { method: 'GET', path: `/authorize?${text}`, headers: {} };
      }
      if (c.session) r.headers.cookie = sessionCookie;
      // Only an issued code writes a row (and sessions, which keep the pending interaction).
      const issued = (res: Answer) => {
        const fields = formPostOf(res)?.fields;
        if (fields) return fields.code !== undefined && fields.error === undefined;
        return !!res.headers.location && /[?&]code=/.test(res.headers.location) && !/[?&]error=/.test(res.headers.location);
      };
      const a = await exchange(r, (res) => !issued(res));
      const location = a.headers.location;
      // response_mode=form_post: the authorization response is a page whose form posts it to the redirect URI.
      const posted = location ? undefined : formPostOf(a);
      const modes = pairs.filter(([k]) => k === 'response_mode');
      const formPostAsked = modes.length === 1 && modes[0][1] === 'form_post';
      if (!location && !posted) {
        // The error page: client_id or redirect_uri could not be trusted (or the body was unreadable).
        const big = (r.body?.length ?? 0) > 64 * 1024 || !!c.post && !!c.shape.encoding;
        check(a.status === 400 || (a.status === 413 && big), 'an error page is HTTP 400 (413 for a body over the limit)', r, a);
        check(/^text\/html/.test(a.headers['content-type'] ?? ''), 'an error page is HTML', r, a);
        check(/<html/i.test(a.text), 'an error page is an HTML document', r, a);
        return;
      }
      let target: string | undefined;
      let q: URLSearchParams;
      if (posted) {
        check(a.status === 200, 'a form post answer is HTTP 200', r, a);
        check(a.headers['cache-control'] === 'no-store', 'a form post answer is not cached', r, a);
        check(/script-src 'sha256-[A-Za-z0-9+/]+=*'$/.test(String(a.headers['content-security-policy'])), 'a form post answer runs only the script its CSP names', r, a);
        target = registered.find((u) => posted.action === u);
        q = new URLSearchParams(posted.fields);
      } else {
        const page = /^\/(login|consent)\?interaction=/.test(location!);
        check(a.status === (c.post || page ? 303 : 302), 'a redirect is 302 after GET, 303 after POST (and to a page)', r, a);
        if (page) {
          check(c.session || location!.startsWith('/login?'), 'no consent page without a session', r, a);
          return; // valid enough: on to the login or consent page
        }
        target = registered.find((u) => location!.startsWith(`${u}${u.includes('?') ? '&' : '?'}`));
        q = new URL(location!).searchParams;
      }
      check(target, 'an authorization response goes to a registered redirect_uri', r, a);
      const sentRedirect = pairs.filter(([k]) => k === 'redirect_uri');
      check(sentRedirect.length === 1 && sentRedirect[0][1] === target, 'an authorization response goes to the redirect_uri of the request', r, a);
      if (c.rawTail === undefined && plainForm) check(!!posted === formPostAsked, 'an authorization response is a form post exactly when response_mode=form_post was asked for', r, a);
      check(q.get('iss') === s.url, 'an authorization response carries iss (RFC 9207)', r, a);
      if (issued(a)) {
        check(c.session && q.getAll('code').length === 1 && q.get('code')!.length > 20, 'a code only for a signed-in user', r, a);
      } else {
        check(/^[a-z_]+$/.test(q.get('error') ?? ''), 'an error redirect carries error', r, a);
        check(!['server_error', 'temporarily_unavailable'].includes(q.get('error')!), 'no server_error', r, a);
        check(q.get('error_description') !== null, 'an error redirect carries error_description', r, a);
      }
      const states = pairs.filter(([k]) => k === 'state');
      if (c.rawTail === undefined && plainForm && states.length === 1 && states[0][1] !== '' && states[0][1].length <= 2048) {
        check(q.get('state') === utf8(states[0][1]), 'an authorization response echoes state', r, a);
      }
    });
  }, TIMEOUT);

  // ---------------------------------------------------------------------------------------------

  it('/oauth/token: RFC 6749 §5.2 errors for any content type, form, Basic header, grant type and parameter', async () => {
    const generated = fc.record({
      auth: clientAuth(),
      grant_type: fc.oneof(
        { weight: 6, arbitrary: pick('client_credentials') },
        { weight: 4, arbitrary: pick('authorization_code', 'refresh_token') },
        { weight: 3, arbitrary: pick('password', 'implicit', 'urn:ietf:params:oauth:grant-type:jwt-bearer', 'urn:ietf:params:oauth:grant-type:device_code', 'urn:ietf:params:oauth:grant-type:token-exchange', 'CLIENT_CREDENTIALS', '', ' client_credentials') },
        { weight: 2, arbitrary: junk() },
        { weight: 1, arbitrary: fc.constant(undefined) },
      ),
        audience: maybe(fc.oneof(pick(API, adminAudience, victim.apiIdentifier, `${API}/`), junk())),
        resource: maybe(fc.oneof(pick(API, 'urn:x', `${API}#f`, 'relative/path'), junk()), 3, 1),
        scope: maybe(fc.oneof(pick('read:x', 'read:x write:x', 'openid', 'read:clients', 'read:x  write:x', ' '), junk())),
        code: maybe(fc.oneof(pick('a'.repeat(43)), jwtLike(realKid, tokens.id, s.url), junk())),
        redirect_uri: maybe(fc.oneof(pick(REDIRECT), junk())),
        code_verifier: maybe(fc.oneof(pick('verifier'.repeat(6)), junk())),
        refresh_token: maybe(fc.oneof(pick('x'.repeat(43)), jwtLike(realKid, tokens.user, s.url), junk())),
        username: maybe(pick(USER.email), 4, 1),
        password: maybe(pick(USER.password), 4, 1),
        assertion: maybe(jwtLike(realKid, tokens.id, s.url), 6, 1),
    }, { requiredKeys: ['auth'] });
    const none = undefined as string | undefined;
    const arb = fc.record({
      params: mutated({
        auth: validAuth(), grant_type: 'client_credentials', audience: API,
        resource: none, scope: none, code: none, redirect_uri: none, code_verifier: none, refresh_token: none, username: none, password: none, assertion: none,
      }, generated, 2),
      extra: extras(['grant_type', 'scope', 'audience', 'resource', 'client_id', 'code', 'refresh_token', 'redirect_uri']),
      shape: bodyShape,
      origin: maybe(fc.oneof(pick('https://evil.example.com', 'null', 'https://app.example.com'), junk().map(headerValue)), 6, 1),
    });

    await property('token', arb, async (c) => {
      const { auth: maybeAuth, ...params } = c.params;
      const auth = maybeAuth ?? noAuth;
      const pairs: Pairs = [
        ...Object.entries(params).filter((e): e is [string, string] => typeof e[1] === 'string'),
        ...(await authPairs(auth)),
        ...c.extra,
      ];
      const { body, headers } = encodeBody(pairs, c.shape);
      if (auth.header !== undefined) headers.authorization = auth.header;
      if (c.origin !== undefined) headers.origin = c.origin;
      const r: Sent = { method: 'POST', path: '/oauth/token', headers, body };
      const a = await exchange(r, (res) => res.status >= 400);
      if (a.status === 200) {
        const t = parseJson(r, a);
        check(typeof t.access_token === 'string' && t.token_type === 'Bearer' && Number.isInteger(t.expires_in), 'a token response', r, a);
        check(a.headers['cache-control'] === 'no-store', 'Cache-Control: no-store', r, a);
        return;
      }
      expectProtocolError(r, a, auth);
    });
  }, TIMEOUT);

  // ---------------------------------------------------------------------------------------------

  it('/userinfo: 401 with a Bearer challenge for any Authorization header, never a crash', async () => {
    const smallToken = fc.oneof(
      { weight: 2, arbitrary: pick(tokens.user, tokens.m2m, adminToken, tokens.id, tokens.refresh, tokens.readOnlyAdmin) },
      { weight: 6, arbitrary: jwtLike(realKid, tokens.user, s.url) },
      { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom(...'ABCxyz019-._~+/='.split('')), maxLength: 60 }) },
    );
    // One long token at most: the request line and headers must stay within node's 16 kB.
    const token = fc.oneof({ weight: 9, arbitrary: smallToken }, { weight: 1, arbitrary: hugeAscii(8193) });
    const arb = fc.record({
      method: pick('GET', 'POST'),
      authorization: fc.oneof(
        { weight: 8, arbitrary: fc.tuple(pick('Bearer ', 'bearer ', 'BEARER ', 'Bearer  ', 'Bearer\t', ' Bearer '), token).map(([scheme, t]) => headerValue(scheme + t)) },
        { weight: 1, arbitrary: fc.tuple(pick('Basic ', 'DPoP ', 'Token ', ''), token).map(([scheme, t]) => headerValue(scheme + t)) },
        { weight: 1, arbitrary: junk().map(headerValue) },
        { weight: 1, arbitrary: fc.constant(undefined) },
      ),
      query: maybe(fc.tuple(pick('access_token', 'schema', 'claims'), fc.oneof(smallToken, junk())), 4, 1),
      form: maybe(fc.array(fc.tuple(fc.oneof(pick('access_token'), junk()), fc.oneof(token, junk(70_000))), { maxLength: 3 }), 2, 1),
      shape: bodyShape,
    });

    await property('userinfo', arb, async (c) => {
      const path = `/userinfo${c.query ? `?${formText([c.query])}` : ''}`;
      const { body, headers } = c.form && c.method === 'POST' ? encodeBody(c.form, c.shape) : { body: undefined, headers: {} as Record<string, string> };
      if (c.authorization !== undefined) headers.authorization = c.authorization;
      const r: Sent = { method: c.method, path, headers, body };
      const a = await exchange(r, () => true); // UserInfo never writes
      if (a.status === 200) {
        const claims = parseJson(r, a);
        check(typeof claims.sub === 'string', 'UserInfo answers sub', r, a);
        return;
      }
      const err = expectOAuthError(r, a);
      check([400, 401, 403, 413].includes(a.status), 'a UserInfo error is 400, 401, 403 or 413', r, a);
      if (a.status === 401) {
        check(err.error === 'invalid_token', '401 is invalid_token', r, a);
        check(/^Bearer /.test(String(a.headers['www-authenticate'])), '401 carries WWW-Authenticate: Bearer (RFC 6750 §3)', r, a);
      }
      if (a.status === 403) check(err.error === 'insufficient_scope', '403 is insufficient_scope', r, a);
    });
  }, TIMEOUT);

  // ---------------------------------------------------------------------------------------------

  /** Form of /oauth/introspect and /oauth/revoke: any token, any hint, any client authentication. */
  const tokenForm = () =>
    fc.record({
      form: mutated(
        { auth: validAuth(), token: tokens.m2m as string | undefined, hint: undefined as string | undefined },
        fc.record({
          auth: clientAuth(),
          token: maybe(fc.oneof(
            { weight: 2, arbitrary: pick(tokens.user, tokens.m2m, tokens.refresh, tokens.id, tokens.spareAdmin) },
            { weight: 4, arbitrary: jwtLike(realKid, tokens.m2m, s.url) },
            { weight: 3, arbitrary: junk(8193) },
          ), 1, 8),
          hint: maybe(fc.oneof(pick('access_token', 'refresh_token', 'id_token', 'ACCESS_TOKEN'), junk()), 2, 1),
        }, { requiredKeys: ['auth'] }),
        2,
      ),
      extra: extras(['token', 'token_type_hint', 'client_id']),
      shape: bodyShape,
    }).map(({ form, extra, shape }) => ({ auth: form.auth ?? noAuth, token: form.token, hint: form.hint, extra, shape }));

  async function tokenFormRequest(path: string, c: { auth: Auth; token?: string; hint?: string; extra: Pairs; shape: Parameters<typeof encodeBody>[1] }): Promise<Sent> {
    const pairs: Pairs = [
      ...(c.token !== undefined ? [['token', c.token]] as Pairs : []),
      ...(c.hint !== undefined ? [['token_type_hint', c.hint]] as Pairs : []),
      ...(await authPairs(c.auth)),
      ...c.extra,
    ];
    const { body, headers } = encodeBody(pairs, c.shape);
    if (c.auth.header !== undefined) headers.authorization = c.auth.header;
    return { method: 'POST', path, headers, body };
  }

  it('/oauth/introspect: {active} for an authenticated client, RFC 6749 §5.2 errors otherwise', async () => {
    await property('introspect', tokenForm(), async (c) => {
      const r = await tokenFormRequest('/oauth/introspect', c);
      const a = await exchange(r, () => true); // introspection never writes
      if (a.status === 200) {
        const body = parseJson(r, a);
        check(typeof body.active === 'boolean', 'an introspection response has active', r, a);
        if (!body.active) check(Object.keys(body).join() === 'active', 'an inactive token is described by active alone (RFC 7662 §2.2)', r, a);
        return;
      }
      expectProtocolError(r, a, c.auth);
    });
  }, TIMEOUT);

  it('/oauth/revoke: 200 {} for an authenticated client, RFC 6749 §5.2 errors otherwise; nothing written for a foreign or junk token', async () => {
    const real = () => new Set([tokens.user, tokens.m2m, tokens.refresh, tokens.spareAdmin]);
    await property('revoke', tokenForm(), async (c) => {
      const r = await tokenFormRequest('/oauth/revoke', c);
      // Only the owner revoking a real token of ours may change a row (RFC 7009 §2.1).
      const a = await exchange(r, (res) => res.status >= 400 || !real().has(c.token ?? ''));
      if (a.status === 200) {
        check(a.text === '{}' || a.text === '', 'a revocation answers an empty body', r, a);
        return;
      }
      expectProtocolError(r, a, c.auth);
    });
  }, TIMEOUT);

  // ---------------------------------------------------------------------------------------------

  it('the admin API: {statusCode, error, message} for any JSON body, id, query string and token', async () => {
    const jsonJunk: fc.Arbitrary<unknown> = fc.oneof(
      { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
      { weight: 2, arbitrary: fc.oneof(junk(), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.constant([]), fc.constant({})) },
      { weight: 1, arbitrary: huge(70_000) },
      { weight: 1, arbitrary: fc.array(junk(), { maxLength: 60 }) },
      { weight: 1, arbitrary: fc.dictionary(junk(), junk(), { maxKeys: 5 }) },
    );
    /**
     * Bodies that are valid but for one or two things, so that they get past the DTO checks: a
     * valid body per resource, and per field the values that are plausible but wrong (or right).
     */
    const EC_KEY = { kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0' };
    const valid: Record<string, Record<string, unknown>[]> = {
      clients: [
        { client_name: 'Fuzzed web', redirect_uris: ['https://app.example.com/cb'], grant_types: ['authorization_code', 'refresh_token'], allowed_origins: ['https://app.example.com'] },
        { client_name: 'Fuzzed machine', grant_types: ['client_credentials'], token_endpoint_auth_method: 'client_secret_post' },
        { redirect_uris: ['com.example.app:/cb', 'http://127.0.0.1:8080/cb'], token_endpoint_auth_method: 'none', first_party: true, refresh_token_rotation: false },
        { grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [EC_KEY] } },
        { grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'https://app.example.com/jwks.json', scope: 'read:x' },
      ],
      users: [{ email: 'fuzz0@example.com', password: 'long enough password', name: 'Fuzzed', email_verified: true, blocked: false }],
      apis: [{ identifier: 'https://api.example.com/fuzzed/0', name: 'Fuzzed API', scopes: [{ value: 'read:a', description: 'Read' }], token_lifetime: 3600, allow_offline_access: true }],
      'client-grants': [{ client_id: victim.ccClientId, audience: victim.apiIdentifier, scope: ['read:v'] }],
    };
    const fieldValues: Record<string, fc.Arbitrary<unknown>> = {
      client_name: pick<unknown>('Renamed', '', 'x'.repeat(256), 'with\0nul'),
      redirect_uris: fc.oneof(pick<unknown>([], ['http://evil.example.com/cb'], ['https://a.example.com/*'], ['https://a.example.com/cb#f'], ['javascript:alert(1)'], ['https://user:pw@a.example.com/cb'], ['relative/cb'], ['myapp:/cb'], Array(51).fill('https://a.example.com/cb')), fc.array(junk(), { maxLength: 3 })),
      post_logout_redirect_uris: pick<unknown>(['https://app.example.com/bye'], ['nope'], [1]),
      grant_types: pick<unknown>(['authorization_code'], ['client_credentials'], ['refresh_token'], ['password'], ['client_credentials', 'client_credentials'], [], ['authorization_code', 'client_credentials', 'refresh_token']),
      response_types: pick<unknown>(['code'], [], ['token'], ['code', 'code']),
      token_endpoint_auth_method: pick<unknown>('client_secret_basic', 'client_secret_post', 'none', 'private_key_jwt', 'client_secret_jwt', 'tls_client_auth', ''),
      jwks: pick<unknown>({ keys: [EC_KEY] }, { keys: [] }, { keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }, { keys: [{ ...EC_KEY, d: 'x' }] }, { keys: 'x' }, { keys: [null] }, { keys: [{ kty: 'RSA', n: 'x', e: 'AQAB' }] }, { keys: Array(21).fill(EC_KEY) }, []),
      jwks_uri: pick<unknown>('https://app.example.com/jwks.json', 'http://evil.example.com/jwks.json', 'not a url', 'file:///etc/passwd'),
      scope: pick<unknown>('openid profile', 'read:x', 'bad"scope', '', ' ', 'a  b', ['read:v'], ['read:x'], [], ['nope'], ['read:v', 'read:v'], [1]),
      first_party: pick<unknown>(true, 'true', 1),
      allowed_origins: pick<unknown>(['https://app.example.com'], ['https://app.example.com/'], ['http://evil.example.com'], ['*'], ['null'], ['https://app.example.com:443']),
      refresh_token_rotation: pick<unknown>(false, 'false', 0),
      email: fc.oneof(pick<unknown>('victim@example.com', ' VICTIM@example.com ', 'fuzz@example.com', 'not-an-email', 'a@b', `${'a'.repeat(320)}@example.com`, 'a@example.com\0'), fc.integer({ min: 1, max: 5 }).map((i) => `fuzz${i}@example.com`)),
      password: pick<unknown>('another long password', 'short', '', 'x'.repeat(257), 12345678),
      name: pick<unknown>('Name', null, '', 'x'.repeat(256)),
      email_verified: pick<unknown>(true, 'yes', null),
      blocked: pick<unknown>(true, 'no', null),
      identifier: fc.oneof(pick<unknown>(victim.apiIdentifier, API, adminAudience, 'not a uri', 'https://api.example.com/#frag', 'urn:example:api', 'https://api.example.com/ space', 'x'.repeat(513)), fc.integer({ min: 1, max: 5 }).map((i) => `https://api.example.com/fuzzed/${i}`)),
      scopes: pick<unknown>([], [{ value: 'openid', description: 'x' }], [{ value: 'a', description: 'x' }, { value: 'a', description: 'y' }], [{ value: 'bad scope', description: 'x' }], [{ value: 'x' }], ['read:a'], [{ value: 'x', description: 'y', extra: 1 }], [null], Array(201).fill({ value: 'a', description: 'b' })),
      token_lifetime: pick<unknown>(3600, 59, 86401, 60.5, '3600', -1, 1e300),
      allow_offline_access: pick<unknown>(false, 'false'),
      client_id: pick<unknown>(victim.ccClientId, victim.clientId, m2m.client_id, ADMIN_CLIENT_ID, 'no-such-client', '', 'x'.repeat(129)),
      audience: pick<unknown>(victim.apiIdentifier, API, adminAudience, 'https://nowhere.example.com', ''),
    };
    const FIELDS: Record<string, string[]> = {
      clients: ['client_name', 'redirect_uris', 'post_logout_redirect_uris', 'grant_types', 'response_types', 'token_endpoint_auth_method', 'jwks', 'jwks_uri', 'scope', 'first_party', 'allowed_origins', 'refresh_token_rotation'],
      users: ['email', 'password', 'name', 'email_verified', 'blocked'],
      apis: ['identifier', 'name', 'scopes', 'token_lifetime', 'allow_offline_access'],
      'client-grants': ['client_id', 'audience', 'scope'],
    };
    /** A valid body (for PATCH, without the fields only POST takes) with up to two fields changed, removed or added. */
    const nearValid = (resource: string, method: 'POST' | 'PATCH') =>
      fc
        .tuple(
          pick(...valid[resource]),
          fc.array(fc.oneof(
            { weight: 6, arbitrary: pick(...FIELDS[resource]).chain((k) => fc.oneof({ weight: 3, arbitrary: fieldValues[k] }, { weight: 1, arbitrary: jsonJunk }, { weight: 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constant(undefined) }).map((v) => [k, v] as const)) },
            { weight: 1, arbitrary: fc.tuple(fc.oneof(pick(...Object.keys(fieldValues)), junk()), jsonJunk) },
          ), { maxLength: 2 }),
        )
        .map(([body, changes]) => {
          const out: Record<string, unknown> = { ...body };
          if (method === 'PATCH') delete out.identifier;
          for (const [k, v] of changes) if (v === undefined) delete out[k]; else out[k] = v;
          return out;
        });
    const deep = fc.tuple(fc.integer({ min: 10, max: 3000 }), fc.boolean()).map(([depth, arrays]) => (arrays ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)));
    const body = (resource: string, method: 'POST' | 'PATCH' = 'POST') =>
      fc.oneof(
        { weight: 6, arbitrary: nearValid(resource, method).map((b) => JSON.stringify(b)) },
        { weight: 4, arbitrary: jsonJunk.map((j) => JSON.stringify(j) ?? 'null') },
        { weight: 1, arbitrary: deep },
        { weight: 1, arbitrary: fc.oneof(junk(), pick('{', '{"a":1,}', "{'a':1}", '[1,]', 'NaN', '{"__proto__":{"x":1}}', '{"constructor":{"prototype":{}}}', '{"a":1,"a":2}', '\ufeff{}', '1e999')) },
      );
    const id = fc.oneof(
      { weight: 3, arbitrary: junk().map(pct) },
      { weight: 1, arbitrary: hugeAscii(4097) },
      { weight: 2, arbitrary: fc.uuid().map(String) },
      { weight: 1, arbitrary: pick('..', '%2e%2e', '%2F', 'a%2Fb', '%', '%zz', '%00', '%ED%A0%80', 'null', 'undefined', '0', '-1', 'x'.repeat(37), '%20', 'openapi.json') },
    );
    const victimId: Record<string, () => fc.Arbitrary<string>> = {
      clients: () => pick(victim.clientId, victim.ccClientId),
      users: () => pick(victim.userId),
      apis: () => pick(victim.apiId, victim.adminApiId),
      'client-grants': () => pick(victim.grantId),
    };
    /** List queries: `limit`, `cursor` (forged ones too: any key after `k:`) and each list's filters. */
    const QUERY: Record<string, fc.Arbitrary<string>> = {
      limit: fc.oneof({ weight: 3, arbitrary: pick('1', '2', '50', '200') }, { weight: 1, arbitrary: pick('0', '201', '-1', '1e2', ' 5', '5 ', '0x10', '', '99999', '1.5') }, { weight: 1, arbitrary: junk() }),
      cursor: fc.oneof(
        { weight: 3, arbitrary: fc.oneof(junk(), fc.uuid().map(String), pick('\0', 'a\0b', '\uffff', "' OR 1=1 --", '~'.repeat(300))).map((key) => b64u(`k:${key}`)) },
        { weight: 1, arbitrary: fc.oneof(pick(b64u('x'), 'a'.repeat(513), '%%%', ''), junk()) },
      ),
      email: fc.oneof(pick('victim@example.com', ' VICTIM@EXAMPLE.COM', 'nobody@example.com', '', '%'), junk()),
      client_id: fc.oneof(pick(victim.ccClientId, m2m.client_id, ''), junk()),
      user_id: fc.oneof(pick(victim.userId, ''), fc.uuid().map(String), junk()),
      type: fc.oneof(pick('client.auth_failed', 'token.issued', '', '%'), junk()),
      since: fc.oneof(
        pick('2020-01-01', '2020-01-01T00:00:00Z', '-271821-04-20T00:00:00Z', '+275760-09-13T00:00:00Z', '0000-01-01', '-004714-11-24T00:00:00Z', '1', 'Tue, 01 Jan 2030', '2030-02-30T25:61:61Z', 'x'.repeat(41)),
        fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
        junk(),
      ),
    };
    const FILTERS: Record<string, string[]> = { users: ['email'], 'client-grants': ['client_id'], 'audit-events': ['type', 'user_id', 'client_id', 'since'] };
    const query = (res: string) =>
      fc.tuple(
        fc.subarray(['limit', 'cursor', ...(FILTERS[res] ?? [])]).chain((names) => fc.tuple(...names.map((k) => QUERY[k].map((v) => [k, v] as [string, string])))),
        fc.oneof({ weight: 4, arbitrary: fc.constant<Pairs>([]) }, { weight: 1, arbitrary: fc.array(fc.tuple(fc.oneof(pick(...Object.keys(QUERY)), junk()), junk()), { minLength: 1, maxLength: 2 }) }),
      ).map(([known, other]) => [...known, ...other]);
    const RESOURCES = ['clients', 'users', 'apis', 'client-grants'];
    const op = fc.oneof(
      { weight: 5, arbitrary: pick(...RESOURCES).chain((res) => body(res).map((b) => ({ method: 'POST', path: `/admin/${res}`, body: b }))) },
      { weight: 4, arbitrary: pick('clients', 'users', 'apis').chain((res) => fc.tuple(fc.oneof(victimId[res](), id), body(res, 'PATCH')).map(([i, b]) => ({ method: 'PATCH', path: `/admin/${res}/${i}`, body: b }))) },
      { weight: 2, arbitrary: pick(...RESOURCES).chain((res) => fc.oneof(victimId[res](), id).map((i) => ({ method: 'GET', path: `/admin/${res}/${i}` }))) },
      { weight: 2, arbitrary: fc.tuple(pick(...RESOURCES), id).map(([res, i]) => ({ method: 'DELETE', path: `/admin/${res}/${i}` })) },
      { weight: 6, arbitrary: pick(...RESOURCES, 'audit-events', 'audit-events', 'keys').chain((res) => query(res).map((q) => ({ method: 'GET', path: `/admin/${res}${q.length ? `?${formText(q)}` : ''}` }))) },
      { weight: 1, arbitrary: fc.tuple(fc.oneof(pick(victim.clientId), id), maybe(body('clients'), 3, 1)).map(([i, b]) => ({ method: 'POST', path: `/admin/clients/${i}/secret`, body: b })) },
      { weight: 1, arbitrary: fc.tuple(fc.oneof(pick(victim.userId), id), maybe(id)).map(([u, g]) => ({ method: g ? 'DELETE' : 'GET', path: `/admin/users/${u}/grants${g ? `/${g}` : ''}` })) },
      { weight: 1, arbitrary: fc.oneof(jsonJunk.map((j) => JSON.stringify(j) ?? 'null'), pick('{"alg":"HS256"}', '{"alg":null}', '{"alg":["RS256"]}')).map((b) => ({ method: 'POST', path: '/admin/keys/rotate', body: b })) },
      { weight: 1, arbitrary: fc.tuple(pick('PUT', 'OPTIONS', 'HEAD', 'PATCH', 'DELETE'), pick('/admin/clients', '/admin/users', '/admin/keys', '/admin/openapi.json', '/admin'), maybe(body('users'))).map(([method, path, b]) => ({ method, path, body: b })) },
    ) as fc.Arbitrary<{ method: string; path: string; body?: string }>;
    const arb = fc.record({
      op,
      token: fc.oneof(
        { weight: 20, arbitrary: fc.constant('admin') },
        { weight: 1, arbitrary: pick('none', 'read-only', 'm2m', 'user', 'junk') },
      ),
      contentType: fc.oneof({ weight: 12, arbitrary: fc.constant('application/json') }, { weight: 1, arbitrary: pick('application/json; charset=utf-16', 'text/plain', FORM, 'application/merge-patch+json', 'application/json; charset=x-junk') }, { weight: 1, arbitrary: fc.constant(undefined) }),
    });

    await property('admin', arb, async (c) => {
      const headers: Record<string, string> = {};
      const bearer = { admin: adminToken, 'read-only': tokens.readOnlyAdmin, m2m: tokens.m2m, user: tokens.user, junk: 'eyJhbGciOiJub25lIn0.e30.' }[c.token];
      if (bearer) headers.authorization = `Bearer ${bearer}`;
      if (c.op.body !== undefined && c.contentType !== undefined) headers['content-type'] = c.contentType;
      const r: Sent = { method: c.op.method, path: c.op.path, headers, body: c.op.body !== undefined ? Buffer.from(c.op.body, 'utf8') : undefined };
      const a = await exchange(r, (res) => res.status >= 400);
      check(!/\$argon2/.test(a.text) || /\$argon2/.test(haystack(r)), 'never a password hash', r, a);
      if (a.status >= 400) {
        if (c.op.method === 'HEAD') return;
        expectAdminError(r, a);
        if (c.token === 'admin') check(a.status !== 401 && a.status !== 403, 'the admin token is always let in', r, a);
        return;
      }
      check(a.status < 300, 'no redirects', r, a);
      if (a.status === 204 || c.op.method === 'HEAD' || c.op.method === 'OPTIONS') return;
      const answer = parseJson(r, a);
      check(answer && typeof answer === 'object', 'a JSON object or list', r, a);
      const keys = (v: unknown): string[] => (v && typeof v === 'object' ? Object.entries(v).flatMap(([k, x]) => [k, ...keys(x)]) : []);
      check(!keys(answer).some((k) => ['password', 'password_hash', 'secret_hash'].includes(k)), 'never a password or a secret hash', r, a);
    });
  }, TIMEOUT);
});
