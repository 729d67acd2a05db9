'use strict';
// The load generator's HTTP side: a keep-alive undici pool per server, a small cookie jar, and
// the browser steps of the Authorization Code Flow (follow redirects, fill our login and consent
// forms; oidc-provider's interactions complete themselves in bench/oidc-provider-server.mjs).
const { Pool } = require('undici');
const { createHash, randomBytes } = require('node:crypto');

/** Cookies by name (one host), with their Path (RFC 6265 §5.1.4 path-match, simplified). */
class Jar {
  constructor(cookies = {}) {
    this.cookies = new Map(Object.entries(cookies).map(([k, v]) => [k, typeof v === 'string' ? { value: v, path: '/' } : v]));
  }

  update(setCookie) {
    if (!setCookie) return;
    for (const line of Array.isArray(setCookie) ? setCookie : [setCookie]) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq < 1) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let expired = value === '';
      let path = '/';
      for (const a of attrs) {
        const i = a.indexOf('=');
        const key = (i < 0 ? a : a.slice(0, i)).trim().toLowerCase();
        const v = i < 0 ? '' : a.slice(i + 1).trim();
        if (key === 'max-age' && Number(v) <= 0) expired = true;
        if (key === 'expires' && Date.parse(v) < Date.now()) expired = true;
        if (key === 'path' && v.startsWith('/')) path = v;
      }
      if (expired) this.cookies.delete(name);
      else this.cookies.set(name, { value, path });
    }
  }

  header(reqPath = '/') {
    let s = '';
    for (const [k, c] of this.cookies) {
      if (c.path !== '/' && !(reqPath === c.path || reqPath.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))) continue;
      s += (s ? '; ' : '') + k + '=' + c.value;
    }
    return s;
  }

  toJSON() {
    return Object.fromEntries(this.cookies);
  }
}

class HttpClient {
  constructor(origin, connections) {
    this.origin = origin;
    this.pool = new Pool(origin, { connections, pipelining: 1, keepAliveTimeout: 30_000, headersTimeout: 30_000, bodyTimeout: 30_000 });
  }

  /** `url`: a path, or an absolute URL on this origin. Resolves { status, headers, text }; never follows redirects. */
  async request(method, url, { headers = {}, body, jar } = {}) {
    let path = url;
    if (url[0] !== '/') {
      const u = new URL(url);
      if (u.origin !== this.origin) throw new Error(`${url} is not on ${this.origin}`);
      path = u.pathname + u.search;
    }
    if (jar && jar.cookies.size) {
      const cookie = jar.header(path.split('?', 1)[0]);
      if (cookie) headers = { ...headers, cookie };
    }
    const res = await this.pool.request({ method, path, headers, body });
    const text = await res.body.text();
    if (jar) jar.update(res.headers['set-cookie']);
    return { status: res.statusCode, headers: res.headers, text };
  }

  close() {
    return this.pool.close();
  }
}

const FORM = 'application/x-www-form-urlencoded';
const basic = (id, secret) => 'Basic ' + Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64');
const form = (o) => new URLSearchParams(o).toString();

/** Reads the JSON of a response that must be `status`; throws a short failure message otherwise. */
function json(res, status, what) {
  if (res.status !== status) throw new Error(`${what}: HTTP ${res.status} ${snippet(res.text)}`);
  try {
    return JSON.parse(res.text);
  } catch {
    throw new Error(`${what}: body is not JSON: ${snippet(res.text)}`);
  }
}

function snippet(text) {
  return String(text ?? '').replace(/\s+/g, ' ').slice(0, 160);
}

function pkce() {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

function hidden(html, name) {
  const m = new RegExp(`name="${name}" value="([^"]*)"`).exec(html);
  if (!m) throw new Error(`form without ${name}`);
  return m[1];
}

/**
 * One /authorize request with the browser `jar`, followed through redirects to the client's
 * redirect URI. With `pages`, our login form (user) and consent form (allow) are filled on the way;
 * without, any page or redirect other than the one back to the client is a failure (the session
 * and consent must be there already). Returns the callback's query parameters and the PKCE verifier.
 */
async function authorize(http, t, jar, { resource, pages = false, loginCount } = {}) {
  const { verifier, challenge } = pkce();
  const state = randomBytes(12).toString('base64url');
  const nonce = randomBytes(12).toString('base64url');
  const q = {
    response_type: 'code', client_id: t.web.id, redirect_uri: t.redirectUri, scope: resource ? t.scopeApi : t.scopeUser,
    state, nonce, code_challenge: challenge, code_challenge_method: 'S256',
  };
  if (resource) q.resource = t.api.identifier;
  let url = `${t.endpoints.authorization}?${form(q)}`;
  let method = 'GET';
  let body;
  let headers = {};
  for (let step = 0; step < 12; step++) {
    const res = await http.request(method, url, { jar, body, headers });
    if (res.status >= 300 && res.status < 400 && res.headers.location) {
      const loc = res.headers.location;
      if (loc.startsWith(t.redirectUri)) {
        const p = new URL(loc).searchParams;
        if (p.get('error')) throw new Error(`authorize: error=${p.get('error')} ${p.get('error_description') ?? ''}`);
        if (p.get('state') !== state) throw new Error('authorize: state not echoed');
        if (p.has('iss') && p.get('iss') !== t.issuer) throw new Error('authorize: wrong iss');
        const code = p.get('code');
        if (!code) throw new Error('authorize: no code');
        return { code, verifier, nonce };
      }
      if (!pages) throw new Error(`authorize: unexpected redirect to ${new URL(loc, url).pathname}`);
      url = new URL(loc, url).toString();
      method = 'GET';
      body = undefined;
      headers = {};
      continue;
    }
    if (pages && res.status === 200 && res.text.includes('action="/login"')) {
      url = new URL('/login', url).toString();
      method = 'POST';
      body = form({ _csrf: hidden(res.text, '_csrf'), interaction: hidden(res.text, 'interaction'), username: t.user.email, password: t.user.password });
      headers = { 'content-type': FORM };
      if (loginCount) loginCount.n++;
      continue;
    }
    if (pages && res.status === 200 && res.text.includes('action="/consent"')) {
      url = new URL('/consent', url).toString();
      method = 'POST';
      body = form({ _csrf: hidden(res.text, '_csrf'), interaction: hidden(res.text, 'interaction'), decision: 'allow' });
      headers = { 'content-type': FORM };
      continue;
    }
    throw new Error(`authorize: HTTP ${res.status} at ${new URL(url).pathname} ${snippet(res.text)}`);
  }
  throw new Error('authorize: too many steps');
}

/** Trades a code at the token endpoint; checks the answer's shape. */
async function redeem(http, t, { code, verifier }) {
  const res = await http.request('POST', t.endpoints.token, {
    headers: { authorization: basic(t.web.id, t.web.secret), 'content-type': FORM },
    body: form({ grant_type: 'authorization_code', code, redirect_uri: t.redirectUri, code_verifier: verifier }),
  });
  const tok = json(res, 200, 'token (code)');
  if (typeof tok.access_token !== 'string' || typeof tok.id_token !== 'string' || !/^bearer$/i.test(tok.token_type ?? '')) {
    throw new Error(`token (code): missing access_token, id_token or token_type: ${snippet(res.text)}`);
  }
  return tok;
}

async function discover(http, issuer) {
  const d = json(await http.request('GET', `${issuer}/.well-known/openid-configuration`), 200, 'discovery');
  return {
    authorization: d.authorization_endpoint, token: d.token_endpoint, userinfo: d.userinfo_endpoint,
    introspection: d.introspection_endpoint, jwks: d.jwks_uri, issuer: d.issuer,
  };
}

module.exports = { Jar, HttpClient, FORM, basic, form, json, snippet, pkce, authorize, redeem, discover };
