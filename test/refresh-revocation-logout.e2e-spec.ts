import { createHash, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { SignJWT, decodeJwt, decodeProtectedHeader } from 'jose';
import { DataSource } from 'typeorm';
import { KeysService } from '@idp/keys';
import { TokenIssuer } from '@idp/token';
import { Browser, forms, signIn } from './support/browser';
import { TestServer, basic, postForm, startServer } from './support/server';

/**
 * Refresh tokens, rotation and reuse detection, revocation (RFC 7009), introspection (RFC 7662),
 * UserInfo, blocked users, RP-initiated logout and the admin's view of a user's grants: end to
 * end over HTTP against the real server (CONTRACT §2, §3, §4).
 */

const REDIRECT = 'https://app.example.com/callback';
const LOGGED_OUT = 'https://app.example.com/bye';
const OFFLINE_API = 'https://api.example.com/offline';
const ONLINE_API = 'https://api.example.com/online';
const USER = { email: 'grace@example.com', password: 'correct horse battery staple' };

interface Registered {
  client_id: string;
  client_secret?: string;
}

interface HttpResult {
  status: number;
  body: any;
  headers: Headers;
}

describe('refresh tokens, revocation, introspection, userinfo and logout (end to end)', () => {
  let s: TestServer;
  let userId: string;
  /** Confidential, first-party, refresh_token grant, rotation on (the default). */
  let web: Registered;
  /** Another confidential client with the refresh_token grant ("client B"). */
  let other: Registered;
  /** Confidential, without the refresh_token grant. */
  let noRefreshGrant: Registered;
  /** Confidential with refresh_token_rotation false. */
  let noRotation: Registered;
  /** Public (token_endpoint_auth_method none), refresh_token grant. */
  let spa: Registered;
  /** Public client used for introspection refusal. */
  let publicIntrospector: Registered;
  /** One signed-in browser for the user, reused where the session itself is not under test. */
  let browser: Browser;

  beforeAll(async () => {
    s = await startServer();
    const user = await s.admin('POST', '/admin/users', { ...USER, name: 'Grace Hopper', email_verified: true });
    expect(user.status).toBe(201);
    userId = user.body.user_id;
    for (const [identifier, allow] of [[OFFLINE_API, true], [ONLINE_API, false]] as const) {
      const api = await s.admin('POST', '/admin/apis', {
        identifier, name: identifier, scopes: [{ value: 'read:things', description: 'Read your things' }], allow_offline_access: allow, token_lifetime: 600,
      });
      expect(api.status).toBe(201);
    }
    const register = async (metadata: Record<string, unknown>): Promise<Registered> => {
      const res = await s.admin('POST', '/admin/clients', {
        redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'], first_party: true, ...metadata,
      });
      expect(res.status).toBe(201);
      return res.body;
    };
    web = await register({ client_name: 'Web', post_logout_redirect_uris: [LOGGED_OUT] });
    other = await register({ client_name: 'Other' });
    noRefreshGrant = await register({ client_name: 'No refresh grant', grant_types: ['authorization_code'] });
    noRotation = await register({ client_name: 'No rotation', refresh_token_rotation: false });
    spa = await register({ client_name: 'SPA', token_endpoint_auth_method: 'none' });
    publicIntrospector = await register({ client_name: 'Public', token_endpoint_auth_method: 'none' });
    browser = new Browser(s.url);
  });
  afterAll(() => s?.close());

  // ---------------------------------------------------------------- helpers

  const json = async (res: Response): Promise<HttpResult> => {
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
  };

  /** A form POST to a client-authenticated endpoint: Basic for a confidential client, client_id for a public one. */
  const clientPost = async (client: Registered, path: string, form: Record<string, string>, headers: Record<string, string> = {}): Promise<HttpResult> => {
    const auth: Record<string, string> = client.client_secret ? { authorization: basic(client.client_id, client.client_secret) } : {};
    const body = client.client_secret ? form : { client_id: client.client_id, ...form };
    return json(await postForm(s, path, body, { ...auth, ...headers }));
  };

  /** Runs /authorize through the real login (and consent) pages; returns the code and PKCE verifier. */
  async function authorize(b: Browser, client: Registered, params: Record<string, string> = {}, user = USER) {
    const verifier = randomBytes(32).toString('base64url');
    const state = randomBytes(8).toString('hex');
    const url = new URL('/authorize', s.url);
    url.search = new URLSearchParams({
      response_type: 'code', client_id: client.client_id, redirect_uri: REDIRECT, scope: 'openid offline_access', state,
      nonce: randomBytes(8).toString('hex'), code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256',
      ...params,
    }).toString();
    const page = await signIn(b, url.toString(), user);
    expect(page.url.startsWith(`${REDIRECT}?`)).toBe(true);
    const callback = new URL(page.url);
    expect(callback.searchParams.get('state')).toBe(state);
    const code = callback.searchParams.get('code');
    expect(code).toEqual(expect.any(String));
    return { code: code!, verifier };
  }

  /** The whole flow: authorize, then trade the code at the token endpoint (optionally with extra headers). */
  async function login(client: Registered, params: Record<string, string> = {}, opts: { headers?: Record<string, string>; browser?: Browser; user?: typeof USER } = {}) {
    const { code, verifier } = await authorize(opts.browser ?? browser, client, params, opts.user);
    const res = await clientPost(client, '/oauth/token', { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier }, opts.headers);
    expect(res.status).toBe(200);
    return res.body as { access_token: string; refresh_token?: string; id_token?: string; scope: string };
  }

  const hinted = (hint: string | undefined): Record<string, string> => (hint ? { token_type_hint: hint } : {});
  const refresh = (client: Registered, refreshToken: string, extra: Record<string, string> = {}) =>
    clientPost(client, '/oauth/token', { grant_type: 'refresh_token', refresh_token: refreshToken, ...extra });
  const revoke = (client: Registered, token: string, extra: Record<string, string> = {}) => clientPost(client, '/oauth/revoke', { token, ...extra });
  const introspect = (client: Registered, token: string, extra: Record<string, string> = {}) => clientPost(client, '/oauth/introspect', { token, ...extra });
  const userinfo = async (accessToken: string | undefined, method: 'GET' | 'POST' = 'GET') =>
    json(await s.fetch('/userinfo', { method, headers: accessToken === undefined ? {} : { authorization: `Bearer ${accessToken}` } }));

  /** RFC 6750 §3: 401 with a Bearer challenge naming invalid_token. */
  const expectInvalidToken = (res: HttpResult) => {
    expect(res.status).toBe(401);
    const challenge = res.headers.get('www-authenticate') ?? '';
    expect(challenge).toMatch(/^Bearer\b/);
    expect(challenge).toContain('error="invalid_token"');
  };
  const expectInvalidGrant = (res: HttpResult) => {
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_grant');
  };

  // ---------------------------------------------------------------- issuance

  describe('refresh token issuance', () => {
    it.each<[string, () => Registered, Record<string, string>, Record<string, string>, boolean]>([
      ['offline_access requested and granted, refresh_token grant registered', () => web, { scope: 'openid offline_access' }, {}, true],
      ['no offline_access requested', () => web, { scope: 'openid profile' }, {}, false],
      ['the client lacks the refresh_token grant', () => noRefreshGrant, { scope: 'openid offline_access' }, {}, false],
      ['the API named by audience allows offline access', () => web, { scope: 'openid read:things offline_access', audience: OFFLINE_API }, {}, true],
      ['the API named by audience has allow_offline_access false', () => web, { scope: 'openid read:things offline_access', audience: ONLINE_API }, {}, false],
      ['a confidential client\'s token request carries an Origin header', () => web, { scope: 'openid offline_access' }, { origin: 'https://app.example.com' }, false],
    ])('%s', async (_name, client, params, headers, issued) => {
      const tokens = await login(client(), params, { headers });
      if (issued) {
        expect(tokens.refresh_token).toEqual(expect.any(String));
        // The response's scope is the access token's (RFC 6749 §5.1; an API's token has only the
        // API's scopes); offline_access is in the grant the refresh token carries.
        expect(tokens.scope).toBe(decodeJwt(tokens.access_token).scope);
        expect((await introspect(client(), tokens.refresh_token!)).body.scope.split(' ')).toContain('offline_access');
        expect((await refresh(client(), tokens.refresh_token!)).status).toBe(200);
      } else {
        expect(tokens.refresh_token).toBeUndefined();
      }
    });

    it('gives a public client (PKCE, rotation on by default) a refresh token, and none once rotation is switched off', async () => {
      const pub = (await s.admin('POST', '/admin/clients', {
        client_name: 'Public SPA', redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_method: 'none', first_party: true,
      })).body as Registered;
      expect(pub.client_secret).toBeUndefined();
      const before = await login(pub);
      expect(before.refresh_token).toEqual(expect.any(String));

      const patched = await s.admin('PATCH', `/admin/clients/${pub.client_id}`, { refresh_token_rotation: false });
      expect(patched.status).toBe(200);
      expect(patched.body.refresh_token_rotation).toBe(false);
      const after = await login(pub);
      expect(after.access_token).toEqual(expect.any(String));
      expect(after.refresh_token).toBeUndefined();
    });
  });

  // ---------------------------------------------------------------- rotation

  describe('rotation and reuse detection', () => {
    it('returns a new refresh token on each use; a used one is invalid_grant and revokes the whole family', async () => {
      const t0 = await login(web, { scope: 'openid email offline_access' });
      const r1 = await refresh(web, t0.refresh_token!);
      expect(r1.status).toBe(200);
      expect(r1.headers.get('cache-control')).toBe('no-store');
      const r2 = await refresh(web, r1.body.refresh_token);
      expect(r2.status).toBe(200);
      const refreshTokens = [t0.refresh_token, r1.body.refresh_token, r2.body.refresh_token];
      const accessTokens = [t0.access_token, r1.body.access_token, r2.body.access_token];
      expect(new Set(refreshTokens).size).toBe(3);
      expect(new Set(accessTokens).size).toBe(3);
      // Before the reuse, the newest tokens work.
      expect((await userinfo(r2.body.access_token)).status).toBe(200);
      expect((await introspect(web, r2.body.refresh_token)).body.active).toBe(true);

      // The first token again: reuse.
      expectInvalidGrant(await refresh(web, t0.refresh_token!));
      // The whole family is gone: the newest refresh token too...
      expectInvalidGrant(await refresh(web, r2.body.refresh_token));
      expect((await introspect(web, r2.body.refresh_token)).body).toEqual({ active: false });
      // ...and every access token issued from it.
      for (const at of accessTokens) {
        expectInvalidToken(await userinfo(at));
        expect((await introspect(other, at)).body).toEqual({ active: false });
      }
    });

    it('lets exactly one of 20 parallel uses of one refresh token succeed, and treats the others as reuse', async () => {
      const t0 = await login(web);
      const results = await Promise.all(Array.from({ length: 20 }, () => refresh(web, t0.refresh_token!)));
      const ok = results.filter((r) => r.status === 200);
      expect(ok).toHaveLength(1);
      for (const r of results.filter((x) => x.status !== 200)) expectInvalidGrant(r);
      // The losers presented a used token: the family is revoked, including the winner's new tokens.
      expectInvalidGrant(await refresh(web, ok[0].body.refresh_token));
      expectInvalidToken(await userinfo(ok[0].body.access_token));
    });

    it('narrows the scope on refresh (scope=openid) and never widens it (invalid_scope)', async () => {
      const t0 = await login(web, { scope: 'openid email offline_access' });
      const wider = await refresh(web, t0.refresh_token!, { scope: 'openid email profile' });
      expect(wider.status).toBe(400);
      expect(wider.body.error).toBe('invalid_scope');

      const narrow = await refresh(web, t0.refresh_token!, { scope: 'openid' });
      expect(narrow.status).toBe(200);
      expect(narrow.body.scope).toBe('openid');
      expect(decodeJwt(narrow.body.access_token).scope).toBe('openid');
      expect((await userinfo(narrow.body.access_token)).body).toEqual({ sub: userId });

      const stillNotWider = await refresh(web, narrow.body.refresh_token, { scope: 'openid profile' });
      expect(stillNotWider.status).toBe(400);
      expect(stillNotWider.body.error).toBe('invalid_scope');
    });

    // The replica that issued a refresh token answers its first lookup from memory; the database still decides.
    describe('changed in the database after it was issued (by another replica, say)', () => {
      const change = async (token: string, set: string) => {
        const db = s.app.get(DataSource);
        const p = db.options.type === 'postgres' ? '$1' : '?';
        await db.query(`UPDATE refresh_tokens SET ${set} WHERE token_hash = ${p}`, [s.app.get(TokenIssuer).hashRefreshToken(token)]);
      };
      it.each([
        ['revoked', 'revoked_at = created_at'],
        ['expired', 'expires_at = created_at'],
      ])('refuses even the first use of a refresh token %s meanwhile, rotated or not', async (_, set) => {
        for (const client of [web, noRotation]) {
          const t0 = await login(client);
          await change(t0.refresh_token!, set);
          expectInvalidGrant(await refresh(client, t0.refresh_token!));
        }
      });

      it('treats the first use of a refresh token used meanwhile as reuse: the family is revoked', async () => {
        const t0 = await login(web);
        const r1 = await refresh(web, t0.refresh_token!);
        expect(r1.status).toBe(200);
        await change(r1.body.refresh_token, 'used_at = created_at');
        expectInvalidGrant(await refresh(web, r1.body.refresh_token));
        expectInvalidToken(await userinfo(r1.body.access_token));
      });
    });

    it('refuses client A\'s refresh token presented by client B with invalid_grant', async () => {
      const t0 = await login(web);
      expectInvalidGrant(await refresh(other, t0.refresh_token!));
      expectInvalidGrant(await refresh(spa, t0.refresh_token!));
    });

    it('lets a confidential client with refresh_token_rotation false use the same refresh token twice', async () => {
      const t0 = await login(noRotation);
      expect(t0.refresh_token).toEqual(expect.any(String));
      const first = await refresh(noRotation, t0.refresh_token!);
      const second = await refresh(noRotation, t0.refresh_token!);
      expect(first.status).toBe(200);
      expect(second.status).toBe(200);
      expect(second.body.access_token).not.toBe(first.body.access_token);
      for (const r of [first, second]) expect(r.body.refresh_token === undefined || r.body.refresh_token === t0.refresh_token).toBe(true);
      expect((await userinfo(first.body.access_token)).status).toBe(200);
      expect((await userinfo(second.body.access_token)).status).toBe(200);
    });
  });

  // ---------------------------------------------------------------- revocation

  describe('revocation (RFC 7009)', () => {
    it.each([[undefined], ['refresh_token'], ['access_token']])('revoking a refresh token (hint %s) revokes its family', async (hint) => {
      const t0 = await login(web);
      const r1 = await refresh(web, t0.refresh_token!);
      expect(r1.status).toBe(200);
      const res = await revoke(web, r1.body.refresh_token, hinted(hint));
      expect(res.status).toBe(200);
      expectInvalidGrant(await refresh(web, r1.body.refresh_token));
      expectInvalidToken(await userinfo(r1.body.access_token));
      expectInvalidToken(await userinfo(t0.access_token));
      expect((await introspect(web, r1.body.refresh_token)).body).toEqual({ active: false });
    });

    it.each([[undefined], ['access_token'], ['refresh_token']])('revoking an access token (hint %s) makes /userinfo answer 401 and introspection active:false', async (hint) => {
      const t0 = await login(web);
      expect((await userinfo(t0.access_token)).status).toBe(200);
      const res = await revoke(web, t0.access_token, hinted(hint));
      expect(res.status).toBe(200);
      expectInvalidToken(await userinfo(t0.access_token));
      expect((await introspect(other, t0.access_token)).body).toEqual({ active: false });
    });

    it('treats revoking another client\'s tokens as a 200 no-op: they keep working', async () => {
      const t0 = await login(web);
      expect((await revoke(other, t0.access_token)).status).toBe(200);
      expect((await revoke(other, t0.refresh_token!)).status).toBe(200);
      expect((await revoke(spa, t0.refresh_token!)).status).toBe(200);
      expect((await userinfo(t0.access_token)).status).toBe(200);
      expect((await introspect(other, t0.access_token)).body.active).toBe(true);
      expect((await refresh(web, t0.refresh_token!)).status).toBe(200);
    });

    it('answers 200 for an unknown token', async () => {
      const res = await revoke(web, 'not-a-token-we-ever-issued');
      expect(res.status).toBe(200);
    });

    // RFC 7009 §2.2: an invalid token is no error, whatever its length (up to the body limit) or shape.
    it.each<[string, string]>([
      ['empty', ''],
      ['10,000 characters', 'a'.repeat(10_000)],
      ['60,000 characters with dots', `${'x'.repeat(20_000)}.${'y'.repeat(20_000)}.${'z'.repeat(19_998)}`],
      ['10,000 non-ASCII characters', 'é'.repeat(10_000)],
    ])('answers 200 {} for a token it does not recognise: %s', async (_name, token) => {
      const res = await revoke(web, token);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({});
    });

    it('answers 400 invalid_request without a token', async () => {
      const res = await clientPost(web, '/oauth/revoke', {});
      expect(res.status).toBe(400);
      expect(res.body.error).toBe('invalid_request');
    });

    it.each<[string, Record<string, string>, Record<string, string>]>([
      ['a wrong secret (Basic)', {}, { authorization: basic('x', 'y') }],
      ['no client authentication at all', {}, {}],
      ['a wrong secret (post)', { client_id: 'x', client_secret: 'y' }, {}],
    ])('answers 401 invalid_client for %s', async (_name, form, headers) => {
      const t0 = await login(web);
      const res = await json(await postForm(s, '/oauth/revoke', { token: t0.access_token, ...form }, headers));
      expect(res.status).toBe(401);
      expect(res.body.error).toBe('invalid_client');
      if (headers.authorization) expect(res.headers.get('www-authenticate')).toMatch(/^Basic/);
      // Nothing was revoked.
      expect((await userinfo(t0.access_token)).status).toBe(200);
    });

    it('answers 401 for a real client with the wrong secret', async () => {
      const t0 = await login(web);
      const res = await json(await postForm(s, '/oauth/revoke', { token: t0.access_token }, { authorization: basic(web.client_id, 'wrong-secret') }));
      expect(res.status).toBe(401);
      expect(res.body.error).toBe('invalid_client');
      expect((await userinfo(t0.access_token)).status).toBe(200);
    });
  });

  // ---------------------------------------------------------------- introspection

  describe('introspection (RFC 7662)', () => {
    it('describes an active access token', async () => {
      const t0 = await login(web, { scope: 'openid email offline_access' });
      const res = await introspect(other, t0.access_token);
      expect(res.status).toBe(200);
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(res.body).toMatchObject({ active: true, scope: 'openid email offline_access', client_id: web.client_id, sub: userId, iss: s.url });
      expect(res.body.exp).toEqual(expect.any(Number));
      expect(res.body.iat).toEqual(expect.any(Number));
      expect(res.body.exp).toBeGreaterThan(Math.floor(Date.now() / 1000));
      expect(res.body.iat).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + 5);
    });

    it.each([[undefined], ['refresh_token'], ['access_token']])('describes a refresh token (hint %s) to its own client only', async (hint) => {
      const t0 = await login(web);
      const extra = hinted(hint);
      const own = await introspect(web, t0.refresh_token!, extra);
      expect(own.status).toBe(200);
      expect(own.headers.get('cache-control')).toBe('no-store');
      expect(own.body).toMatchObject({ active: true, token_type: 'refresh_token', client_id: web.client_id, sub: userId });
      const foreign = await introspect(other, t0.refresh_token!, extra);
      expect(foreign.status).toBe(200);
      expect(foreign.body).toEqual({ active: false });
    });

    it('refuses a public client with 401 invalid_client', async () => {
      const t0 = await login(web);
      const res = await introspect(publicIntrospector, t0.access_token);
      expect(res.status).toBe(401);
      expect(res.body.error).toBe('invalid_client');
      expect(res.body.active).toBeUndefined();
    });

    it.each([['junk'], ['eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.'], ['a.b.c']])('answers active:false for junk (%s), with Cache-Control: no-store', async (token) => {
      const res = await introspect(other, token);
      expect(res.status).toBe(200);
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(res.body).toEqual({ active: false });
    });
  });

  // ---------------------------------------------------------------- userinfo

  describe('UserInfo', () => {
    /**
     * A token signed with the server's current key (so the signature is good) but expired. Made
     * in process: over HTTP the shortest access token lives 60 s.
     */
    async function expiredToken(): Promise<string> {
      const now = Math.floor(Date.now() / 1000);
      return s.app.get(KeysService).sign(
        { iss: s.url, sub: userId, aud: `${s.url}/userinfo`, client_id: web.client_id, scope: 'openid', jti: randomUUID(), iat: now - 7200, exp: now - 3600 },
        { typ: 'at+jwt' },
      );
    }

    /** A valid token's claims signed by a key that is not ours, under our kid. */
    async function forgedToken(): Promise<string> {
      const t = await login(web, { scope: 'openid' });
      const { kid, alg } = decodeProtectedHeader(t.access_token);
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      return new SignJWT(decodeJwt(t.access_token)).setProtectedHeader({ alg: alg!, kid, typ: 'at+jwt' }).sign(privateKey);
    }

    it('answers 401 with a Bearer challenge when no token is sent (RFC 6750 §3.1: no error code then)', async () => {
      const res = await userinfo(undefined);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer\b/);
    });

    it.each<[string, () => Promise<string>]>([
      ['malformed (not a JWT)', async () => 'not-a-jwt'],
      ['malformed (three garbage parts)', async () => 'aaa.bbb.ccc'],
      ['signed by another key', forgedToken],
      ['tampered (signature of other claims)', async () => {
        const t = await login(web, { scope: 'openid' });
        const [h, , sig] = t.access_token.split('.');
        const claims = Buffer.from(JSON.stringify({ ...decodeJwt(t.access_token), sub: 'someone-else' })).toString('base64url');
        return `${h}.${claims}.${sig}`;
      }],
      ['expired', expiredToken],
      ['revoked', async () => {
        const t = await login(web, { scope: 'openid' });
        expect((await revoke(web, t.access_token)).status).toBe(200);
        return t.access_token;
      }],
    ])('answers 401 error="invalid_token" for a %s access token', async (_name, make) => {
      const token = await make();
      for (const method of ['GET', 'POST'] as const) expectInvalidToken(await userinfo(token, method));
    });

    it('refuses a client_credentials token (no user)', async () => {
      const worker = (await s.admin('POST', '/admin/clients', { client_name: 'Worker', grant_types: ['client_credentials'] })).body as Registered;
      expect((await s.admin('POST', '/admin/client-grants', { client_id: worker.client_id, audience: OFFLINE_API, scope: ['read:things'] })).status).toBe(201);
      const cc = await clientPost(worker, '/oauth/token', { grant_type: 'client_credentials', audience: OFFLINE_API });
      expect(cc.status).toBe(200);
      const res = await userinfo(cc.body.access_token);
      expect(res.status).toBe(401);
      expect(res.body.sub).toBeUndefined();
      expectInvalidToken(res);
    });

    it('answers POST /userinfo like GET, with Cache-Control: no-store', async () => {
      const t = await login(web, { scope: 'openid email' });
      const get = await userinfo(t.access_token, 'GET');
      const post = await userinfo(t.access_token, 'POST');
      expect(post.status).toBe(200);
      expect(post.body).toEqual(get.body);
      expect(post.body.sub).toBe(userId);
      expect(post.headers.get('cache-control')).toBe('no-store');
    });

    it.each<[string, string[], string[]]>([
      ['openid', ['sub'], ['email', 'email_verified', 'name', 'updated_at']],
      ['openid email', ['sub', 'email', 'email_verified'], ['name', 'updated_at']],
      ['openid profile', ['sub', 'name', 'updated_at'], ['email', 'email_verified']],
      ['openid profile email', ['sub', 'name', 'updated_at', 'email', 'email_verified'], []],
    ])('returns the claims of scope "%s"', async (scope, present, absent) => {
      const t = await login(web, { scope });
      const res = await userinfo(t.access_token);
      expect(res.status).toBe(200);
      for (const c of present) expect(res.body).toHaveProperty(c);
      for (const c of absent) expect(res.body).not.toHaveProperty(c);
      expect(res.body.sub).toBe(userId);
      if (scope === 'openid') expect(res.body).toEqual({ sub: userId });
      if (present.includes('email')) expect(res.body).toMatchObject({ email: USER.email, email_verified: true });
      if (present.includes('name')) {
        expect(res.body.name).toBe('Grace Hopper');
        expect(res.body.updated_at).toEqual(expect.any(Number));
      }
    });
  });

  // ---------------------------------------------------------------- blocked user

  describe('a blocked user', () => {
    it('is refused by the login form with the wrong-password message, and loses their refresh tokens', async () => {
      const blocked = { email: 'blocked@example.com', password: 'another good long passphrase' };
      const created = await s.admin('POST', '/admin/users', { ...blocked, name: 'Soon Blocked' });
      expect(created.status).toBe(201);
      const t0 = await login(web, {}, { browser: new Browser(s.url), user: blocked });
      expect(t0.refresh_token).toEqual(expect.any(String));

      expect((await s.admin('PATCH', `/admin/users/${created.body.user_id}`, { blocked: true })).status).toBe(200);

      const b = new Browser(s.url);
      const url = `/authorize?${new URLSearchParams({
        response_type: 'code', client_id: web.client_id, redirect_uri: REDIRECT, scope: 'openid', state: 's',
        code_challenge: createHash('sha256').update(randomBytes(32).toString('base64url')).digest('base64url'), code_challenge_method: 'S256',
      })}`;
      const loginPage = await b.go(url);
      const [form] = forms(loginPage.html);
      const message = (html: string) => /role="alert">([^<]*)</.exec(html)?.[1];
      const wrong = await b.submit(loginPage, form, { username: USER.email, password: 'not the password' });
      const refused = await b.submit(loginPage, form, { username: blocked.email, password: blocked.password });
      expect(message(wrong.html)).toEqual(expect.any(String));
      expect(message(refused.html)).toBe(message(wrong.html));
      expect(refused.status).toBe(wrong.status);
      expect(refused.url).not.toContain(REDIRECT);
      expect(forms(refused.html)[0].fields).toHaveProperty('password');

      expectInvalidGrant(await refresh(web, t0.refresh_token!));
      expectInvalidToken(await userinfo(t0.access_token));
    });
  });

  // ---------------------------------------------------------------- logout

  describe('RP-initiated logout at /oidc/logout', () => {
    const silentAuthorize = async (b: Browser) => {
      const page = await b.go(`/authorize?${new URLSearchParams({
        response_type: 'code', client_id: web.client_id, redirect_uri: REDIRECT, scope: 'openid', prompt: 'none', state: 'silent',
        code_challenge: createHash('sha256').update(randomBytes(32).toString('base64url')).digest('base64url'), code_challenge_method: 'S256',
      })}`);
      expect(page.url.startsWith(`${REDIRECT}?`)).toBe(true);
      return new URL(page.url).searchParams;
    };

    it('with a valid id_token_hint and a registered post_logout_redirect_uri: redirects there with state and ends the session', async () => {
      const b = new Browser(s.url);
      const t = await login(web, { scope: 'openid' }, { browser: b });
      expect((await silentAuthorize(b)).get('code')).toEqual(expect.any(String));
      const page = await b.go(`/oidc/logout?${new URLSearchParams({ id_token_hint: t.id_token!, post_logout_redirect_uri: LOGGED_OUT, state: 'bye-state' })}`);
      expect(page.status).toBeGreaterThanOrEqual(300);
      expect(page.status).toBeLessThan(400);
      const to = new URL(page.url);
      expect(`${to.origin}${to.pathname}`).toBe(LOGGED_OUT);
      expect(to.searchParams.get('state')).toBe('bye-state');
      expect((await silentAuthorize(b)).get('error')).toBe('login_required');
    });

    it.each([['https://evil.example.com/bye'], [`${LOGGED_OUT}/extra`], [REDIRECT]])('shows a 400 page for the unregistered post_logout_redirect_uri %s and never redirects', async (uri) => {
      const b = new Browser(s.url);
      const t = await login(web, { scope: 'openid' }, { browser: b });
      const res = await s.fetch(`/oidc/logout?${new URLSearchParams({ id_token_hint: t.id_token!, post_logout_redirect_uri: uri, state: 'x' })}`, {
        redirect: 'manual', headers: { cookie: b.cookieHeader() },
      });
      expect(res.status).toBe(400);
      expect(res.headers.get('location')).toBeNull();
      expect(res.headers.get('content-type')).toMatch(/text\/html/);
    });

    it('without id_token_hint asks for confirmation (CSRF-protected form) and ends the session once confirmed', async () => {
      const b = new Browser(s.url);
      await login(web, { scope: 'openid' }, { browser: b });
      const page = await b.go('/oidc/logout');
      expect(page.status).toBe(200);
      const form = forms(page.html).find((f) => f.buttons.some((x) => x.name === 'confirm'));
      expect(form).toBeDefined();
      expect(form!.method.toLowerCase()).toBe('post');
      expect(form!.fields._csrf).toEqual(expect.any(String));
      expect(page.html).toMatch(/<input[^>]*type="hidden"[^>]*name="_csrf"|<input[^>]*name="_csrf"[^>]*type="hidden"/);
      // Merely showing the page does not sign the user out.
      expect((await silentAuthorize(b)).get('code')).toEqual(expect.any(String));

      const confirm = form!.buttons.find((x) => x.name === 'confirm')!;
      const done = await b.submit(page, form!, {}, confirm);
      expect(done.status).toBe(200);
      expect((await silentAuthorize(b)).get('error')).toBe('login_required');
    });

    it.each<[string, (fields: Record<string, string>) => Record<string, string>]>([
      ['without the CSRF field', ({ _csrf, ...rest }) => rest],
      ['with a wrong CSRF value', (fields) => ({ ...fields, _csrf: 'forged' })],
    ])('does not end the session when the confirmation is submitted %s', async (_name, tamper) => {
      const b = new Browser(s.url);
      await login(web, { scope: 'openid' }, { browser: b });
      const page = await b.go('/oidc/logout');
      const form = forms(page.html).find((f) => f.buttons.some((x) => x.name === 'confirm'))!;
      const confirm = form.buttons.find((x) => x.name === 'confirm')!;
      await b.go(new URL(form.action || page.url, page.url).toString(), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ ...tamper(form.fields), [confirm.name]: confirm.value }),
      });
      expect((await silentAuthorize(b)).get('code')).toEqual(expect.any(String));
    });
  });

  // ---------------------------------------------------------------- admin grants

  describe('admin: a user\'s grants', () => {
    it('lists the consent given to a third-party client; deleting it revokes its refresh tokens and brings the consent page back', async () => {
      const thirdParty = (await s.admin('POST', '/admin/clients', {
        client_name: 'Third Party', redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'],
      })).body as Registered;
      const b = new Browser(s.url);
      const t0 = await login(thirdParty, { scope: 'openid email offline_access' }, { browser: b });
      expect(t0.refresh_token).toEqual(expect.any(String));

      const list = await s.admin('GET', `/admin/users/${userId}/grants`);
      expect(list.status).toBe(200);
      const grant = list.body.items.find((g: { client_id: string }) => g.client_id === thirdParty.client_id);
      expect(grant).toMatchObject({ id: expect.any(String), user_id: userId, client_id: thirdParty.client_id });
      expect(grant.scope).toEqual(expect.arrayContaining(['openid', 'email', 'offline_access']));

      // Silent re-authorization works while the consent stands.
      const authorizeUrl = `/authorize?${new URLSearchParams({
        response_type: 'code', client_id: thirdParty.client_id, redirect_uri: REDIRECT, scope: 'openid email offline_access', state: 'again',
        code_challenge: createHash('sha256').update(randomBytes(32).toString('base64url')).digest('base64url'), code_challenge_method: 'S256',
      })}`;
      expect((await b.go(authorizeUrl)).url.startsWith(`${REDIRECT}?`)).toBe(true);

      const del = await s.admin('DELETE', `/admin/users/${userId}/grants/${grant.id}`);
      expect(del.status).toBe(204);
      expectInvalidGrant(await refresh(thirdParty, t0.refresh_token!));
      const after = await s.admin('GET', `/admin/users/${userId}/grants`);
      expect(after.body.items.some((g: { id: string }) => g.id === grant.id)).toBe(false);

      const consentAgain = await b.go(authorizeUrl);
      expect(consentAgain.url).toContain('/consent');
      expect(forms(consentAgain.html)[0].buttons).toEqual(expect.arrayContaining([{ name: 'decision', value: 'allow' }]));

      // Deleting it again: gone.
      expect((await s.admin('DELETE', `/admin/users/${userId}/grants/${grant.id}`)).status).toBe(404);
    });

    it.each([['a random UUID', randomUUID()], ['a non-UUID', 'not-a-grant-id'], ['an over-long', 'x'.repeat(300)]])('answers 404 for %s grant id', async (_name, id) => {
      expect((await s.admin('DELETE', `/admin/users/${userId}/grants/${id}`)).status).toBe(404);
    });

    it('answers 404 for the grants of an unknown user', async () => {
      expect((await s.admin('GET', `/admin/users/${randomUUID()}/grants`)).status).toBe(404);
    });
  });
});
