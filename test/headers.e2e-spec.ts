import { createHash, randomBytes } from 'node:crypto';
import { Browser, forms, signIn } from './support/browser';
import { TestServer, basic, postForm, startServer } from './support/server';

const REDIRECT = 'https://app.example.com/callback';
const USER = { email: 'hdr@example.com', password: 'headers are checked here' };
const pkce = () => {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
};

function expectPageHeaders(h: Headers) {
  expect(h.get('content-type')).toMatch(/^text\/html/);
  expect(h.get('content-security-policy')).toContain("frame-ancestors 'none'");
  expect(h.get('content-security-policy')).toContain("default-src 'none'");
  expect(h.get('x-frame-options')).toBe('DENY');
  expect(h.get('referrer-policy')).toBe('no-referrer');
  expect(h.get('cache-control')).toBe('no-store');
  expect(h.get('x-content-type-options')).toBe('nosniff');
}

describe('headers and cookies', () => {
  let s: TestServer;
  let web: { client_id: string; client_secret: string };
  let spa: { client_id: string };

  beforeAll(async () => {
    s = await startServer();
    await s.admin('POST', '/admin/users', USER);
    web = (await s.admin('POST', '/admin/clients', { redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'], post_logout_redirect_uris: [REDIRECT] })).body;
    spa = (await s.admin('POST', '/admin/clients', { redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none', allowed_origins: ['https://spa.example.com'] })).body;
  });
  afterAll(() => s.close());

  it('puts CSP, X-Frame-Options, no-referrer and no-store on every HTML page', async () => {
    const browser = new Browser(s.url);
    const p = pkce();
    const url = `${s.url}/authorize?${new URLSearchParams({ client_id: web.client_id, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid', code_challenge: p.challenge, code_challenge_method: 'S256' })}`;
    const login = await browser.go(url);
    expectPageHeaders(login.headers);
    const [form] = forms(login.html);
    const wrong = await browser.submit(login, form, { username: USER.email, password: 'wrong' });
    expectPageHeaders(wrong.headers);
    const consent = await browser.submit(login, form, { username: USER.email, password: USER.password });
    expect(consent.url).toContain('/consent');
    expectPageHeaders(consent.headers);
    const errorPage = await browser.go(`${s.url}/authorize?client_id=unknown`);
    expect(errorPage.status).toBe(400);
    expectPageHeaders(errorPage.headers);
    const expired = await browser.go(`${s.url}/login?interaction=nope`);
    expectPageHeaders(expired.headers);
    const logout = await browser.go(`${s.url}/oidc/logout`);
    expectPageHeaders(logout.headers);
  });

  it('puts no-store on every token endpoint answer, success or error', async () => {
    const browser = new Browser(s.url);
    const p = pkce();
    const page = await signIn(browser, `${s.url}/authorize?${new URLSearchParams({ client_id: web.client_id, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid offline_access', code_challenge: p.challenge, code_challenge_method: 'S256' })}`, USER);
    const code = new URL(page.url).searchParams.get('code')!;
    const ok = await postForm(s, '/oauth/token', { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: p.verifier }, { authorization: basic(web.client_id, web.client_secret) });
    expect(ok.status).toBe(200);
    const responses = [
      ok,
      await postForm(s, '/oauth/token', { grant_type: 'nope' }, { authorization: basic(web.client_id, web.client_secret) }),
      await postForm(s, '/oauth/token', { grant_type: 'client_credentials' }, { authorization: basic(web.client_id, 'bad') }),
      await postForm(s, '/oauth/introspect', { token: 'x' }, { authorization: basic(web.client_id, web.client_secret) }),
      await postForm(s, '/oauth/revoke', { token: 'x' }, { authorization: basic(web.client_id, web.client_secret) }),
    ];
    for (const r of responses) {
      expect(r.headers.get('cache-control')).toBe('no-store');
      expect(r.headers.get('content-type')).toMatch(/^application\/json/);
      expect(r.headers.get('referrer-policy')).toBe('no-referrer');
    }
  });

  it('allows CORS at the token endpoint only for a client\'s allowed_origins', async () => {
    const pre = await s.fetch('/oauth/token', { method: 'OPTIONS', headers: { origin: 'https://spa.example.com', 'access-control-request-method': 'POST' } });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('https://spa.example.com');
    const evil = await s.fetch('/oauth/token', { method: 'OPTIONS', headers: { origin: 'https://evil.example.com', 'access-control-request-method': 'POST' } });
    expect(evil.headers.get('access-control-allow-origin')).toBeNull();
    const fromSpa = await postForm(s, '/oauth/token', { grant_type: 'authorization_code', client_id: spa.client_id, code: 'x', redirect_uri: REDIRECT, code_verifier: pkce().verifier }, { origin: 'https://spa.example.com' });
    expect(fromSpa.headers.get('access-control-allow-origin')).toBe('https://spa.example.com');
    const otherClient = await postForm(s, '/oauth/token', { grant_type: 'client_credentials' }, { authorization: basic(web.client_id, web.client_secret), origin: 'https://spa.example.com' });
    expect(otherClient.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('never lets the admin API be called cross-origin', async () => {
    const pre = await s.fetch('/admin/clients', { method: 'OPTIONS', headers: { origin: 'https://spa.example.com', 'access-control-request-method': 'GET' } });
    expect(pre.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('headers and cookies behind TLS (https issuer)', () => {
  let s: TestServer;
  let web: { client_id: string };
  beforeAll(async () => {
    s = await startServer({ TRUST_PROXY: '127.0.0.1', ISSUER: 'https://idp.example.com' });
    await s.admin('POST', '/admin/users', USER, await httpsAdminToken());
    web = (await s.admin('POST', '/admin/clients', { redirect_uris: [REDIRECT] }, await httpsAdminToken())).body;

    async function httpsAdminToken() {
      const res = await s.fetch('/oauth/token', {
        method: 'POST',
        headers: { authorization: basic('test-admin', 'test-admin-secret-0123456789abcdefghijklmnop'), 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', audience: 'https://idp.example.com/admin' }),
      });
      return (await res.json()).access_token;
    }
  });
  afterAll(() => s.close());

  it('sends HSTS and a __Host- session cookie that is Secure, HttpOnly and SameSite=Lax', async () => {
    const p = pkce();
    const res = await s.fetch(`/authorize?${new URLSearchParams({ client_id: web.client_id, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid', code_challenge: p.challenge, code_challenge_method: 'S256' })}`, {
      redirect: 'manual', headers: { 'x-forwarded-proto': 'https' },
    });
    expect(res.status).toBe(303);
    expect(res.headers.get('strict-transport-security')).toMatch(/max-age=\d+/);
    const cookie = res.headers.getSetCookie().find((c) => c.startsWith('__Host-idp_session='))!;
    expect(cookie).toBeDefined();
    expect(cookie).toMatch(/; Secure/i);
    expect(cookie).toMatch(/; HttpOnly/i);
    expect(cookie).toMatch(/SameSite=Lax/i);
    expect(cookie).toMatch(/; Path=\//i);
    expect(cookie).not.toMatch(/Domain=/i);
  });
});
