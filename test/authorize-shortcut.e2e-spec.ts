import * as oidc from 'openid-client';
import { AuthorizeShortcut } from '@idp/authorization';
import { Browser, forms, signIn } from './support/browser';
import { TestServer, startServer } from './support/server';

const REDIRECT = 'https://app.example.com/callback';
const API = 'https://api.example.com/orders';
const USER = { email: 'grace@example.com', password: 'correct horse battery staple' };

/**
 * GET /authorize for a signed-in user with consent in place is answered by the lean path
 * (AuthorizeShortcut) in front of Express; every other case is left to the controller. These
 * tests check which of the two answered (the shortcut's verdict) and that the answer is the one
 * the controller gives: the same redirect, headers, session cookie, log line and rate limit.
 */
describe('/authorize through the lean path (AuthorizeShortcut)', () => {
  let s: TestServer;
  let web: { client_id: string; client_secret: string };
  let config: oidc.Configuration;
  let verdicts: jest.SpyInstance;
  let browser: Browser;
  let userId: string;

  beforeAll(async () => {
    s = await startServer();
    userId = (await s.admin('POST', '/admin/users', { ...USER, name: 'Grace Hopper', email_verified: true })).body.user_id;
    await s.admin('POST', '/admin/apis', { identifier: API, name: 'Orders', scopes: [{ value: 'read:orders', description: 'Read your orders' }], allow_offline_access: true });
    web = (await s.admin('POST', '/admin/clients', { client_name: 'Web App', redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'] })).body;
    config = await oidc.discovery(new URL(s.url), web.client_id, undefined, oidc.ClientSecretBasic(web.client_secret), { execute: [oidc.allowInsecureRequests] });
    browser = new Browser(s.url);
    const first = await signIn(browser, await authorizeUrl({ scope: 'openid profile email' }).then((a) => a.url), USER);
    expect(first.url.startsWith(REDIRECT)).toBe(true);
    verdicts = jest.spyOn(s.app.get(AuthorizeShortcut), 'handle');
  });
  beforeEach(() => verdicts.mockClear());
  afterAll(() => s.close());

  async function authorizeUrl(params: Record<string, string> = {}) {
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT, scope: 'openid profile email', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state, nonce, ...params,
    });
    return { url: url.toString(), verifier, state, nonce };
  }

  /** One GET, no redirects followed; the shortcut's verdict on it (undefined when it was not offered the request). */
  async function get(url: string, cookie = browser.cookieHeader(), headers: Record<string, string> = {}) {
    const res = await fetch(url, { redirect: 'manual', headers: { cookie, ...headers } });
    await res.arrayBuffer();
    const results = verdicts.mock.results;
    const verdict = results.length ? await results[results.length - 1].value : undefined;
    return { res, verdict: verdict as boolean | undefined, offered: results.length };
  }

  it('answers a signed-in, consented user with a code that redeems, the same headers, and a renewed session cookie', async () => {
    const a = await authorizeUrl();
    const before = s.logs.length;
    const { res, verdict } = await get(a.url, browser.cookieHeader(), { 'x-request-id': 'shortcut-test-1' });
    expect(verdict).toBe(true);
    expect(res.status).toBe(302);
    const location = new URL(res.headers.get('location')!);
    expect(location.origin + location.pathname).toBe(REDIRECT);
    expect(location.searchParams.get('state')).toBe(a.state);
    expect(location.searchParams.get('iss')).toBe(s.url);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('x-request-id')).toBe('shortcut-test-1');
    expect(res.headers.get('x-powered-by')).toBeNull();

    // The rolling cookie: the same signed session id, 14 days ahead, with the middleware's attributes.
    const setCookie = res.headers.getSetCookie();
    expect(setCookie).toHaveLength(1);
    const [pair, ...attrs] = setCookie[0].split('; ');
    expect(pair).toBe(`idp_session=${browser.cookies.get('idp_session')}`);
    expect(attrs.filter((x) => !x.startsWith('Expires='))).toEqual(['Path=/', 'HttpOnly', 'SameSite=Lax']);
    const expires = Date.parse(attrs.find((x) => x.startsWith('Expires='))!.slice(8));
    expect(Math.abs(expires - (Date.now() + 14 * 24 * 3600 * 1000))).toBeLessThan(5000);

    // One log line, with the request id, path (no query) and status.
    const lines = s.logs.slice(before).map((l) => JSON.parse(l)).filter((l) => l.msg === 'request');
    expect(lines).toEqual([expect.objectContaining({ request_id: 'shortcut-test-1', method: 'GET', path: '/authorize', status: 302 })]);
    expect(JSON.stringify(lines)).not.toContain(location.searchParams.get('code'));

    const tokens = await oidc.authorizationCodeGrant(config, location, { pkceCodeVerifier: a.verifier, expectedState: a.state, expectedNonce: a.nonce });
    expect(tokens.claims()).toMatchObject({ sub: userId, nonce: a.nonce, email: USER.email, sid: expect.any(String), auth_time: expect.any(Number) });
  });

  it('answers exactly as the controller does for the same request (status, headers, body)', async () => {
    const viaShortcut = await get((await authorizeUrl()).url);
    expect(viaShortcut.verdict).toBe(true);
    // The same request once more, with the shortcut stepping aside: Express, express-session, Passport, Nest.
    verdicts.mockResolvedValueOnce(false);
    const viaController = await get((await authorizeUrl()).url);
    expect(viaController.verdict).toBe(false);
    const shape = (res: Response) => {
      const headers = Object.fromEntries([...res.headers].filter(([name]) => !['date', 'x-request-id', 'keep-alive', 'connection'].includes(name)));
      const location = new URL(headers.location);
      for (const name of ['code', 'state']) location.searchParams.set(name, '…');
      return { status: res.status, ...headers, location: location.toString(), 'set-cookie': headers['set-cookie'].replace(/Expires=[^;]+/, 'Expires=…') };
    };
    expect(shape(viaShortcut.res)).toEqual(shape(viaController.res));
    expect(viaShortcut.res.headers.get('content-length')).toBe('0');
  });

  it('gives the same Set-Cookie as express-session does for the same session', async () => {
    // prompt=login goes through Express (the login page), whose express-session renews the same cookie.
    const viaExpress = await get((await authorizeUrl({ prompt: 'login' })).url);
    expect(viaExpress.verdict).toBe(false);
    const viaShortcut = await get((await authorizeUrl()).url);
    expect(viaShortcut.verdict).toBe(true);
    const shape = (res: Response) => res.headers.getSetCookie()[0].replace(/Expires=[^;]+/, 'Expires=…');
    expect(shape(viaShortcut.res)).toBe(shape(viaExpress.res));
  });

  it('keeps the session usable across many shortcut answers, and codes single-use', async () => {
    for (let i = 0; i < 3; i++) {
      const a = await authorizeUrl();
      const { res, verdict } = await get(a.url);
      expect(verdict).toBe(true);
      const location = new URL(res.headers.get('location')!);
      await oidc.authorizationCodeGrant(config, location, { pkceCodeVerifier: a.verifier, expectedState: a.state, expectedNonce: a.nonce });
      await expect(oidc.authorizationCodeGrant(config, location, { pkceCodeVerifier: a.verifier, expectedState: a.state, expectedNonce: a.nonce })).rejects.toMatchObject({ error: 'invalid_grant' });
    }
  });

  it.each([
    ['no session cookie', () => '', '/login'],
    ['a cookie with a wrong signature', () => browser.cookieHeader().replace(/\.([^.;]+)$/, '.AAAA'), '/login'],
    ['an unsigned session id', () => `idp_session=${decodeURIComponent(browser.cookies.get('idp_session')!).slice(2).split('.')[0]}`, '/login'],
    ['a session id that was never issued', () => 'idp_session=s%3Anot-a-session.abc', '/login'],
  ])('leaves %s to the controller (the login page)', async (_name, cookie, where) => {
    const { res, verdict } = await get((await authorizeUrl()).url, cookie());
    expect(verdict).toBe(false);
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toMatch(new RegExp(`^${where}\\?interaction=`));
  });

  it.each([
    ['prompt=login', { prompt: 'login' }, /^\/login\?interaction=/],
    ['max_age=0 (after a second)', { max_age: '0' }, /^\/login\?interaction=/],
    ['prompt=consent for a third-party client', { prompt: 'consent' }, /^\/consent\?interaction=/],
    ['a scope not consented to yet', { scope: 'openid read:orders', resource: API }, /^\/consent\?interaction=/],
  ])('leaves %s to the controller', async (_name, params, where) => {
    await new Promise((r) => setTimeout(r, 'max_age' in params ? 1100 : 0));
    const { res, verdict } = await get((await authorizeUrl(params)).url);
    expect(verdict).toBe(false);
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toMatch(where);
  });

  it('reads the consent with the session on every request: a revoked consent sends the next request to the consent page', async () => {
    const other = new Browser(s.url);
    const email = 'revokes-consent@example.com';
    const id = (await s.admin('POST', '/admin/users', { email, password: USER.password })).body.user_id;
    expect((await signIn(other, (await authorizeUrl()).url, { email, password: USER.password })).url.startsWith(REDIRECT)).toBe(true);
    expect((await get((await authorizeUrl()).url, other.cookieHeader())).verdict).toBe(true);
    const grants = (await s.admin('GET', `/admin/users/${id}/grants`)).body;
    const [grant] = grants.items;
    expect((await s.admin('DELETE', `/admin/users/${id}/grants/${grant.id}`)).status).toBeLessThan(300);
    const after = await get((await authorizeUrl()).url, other.cookieHeader());
    expect(after.verdict).toBe(false);
    expect(after.res.headers.get('location')).toMatch(/^\/consent\?interaction=/);
  });

  it('leaves prompt=none without consent to the controller: consent_required back to the client', async () => {
    const a = await authorizeUrl({ prompt: 'none', scope: 'openid read:orders', resource: API });
    const { res, verdict } = await get(a.url);
    expect(verdict).toBe(false);
    const location = new URL(res.headers.get('location')!);
    expect(location.searchParams.get('error')).toBe('consent_required');
    expect(location.searchParams.get('state')).toBe(a.state);
  });

  it('leaves invalid requests to the controller: the error page, or the error redirect', async () => {
    const wrongRedirect = await get((await authorizeUrl({ redirect_uri: 'https://evil.example/cb' })).url);
    expect(wrongRedirect.verdict).toBe(false);
    expect(wrongRedirect.res.status).toBe(400);
    const a = await authorizeUrl({ code_challenge_method: 'plain' });
    const badPkce = await get(a.url);
    expect(badPkce.verdict).toBe(false);
    const location = new URL(badPkce.res.headers.get('location')!);
    expect(location.searchParams.get('error')).toBe('invalid_request');
    expect(location.searchParams.get('state')).toBe(a.state);
    const repeated = await get(`${(await authorizeUrl()).url}&scope=openid`);
    expect(repeated.verdict).toBe(false);
    expect(new URL(repeated.res.headers.get('location')!).searchParams.get('error')).toBe('invalid_request');
  });

  it('does not offer a URL with U+0000 to the shortcut: the error page, one log line', async () => {
    const before = s.logs.length;
    const { res, offered } = await get(`${(await authorizeUrl()).url}&x=%00`);
    expect(offered).toBe(0);
    expect(res.status).toBe(400);
    expect(s.logs.slice(before).filter((l) => JSON.parse(l).msg === 'request')).toHaveLength(1);
  });

  it('answers with one log line and one request id when it leaves the request to Express', async () => {
    const before = s.logs.length;
    const { res, verdict } = await get((await authorizeUrl({ prompt: 'login' })).url, browser.cookieHeader(), { 'x-request-id': 'handed-over-1' });
    expect(verdict).toBe(false);
    expect(res.headers.get('x-request-id')).toBe('handed-over-1');
    const lines = s.logs.slice(before).map((l) => JSON.parse(l)).filter((l) => l.msg === 'request');
    expect(lines).toEqual([expect.objectContaining({ request_id: 'handed-over-1', path: '/authorize', status: 303 })]);
  });

  it('leaves the session of a blocked user to the controller (the login page)', async () => {
    const other = new Browser(s.url);
    const email = 'blocked-later@example.com';
    const id = (await s.admin('POST', '/admin/users', { email, password: USER.password })).body.user_id;
    expect((await signIn(other, (await authorizeUrl()).url, { email, password: USER.password })).url.startsWith(REDIRECT)).toBe(true);
    expect((await get((await authorizeUrl()).url, other.cookieHeader())).verdict).toBe(true);
    expect((await s.admin('PATCH', `/admin/users/${id}`, { blocked: true })).status).toBe(200);
    const blocked = await get((await authorizeUrl()).url, other.cookieHeader());
    expect(blocked.verdict).toBe(false);
    expect(blocked.res.headers.get('location')).toMatch(/^\/login\?interaction=/);
  });

  it('leaves a signed-out session to the controller', async () => {
    const other = new Browser(s.url);
    const email = 'signs-out@example.com';
    await s.admin('POST', '/admin/users', { email, password: USER.password });
    expect((await signIn(other, (await authorizeUrl()).url, { email, password: USER.password })).url.startsWith(REDIRECT)).toBe(true);
    const cookie = other.cookieHeader();
    expect((await get((await authorizeUrl()).url, cookie)).verdict).toBe(true);
    const logout = await other.go('/oidc/logout');
    const form = forms(logout.html).find((f) => f.buttons.some((x) => x.name === 'confirm'))!;
    expect((await other.submit(logout, form, {}, form.buttons.find((x) => x.name === 'confirm'))).status).toBe(200);
    const after = await get((await authorizeUrl()).url, cookie);
    expect(after.verdict).toBe(false);
    expect(after.res.headers.get('location')).toMatch(/^\/login\?interaction=/);
  });
});

describe('/authorize lean path with the rate limit on', () => {
  let s: TestServer;

  beforeAll(async () => {
    // 6 a minute is 1 per 10-second window.
    s = await startServer({ IDP_RATE_LIMIT: 'on', IDP_RATE_LIMIT_PAGES: '6' });
  });
  afterAll(() => s.close());

  it('counts a request it hands to Express once: the second in the window gets the 429 page', async () => {
    // Wait for the start of a 10-second window, so that both requests fall in the same one.
    await new Promise((r) => setTimeout(r, 10_000 - (Date.now() % 10_000) + 50));
    const first = await s.fetch('/authorize?client_id=nobody', { redirect: 'manual' });
    expect(first.status).toBe(400);
    const second = await s.fetch('/authorize?client_id=nobody', { redirect: 'manual' });
    expect(second.status).toBe(429);
    expect(second.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(second.headers.get('content-type')).toMatch(/text\/html/);
  }, 20_000);
});
