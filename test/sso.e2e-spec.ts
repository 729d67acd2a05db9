import * as oidc from 'openid-client';
import { SessionStrategy } from '../libs/session/src/session.strategy';
import { Browser, forms, signIn } from './support/browser';
import { ManualClock } from '@idp/core';
import { TestServer, startServer } from './support/server';
import { authorizationRequest } from './support/oidc';

const REDIRECT = 'https://app.example.com/callback';
const API = 'https://api.example.com/orders';
const USER = { email: 'grace@example.com', password: 'correct horse battery staple' };

/**
 * Single sign-on: every /authorize passes the Passport login guard (SessionGuard, AuthGuard over
 * the session strategy). These tests check that the guard ran (the strategy's verdict: the
 * session's user, or false) and what it decided: a code for a signed-in user with consent in
 * place, the login or consent page, or an error back to the application.
 */
describe('/authorize for a signed-in user (SSO through the session guard)', () => {
  let s: TestServer;
  const clock = new ManualClock();
  let web: { client_id: string; client_secret: string };
  let config: oidc.Configuration;
  let verdicts: jest.SpyInstance;
  let browser: Browser;
  let userId: string;

  beforeAll(async () => {
    s = await startServer({}, undefined, { clock });
    userId = (await s.admin('POST', '/admin/users', { ...USER, name: 'Grace Hopper', email_verified: true })).body.user_id;
    await s.admin('POST', '/admin/apis', { identifier: API, name: 'Orders', scopes: [{ value: 'read:orders', description: 'Read your orders' }], allow_offline_access: true });
    web = (await s.admin('POST', '/admin/clients', { client_name: 'Web App', redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'] })).body;
    config = await oidc.discovery(new URL(s.url), web.client_id, undefined, oidc.ClientSecretBasic(web.client_secret), { execute: [oidc.allowInsecureRequests] });
    browser = new Browser(s.url);
    const first = await signIn(browser, await authorizeUrl({ scope: 'openid profile email' }).then((a) => a.url), USER);
    expect(first.url.startsWith(REDIRECT)).toBe(true);
    verdicts = jest.spyOn(s.app.get(SessionStrategy), 'validate');
  });
  beforeEach(() => verdicts.mockClear());
  afterAll(() => s.close());

  function authorizeUrl(params: Record<string, string> = {}) {
    return authorizationRequest(config, { redirect_uri: REDIRECT, scope: 'openid profile email', ...params });
  }

  /** One GET, no redirects followed; the session strategy's verdict on it (undefined when the guard did not run). */
  async function get(url: string, cookie = browser.cookieHeader(), headers: Record<string, string> = {}) {
    const before = verdicts.mock.results.length;
    const res = await fetch(url, { redirect: 'manual', headers: { cookie, ...headers } });
    await res.arrayBuffer();
    const results = verdicts.mock.results.slice(before);
    const verdict = results.length ? await results[results.length - 1].value : undefined;
    return { res, verdict: verdict ? true : verdict === undefined ? undefined : false, offered: results.length };
  }

  it('answers a signed-in, consented user with a code that redeems, the headers of every answer, and a renewed session cookie', async () => {
    const a = await authorizeUrl();
    const before = s.logs.length;
    const { res, verdict } = await get(a.url, browser.cookieHeader(), { 'x-request-id': 'sso-test-1' });
    expect(verdict).toBe(true);
    expect(res.status).toBe(302);
    const location = new URL(res.headers.get('location')!);
    expect(location.origin + location.pathname).toBe(REDIRECT);
    expect(location.searchParams.get('state')).toBe(a.state);
    expect(location.searchParams.get('iss')).toBe(s.url);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('x-request-id')).toBe('sso-test-1');
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
    expect(lines).toEqual([expect.objectContaining({ request_id: 'sso-test-1', method: 'GET', path: '/authorize', status: 302 })]);
    expect(JSON.stringify(lines)).not.toContain(location.searchParams.get('code'));

    const tokens = await oidc.authorizationCodeGrant(config, location, { pkceCodeVerifier: a.verifier, expectedState: a.state, expectedNonce: a.nonce });
    expect(tokens.claims()).toMatchObject({ sub: userId, nonce: a.nonce, email: USER.email, sid: expect.any(String), auth_time: expect.any(Number) });
  });

  it('keeps the session usable across many sign-ons, and codes single-use', async () => {
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
  ])('sends %s to the login page', async (_name, cookie, where) => {
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
  ])('sends %s to the page it needs', async (_name, params, where) => {
    if ('max_age' in params) clock.advance(1100);
    const { res, verdict } = await get((await authorizeUrl(params)).url);
    expect(verdict).toBe(true);
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
    expect(after.verdict).toBe(true);
    expect(after.res.headers.get('location')).toMatch(/^\/consent\?interaction=/);
  });

  it('answers prompt=none without consent with consent_required back to the client', async () => {
    const a = await authorizeUrl({ prompt: 'none', scope: 'openid read:orders', resource: API });
    const { res, verdict } = await get(a.url);
    expect(verdict).toBe(true);
    const location = new URL(res.headers.get('location')!);
    expect(location.searchParams.get('error')).toBe('consent_required');
    expect(location.searchParams.get('state')).toBe(a.state);
  });

  it('refuses invalid requests before the session guard: the error page, or the error redirect', async () => {
    const wrongRedirect = await get((await authorizeUrl({ redirect_uri: 'https://evil.example/cb' })).url);
    expect(wrongRedirect.offered).toBe(0);
    expect(wrongRedirect.res.status).toBe(400);
    const a = await authorizeUrl({ code_challenge_method: 'plain' });
    const badPkce = await get(a.url);
    expect(badPkce.offered).toBe(0);
    const location = new URL(badPkce.res.headers.get('location')!);
    expect(location.searchParams.get('error')).toBe('invalid_request');
    expect(location.searchParams.get('state')).toBe(a.state);
    const repeated = await get(`${(await authorizeUrl()).url}&scope=openid`);
    expect(repeated.offered).toBe(0);
    expect(new URL(repeated.res.headers.get('location')!).searchParams.get('error')).toBe('invalid_request');
  });

  it('refuses a URL with U+0000 before any guard: the error page, one log line', async () => {
    const before = s.logs.length;
    const { res, offered } = await get(`${(await authorizeUrl()).url}&x=%00`);
    expect(offered).toBe(0);
    expect(res.status).toBe(400);
    expect(s.logs.slice(before).filter((l) => JSON.parse(l).msg === 'request')).toHaveLength(1);
  });

  it('answers with one log line and the request id when the guard sends the user to the login page', async () => {
    const before = s.logs.length;
    const { res, verdict } = await get((await authorizeUrl({ prompt: 'login' })).url, browser.cookieHeader(), { 'x-request-id': 'handed-over-1' });
    expect(verdict).toBe(true);
    expect(res.headers.get('x-request-id')).toBe('handed-over-1');
    const lines = s.logs.slice(before).map((l) => JSON.parse(l)).filter((l) => l.msg === 'request');
    expect(lines).toEqual([expect.objectContaining({ request_id: 'handed-over-1', path: '/authorize', status: 303 })]);
  });

  it('sends a blocked user with a session to the login page', async () => {
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

  it('sends a signed-out session to the login page', async () => {
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
