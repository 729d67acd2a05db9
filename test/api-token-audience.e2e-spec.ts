import { createHash, randomBytes } from 'node:crypto';
import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import { Browser, signIn } from './support/browser';
import { TestServer, basic, postForm, startServer } from './support/server';

const REDIRECT = 'https://app.example.com/callback';
const API = 'https://api.example.com/x';
const USER = { email: 'ada@example.com', password: 'correct horse battery staple' };

interface TokenBody {
  access_token: string;
  token_type: string;
  expires_in: number;
  scope: string;
  id_token?: string;
  refresh_token?: string;
}

/**
 * CONTRACT §2: a user's access token for an API (`audience` or `resource`) carries that API's
 * scopes only and has that API alone as `aud`; the OpenID scopes shape the ID token (and the refresh
 * token), and the token asked without an audience is the one that serves /userinfo.
 */
describe('access tokens for an API (end to end)', () => {
  let s: TestServer;
  let web: { client_id: string; client_secret: string };
  let userId: string;
  let browser: Browser;
  let jwks: ReturnType<typeof createRemoteJWKSet>;

  beforeAll(async () => {
    s = await startServer();
    const user = await s.admin('POST', '/admin/users', { ...USER, name: 'Ada Lovelace', email_verified: true });
    expect(user.status).toBe(201);
    userId = user.body.user_id;
    const api = await s.admin('POST', '/admin/apis', {
      identifier: API, name: 'X', scopes: [{ value: 'read:x', description: 'Read x' }, { value: 'write:x', description: 'Write x' }], allow_offline_access: true, token_lifetime: 900,
    });
    expect(api.status).toBe(201);
    const client = await s.admin('POST', '/admin/clients', { client_name: 'Web', redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'] });
    expect(client.status).toBe(201);
    web = client.body;
    browser = new Browser(s.url);
    jwks = createRemoteJWKSet(new URL(`${s.url}/.well-known/jwks.json`));
  });
  afterAll(() => s?.close());

  const token = async (form: Record<string, string>) => {
    const res = await postForm(s, '/oauth/token', form, { authorization: basic(web.client_id, web.client_secret) });
    return { status: res.status, body: (await res.json()) as TokenBody };
  };

  /** /authorize through the real login and consent pages, then the code at the token endpoint. */
  async function codeFlow(params: Record<string, string>): Promise<TokenBody> {
    const verifier = randomBytes(32).toString('base64url');
    const url = new URL('/authorize', s.url);
    url.search = new URLSearchParams({
      response_type: 'code', client_id: web.client_id, redirect_uri: REDIRECT, state: 'st', nonce: 'n0nce',
      code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256', ...params,
    }).toString();
    const page = await signIn(browser, url.toString(), USER);
    expect(page.url.startsWith(`${REDIRECT}?`)).toBe(true);
    const code = new URL(page.url).searchParams.get('code')!;
    const res = await token({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier });
    expect(res.status).toBe(200);
    return res.body;
  }

  const refresh = async (refreshToken: string, extra: Record<string, string> = {}) => {
    const res = await token({ grant_type: 'refresh_token', refresh_token: refreshToken, ...extra });
    expect(res.status).toBe(200);
    return res.body;
  };

  const userinfo = async (accessToken: string, method: 'GET' | 'POST' = 'GET') => {
    const res = await s.fetch('/userinfo', { method, headers: { authorization: `Bearer ${accessToken}` } });
    const text = await res.text();
    return { status: res.status, challenge: res.headers.get('www-authenticate') ?? '', body: text ? JSON.parse(text) : undefined };
  };

  /** The access token, verified as the API would verify it (RFC 9068: signature, issuer, typ, its own audience). */
  const verifiedForApi = async (accessToken: string) => (await jwtVerify(accessToken, jwks, { issuer: s.url, audience: API, typ: 'at+jwt' })).payload;

  /** The ID token, verified as the client would. */
  const idToken = async (jwt: string | undefined) => {
    expect(jwt).toEqual(expect.any(String));
    return (await jwtVerify(jwt!, jwks, { issuer: s.url, audience: web.client_id })).payload;
  };

  describe.each([['audience'], ['resource']])('named by %s', (param) => {
    it('has aud the API identifier alone (a string) and scope only the API\'s; the ID token still has the profile and email claims', async () => {
      const tokens = await codeFlow({ [param]: API, scope: 'openid profile email offline_access read:x' });
      // RFC 6749 §5.1: `scope` is the scope of the access token.
      expect(tokens.scope).toBe('read:x');
      expect(tokens.expires_in).toBe(900);
      const at = await verifiedForApi(tokens.access_token);
      expect(at.aud).toBe(API);
      expect(at).toMatchObject({ sub: userId, client_id: web.client_id, scope: 'read:x' });

      const id = await idToken(tokens.id_token);
      expect(id).toMatchObject({ sub: userId, nonce: 'n0nce', name: 'Ada Lovelace', email: USER.email, email_verified: true, at_hash: expect.any(String) });
      // offline_access still decides the refresh token, and the refresh token keeps the whole grant.
      expect(tokens.refresh_token).toEqual(expect.any(String));
    });

    it('keeps the split on refresh: an access token for the API only, and a new ID token', async () => {
      const first = await codeFlow({ [param]: API, scope: 'openid profile email offline_access read:x' });
      const refreshed = await refresh(first.refresh_token!);
      expect(refreshed.scope).toBe('read:x');
      const at = await verifiedForApi(refreshed.access_token);
      expect(at.aud).toBe(API);
      expect(at.scope).toBe('read:x');
      expect(await idToken(refreshed.id_token)).toMatchObject({ sub: userId, name: 'Ada Lovelace', email: USER.email, email_verified: true });

      // The rotated refresh token carries the same grant: the next refresh splits the same way.
      const again = await refresh(refreshed.refresh_token!);
      expect(again.scope).toBe('read:x');
      expect(decodeJwt(again.access_token)).toMatchObject({ aud: API, scope: 'read:x' });
      expect(again.id_token).toEqual(expect.any(String));
    });
  });

  it('narrows a refresh to the API scope alone: no ID token without openid', async () => {
    const first = await codeFlow({ audience: API, scope: 'openid email offline_access read:x write:x' });
    expect(first.scope).toBe('read:x write:x');
    const narrowed = await refresh(first.refresh_token!, { scope: 'read:x' });
    expect(narrowed.scope).toBe('read:x');
    expect(decodeJwt(narrowed.access_token)).toMatchObject({ aud: API, scope: 'read:x' });
    expect(narrowed).not.toHaveProperty('id_token');
  });

  it('gives a token for the API with no scope when only OpenID scopes were asked beside the audience', async () => {
    const tokens = await codeFlow({ audience: API, scope: 'openid profile' });
    expect(tokens.scope).toBe('');
    const at = await verifiedForApi(tokens.access_token);
    expect(at.aud).toBe(API);
    expect(at.scope).toBe('');
    expect(await idToken(tokens.id_token)).toMatchObject({ name: 'Ada Lovelace' });
    expect((await userinfo(tokens.access_token)).status).toBe(401);
  });

  it.each([['GET'], ['POST']] as const)('refuses a token for the API at /userinfo (%s): 401 invalid_token, wrong audience', async (method) => {
    const tokens = await codeFlow({ audience: API, scope: 'openid profile email offline_access read:x' });
    for (const accessToken of [tokens.access_token, (await refresh(tokens.refresh_token!)).access_token]) {
      const res = await userinfo(accessToken, method);
      expect(res.status).toBe(401);
      expect(res.body).toMatchObject({ error: 'invalid_token' });
      expect(res.challenge).toMatch(/^Bearer\b/);
      expect(res.challenge).toContain('error="invalid_token"');
    }
  });

  it('gives the token without audience for /userinfo, with the OpenID scopes, before and after a refresh', async () => {
    const tokens = await codeFlow({ scope: 'openid profile email offline_access' });
    expect(tokens.scope).toBe('openid profile email offline_access');
    for (const accessToken of [tokens.access_token, (await refresh(tokens.refresh_token!)).access_token]) {
      const { payload } = await jwtVerify(accessToken, jwks, { issuer: s.url, audience: `${s.url}/userinfo`, typ: 'at+jwt' });
      expect(payload.aud).toBe(`${s.url}/userinfo`);
      expect(payload.scope).toBe('openid profile email offline_access');
      const res = await userinfo(accessToken);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ sub: userId, name: 'Ada Lovelace', updated_at: expect.any(Number), email: USER.email, email_verified: true });
      await expect(jwtVerify(accessToken, jwks, { audience: API })).rejects.toThrow();
    }
  });
});
