import * as oidc from 'openid-client';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { Injectable, Module } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { GrantHandler, TokenResponse } from '@idp/token';
import { IdentityModule, createIdentityApp, dataSourceOptions } from '@idp/identity';
import { Browser, forms, signIn } from './support/browser';
import { TestServer, basic, freshDatabase, onPostgres, postForm, startServer } from './support/server';
import { authorizationRequest } from './support/oidc';
import { ExampleAppModule } from '../apps/example-extended/src/app.module';
import { ACME_ADMIN_SCOPES, CLIENT_SECRET_HEADER, DEPARTMENT_TOKEN_GRANT, HR_API } from '../apps/example-extended/src/acme/acme.constants';
import { FLAGGED_MESSAGE, FlaggedEmployeePolicy } from '../apps/example-extended/src/acme/flagged-employee.policy';
import { SessionStrategy } from '../libs/session/src/session.strategy';
import { EmployeeProfile } from '../apps/example-extended/src/acme/employee-profile.entity';
import { EmployeeProfiles1765000000000 } from '../apps/example-extended/src/acme/migrations/1765000000000-EmployeeProfiles';

const REDIRECT = 'https://app.acme.example/callback';
const ORDERS_API = 'https://api.acme.example/orders';
const PASSWORD = 'correct horse battery staple';
const ADA = { email: 'ada@acme.example', password: PASSWORD };
const BOB = { email: 'bob@acme.example', password: PASSWORD };
const DAVE = { email: 'dave@acme.example', password: PASSWORD };
const alertOf = (html: string) => /role="alert">([^<]*)</.exec(html)?.[1];

describe('the example app (apps/example-extended): every extension point', () => {
  let s: TestServer;
  let web: { client_id: string; client_secret: string };
  let config: oidc.Configuration;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    s = await startServer({}, ExampleAppModule);
    for (const [key, u, name] of [['ada', ADA, 'Ada Lovelace'], ['bob', BOB, 'Bob Flagged'], ['dave', DAVE, 'Dave Later'], ['carol', { email: 'carol@acme.example', password: PASSWORD }, 'Carol']] as const) {
      const res = await s.admin('POST', '/admin/users', { ...u, name, email_verified: true });
      expect(res.status).toBe(201);
      ids[key] = res.body.user_id;
    }
    for (const [key, department, flagged] of [['ada', 'Engineering', false], ['bob', 'Finance', true], ['dave', 'Sales', false]] as const) {
      const res = await s.admin('PUT', `/admin/example/profiles/${ids[key]}`, { department, flagged });
      expect(res.status).toBe(200);
    }
    expect((await s.admin('POST', '/admin/apis', { identifier: HR_API, name: 'HR', scopes: [{ value: 'read:employees', description: 'Read employee records' }] })).status).toBe(201);
    expect((await s.admin('POST', '/admin/apis', { identifier: ORDERS_API, name: 'Orders', scopes: [{ value: 'read:orders', description: 'Read orders' }] })).status).toBe(201);
    web = (await s.admin('POST', '/admin/clients', {
      client_name: 'Acme Intranet', redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'],
    })).body;
    config = await oidc.discovery(new URL(s.url), web.client_id, undefined, oidc.ClientSecretBasic(web.client_secret), { execute: [oidc.allowInsecureRequests] });
  });
  afterAll(() => s.close());

  function authorizeUrl(params: Record<string, string>) {
    return authorizationRequest(config, { redirect_uri: REDIRECT, scope: 'openid', ...params });
  }

  /** Signs in through the themed forms and trades the code. */
  async function codeFlow(user: { email: string; password: string }, params: Record<string, string>) {
    const a = await authorizeUrl(params);
    const page = await signIn(new Browser(s.url), a.url, user);
    expect(page.url.startsWith(REDIRECT)).toBe(true);
    return oidc.authorizationCodeGrant(config, new URL(page.url), { pkceCodeVerifier: a.verifier, expectedState: a.state, expectedNonce: a.nonce });
  }

  async function loginCount(userId: string): Promise<number> {
    const res = await s.admin('GET', `/admin/example/login-count?user_id=${userId}`, undefined, await s.adminToken('read:login_stats'));
    expect(res.status).toBe(200);
    return res.body.user_logins;
  }

  function token(form: Record<string, string>, headers: Record<string, string> = {}) {
    return postForm(s, '/oauth/token', form, headers);
  }

  describe('code flow and the department claims provider', () => {
    it('signs in through the code flow with openid-client; the department claim is in the ID token and in /userinfo', async () => {
      const tokens = await codeFlow(ADA, { scope: 'openid profile email department' });
      expect(tokens.claims()).toMatchObject({ iss: s.url, sub: ids.ada, aud: web.client_id, name: 'Ada Lovelace', email: ADA.email, department: 'Engineering' });
      const info = await oidc.fetchUserInfo(config, tokens.access_token, ids.ada);
      expect(info).toMatchObject({ sub: ids.ada, email: ADA.email, department: 'Engineering' });
      expect(tokens.scope).toBe('openid profile email department');
    });

    it('adds no department claim without the department scope, nor for a user without a profile', async () => {
      const without = await codeFlow(ADA, { scope: 'openid profile' });
      expect(without.claims()).not.toHaveProperty('department');
      expect(await oidc.fetchUserInfo(config, without.access_token, ids.ada)).not.toHaveProperty('department');
      const carol = await codeFlow({ email: 'carol@acme.example', password: PASSWORD }, { scope: 'openid department' });
      expect(carol.claims()).not.toHaveProperty('department');
    });

    it('lets staff sign in with their short Acme username (the UserStore)', async () => {
      const tokens = await codeFlow({ email: 'ada', password: PASSWORD }, { scope: 'openid department' });
      expect(tokens.claims()).toMatchObject({ sub: ids.ada, department: 'Engineering' });
    });

    it('still refuses a wrong password through the UserStore, with the generic message', async () => {
      const browser = new Browser(s.url);
      const login = await browser.go((await authorizeUrl({})).url);
      browser.headers['x-request-id'] = 'acme-wrong-password';
      const page = await browser.submit(login, forms(login.html)[0], { username: 'ada', password: 'nope' });
      expect(page.status).toBe(401);
      expect(alertOf(page.html)).toBe('Wrong email or password.');
      // The store's checkPassword names the account tried by its short name (CONTRACT §4).
      const failed = await s.admin('GET', `/admin/audit-events?type=user.login_failed&user_id=${ids.ada}`);
      expect(failed.body.items).toEqual([expect.objectContaining({ user_id: ids.ada, request_id: 'acme-wrong-password', data: { identifier: 'ada', reason: 'wrong password' } })]);
    });
  });

  describe('the theme', () => {
    it('renders the Acme login page with the contract fields, and serves its CSS beside the built-in one', async () => {
      const login = await new Browser(s.url).go((await authorizeUrl({})).url);
      expect(login.status).toBe(200);
      expect(login.html).toContain('Acme Corp');
      expect(login.html).toContain('Sign in to Acme');
      expect(login.html).toContain('href="/assets/acme.css"');
      const [form] = forms(login.html);
      expect(form.action).toBe('/login');
      expect(Object.keys(form.fields)).toEqual(expect.arrayContaining(['username', 'password', '_csrf', 'interaction']));
      const css = await s.fetch('/assets/acme.css');
      expect(css.status).toBe(200);
      expect(css.headers.get('content-type')).toMatch(/^text\/css/);
      expect(await css.text()).toContain('.acme-brand');
      expect((await s.fetch('/assets/idp.css')).status).toBe(200);
    });

    it("uses the theme's partials in the built-in pages too (consent, error)", async () => {
      const browser = new Browser(s.url);
      const login = await browser.go((await authorizeUrl({ scope: 'openid department' })).url);
      const consent = await browser.submit(login, forms(login.html)[0], { username: DAVE.email, password: PASSWORD });
      expect(consent.url).toContain('/consent');
      expect(consent.html).toContain('Allow Acme Intranet?');
      expect(consent.html).toContain('Acme Corp');
      const error = await s.fetch('/login?interaction=nope');
      expect(error.status).toBe(400);
      expect(await error.text()).toContain('Acme Corp');
    });
  });

  describe('the login policy and the login subscriber', () => {
    it('refuses a flagged employee on the login page with a clear message (403), and the subscriber counts no login', async () => {
      const before = await loginCount(ids.bob);
      const browser = new Browser(s.url);
      const login = await browser.go((await authorizeUrl({})).url);
      const page = await browser.submit(login, forms(login.html)[0], { username: BOB.email, password: PASSWORD });
      expect(page.status).toBe(403);
      expect(page.url).toContain('/login');
      expect(alertOf(page.html)).toBe(FLAGGED_MESSAGE);
      expect(page.html).toContain('Acme Corp');
      expect(await loginCount(ids.bob)).toBe(before);
      const audit = await s.admin('GET', `/admin/audit-events?type=user.login_denied&user_id=${ids.bob}`);
      expect(audit.body.items).toEqual([expect.objectContaining({ type: 'user.login_denied', user_id: ids.bob, ip: expect.stringMatching(/127\.0\.0\.1$/), request_id: expect.any(String) })]);
    });

    it('counts each sign-in (user.login), read through the admin route', async () => {
      const before = await loginCount(ids.ada);
      const total = (await s.admin('GET', '/admin/example/login-count', undefined, await s.adminToken('read:login_stats'))).body.total;
      await codeFlow(ADA, {});
      await codeFlow(ADA, {});
      expect(await loginCount(ids.ada)).toBe(before + 2);
      const after = (await s.admin('GET', '/admin/example/login-count', undefined, await s.adminToken('read:login_stats'))).body;
      expect(after).toEqual({ total: total + 2 });
    });

    it('refuses an existing session once the employee is flagged: access_denied back to the application', async () => {
      const browser = new Browser(s.url);
      const first = await signIn(browser, (await authorizeUrl({})).url, DAVE);
      expect(new URL(first.url).searchParams.get('code')).toEqual(expect.any(String));
      expect((await s.admin('PUT', `/admin/example/profiles/${ids.dave}`, { department: 'Sales', flagged: true })).status).toBe(200);
      // The session guard authenticates the session, and the policy is asked once.
      const evaluations = jest.spyOn(s.app.get(FlaggedEmployeePolicy), 'evaluate');
      const verdicts = jest.spyOn(s.app.get(SessionStrategy), 'validate');
      const again = await browser.go((await authorizeUrl({ state: 'later' })).url);
      expect(await verdicts.mock.results[0].value).toMatchObject({ sub: ids.dave });
      expect(evaluations).toHaveBeenCalledTimes(1);
      evaluations.mockRestore();
      verdicts.mockRestore();
      const back = new URL(again.url);
      expect(back.searchParams.get('error')).toBe('access_denied');
      expect(back.searchParams.get('error_description')).toBe(FLAGGED_MESSAGE);
      expect(back.searchParams.get('state')).toBe('later');
      expect((await s.admin('PUT', `/admin/example/profiles/${ids.dave}`, { department: 'Sales', flagged: false })).status).toBe(200);
      expect(new URL((await browser.go((await authorizeUrl({})).url)).url).searchParams.get('code')).toEqual(expect.any(String));
    });
  });

  describe('discovery', () => {
    it('advertises the new grant, client authentication method, scope and claim', async () => {
      for (const path of ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']) {
        const meta = await (await s.fetch(path)).json();
        expect(meta.grant_types_supported).toEqual(expect.arrayContaining(['authorization_code', 'client_credentials', DEPARTMENT_TOKEN_GRANT]));
        expect(meta.token_endpoint_auth_methods_supported).toEqual(expect.arrayContaining(['client_secret_basic', CLIENT_SECRET_HEADER]));
        expect(meta.scopes_supported).toEqual(expect.arrayContaining(['openid', 'profile', 'email', 'department']));
        expect(meta.claims_supported).toEqual(expect.arrayContaining(['email', 'department']));
      }
    });
  });

  describe('the client_secret_header client authentication method', () => {
    let machine: { client_id: string; client_secret: string; token_endpoint_auth_method: string };

    beforeAll(async () => {
      const res = await s.admin('POST', '/admin/clients', { client_name: 'Gateway job', grant_types: ['client_credentials'], token_endpoint_auth_method: CLIENT_SECRET_HEADER });
      expect(res.status).toBe(201);
      machine = res.body;
      expect((await s.admin('POST', '/admin/client-grants', { client_id: machine.client_id, audience: ORDERS_API, scope: ['read:orders'] })).status).toBe(201);
    });

    it('is chosen at registration, which issues a secret', () => {
      expect(machine.token_endpoint_auth_method).toBe(CLIENT_SECRET_HEADER);
      expect(machine.client_secret).toEqual(expect.any(String));
    });

    it('authenticates a client by the X-Client-Id and X-Client-Secret headers', async () => {
      const res = await token({ grant_type: 'client_credentials', audience: ORDERS_API }, { 'x-client-id': machine.client_id, 'x-client-secret': machine.client_secret });
      expect(res.status).toBe(200);
      const body = await res.json();
      const { payload } = await jwtVerify(body.access_token, createRemoteJWKSet(new URL(`${s.url}/.well-known/jwks.json`)), { issuer: s.url, audience: ORDERS_API, typ: 'at+jwt' });
      expect(payload).toMatchObject({ sub: machine.client_id, client_id: machine.client_id, scope: 'read:orders' });
    });

    it('works at the other client-authenticated endpoints too (introspection)', async () => {
      const at = (await (await token({ grant_type: 'client_credentials', audience: ORDERS_API }, { 'x-client-id': machine.client_id, 'x-client-secret': machine.client_secret })).json()).access_token;
      const res = await postForm(s, '/oauth/introspect', { token: at }, { 'x-client-id': machine.client_id, 'x-client-secret': machine.client_secret });
      expect(res.status).toBe(200);
      expect((await res.json()).active).toBe(true);
    });

    it.each([
      ['a wrong secret', () => ({ 'x-client-id': machine.client_id, 'x-client-secret': 'wrong' })],
      ['no secret header', () => ({ 'x-client-id': machine.client_id })],
      ['no id header', () => ({ 'x-client-secret': machine.client_secret })],
      ['an unknown client', () => ({ 'x-client-id': 'nobody', 'x-client-secret': machine.client_secret })],
      ['a client registered for another method', () => ({ 'x-client-id': web.client_id, 'x-client-secret': web.client_secret })],
    ])('answers 401 invalid_client for %s', async (_, headers) => {
      const res = await token({ grant_type: 'client_credentials', audience: ORDERS_API }, headers());
      expect(res.status).toBe(401);
      expect((await res.json()).error).toBe('invalid_client');
    });

    it('refuses the headers together with another method (400 invalid_request, RFC 6749 §2.3)', async () => {
      const res = await token(
        { grant_type: 'client_credentials', audience: ORDERS_API },
        { 'x-client-id': machine.client_id, 'x-client-secret': machine.client_secret, authorization: basic(web.client_id, web.client_secret) },
      );
      expect(res.status).toBe(400);
      expect((await res.json()).error).toBe('invalid_request');
    });

    it('refuses Basic for a client registered for the headers, even with its right secret', async () => {
      const basicTry = await token({ grant_type: 'client_credentials', audience: ORDERS_API }, { authorization: basic(machine.client_id, machine.client_secret) });
      expect(basicTry.status).toBe(401);
      expect((await basicTry.json()).error).toBe('invalid_client');
    });
  });

  describe('the department-token grant', () => {
    let job: { client_id: string; client_secret: string };
    const auth = () => ({ authorization: basic(job.client_id, job.client_secret) });

    beforeAll(async () => {
      job = (await s.admin('POST', '/admin/clients', { client_name: 'HR export', grant_types: [DEPARTMENT_TOKEN_GRANT, 'client_credentials'] })).body;
      expect((await s.admin('POST', '/admin/client-grants', { client_id: job.client_id, audience: HR_API, scope: ['read:employees'] })).status).toBe(201);
    });

    it('issues an access token for the API carrying the department', async () => {
      const res = await token({ grant_type: DEPARTMENT_TOKEN_GRANT, audience: HR_API, department: 'Engineering' }, auth());
      expect(res.status).toBe(200);
      expect(res.headers.get('cache-control')).toBe('no-store');
      const body = await res.json();
      expect(body).toMatchObject({ token_type: 'Bearer', scope: 'read:employees', expires_in: expect.any(Number) });
      const { payload } = await jwtVerify(body.access_token, createRemoteJWKSet(new URL(`${s.url}/.well-known/jwks.json`)), { issuer: s.url, audience: HR_API, typ: 'at+jwt' });
      expect(payload).toMatchObject({ sub: job.client_id, client_id: job.client_id, scope: 'read:employees', department: 'Engineering' });
    });

    it.each([
      ['no department', { audience: HR_API }, 400, 'invalid_request'],
      ['an unknown department', { audience: HR_API, department: 'Astrology' }, 400, 'invalid_grant'],
      ['no audience', { department: 'Engineering' }, 400, 'invalid_request'],
      ['an API without a client grant', { audience: ORDERS_API, department: 'Engineering' }, 400, 'unauthorized_client'],
      ['an unknown API', { audience: 'https://nowhere.example', department: 'Engineering' }, 400, 'invalid_target'],
      ['a scope beyond the grant', { audience: HR_API, department: 'Engineering', scope: 'write:employees' }, 400, 'invalid_scope'],
    ])('refuses %s', async (_, params, status, error) => {
      const res = await token({ grant_type: DEPARTMENT_TOKEN_GRANT, ...params } as Record<string, string>, auth());
      expect(res.status).toBe(status);
      expect((await res.json()).error).toBe(error);
    });

    it("refuses a client whose grant_types do not list it (unauthorized_client)", async () => {
      const res = await token({ grant_type: DEPARTMENT_TOKEN_GRANT, audience: HR_API, department: 'Engineering' }, { authorization: basic(web.client_id, web.client_secret) });
      expect(res.status).toBe(400);
      expect((await res.json()).error).toBe('unauthorized_client');
    });

    it('is accepted in client registration only because a handler claims it', async () => {
      const res = await s.admin('POST', '/admin/clients', { client_name: 'Nope', grant_types: ['urn:example:params:oauth:grant-type:unknown'] });
      expect(res.status).toBe(400);
    });
  });

  describe('the token customizer', () => {
    it('adds the department to access tokens for the HR API only', async () => {
      const hr = await codeFlow(ADA, { audience: HR_API, scope: 'openid read:employees' });
      expect(decodeJwt(hr.access_token)).toMatchObject({ aud: HR_API, scope: 'read:employees', department: 'Engineering' });
      // The customizer touches access tokens only; the ID token has no department without the scope.
      expect(hr.claims()).not.toHaveProperty('department');

      const orders = await codeFlow(ADA, { audience: ORDERS_API, scope: 'openid read:orders' });
      expect(decodeJwt(orders.access_token)).toMatchObject({ aud: ORDERS_API, scope: 'read:orders' });
      expect(decodeJwt(orders.access_token)).not.toHaveProperty('department');
      const plain = await codeFlow(ADA, { scope: 'openid' });
      expect(decodeJwt(plain.access_token)).not.toHaveProperty('department');
    });

    it('adds nothing to a machine token for the HR API (no user)', async () => {
      const job = (await s.admin('POST', '/admin/clients', { client_name: 'HR sync', grant_types: ['client_credentials'] })).body;
      await s.admin('POST', '/admin/client-grants', { client_id: job.client_id, audience: HR_API, scope: ['read:employees'] });
      const res = await token({ grant_type: 'client_credentials', audience: HR_API }, { authorization: basic(job.client_id, job.client_secret) });
      expect(res.status).toBe(200);
      expect(decodeJwt((await res.json()).access_token)).not.toHaveProperty('department');
    });
  });

  describe('the admin routes and their scopes', () => {
    it('adds its scopes to the admin API', async () => {
      const apis = await s.admin('GET', '/admin/apis');
      const admin = apis.body.items.find((a: { identifier: string }) => a.identifier === `${s.url}/admin`);
      expect(admin.scopes.map((x: { value: string }) => x.value)).toEqual(expect.arrayContaining(ACME_ADMIN_SCOPES.map((x) => x.value)));
    });

    it('refuses a token without read:login_stats (403 insufficient_scope) and accepts one with it', async () => {
      const without = await s.admin('GET', '/admin/example/login-count', undefined, await s.adminToken('read:users'));
      expect(without.status).toBe(403);
      expect(without.headers.get('www-authenticate')).toContain('insufficient_scope');
      const withScope = await s.admin('GET', '/admin/example/login-count', undefined, await s.adminToken('read:login_stats'));
      expect(withScope.status).toBe(200);
      expect(withScope.body).toEqual({ total: expect.any(Number) });
      const none = await s.fetch('/admin/example/login-count');
      expect(none.status).toBe(401);
    });

    it('sets and reads a profile with the write and read scopes only', async () => {
      const write = await s.adminToken('write:employee_profiles');
      const read = await s.adminToken('read:employee_profiles');
      expect((await s.admin('PUT', `/admin/example/profiles/${ids.carol}`, { department: 'Legal' }, read)).status).toBe(403);
      const put = await s.admin('PUT', `/admin/example/profiles/${ids.carol}`, { department: 'Legal' }, write);
      expect(put.status).toBe(200);
      expect(put.body).toEqual({ user_id: ids.carol, department: 'Legal', flagged: false });
      expect((await s.admin('GET', `/admin/example/profiles/${ids.carol}`, undefined, write)).status).toBe(403);
      expect((await s.admin('GET', `/admin/example/profiles/${ids.carol}`, undefined, read)).body).toEqual({ user_id: ids.carol, department: 'Legal', flagged: false });
    });

    it.each([
      ['an unknown user', 'nobody', { department: 'Legal' }, 404],
      ['a missing department', 'carol', { flagged: true }, 400],
      ['a malformed department', 'carol', { department: '<b>' }, 400],
      ['an unknown property', 'carol', { department: 'Legal', admin: true }, 400],
      ['a non-boolean flagged', 'carol', { department: 'Legal', flagged: 'yes' }, 400],
    ])('refuses %s', async (_, who, body, status) => {
      const res = await s.admin('PUT', `/admin/example/profiles/${ids[who] ?? who}`, body);
      expect(res.status).toBe(status);
    });

    it('lists the routes in the admin OpenAPI document under their tag', async () => {
      const doc = await (await s.fetch('/admin/openapi.json')).json();
      expect(doc.paths['/admin/example/login-count'].get.tags).toEqual(['example']);
      expect(doc.paths['/admin/example/profiles/{user_id}'].put).toBeDefined();
    });
  });

  /**
   * The pipeline: Acme's global interceptor (X-Acme-Request) and global guard (X-Acme-Block) run
   * on every endpoint family, because every endpoint is a Nest controller. A refusal is answered
   * in the family's own error format.
   */
  describe("Acme's global guard and interceptor on every endpoint family", () => {
    const M2M_API = 'https://api.acme.example/pipeline';
    let m2m: { client_id: string; client_secret: string };
    let sso: Browser;
    let pending: Browser;
    let userAccessToken: string;
    let loginPath: string;
    let consentPath: string;

    beforeAll(async () => {
      expect((await s.admin('POST', '/admin/apis', { identifier: M2M_API, name: 'Pipeline', scopes: [{ value: 'ping', description: 'Ping' }] })).status).toBe(201);
      m2m = (await s.admin('POST', '/admin/clients', { client_name: 'Acme worker', grant_types: ['client_credentials'] })).body;
      expect((await s.admin('POST', '/admin/client-grants', { client_id: m2m.client_id, audience: M2M_API, scope: ['ping'] })).status).toBe(201);
      userAccessToken = (await codeFlow(ADA, { scope: 'openid profile' })).access_token;
      // A browser signed in (SSO), and the login and consent pages of pending requests.
      sso = new Browser(s.url);
      expect((await signIn(sso, (await authorizeUrl({ scope: 'openid profile' })).url, ADA)).url.startsWith(REDIRECT)).toBe(true);
      pending = new Browser(s.url);
      const login = new URL((await pending.go((await authorizeUrl({})).url)).url);
      loginPath = login.pathname + login.search;
      const consenting = await sso.go((await authorizeUrl({ scope: 'openid email', prompt: 'consent' })).url);
      consentPath = new URL(consenting.url).pathname + new URL(consenting.url).search;
      expect(loginPath).toMatch(/^\/login\?interaction=/);
      expect(consentPath).toMatch(/^\/consent\?interaction=/);
    });

    const form = (body: Record<string, string>) => ({ method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(body) });
    type Call = { family: string; format: 'oauth' | 'page' | 'api'; request: () => Promise<[string, RequestInit]>; status: number };
    const calls: Call[] = [
      { family: 'token', format: 'oauth', status: 200, request: async () => ['/oauth/token', withAuth(form({ grant_type: 'client_credentials', audience: M2M_API }))] },
      { family: 'revocation', format: 'oauth', status: 200, request: async () => ['/oauth/revoke', withAuth(form({ token: 'not-a-token' }))] },
      { family: 'introspection', format: 'oauth', status: 200, request: async () => ['/oauth/introspect', withAuth(form({ token: 'not-a-token' }))] },
      { family: 'UserInfo', format: 'oauth', status: 200, request: async () => ['/userinfo', { headers: { authorization: `Bearer ${userAccessToken}` } }] },
      { family: 'authorize (SSO)', format: 'page', status: 302, request: async () => [(await authorizeUrl({ scope: 'openid profile' })).url.slice(s.url.length), { headers: { cookie: sso.cookieHeader() } }] },
      { family: 'discovery', format: 'api', status: 200, request: async () => ['/.well-known/openid-configuration', {}] },
      { family: 'JWKS', format: 'api', status: 200, request: async () => ['/.well-known/jwks.json', {}] },
      { family: 'login', format: 'page', status: 200, request: async () => [loginPath, { headers: { cookie: pending.cookieHeader() } }] },
      { family: 'consent', format: 'page', status: 200, request: async () => [consentPath, { headers: { cookie: sso.cookieHeader() } }] },
      { family: 'logout', format: 'page', status: 200, request: async () => ['/oidc/logout', {}] },
      { family: 'admin', format: 'api', status: 200, request: async () => ['/admin/clients', { headers: { authorization: `Bearer ${await s.adminToken()}` } }] },
    ];
    function withAuth(init: RequestInit): RequestInit {
      return { ...init, headers: { ...(init.headers as Record<string, string>), authorization: basic(m2m.client_id, m2m.client_secret) } };
    }
    async function send(call: Call, extra: Record<string, string> = {}) {
      const [path, init] = await call.request();
      return s.fetch(path, { ...init, redirect: 'manual', headers: { ...(init.headers as Record<string, string>), ...extra } });
    }

    it.each(calls)('$family: the interceptor adds X-Acme-Request (the request id) to the answer', async (call) => {
      const res = await send(call, { 'x-request-id': `acme-${call.family.replace(/\W/g, '')}` });
      expect(res.status).toBe(call.status);
      expect(res.headers.get('x-acme-request')).toBe(`acme-${call.family.replace(/\W/g, '')}`);
    });

    it.each(calls)('$family: the guard refuses X-Acme-Block: 1 with 403 in the endpoint\'s own format', async (call) => {
      const res = await send(call, { 'x-acme-block': '1' });
      expect(res.status).toBe(403);
      const text = await res.text();
      if (call.format === 'oauth') {
        expect(res.headers.get('content-type')).toMatch(/^application\/json/);
        expect(JSON.parse(text)).toEqual({ error: 'access_denied', error_description: 'this request was refused by the Acme gateway policy' });
        expect(res.headers.get('cache-control')).toBe('no-store');
      } else if (call.format === 'page') {
        expect(res.headers.get('content-type')).toMatch(/^text\/html/);
        expect(text).toContain('</html>');
        expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
      } else {
        expect(res.headers.get('content-type')).toMatch(/^application\/json/);
        expect(JSON.parse(text)).toMatchObject({ statusCode: 403, error: 'forbidden' });
      }
      expect(res.headers.get('x-acme-request')).toBeNull();
    });
  });
});

describe('registries: two extensions claiming one name', () => {
  @GrantHandler({ name: 'x' })
  @Injectable()
  class FirstXGrant implements GrantHandler {
    async handle(): Promise<TokenResponse> {
      return { access_token: 'a', token_type: 'Bearer', expires_in: 1 };
    }
  }
  @GrantHandler({ name: 'x' })
  @Injectable()
  class SecondXGrant implements GrantHandler {
    async handle(): Promise<TokenResponse> {
      return { access_token: 'b', token_type: 'Bearer', expires_in: 1 };
    }
  }
  @Module({ providers: [FirstXGrant, SecondXGrant] })
  class DuplicateGrants {}
  @Module({ imports: [IdentityModule.forRoot(), DuplicateGrants] })
  class Root {}

  it('fail at boot with a message naming both classes', async () => {
    const env = { NODE_ENV: 'test', LOG_LEVEL: 'silent', DATABASE_URL: 'sqlite::memory:', IDP_SECRET_KEY: 'k'.repeat(43) };
    const boot = createIdentityApp(Root, env, { logSink: () => undefined });
    await expect(boot).rejects.toThrow(/two grant handlers claim the name "x": (FirstXGrant and SecondXGrant|SecondXGrant and FirstXGrant)/);
  });
});

describe(`the example's migration (${onPostgres ? 'PostgreSQL' : 'SQLite'})`, () => {
  it('creates exactly what the entity describes, after the IdP\'s own, and reverts cleanly', async () => {
    const db = await freshDatabase();
    const base = dataSourceOptions(db.url);
    const ds = new DataSource({ ...base, entities: [...(base.entities as Function[]), EmployeeProfile], migrations: [...(base.migrations as Function[]), EmployeeProfiles1765000000000] } as never);
    try {
      await ds.initialize();
      const ran = await ds.runMigrations();
      expect(ran[ran.length - 1].name).toBe('EmployeeProfiles1765000000000');
      expect((await ds.driver.createSchemaBuilder().log()).upQueries.map((q) => q.query)).toEqual([]);
      await ds.undoLastMigration();
      const qr = ds.createQueryRunner();
      expect(await qr.hasTable('employee_profiles')).toBe(false);
      expect(await qr.hasTable('users')).toBe(true);
      await qr.release();
    } finally {
      await ds.destroy();
      await db.drop();
    }
  });
});
