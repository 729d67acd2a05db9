import * as oidc from 'openid-client';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { Browser, forms, signIn } from './support/browser';
import { TestServer, basic, postForm, startServer } from './support/server';

const REDIRECT = 'https://app.example.com/callback';
const API = 'https://api.example.com/orders';
const USER = { email: 'ada@example.com', password: 'correct horse battery staple' };

describe('Authorization Code Flow with openid-client', () => {
  let s: TestServer;
  let web: { client_id: string; client_secret: string };
  let config: oidc.Configuration;
  let userId: string;

  beforeAll(async () => {
    s = await startServer();
    userId = (await s.admin('POST', '/admin/users', { ...USER, name: 'Ada Lovelace', email_verified: true })).body.user_id;
    await s.admin('POST', '/admin/apis', { identifier: API, name: 'Orders', scopes: [{ value: 'read:orders', description: 'Read your orders' }], allow_offline_access: true, token_lifetime: 900 });
    web = (await s.admin('POST', '/admin/clients', {
      client_name: 'Web App', redirect_uris: [REDIRECT], post_logout_redirect_uris: ['https://app.example.com/bye'],
      grant_types: ['authorization_code', 'refresh_token'],
    })).body;
    config = await oidc.discovery(new URL(s.url), web.client_id, undefined, oidc.ClientSecretBasic(web.client_secret), { execute: [oidc.allowInsecureRequests] });
  });
  afterAll(() => s.close());

  async function authorize(browser: Browser, params: Record<string, string> = {}, consent: 'allow' | 'deny' = 'allow') {
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT, scope: 'openid profile email offline_access', code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256', state, nonce, ...params,
    });
    const page = await signIn(browser, url.toString(), USER, consent);
    return { page, verifier, state, nonce };
  }

  it('logs in through the real forms, consents, trades the code, validates the ID token, calls userinfo, refreshes', async () => {
    const browser = new Browser(s.url);
    const { page, verifier, state, nonce } = await authorize(browser);
    expect(page.url.startsWith(REDIRECT)).toBe(true);
    const callback = new URL(page.url);
    expect(callback.searchParams.get('iss')).toBe(s.url);
    expect(callback.searchParams.get('state')).toBe(state);

    const tokens = await oidc.authorizationCodeGrant(config, callback, { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
    expect(tokens.token_type.toLowerCase()).toBe('bearer');
    const claims = tokens.claims()!;
    expect(claims).toMatchObject({ iss: s.url, sub: userId, aud: web.client_id, nonce, name: 'Ada Lovelace', email: USER.email, email_verified: true });
    expect(claims.auth_time).toEqual(expect.any(Number));
    expect(claims.sid).toEqual(expect.any(String));
    expect(claims.at_hash).toEqual(expect.any(String));

    const jwks = createRemoteJWKSet(new URL(`${s.url}/.well-known/jwks.json`));
    const { payload: at, protectedHeader } = await jwtVerify(tokens.access_token, jwks, { issuer: s.url, audience: `${s.url}/userinfo`, typ: 'at+jwt' });
    expect(protectedHeader.typ).toBe('at+jwt');
    expect(at).toMatchObject({ sub: userId, client_id: web.client_id, scope: 'openid profile email offline_access' });

    const info = await oidc.fetchUserInfo(config, tokens.access_token, userId);
    expect(info).toMatchObject({ sub: userId, name: 'Ada Lovelace', email: USER.email, email_verified: true });

    expect(tokens.refresh_token).toEqual(expect.any(String));
    const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token!);
    expect(refreshed.access_token).not.toBe(tokens.access_token);
    expect(refreshed.refresh_token).not.toBe(tokens.refresh_token);
    expect(refreshed.claims()!.sub).toBe(userId);
  });

  it('skips the login for a second request in the same session (single sign-on) and remembers the consent', async () => {
    const browser = new Browser(s.url);
    await authorize(browser);
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT, scope: 'openid profile', code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()), code_challenge_method: 'S256', state: 'again',
    });
    const page = await browser.go(url.toString());
    expect(page.url.startsWith(REDIRECT)).toBe(true);
    expect(new URL(page.url).searchParams.get('code')).toEqual(expect.any(String));
  });

  it('gives an access token for the API named by audience, with its scopes, for the same flow', async () => {
    const browser = new Browser(s.url);
    const { page, verifier, state, nonce } = await authorize(browser, { audience: API, scope: 'openid read:orders delete:everything' });
    const tokens = await oidc.authorizationCodeGrant(config, new URL(page.url), { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
    const at = decodeJwt(tokens.access_token);
    // That API alone; openid shapes the ID token, not the API's token (CONTRACT §2).
    expect(at.aud).toBe(API);
    // Unknown scopes are dropped, as Auth0 does; `scope` is the access token's (RFC 6749 §5.1).
    expect(at.scope).toBe('read:orders');
    expect(tokens.scope).toBe('read:orders');
    expect(tokens.claims()).toMatchObject({ sub: userId, aud: web.client_id, nonce });
    expect(tokens.expires_in).toBe(900);
  });

  it('returns access_denied with state and iss when the user denies', async () => {
    const browser = new Browser(s.url);
    const other = (await s.admin('POST', '/admin/clients', { client_name: 'Other', redirect_uris: [REDIRECT] })).body;
    const cfg = await oidc.discovery(new URL(s.url), other.client_id, undefined, oidc.ClientSecretBasic(other.client_secret), { execute: [oidc.allowInsecureRequests] });
    const url = oidc.buildAuthorizationUrl(cfg, { redirect_uri: REDIRECT, scope: 'openid', state: 'xyz', code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()), code_challenge_method: 'S256' });
    const page = await signIn(browser, url.toString(), USER, 'deny');
    const back = new URL(page.url);
    expect(back.searchParams.get('error')).toBe('access_denied');
    expect(back.searchParams.get('state')).toBe('xyz');
    expect(back.searchParams.get('iss')).toBe(s.url);
  });

  it('shows the login form again, with one message, for a wrong password', async () => {
    const browser = new Browser(s.url);
    const url = oidc.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope: 'openid', code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()), code_challenge_method: 'S256' });
    const login = await browser.go(url.toString());
    const [form] = forms(login.html);
    expect(Object.keys(form.fields)).toEqual(expect.arrayContaining(['username', 'password', '_csrf', 'interaction']));
    const wrong = await browser.submit(login, form, { username: USER.email, password: 'nope' });
    const unknown = await browser.submit(login, form, { username: 'nobody@example.com', password: 'nope' });
    expect(wrong.status).toBe(unknown.status);
    const message = (html: string) => /role="alert">([^<]*)</.exec(html)?.[1];
    expect(message(wrong.html)).toBe('Wrong email or password.');
    expect(message(unknown.html)).toBe(message(wrong.html));
  });

  it('revokes, introspects and logs out with openid-client', async () => {
    const browser = new Browser(s.url);
    const { page, verifier, state, nonce } = await authorize(browser);
    const tokens = await oidc.authorizationCodeGrant(config, new URL(page.url), { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
    expect((await oidc.tokenIntrospection(config, tokens.access_token)).active).toBe(true);
    await oidc.tokenRevocation(config, tokens.access_token);
    expect((await oidc.tokenIntrospection(config, tokens.access_token)).active).toBe(false);
    await expect(oidc.fetchUserInfo(config, tokens.access_token, userId)).rejects.toThrow();

    const logout = oidc.buildEndSessionUrl(config, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: 'https://app.example.com/bye', state: 'bye' });
    const after = await browser.go(logout.toString());
    expect(after.url).toBe('https://app.example.com/bye?state=bye');
    // The session is over: prompt=none now answers login_required.
    const silent = oidc.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope: 'openid', prompt: 'none', state: 's', code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()), code_challenge_method: 'S256' });
    const res = await browser.go(silent.toString());
    expect(new URL(res.url).searchParams.get('error')).toBe('login_required');
  });

  it('refuses the token request of a client authenticating with the wrong secret', async () => {
    const res = await postForm(s, '/oauth/token', { grant_type: 'authorization_code', code: 'x', redirect_uri: REDIRECT }, { authorization: basic(web.client_id, 'wrong') });
    expect(res.status).toBe(401);
  });
});
