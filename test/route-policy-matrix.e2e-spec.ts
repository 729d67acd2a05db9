import { ManualClock } from '@idp/core';
import { Browser, signIn } from './support/browser';
import { TestServer, basic, startServer } from './support/server';

const REDIRECT = 'https://app.example.com/callback';
const SPA_ORIGIN = 'https://spa.example.com';
const STRANGER = 'https://stranger.example.net';
const USER = { email: 'matrix@example.com', password: 'every route, every policy' };
const API = 'https://api.example.com/matrix';

type Format = 'oauth' | 'page' | 'api';

/** One route of each endpoint family: how to call it well-formed, and the format of its errors. */
interface Route {
  name: string;
  method: 'GET' | 'POST';
  path: () => string;
  format: Format;
  /** A well-formed request's headers and body. */
  init: () => Promise<{ headers?: Record<string, string>; body?: string }>;
  /** The status of the well-formed request. */
  ok: number;
  /** Whether the contract opens it to browsers of registered origins (CORS). */
  cors: 'client' | 'public' | 'never';
}

/**
 * The route × policy matrix (issue 20): every cross-cutting policy, applied by the framework to
 * every endpoint family the same way: security headers and a request id, CORS allowed and
 * refused, the body limit, hostile input, an unknown path, and the rate limit, each answered in
 * the family's own format (RFC 6749 §5.2 JSON, the HTML error page, the admin JSON).
 */
describe('every route family × every policy', () => {
  const clock = new ManualClock();
  let s: TestServer;
  let web: { client_id: string; client_secret: string };
  let spa: { client_id: string };
  let userToken: string;
  let loginPath: string;
  let loginCookie: string;
  const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

  beforeAll(async () => {
    s = await startServer({}, undefined, { clock });
    await s.admin('POST', '/admin/users', USER);
    await s.admin('POST', '/admin/apis', { identifier: API, name: 'Matrix', scopes: [{ value: 'read:m', description: 'Read' }] });
    web = (await s.admin('POST', '/admin/clients', { redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'client_credentials'], allowed_origins: [SPA_ORIGIN], first_party: true })).body;
    spa = (await s.admin('POST', '/admin/clients', { redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none', allowed_origins: [SPA_ORIGIN] })).body;
    await s.admin('POST', '/admin/client-grants', { client_id: web.client_id, audience: API, scope: ['read:m'] });
    // A user access token for UserInfo, through the real forms.
    const browser = new Browser(s.url);
    const verifier = 'v'.repeat(43);
    const challenge = require('node:crypto').createHash('sha256').update(verifier).digest('base64url');
    const page = await signIn(browser, `${s.url}/authorize?${new URLSearchParams({ client_id: web.client_id, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256' })}`, USER);
    const code = new URL(page.url).searchParams.get('code')!;
    const tokens = await (await s.fetch('/oauth/token', { method: 'POST', headers: { ...FORM, authorization: basic(web.client_id, web.client_secret) }, body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier }) })).json();
    userToken = tokens.access_token;
    // A pending sign-in: the login page of an interaction, with its session cookie.
    const pending = new Browser(s.url);
    const login = await pending.go(`${s.url}/authorize?${new URLSearchParams({ client_id: web.client_id, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid', code_challenge: challenge, code_challenge_method: 'S256' })}`);
    const url = new URL(login.url);
    loginPath = url.pathname + url.search;
    loginCookie = pending.cookieHeader();
  });
  afterAll(() => s.close());

  const basicWeb = () => ({ authorization: basic(web.client_id, web.client_secret) });
  const routes: Route[] = [
    { name: 'token', method: 'POST', path: () => '/oauth/token', format: 'oauth', ok: 200, cors: 'client', init: async () => ({ headers: { ...FORM, ...basicWeb() }, body: `grant_type=client_credentials&audience=${encodeURIComponent(API)}` }) },
    { name: 'revocation', method: 'POST', path: () => '/oauth/revoke', format: 'oauth', ok: 200, cors: 'client', init: async () => ({ headers: { ...FORM, ...basicWeb() }, body: 'token=whatever' }) },
    { name: 'introspection', method: 'POST', path: () => '/oauth/introspect', format: 'oauth', ok: 200, cors: 'never', init: async () => ({ headers: { ...FORM, ...basicWeb() }, body: 'token=whatever' }) },
    { name: 'UserInfo', method: 'GET', path: () => '/userinfo', format: 'oauth', ok: 200, cors: 'client', init: async () => ({ headers: { authorization: `Bearer ${userToken}` } }) },
    { name: 'authorize', method: 'GET', path: () => `/authorize?client_id=${web.client_id}&redirect_uri=${encodeURIComponent(REDIRECT)}&response_type=code&scope=openid&code_challenge=${'a'.repeat(43)}&code_challenge_method=S256`, format: 'page', ok: 303, cors: 'never', init: async () => ({}) },
    { name: 'login', method: 'GET', path: () => loginPath, format: 'page', ok: 200, cors: 'never', init: async () => ({ headers: { cookie: loginCookie } }) },
    { name: 'logout', method: 'GET', path: () => '/oidc/logout', format: 'page', ok: 200, cors: 'never', init: async () => ({}) },
    { name: 'discovery', method: 'GET', path: () => '/.well-known/openid-configuration', format: 'api', ok: 200, cors: 'public', init: async () => ({}) },
    { name: 'JWKS', method: 'GET', path: () => '/.well-known/jwks.json', format: 'api', ok: 200, cors: 'public', init: async () => ({}) },
    { name: 'admin', method: 'GET', path: () => '/admin/clients', format: 'api', ok: 200, cors: 'never', init: async () => ({ headers: { authorization: `Bearer ${await s.adminToken()}` } }) },
    { name: 'health', method: 'GET', path: () => '/health/ready', format: 'api', ok: 200, cors: 'never', init: async () => ({}) },
  ];

  async function call(route: Route, extra: { headers?: Record<string, string>; body?: string; path?: string } = {}) {
    const init = await route.init();
    const res = await s.fetch(extra.path ?? route.path(), { method: route.method, redirect: 'manual', headers: { ...init.headers, ...extra.headers }, body: extra.body ?? init.body });
    return { res, text: await res.text() };
  }

  function expectFormat(format: Format, res: Response, text: string, status: number) {
    expect(res.status).toBe(status);
    if (format === 'oauth') {
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(Object.keys(JSON.parse(text)).sort()).toEqual(['error', 'error_description']);
    } else if (format === 'page') {
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(text).toContain('role="alert"');
      expect(res.headers.get('cache-control')).toBe('no-store');
    } else {
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      const body = JSON.parse(text);
      expect(body).toEqual({ statusCode: status, error: expect.stringMatching(/^[a-z_]+$/), message: expect.anything() });
    }
    expect(text).not.toMatch(/at [A-Za-z.]+ \(|node_modules|\.ts:\d+/);
  }

  it.each(routes)('$name: answers a well-formed request, with the security headers and a request id', async (route) => {
    const { res } = await call(route, { headers: { 'x-request-id': `matrix-${route.name}` } });
    expect(res.status).toBe(route.ok);
    expect(res.headers.get('x-request-id')).toBe(`matrix-${route.name}`);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(res.headers.get('x-powered-by')).toBeNull();
  });

  it.each(routes)('$name: CORS for a registered origin follows the contract', async (route) => {
    const { res } = await call(route, { headers: { origin: SPA_ORIGIN } });
    const allow = res.headers.get('access-control-allow-origin');
    if (route.cors === 'public') expect(allow).toBe('*');
    else if (route.cors === 'client') expect(allow).toBe(SPA_ORIGIN);
    else expect(allow).toBeNull();
    // A preflight: allowed where the contract opens the endpoint, nowhere else.
    const preflight = await s.fetch(route.path(), { method: 'OPTIONS', headers: { origin: SPA_ORIGIN, 'access-control-request-method': route.method } });
    if (route.cors === 'never') expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    else expect(preflight.status).toBe(204);
  });

  it.each(routes)('$name: no CORS for an origin no client registered', async (route) => {
    const { res } = await call(route, { headers: { origin: STRANGER } });
    expect(res.headers.get('access-control-allow-origin')).toBe(route.cors === 'public' ? '*' : null);
    const preflight = await s.fetch(route.path(), { method: 'OPTIONS', headers: { origin: STRANGER, 'access-control-request-method': route.method } });
    expect(preflight.headers.get('access-control-allow-origin')).toBe(route.cors === 'public' ? '*' : null);
  });

  it.each(routes)('$name: refuses U+0000 in the URL in its own format', async (route) => {
    const path = route.path();
    const { res, text } = await call(route, { path: `${path}${path.includes('?') ? '&' : '?'}x=%00` });
    expectFormat(route.format, res, text, 400);
  });

  it.each([
    ['token', '/oauth/token', 'oauth'],
    ['revocation', '/oauth/revoke', 'oauth'],
    ['introspection', '/oauth/introspect', 'oauth'],
    ['authorize (POST)', '/authorize', 'page'],
    ['login (POST)', '/login', 'page'],
    ['consent (POST)', '/consent', 'page'],
    ['logout (POST)', '/oidc/logout', 'page'],
  ] as const)('%s: refuses a form body over 64 kB in its own format', async (_name, path, format) => {
    const res = await s.fetch(path, { method: 'POST', headers: { ...FORM, ...basicWeb() }, body: `a=${'x'.repeat(70_000)}` });
    expectFormat(format, res, await res.text(), 413);
  });

  it('admin: refuses a JSON body over 100 kB in its own format', async () => {
    const res = await s.fetch('/admin/clients', { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${await s.adminToken()}` }, body: JSON.stringify({ client_name: 'x'.repeat(110_000) }) });
    expectFormat('api', res, await res.text(), 413);
  });

  it.each(['/oauth/nothing-here', '/login/nothing-here', '/admin/nothing-here', '/nothing-here'])('an unknown path (%s) is 404 in the admin JSON format', async (path) => {
    const res = await s.fetch(path);
    expectFormat('api', res, await res.text(), 404);
  });

  it('classifies a path by its family whatever its case or trailing slash', async () => {
    for (const path of ['/OAuth/Token', '/oauth/token/']) {
      const res = await s.fetch(path, { method: 'POST', headers: { ...FORM, ...basicWeb() }, body: `grant_type=client_credentials&audience=${encodeURIComponent(API)}` });
      expect([path, res.status]).toEqual([path, 200]);
    }
    const introspect = await s.fetch('/OAUTH/INTROSPECT', { method: 'POST', headers: { ...FORM, ...basicWeb(), origin: SPA_ORIGIN }, body: 'token=x' });
    expect(introspect.status).toBe(200);
    expect(introspect.headers.get('access-control-allow-origin')).toBeNull();
  });

  describe('the rate limit', () => {
    let limited: TestServer;
    const limitClock = new ManualClock(Math.ceil(Date.now() / 10_000) * 10_000);

    beforeAll(async () => {
      // 6 a minute is 1 per 10-second window, for each bucket.
      limited = await startServer({ IDP_RATE_LIMIT: 'on', IDP_RATE_LIMIT_PROTOCOL: '6', IDP_RATE_LIMIT_PAGES: '6', IDP_RATE_LIMIT_ADMIN: '6' }, undefined, { clock: limitClock });
    });
    afterAll(() => limited.close());

    it.each([
      ['token', 'POST', '/oauth/token', 'oauth'],
      ['UserInfo', 'GET', '/userinfo', 'oauth'],
      ['login', 'GET', '/LOGIN', 'page'],
      ['admin', 'GET', '/admin/clients', 'api'],
    ] as const)('%s: past the limit, 429 with Retry-After in its own format', async (_name, method, path, format) => {
      limitClock.advance(10_000);
      await limited.fetch(path, { method, headers: FORM, body: method === 'POST' ? 'a=b' : undefined });
      const res = await limited.fetch(path, { method, headers: FORM, body: method === 'POST' ? 'a=b' : undefined });
      const text = await res.text();
      expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
      expectFormat(format, res, text, 429);
    });
  });
});
