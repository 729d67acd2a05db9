import { createHash, generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { SignJWT, decodeJwt, decodeProtectedHeader } from 'jose';
import { KeysService } from '@idp/keys';
import { Browser, signIn } from './support/browser';
import { TestServer, basic, postForm, startServer } from './support/server';

/**
 * Introspection (RFC 7662) as a resource server calls it, with whatever bearer string it was
 * handed: a token this server does not recognise, whatever its length or shape, is described as
 * `{"active": false}` with HTTP 200 (§2.2), never as an error. Only a missing `token` (§2.1) and
 * a caller that is not an authenticated confidential client are errors.
 */

const REDIRECT = 'https://app.example.com/callback';
const API = 'https://api.example.com/introspected';
const USER = { email: 'barbara@example.com', password: 'correct horse battery staple' };

interface Registered {
  client_id: string;
  client_secret: string;
}

describe('introspection of tokens of any shape (RFC 7662)', () => {
  let s: TestServer;
  let userId: string;
  /** The application the user signs in to (first-party: no consent page). */
  let web: Registered;
  /** The resource server that introspects. */
  let rs: Registered;
  let browser: Browser;

  beforeAll(async () => {
    s = await startServer();
    userId = (await s.admin('POST', '/admin/users', USER)).body.user_id;
    expect((await s.admin('POST', '/admin/apis', { identifier: API, name: 'Introspected', scopes: [{ value: 'read:things', description: 'Read things' }], allow_offline_access: true })).status).toBe(201);
    web = (await s.admin('POST', '/admin/clients', { client_name: 'Web', redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'], first_party: true })).body;
    rs = (await s.admin('POST', '/admin/clients', { client_name: 'Resource server', redirect_uris: [REDIRECT], grant_types: ['client_credentials'] })).body;
    browser = new Browser(s.url);
  });
  afterAll(() => s?.close());

  const json = async (res: Response) => ({ status: res.status, headers: res.headers, body: JSON.parse(await res.text()) });
  const introspect = async (form: Record<string, string>, client: Registered | null = rs) =>
    json(await postForm(s, '/oauth/introspect', form, client ? { authorization: basic(client.client_id, client.client_secret) } : {}));

  /** An authorization code for the user, not redeemed. */
  async function code(): Promise<{ code: string; verifier: string }> {
    const verifier = randomBytes(32).toString('base64url');
    const url = new URL('/authorize', s.url);
    url.search = new URLSearchParams({
      response_type: 'code', client_id: web.client_id, redirect_uri: REDIRECT, scope: 'openid offline_access', state: 'st',
      code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256',
    }).toString();
    const page = await signIn(browser, url.toString(), USER);
    return { code: new URL(page.url).searchParams.get('code')!, verifier };
  }

  /** The tokens of one sign-in: access, refresh and ID token. */
  async function tokens(): Promise<{ access_token: string; refresh_token: string; id_token: string }> {
    const { code: c, verifier } = await code();
    const res = await json(await postForm(s, '/oauth/token', { grant_type: 'authorization_code', code: c, redirect_uri: REDIRECT, code_verifier: verifier }, { authorization: basic(web.client_id, web.client_secret) }));
    expect(res.status).toBe(200);
    return res.body;
  }

  /** Claims of a user's access token signed with our current key (in process: over HTTP the shortest token lives 60 s). */
  function signedByUs(claims: Record<string, unknown>): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return s.app.get(KeysService).sign(
      { iss: s.url, sub: userId, aud: `${s.url}/userinfo`, client_id: web.client_id, scope: 'openid', jti: randomUUID(), iat: now, exp: now + 600, ...claims },
      { typ: 'at+jwt' },
    );
  }

  it('describes an active access token (so that the rows below are answered by an authenticated client)', async () => {
    const t = await tokens();
    const res = await introspect({ token: t.access_token });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ active: true, client_id: web.client_id, sub: userId });
  });

  it.each<[string, string | (() => Promise<string> | string)]>([
    ['an empty token', ''],
    ['one character', 'x'],
    ['one space', ' '],
    ['10,000 characters', 'a'.repeat(10_000)],
    ['60,000 characters (within the 64 KiB body)', 'Z'.repeat(60_000)],
    ['257 characters of base64url (just past a refresh token\'s length)', () => randomBytes(200).toString('base64url').slice(0, 257)],
    ['43 characters of base64url (a refresh token\'s shape, unknown)', () => randomBytes(32).toString('base64url')],
    ['non-ASCII text', 'jeton-\u00e9\u00e8-\u0442\u043e\u043a\u0435\u043d-\u20ac-\u{1f511}'],
    ['10,000 non-ASCII characters', '\u00e9'.repeat(10_000)],
    ['a string of dots', '....'],
    ['three parts with dots', 'a.b.c'],
    ['five parts with dots (a JWE shape)', 'a.b.c.d.e'],
    ['form metacharacters', 'a+b=c&d%2F%ZZ;'],
    ['a Bearer header value', 'Bearer abc'],
    ['markup', '<script>alert(1)</script>'],
    ['an unsigned JWT (alg none)', 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.'],
    ['a JWT with a header that is not JSON', `${Buffer.from('{"alg":').toString('base64url')}.e30.c2ln`],
    ['an access token signed by someone else under our kid', async () => {
      const t = await tokens();
      const { kid, alg } = decodeProtectedHeader(t.access_token);
      const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      return new SignJWT(decodeJwt(t.access_token)).setProtectedHeader({ alg: alg!, kid, typ: 'at+jwt' }).sign(privateKey);
    }],
    ['an access token of ours with one signature byte changed', async () => {
      const t = (await tokens()).access_token;
      const last = t.at(-2) === 'A' ? 'B' : 'A';
      return `${t.slice(0, -2)}${last}${t.at(-1)}`;
    }],
    ['an access token of ours that expired', () => signedByUs({ iat: Math.floor(Date.now() / 1000) - 7200, exp: Math.floor(Date.now() / 1000) - 3600 })],
    ['an access token of ours that expired, 10,000 characters long', () => signedByUs({ pad: 'p'.repeat(7_400), iat: Math.floor(Date.now() / 1000) - 7200, exp: Math.floor(Date.now() / 1000) - 3600 })],
    ['an access token that was revoked', async () => {
      const t = await tokens();
      expect((await postForm(s, '/oauth/revoke', { token: t.access_token }, { authorization: basic(web.client_id, web.client_secret) })).status).toBe(200);
      return t.access_token;
    }],
    ['an ID token of ours (not an access token)', async () => (await tokens()).id_token],
    ['a refresh token that was revoked', async () => {
      const t = await tokens();
      expect((await postForm(s, '/oauth/revoke', { token: t.refresh_token }, { authorization: basic(web.client_id, web.client_secret) })).status).toBe(200);
      return t.refresh_token;
    }],
    ['a refresh token that was used (rotated)', async () => {
      const t = await tokens();
      expect((await postForm(s, '/oauth/token', { grant_type: 'refresh_token', refresh_token: t.refresh_token }, { authorization: basic(web.client_id, web.client_secret) })).status).toBe(200);
      return t.refresh_token;
    }],
    ['an authorization code', async () => (await code()).code],
    ['the caller\'s own client secret', () => rs.client_secret],
  ])('answers 200 {"active": false} for %s', async (_, make) => {
    const token = typeof make === 'string' ? make : await make();
    for (const hint of [undefined, 'access_token', 'refresh_token', 'something_else']) {
      const res = await introspect({ token, ...(hint ? { token_type_hint: hint } : {}) });
      expect({ hint, status: res.status, body: res.body }).toEqual({ hint, status: 200, body: { active: false } });
      expect(res.headers.get('cache-control')).toBe('no-store');
    }
  });

  it('describes an access token of ours however long it is (10,000 characters, a customizer\'s claims)', async () => {
    const token = await signedByUs({ pad: 'p'.repeat(7_400) });
    expect(token.length).toBeGreaterThan(10_000);
    const res = await introspect({ token });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ active: true, sub: userId, client_id: web.client_id });
  });

  it('still refuses a request without the token parameter with 400 invalid_request (RFC 7662 §2.1)', async () => {
    const res = await introspect({ token_type_hint: 'access_token' });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_request');
    expect(res.headers.get('cache-control')).toBe('no-store');
  });

  it.each([[''], ['a'.repeat(10_000)], ['\u00e9'.repeat(10_000)]])('still answers an unauthenticated caller 401 invalid_client, whatever the token (%#)', async (token) => {
    const anonymous = await introspect({ token }, null);
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.error).toBe('invalid_client');
    const wrong = await introspect({ token }, { client_id: rs.client_id, client_secret: 'wrong-secret' });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error).toBe('invalid_client');
    expect(wrong.headers.get('www-authenticate')).toMatch(/^Basic /);
  });
});
