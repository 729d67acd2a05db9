import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import * as oidc from 'openid-client';
import { chromium, type Browser as Chromium } from 'playwright-core';
import { SessionStrategy } from '../libs/session/src/session.strategy';
import { Browser, forms, signIn } from './support/browser';
import { TestServer, basic, postForm, startServer } from './support/server';
import { authorizationRequest } from './support/oidc';

/**
 * OAuth 2.0 Form Post Response Mode (CONTRACT §2): with `response_mode=form_post`, every
 * authorization response, a code or a redirectable error, reaches the client as an HTML form that
 * the browser posts to the registered redirect URI: by its one script (allowed by the CSP's hash
 * and nothing else), or by its button when JavaScript is off. Driven as an outside client would:
 * a browser without JavaScript (test/support/browser.ts) and openid-client redeeming what the
 * form carries.
 */

const REDIRECT = 'https://app.example.com/callback';
const REDIRECT_Q = 'https://app.example.com/cb?tenant=1&lang=en';
const USER = { email: 'katherine@example.com', password: 'correct horse battery staple' };
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const HOSTILE_STATE = `"><script>alert(1)</script></form><form action="https://evil.example.com/"><input name="code" value='x'>&amp;`;

interface Answer {
  status: number;
  headers: Headers;
  html: string;
}

/**
 * The checks of every form_post answer: a 200 page that may not be cached, framed or sniffed, whose
 * only script is the one the CSP names by its hash, with one form posting to `action` that has a
 * visible submit button. Returns the fields the browser posts.
 */
function formPost(page: Answer, action = REDIRECT): Record<string, string> {
  expect(page.status).toBe(200);
  expect(page.headers.get('location')).toBeNull();
  expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
  expect(page.headers.get('cache-control')).toBe('no-store');
  expect(page.headers.get('pragma')).toBe('no-cache');
  expect(page.headers.get('x-frame-options')).toBe('DENY');
  expect(page.headers.get('x-content-type-options')).toBe('nosniff');
  expect(page.headers.get('referrer-policy')).toBe('no-referrer');
  const csp = Object.fromEntries(page.headers.get('content-security-policy')!.split(';').map((d) => d.trim().split(/\s+/)).map(([name, ...values]) => [name, values]));
  expect(csp['default-src']).toEqual(["'none'"]);
  expect(csp['frame-ancestors']).toEqual(["'none'"]);
  expect(csp['base-uri']).toEqual(["'none'"]);
  // One inline script, no script from anywhere, and the CSP allows exactly that one by its hash.
  const scripts = [...page.html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
  expect(scripts).toHaveLength(1);
  expect(scripts[0][1]).toBe('');
  expect(csp['script-src']).toEqual([`'sha256-${createHash('sha256').update(scripts[0][2]).digest('base64')}'`]);
  const all = forms(page.html);
  expect(all).toHaveLength(1);
  expect(all[0].method.toLowerCase()).toBe('post');
  expect(all[0].action).toBe(action);
  // Without JavaScript, the user submits it: a visible button inside the form.
  const form = /<form\b[^>]*>([\s\S]*?)<\/form>/i.exec(page.html)![1];
  expect(form).toMatch(/<button type="submit">[^<]+<\/button>/);
  expect(form).not.toMatch(/\bhidden\b[^>]*<\/button>|<button[^>]*hidden/);
  return all[0].fields;
}

/** What the browser posts to the client, as the client's server receives it. */
const posted = (fields: Record<string, string>, action = REDIRECT) =>
  new Request(action, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields) });

describe('response_mode=form_post', () => {
  let s: TestServer;
  /** Third-party: the consent page comes. */
  let web: { client_id: string; client_secret: string };
  /** Another third-party client the user never consented to. */
  let other: { client_id: string; client_secret: string };
  let config: oidc.Configuration;
  /** A signed-in browser whose user consented to `web` for `openid profile`. */
  let sso: Browser;

  beforeAll(async () => {
    s = await startServer();
    await s.admin('POST', '/admin/users', { ...USER, name: 'Katherine Johnson' });
    web = (await s.admin('POST', '/admin/clients', { client_name: 'Web', redirect_uris: [REDIRECT, REDIRECT_Q], grant_types: ['authorization_code', 'refresh_token'] })).body;
    other = (await s.admin('POST', '/admin/clients', { client_name: 'Other', redirect_uris: [REDIRECT] })).body;
    config = await oidc.discovery(new URL(s.url), web.client_id, undefined, oidc.ClientSecretBasic(web.client_secret), { execute: [oidc.allowInsecureRequests] });
    sso = new Browser(s.url);
    const first = await signIn(sso, (await request()).url, USER);
    expect(first.url.startsWith(`${REDIRECT}?`)).toBe(true);
  });
  afterAll(() => s?.close());

  /** An authorization request as openid-client builds it (PKCE, state, nonce). */
  function request(params: Record<string, string> = {}, cfg = config) {
    return authorizationRequest(cfg, { redirect_uri: REDIRECT, scope: 'openid profile', ...params });
  }

  /** One request, no redirect followed. */
  async function send(url: string, init: RequestInit = {}): Promise<Answer> {
    const res = await fetch(url, { redirect: 'manual', ...init });
    return { status: res.status, headers: res.headers, html: await res.text() };
  }

  it('is advertised in both discovery documents', async () => {
    for (const path of ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']) {
      expect((await (await s.fetch(path)).json()).response_modes_supported).toEqual(['query', 'form_post']);
    }
  });

  it('runs the code flow to the end: login and consent pages, the form posts code, state and iss, openid-client redeems the code', async () => {
    const browser = new Browser(s.url);
    const r = await request({ response_mode: 'form_post', scope: 'openid profile email' });
    const page = await signIn(browser, r.url, USER);
    expect(new URL(page.url).origin).toBe(s.url);
    const fields = formPost(page);
    expect(Object.keys(fields).sort()).toEqual(['code', 'iss', 'state']);
    expect(fields).toMatchObject({ state: r.state, iss: s.url });
    const tokens = await oidc.authorizationCodeGrant(config, posted(fields), { pkceCodeVerifier: r.verifier, expectedState: r.state, expectedNonce: r.nonce });
    expect(tokens.claims()).toMatchObject({ iss: s.url, aud: web.client_id, nonce: r.nonce, name: 'Katherine Johnson' });
    expect(tokens.scope).toBe('openid profile email');
  });

  it('answers a signed-in user (through the session guard) by form post too, with a code that redeems', async () => {
    const verdicts = jest.spyOn(s.app.get(SessionStrategy), 'validate');
    try {
      const r = await request({ response_mode: 'form_post' });
      const page = await send(r.url, { headers: { cookie: sso.cookieHeader() } });
      expect(verdicts).toHaveBeenCalledTimes(1);
      await expect(verdicts.mock.results[0].value).resolves.toMatchObject({ sub: expect.any(String) });
      const fields = formPost(page);
      expect(Object.keys(fields).sort()).toEqual(['code', 'iss', 'state']);
      const tokens = await oidc.authorizationCodeGrant(config, posted(fields), { pkceCodeVerifier: r.verifier, expectedState: r.state, expectedNonce: r.nonce });
      expect(tokens.access_token).toEqual(expect.any(String));
    } finally {
      verdicts.mockRestore();
    }
  });

  it('answers a POSTed authorization request by form post (200, not a 303)', async () => {
    const r = await request({ response_mode: 'form_post' });
    const page = await send(`${s.url}/authorize`, {
      method: 'POST', headers: { cookie: sso.cookieHeader(), 'content-type': 'application/x-www-form-urlencoded' }, body: new URL(r.url).searchParams,
    });
    const fields = formPost(page);
    const tokens = await oidc.authorizationCodeGrant(config, posted(fields), { pkceCodeVerifier: r.verifier, expectedState: r.state, expectedNonce: r.nonce });
    expect(tokens.access_token).toEqual(expect.any(String));
  });

  describe('errors', () => {
    /** The error as openid-client reports it from the posted form (it checks state and iss too). */
    async function clientSees(fields: Record<string, string>, r: { verifier: string; state: string }, cfg = config): Promise<string> {
      const err = await oidc.authorizationCodeGrant(cfg, posted(fields), { pkceCodeVerifier: r.verifier, expectedState: r.state }).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(oidc.AuthorizationResponseError);
      return (err as oidc.AuthorizationResponseError).error;
    }

    it.each<[string, 'GET' | 'POST', Record<string, string>, string]>([
      ['response_type=token', 'GET', { response_type: 'token' }, 'unsupported_response_type'],
      ['response_type=token, POSTed', 'POST', { response_type: 'token' }, 'unsupported_response_type'],
      ['only unknown scopes', 'GET', { scope: 'launch:rockets' }, 'invalid_scope'],
      ['an unknown prompt', 'GET', { prompt: 'sometimes' }, 'invalid_request'],
      ['a request object', 'GET', { request: 'eyJhbGciOiJub25lIn0.e30.' }, 'request_not_supported'],
      ['prompt=none without a session (login_required)', 'GET', { prompt: 'none' }, 'login_required'],
      ['prompt=none without a session, POSTed', 'POST', { prompt: 'none' }, 'login_required'],
    ])('sends the error for %s by form post, with error_description, state and iss', async (_, method, extra, error) => {
      const r = await request({ response_mode: 'form_post', ...extra });
      const page = method === 'GET'
        ? await send(r.url)
        : await send(`${s.url}/authorize`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URL(r.url).searchParams });
      const fields = formPost(page);
      expect(Object.keys(fields).sort()).toEqual(['error', 'error_description', 'iss', 'state']);
      expect(fields).toMatchObject({ error, state: r.state, iss: s.url });
      expect(await clientSees(fields, r)).toBe(error);
    });

    it('sends a repeated parameter\'s invalid_request by form post, and a repeated response_mode\'s by the query', async () => {
      const r = await request({ response_mode: 'form_post' });
      const fields = formPost(await send(`${r.url}&scope=email`));
      expect(fields).toMatchObject({ error: 'invalid_request', state: r.state, iss: s.url });
      expect(fields.error_description).toMatch(/scope/);
      const twice = await send(`${r.url}&response_mode=form_post`);
      expect(twice.status).toBe(302);
      const location = new URL(twice.headers.get('location')!);
      expect(location.searchParams.get('error')).toBe('invalid_request');
      expect(location.searchParams.get('error_description')).toMatch(/response_mode/);
      expect(location.searchParams.get('state')).toBe(r.state);
    });

    it('sends consent_required by form post (prompt=none, signed in, no consent for this client)', async () => {
      const cfg = await oidc.discovery(new URL(s.url), other.client_id, undefined, oidc.ClientSecretBasic(other.client_secret), { execute: [oidc.allowInsecureRequests] });
      const r = await request({ response_mode: 'form_post', prompt: 'none' }, cfg);
      const fields = formPost(await send(r.url, { headers: { cookie: sso.cookieHeader() } }));
      expect(fields).toMatchObject({ error: 'consent_required', state: r.state, iss: s.url });
      expect(await clientSees(fields, r, cfg)).toBe('consent_required');
    });

    it('sends access_denied by form post when the user denies on the consent page', async () => {
      const cfg = await oidc.discovery(new URL(s.url), other.client_id, undefined, oidc.ClientSecretBasic(other.client_secret), { execute: [oidc.allowInsecureRequests] });
      const r = await request({ response_mode: 'form_post' }, cfg);
      const page = await signIn(new Browser(s.url), r.url, USER, 'deny');
      const fields = formPost(page);
      expect(fields).toMatchObject({ error: 'access_denied', state: r.state, iss: s.url });
      expect(await clientSees(fields, r, cfg)).toBe('access_denied');
    });

    it.each([['fragment'], ['jwt'], ['form_post.jwt'], ['FORM_POST'], ['form_post ']])(
      'answers an unsupported response_mode (%j) by the query, the default, naming the supported modes',
      async (mode) => {
        const r = await request({ response_mode: mode });
        const res = await send(r.url);
        expect(res.status).toBe(302);
        expect(res.html).toBe('');
        const location = new URL(res.headers.get('location')!);
        expect(`${location.origin}${location.pathname}`).toBe(REDIRECT);
        expect(location.searchParams.get('error')).toBe('invalid_request');
        expect(location.searchParams.get('error_description')).toMatch(/query or form_post/);
        expect(location.searchParams.get('state')).toBe(r.state);
        expect(location.searchParams.get('iss')).toBe(s.url);
      },
    );
  });

  describe('a hostile state and a redirect URI with a query', () => {
    it.each<[string, boolean]>([['the controller (no session: an error)', false], ['the lean path (a signed-in user: a code)', true]])(
      'escapes every value through %s: the fields come back exactly, and the page has one form and one script',
      async (_, signedIn) => {
        const r = await request({ response_mode: 'form_post', redirect_uri: REDIRECT_Q, state: HOSTILE_STATE, ...(signedIn ? {} : { prompt: 'none' }) });
        const page = await send(r.url, signedIn ? { headers: { cookie: sso.cookieHeader() } } : {});
        const fields = formPost(page, REDIRECT_Q);
        expect(fields.state).toBe(HOSTILE_STATE);
        expect(page.html).not.toContain('<script>alert');
        expect(page.html).not.toContain('evil.example.com/"');
        expect(page.html).toContain('action="https://app.example.com/cb?tenant=1&amp;lang=en"');
        if (signedIn) {
          // openid-client drops a redirect URI's query (it takes the callback URL without it), so the code is redeemed by hand.
          const res = await postForm(s, '/oauth/token', { grant_type: 'authorization_code', code: fields.code, redirect_uri: REDIRECT_Q, code_verifier: r.verifier }, { authorization: basic(web.client_id, web.client_secret) });
          expect(res.status).toBe(200);
        } else {
          expect(fields.error).toBe('login_required');
        }
      },
    );
  });
});

/**
 * The page in a real browser: with JavaScript, its script (allowed by the CSP's hash) posts the
 * form by itself; without, the user's click on Continue does. The client's redirect URI is
 * intercepted, and what reaches it is redeemed.
 */
(existsSync(CHROMIUM) ? describe : describe.skip)('response_mode=form_post in Chromium', () => {
  const CALLBACK = 'http://127.0.0.1:9/callback';
  let s: TestServer;
  let chrome: Chromium;

  beforeAll(async () => {
    s = await startServer();
    await s.admin('POST', '/admin/users', USER);
    chrome = await chromium.launch({
      executablePath: CHROMIUM, headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    });
  }, 60_000);
  afterAll(async () => {
    await chrome?.close();
    await s?.close();
  });

  it.each([['with JavaScript: the script posts it', true], ['without JavaScript: the Continue button posts it', false]])('signs in, consents, and the form reaches the client %s', async (_, javaScriptEnabled) => {
    // A client of its own, so that its consent page comes.
    const client = (await s.admin('POST', '/admin/clients', { client_name: 'Form Post App', redirect_uris: [CALLBACK] })).body;
    const context = await chrome.newContext({ javaScriptEnabled });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('console', (m) => m.type() === 'error' && problems.push(m.text()));
    let received: { method: string; body: URLSearchParams } | undefined;
    await page.route(`${CALLBACK}**`, (route) => {
      received = { method: route.request().method(), body: new URLSearchParams(route.request().postData() ?? '') };
      return route.fulfill({ status: 200, contentType: 'text/html', body: '<p>app</p>' });
    });
    const verifier = oidc.randomPKCECodeVerifier();
    const params = new URLSearchParams({
      client_id: client.client_id, redirect_uri: CALLBACK, response_type: 'code', response_mode: 'form_post', scope: 'openid email', state: 'chromium-state',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
    });
    await page.goto(`${s.url}/authorize?${params}`);
    await page.fill('input[name=username]', USER.email);
    await page.fill('input[name=password]', USER.password);
    await page.click('button[type=submit]');
    await page.waitForSelector('button[name=decision][value=allow]');
    const arrived = page.waitForURL(CALLBACK);
    await page.click('button[name=decision][value=allow]');
    if (!javaScriptEnabled) {
      // The form post page stays until the user continues.
      await page.waitForSelector('form[method=post] button[type=submit]');
      expect(page.url()).toMatch(new RegExp(`^${s.url}/authorize/resume`));
      expect(received).toBeUndefined();
      await page.click('button[type=submit]');
    }
    await arrived;
    expect(received!.method).toBe('POST');
    expect(received!.body.get('state')).toBe('chromium-state');
    expect(received!.body.get('iss')).toBe(s.url);
    expect(problems).toEqual([]);
    const res = await postForm(s, '/oauth/token', { grant_type: 'authorization_code', code: received!.body.get('code')!, redirect_uri: CALLBACK, code_verifier: verifier }, { authorization: basic(client.client_id, client.client_secret) });
    expect(res.status).toBe(200);
    await context.close();
  }, 60_000);
});
