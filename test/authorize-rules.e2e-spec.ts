import { createHash, randomBytes } from 'node:crypto';
import { DataSource } from 'typeorm';
import { Browser, forms, signIn } from './support/browser';
import { ManualClock } from '@idp/core';
import { TestServer, basic, postForm, startServer } from './support/server';

const REDIRECT = 'https://app.example.com/callback';
const USER = { email: 'grace@example.com', password: 'a long and secret passphrase' };
const OTHER = { email: 'alan@example.com', password: 'another long passphrase' };

const pkce = () => {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
};

describe('/authorize and code redemption rules', () => {
  let s: TestServer;
  const clock = new ManualClock();
  let web: { client_id: string; client_secret: string };
  let spa: { client_id: string };
  let firstParty: { client_id: string; client_secret: string };

  beforeAll(async () => {
    s = await startServer({}, undefined, { clock });
    await s.admin('POST', '/admin/users', USER);
    await s.admin('POST', '/admin/users', OTHER);
    web = (await s.admin('POST', '/admin/clients', { client_name: 'Web', redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'] })).body;
    spa = (await s.admin('POST', '/admin/clients', { client_name: 'SPA', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'] })).body;
    firstParty = (await s.admin('POST', '/admin/clients', { client_name: 'Portal', redirect_uris: [REDIRECT], first_party: true })).body;
  });
  afterAll(() => s.close());

  const authorizeUrl = (params: Record<string, string>) => `${s.url}/authorize?${new URLSearchParams(params)}`;
  const base = (extra: Record<string, string> = {}) => ({ client_id: web.client_id, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid profile', state: 'st4te', ...extra });

  async function codeFor(browser: Browser, params: Record<string, string> = {}, user = USER) {
    const p = pkce();
    const page = await signIn(browser, authorizeUrl(base({ code_challenge: p.challenge, code_challenge_method: 'S256', ...params })), user);
    const url = new URL(page.url);
    expect(url.searchParams.get('error')).toBeNull();
    return { code: url.searchParams.get('code')!, verifier: p.verifier, url };
  }

  const redeem = (code: string, verifier: string | undefined, client: { client_id: string; client_secret?: string } = web, extra: Record<string, string> = {}) =>
    postForm(
      s, '/oauth/token',
      { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, ...(verifier ? { code_verifier: verifier } : {}), ...(client.client_secret ? {} : { client_id: client.client_id }), ...extra },
      client.client_secret ? { authorization: basic(client.client_id, client.client_secret) } : {},
    );

  describe('errors that must never redirect', () => {
    it.each([
      ['an unknown client_id', () => ({ client_id: 'nope' })],
      ['a missing client_id', () => ({ client_id: '' })],
      ['an unregistered redirect_uri', () => ({ redirect_uri: 'https://evil.example.com/callback' })],
      ['a redirect_uri with a trailing slash', () => ({ redirect_uri: `${REDIRECT}/` })],
      ['a redirect_uri in another case', () => ({ redirect_uri: REDIRECT.toUpperCase() })],
      ['a redirect_uri with extra query', () => ({ redirect_uri: `${REDIRECT}?next=/admin` })],
      ['a missing redirect_uri', () => ({ redirect_uri: '' })],
    ])('shows an HTTP 400 error page for %s', async (_, extra) => {
      const params = Object.fromEntries(Object.entries(base(extra())).filter(([, v]) => v !== ''));
      const res = await fetch(authorizeUrl(params), { redirect: 'manual' });
      expect(res.status).toBe(400);
      expect(res.headers.get('location')).toBeNull();
      expect(res.headers.get('content-type')).toMatch(/text\/html/);
      expect(res.headers.get('x-frame-options')).toBe('DENY');
    });

    it('shows the error page for a repeated client_id', async () => {
      const res = await fetch(`${authorizeUrl(base())}&client_id=${web.client_id}`, { redirect: 'manual' });
      expect(res.status).toBe(400);
      expect(res.headers.get('location')).toBeNull();
    });
  });

  describe('errors that go back to the client with error, state and iss', () => {
    it.each([
      ['response_type=token', { response_type: 'token' }, 'unsupported_response_type'],
      ['no response_type', { response_type: '' }, 'invalid_request'],
      ['a request object', { request: 'eyJhbGciOiJub25lIn0.e30.' }, 'request_not_supported'],
      ['a request_uri', { request_uri: 'urn:example:req' }, 'request_uri_not_supported'],
      ['code_challenge_method=plain', { code_challenge: 'a'.repeat(43), code_challenge_method: 'plain' }, 'invalid_request'],
      ['a code_challenge without method (plain by default)', { code_challenge: 'a'.repeat(43) }, 'invalid_request'],
      ['a malformed S256 challenge', { code_challenge: 'short', code_challenge_method: 'S256' }, 'invalid_request'],
      ['response_mode=fragment', { response_mode: 'fragment' }, 'invalid_request'],
      ['an unknown prompt', { prompt: 'sometimes' }, 'invalid_request'],
      ['prompt=none with login', { prompt: 'none login' }, 'invalid_request'],
      ['a malformed max_age', { max_age: '-1' }, 'invalid_request'],
      ['an unknown audience', { audience: 'https://nowhere.example.com' }, 'invalid_target'],
      ['the admin API as audience', { audience: '__ADMIN__' }, 'invalid_target'],
      ['no scope', { scope: '' }, 'invalid_scope'],
      ['only unknown scopes', { scope: 'launch:rockets' }, 'invalid_scope'],
      ['a forged id_token_hint', { id_token_hint: 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln' }, 'invalid_request'],
      ['prompt=none without a session', { prompt: 'none' }, 'login_required'],
    ])('answers %s (%j) with %s', async (_, extra, error) => {
      const params = Object.fromEntries(Object.entries(base(extra as Record<string, string>)).map(([k, v]) => [k, v === '__ADMIN__' ? `${s.url}/admin` : v]).filter(([, v]) => v !== ''));
      const res = await fetch(authorizeUrl(params), { redirect: 'manual' });
      expect(res.status).toBe(302);
      const location = new URL(res.headers.get('location')!);
      expect(`${location.origin}${location.pathname}`).toBe(REDIRECT);
      expect(location.searchParams.get('error')).toBe(error);
      expect(location.searchParams.get('error_description')).toEqual(expect.any(String));
      expect(location.searchParams.get('state')).toBe('st4te');
      expect(location.searchParams.get('iss')).toBe(s.url);
    });

    it('refuses a repeated parameter with invalid_request', async () => {
      const res = await fetch(`${authorizeUrl(base())}&scope=email`, { redirect: 'manual' });
      expect(new URL(res.headers.get('location')!).searchParams.get('error')).toBe('invalid_request');
    });

    it('requires PKCE of a public client', async () => {
      const res = await fetch(authorizeUrl(base({ client_id: spa.client_id })), { redirect: 'manual' });
      const location = new URL(res.headers.get('location')!);
      expect(location.searchParams.get('error')).toBe('invalid_request');
      expect(location.searchParams.get('error_description')).toMatch(/PKCE/);
    });
  });

  describe('login', () => {
    it('prefills the login form from login_hint, ignores unknown parameters, and accepts POST', async () => {
      const browser = new Browser(s.url);
      const page = await browser.go(`${s.url}/authorize`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ ...base(), login_hint: USER.email, display: 'page', ui_locales: 'en', acr_values: 'x', claims_locales: 'en', frobnicate: 'yes', code_challenge: pkce().challenge, code_challenge_method: 'S256' }),
      });
      expect(page.url).toContain('/login?interaction=');
      const [form] = forms(page.html);
      expect(form.fields.username).toBe(USER.email);
      expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
      expect(page.headers.get('cache-control')).toBe('no-store');
    });

    it('sets the session cookie HttpOnly and SameSite=Lax', async () => {
      const browser = new Browser(s.url);
      await codeFor(browser, {}, USER);
      const cookie = browser.setCookies.find((c) => c.startsWith('idp_session='))!;
      expect(cookie).toMatch(/HttpOnly/i);
      expect(cookie).toMatch(/SameSite=Lax/i);
      expect(cookie).not.toMatch(/Secure/i); // http issuer
    });

    it('refuses a login form posted without its CSRF token', async () => {
      const browser = new Browser(s.url);
      const page = await browser.go(authorizeUrl(base({ code_challenge: pkce().challenge, code_challenge_method: 'S256' })));
      const [form] = forms(page.html);
      const res = await browser.submit(page, { ...form, fields: { ...form.fields, _csrf: 'forged' } }, { username: USER.email, password: USER.password });
      expect(res.status).toBe(403);
      expect(res.url).toContain('/login');
    });

    it('forces a new login with prompt=login and with an exceeded max_age', async () => {
      const browser = new Browser(s.url);
      await codeFor(browser);
      const again = await browser.go(authorizeUrl(base({ prompt: 'login', code_challenge: pkce().challenge, code_challenge_method: 'S256' })));
      expect(again.url).toContain('/login');
      clock.advance(1100);
      const aged = await browser.go(authorizeUrl(base({ max_age: '0', code_challenge: pkce().challenge, code_challenge_method: 'S256' })));
      expect(aged.url).toContain('/login');
      // Logging in again satisfies it, and auth_time moves forward.
      const { code, verifier } = await codeFor(browser, { prompt: 'login' });
      const tokens = await (await redeem(code, verifier)).json();
      expect(tokens).toMatchObject({ id_token: expect.any(String) });
      const idToken = JSON.parse(Buffer.from(tokens.id_token.split('.')[1], 'base64url').toString());
      expect(idToken.auth_time).toBe(clock.nowSeconds());
    });

    it('does not count a wrong password as a login for a user who is already signed in (prompt=login)', async () => {
      const browser = new Browser(s.url);
      await codeFor(browser);
      const login = await browser.go(authorizeUrl(base({ prompt: 'login', code_challenge: pkce().challenge, code_challenge_method: 'S256' })));
      const [form] = forms(login.html);
      const wrong = await browser.submit(login, form, { username: USER.email, password: 'not the password' });
      expect(wrong.status).toBe(401);
      expect(wrong.url).toContain('/login');
    });

    it('succeeds silently with prompt=none and an id_token_hint of the same user, and refuses another user', async () => {
      const browser = new Browser(s.url);
      const { code, verifier } = await codeFor(browser);
      const { id_token } = await (await redeem(code, verifier)).json();
      const silent = await fetch(authorizeUrl(base({ prompt: 'none', id_token_hint: id_token, code_challenge: pkce().challenge, code_challenge_method: 'S256' })), { redirect: 'manual', headers: { cookie: browser.cookieHeader() } });
      expect(new URL(silent.headers.get('location')!).searchParams.get('code')).toEqual(expect.any(String));

      const other = new Browser(s.url);
      await codeFor(other, {}, OTHER);
      const mismatch = await fetch(authorizeUrl(base({ prompt: 'none', id_token_hint: id_token })), { redirect: 'manual', headers: { cookie: other.cookieHeader() } });
      expect(new URL(mismatch.headers.get('location')!).searchParams.get('error')).toBe('login_required');
    });
  });

  describe('consent', () => {
    it('remembers a consent for the same or fewer scopes, asks again for more, and answers consent_required to prompt=none', async () => {
      const browser = new Browser(s.url);
      await codeFor(browser, { scope: 'openid profile' });
      const fewer = await browser.go(authorizeUrl(base({ scope: 'openid', code_challenge: pkce().challenge, code_challenge_method: 'S256' })));
      expect(new URL(fewer.url).searchParams.get('code')).toEqual(expect.any(String));
      const silent = await browser.go(authorizeUrl(base({ scope: 'openid email', prompt: 'none' })));
      expect(new URL(silent.url).searchParams.get('error')).toBe('consent_required');
      const more = await browser.go(authorizeUrl(base({ scope: 'openid email', code_challenge: pkce().challenge, code_challenge_method: 'S256' })));
      expect(more.url).toContain('/consent');
      expect(more.html).toContain('Read your email address');
      const forced = await browser.go(authorizeUrl(base({ scope: 'openid', prompt: 'consent', code_challenge: pkce().challenge, code_challenge_method: 'S256' })));
      expect(forced.url).toContain('/consent');
    });

    it('skips the consent page for a first-party client', async () => {
      const browser = new Browser(s.url);
      const p = pkce();
      let page = await browser.go(authorizeUrl(base({ client_id: firstParty.client_id, code_challenge: p.challenge, code_challenge_method: 'S256' })));
      const [form] = forms(page.html);
      page = await browser.submit(page, form, { username: USER.email, password: USER.password });
      expect(new URL(page.url).searchParams.get('code')).toEqual(expect.any(String));
    });
  });

  describe('codes', () => {
    it('are single-use: a second redemption is invalid_grant and revokes the tokens of the first', async () => {
      const browser = new Browser(s.url);
      const { code, verifier } = await codeFor(browser, { scope: 'openid offline_access' });
      const first = await redeem(code, verifier);
      expect(first.status).toBe(200);
      const tokens = await first.json();
      expect((await s.fetch('/userinfo', { headers: { authorization: `Bearer ${tokens.access_token}` } })).status).toBe(200);
      const second = await redeem(code, verifier);
      expect(second.status).toBe(400);
      expect(second.headers.get('cache-control')).toBe('no-store');
      expect(await second.json()).toMatchObject({ error: 'invalid_grant' });
      const after = await s.fetch('/userinfo', { headers: { authorization: `Bearer ${tokens.access_token}` } });
      expect(after.status).toBe(401);
      expect(after.headers.get('www-authenticate')).toContain('invalid_token');
      expect(tokens.refresh_token).toEqual(expect.any(String));
      const refreshed = await postForm(s, '/oauth/token', { grant_type: 'refresh_token', refresh_token: tokens.refresh_token }, { authorization: basic(web.client_id, web.client_secret) });
      expect((await refreshed.json()).error).toBe('invalid_grant');
    });

    it.each([
      ['a wrong code_verifier', (v: string) => ({ verifier: pkce().verifier }), 'invalid_grant'],
      ['no code_verifier', () => ({ verifier: undefined }), 'invalid_grant'],
      ['another redirect_uri', (v: string) => ({ verifier: v, extra: { redirect_uri: 'https://app.example.com/other' } }), 'invalid_grant'],
      ['no redirect_uri', (v: string) => ({ verifier: v, extra: { redirect_uri: '' } }), 'invalid_request'],
    ])('refuses redemption with %s', async (_, change, error) => {
      const browser = new Browser(s.url);
      const { code, verifier } = await codeFor(browser);
      const c = change(verifier) as { verifier?: string; extra?: Record<string, string> };
      const extra = Object.fromEntries(Object.entries(c.extra ?? {}).filter(([, v]) => v !== ''));
      const res = await postForm(
        s, '/oauth/token',
        { grant_type: 'authorization_code', code, ...(c.extra?.redirect_uri === '' ? {} : { redirect_uri: REDIRECT }), ...extra, ...(c.verifier ? { code_verifier: c.verifier } : {}) },
        { authorization: basic(web.client_id, web.client_secret) },
      );
      expect(res.status).toBe(400);
      expect((await res.json()).error).toBe(error);
    });

    it('refuses a code_verifier sent for a code issued without a challenge (PKCE downgrade)', async () => {
      const browser = new Browser(s.url);
      const page = await signIn(browser, authorizeUrl(base()), USER);
      const code = new URL(page.url).searchParams.get('code')!;
      expect((await (await redeem(code, pkce().verifier)).json()).error).toBe('invalid_grant');
    });

    it('are bound to their client', async () => {
      const browser = new Browser(s.url);
      const { code, verifier } = await codeFor(browser);
      const other = (await s.admin('POST', '/admin/clients', { redirect_uris: [REDIRECT] })).body;
      expect((await (await redeem(code, verifier, other)).json()).error).toBe('invalid_grant');
    });

    it('expire after 60 seconds', async () => {
      const browser = new Browser(s.url);
      const { code, verifier } = await codeFor(browser);
      const db = s.app.get(DataSource);
      const hash = createHash('sha256').update(code).digest('base64url');
      const row = await db.query(`SELECT expires_at, created_at FROM authorization_codes WHERE code_hash = $1`.replace('$1', db.options.type === 'postgres' ? '$1' : '?'), [hash]);
      expect(new Date(row[0].expires_at).getTime() - new Date(row[0].created_at).getTime()).toBe(60_000);
      await db.query(`UPDATE authorization_codes SET expires_at = created_at WHERE code_hash = ${db.options.type === 'postgres' ? '$1' : '?'}`, [hash]);
      expect((await (await redeem(code, verifier)).json()).error).toBe('invalid_grant');
    });

    // The replica that issued a code answers its first lookup from memory; the database still decides.
    it.each([
      ['used up by another replica', 'UPDATE authorization_codes SET used_at = created_at WHERE code_hash = ?'],
      ['deleted', 'DELETE FROM authorization_codes WHERE code_hash = ?'],
    ])('refuses even the first redemption of a code %s in the database meanwhile', async (_, statement) => {
      const browser = new Browser(s.url);
      const { code, verifier } = await codeFor(browser, { scope: 'openid offline_access' });
      const db = s.app.get(DataSource);
      const hash = createHash('sha256').update(code).digest('base64url');
      await db.query(db.options.type === 'postgres' ? statement.replace('?', '$1') : statement, [hash]);
      const res = await redeem(code, verifier);
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: 'invalid_grant' });
      const families = await db.query(`SELECT count(*) AS n FROM refresh_tokens WHERE code_hash = ${db.options.type === 'postgres' ? '$1' : '?'}`, [hash]);
      expect(Number(families[0].n)).toBe(0);
    });

    it('is redeemed exactly once by 20 parallel requests', async () => {
      const browser = new Browser(s.url);
      const { code, verifier } = await codeFor(browser);
      const results = await Promise.all(Array.from({ length: 20 }, () => redeem(code, verifier)));
      expect(results.map((r) => r.status).sort()).toEqual([200, ...Array(19).fill(400)]);
    });

    it('are redeemed by a public client with PKCE and client_id only', async () => {
      const browser = new Browser(s.url);
      const { code, verifier } = await codeFor(browser, { client_id: spa.client_id, scope: 'openid offline_access' });
      const res = await redeem(code, verifier, spa);
      expect(res.status).toBe(200);
      const body = await res.json();
      expect(body.refresh_token).toEqual(expect.any(String));
    });

    it('gives no refresh token to a confidential client whose token request carries an Origin header', async () => {
      const browser = new Browser(s.url);
      const { code, verifier } = await codeFor(browser, { scope: 'openid offline_access' });
      const res = await postForm(s, '/oauth/token', { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier }, { authorization: basic(web.client_id, web.client_secret), origin: 'https://app.example.com' });
      const body = await res.json();
      expect(res.status).toBe(200);
      expect(body.access_token).toEqual(expect.any(String));
      expect(body.refresh_token).toBeUndefined();
    });
  });
});
