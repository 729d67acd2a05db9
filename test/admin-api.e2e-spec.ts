import { SignJWT, decodeJwt, generateKeyPair } from 'jose';
import { ADMIN_CLIENT_ID, ADMIN_CLIENT_SECRET, TestServer, basic, postForm, startServer } from './support/server';

/** The admin API (CONTRACT §4) over real HTTP: every resource, every status code the contract names. */
describe('admin API (end to end)', () => {
  let s: TestServer;
  /** Every admin response seen by `call`, checked at the end for anything secret. */
  const seen: { method: string; path: string; body: unknown }[] = [];

  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(() => s.close());

  /** An admin call with the full admin token (or `token`), remembering the body. */
  async function call(method: string, path: string, body?: unknown, token?: string) {
    const res = await s.admin(method, path, body, token);
    seen.push({ method, path, body: res.body });
    return res;
  }
  /** A request with raw headers, for tokens that are missing or not Bearer. */
  async function raw(method: string, path: string, headers: Record<string, string>) {
    const res = await s.fetch(path, { method, headers });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
  }
  /** Every page of a list, following next_cursor. */
  async function allPages(path: string, limit: number) {
    const pages: { items: any[]; next_cursor: string | null }[] = [];
    let cursor: string | null = null;
    do {
      const sep = path.includes('?') ? '&' : '?';
      const res = await call('GET', `${path}${sep}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(res.status).toBe(200);
      pages.push(res.body);
      cursor = res.body.next_cursor;
    } while (cursor !== null && pages.length < 100);
    return pages;
  }
  const ccClient = (name = 'Worker') => ({ client_name: name, grant_types: ['client_credentials'] });
  let apiSeq = 0;
  const newApi = async (scopes = ['read:things', 'write:things']) => {
    const res = await call('POST', '/admin/apis', { identifier: `https://api.example.com/${++apiSeq}`, name: `API ${apiSeq}`, scopes: scopes.map((value) => ({ value, description: value })) });
    expect(res.status).toBe(201);
    return res.body;
  };
  const newClient = async (name = 'Worker') => {
    const res = await call('POST', '/admin/clients', ccClient(name));
    expect(res.status).toBe(201);
    return res.body;
  };
  let userSeq = 0;
  const newUser = async (extra: Record<string, unknown> = {}) => {
    const res = await call('POST', '/admin/users', { email: `user${++userSeq}@example.com`, password: 'correct horse battery', ...extra });
    expect(res.status).toBe(201);
    return res.body;
  };
  const clientCredentials = (id: string, secret: string, audience: string) =>
    postForm(s, '/oauth/token', { grant_type: 'client_credentials', audience }, { authorization: basic(id, secret) });
  /** The message of an admin error, as one string. */
  const message = (body: { message: string | string[] }) => ([] as string[]).concat(body.message).join('\n');

  describe('authentication and scopes', () => {
    it.each([
      ['no Authorization header', 'GET', '/admin/clients', {}],
      ['no Authorization header', 'POST', '/admin/users', {}],
      ['no Authorization header', 'DELETE', '/admin/apis/nope', {}],
      ['an empty Bearer', 'GET', '/admin/clients', { authorization: 'Bearer ' }],
      ['a token that is not a JWT', 'GET', '/admin/keys', { authorization: 'Bearer not-a-jwt' }],
      ['a token with bad characters', 'GET', '/admin/keys', { authorization: 'Bearer a b c' }],
      ['Basic credentials of the admin client', 'GET', '/admin/clients', { authorization: basic(ADMIN_CLIENT_ID, ADMIN_CLIENT_SECRET) }],
      ['an access token in the query string', 'GET', '/admin/clients?access_token=whatever', {}],
    ])('answers 401 with a Bearer challenge for %s (%s %s)', async (_, method, path, headers) => {
      const res = await raw(method, path, headers as Record<string, string>);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
      expect(res.body).toMatchObject({ statusCode: 401, error: 'invalid_token', message: expect.any(String) });
    });

    it('answers 401 for a tampered, an unsigned and a foreign-signed token', async () => {
      const good = await s.adminToken();
      const [h, p, sig] = good.split('.');
      const claims = decodeJwt(good);
      const tampered = `${h}.${Buffer.from(JSON.stringify({ ...claims, scope: `${claims.scope} extra` })).toString('base64url')}.${sig}`;
      const badSig = `${h}.${p}.${sig.slice(0, -4)}${sig.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}`;
      const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${p}.`;
      const { privateKey } = await generateKeyPair('RS256');
      const kid = JSON.parse(Buffer.from(h, 'base64url').toString()).kid;
      const foreign = await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid }).sign(privateKey);
      const foreignKid = await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: 'someone-else' }).sign(privateKey);
      for (const token of [tampered, badSig, unsigned, foreign, foreignKid]) {
        const res = await raw('GET', '/admin/clients', { authorization: `Bearer ${token}` });
        expect(res.status).toBe(401);
        expect(res.headers.get('www-authenticate')).toMatch(/^Bearer .*error="invalid_token"/);
      }
    });

    it('answers 401 for a client_credentials token issued for another API, even one carrying admin scope names', async () => {
      const api = await newApi(['read:clients', 'write:clients']);
      const client = await newClient();
      expect((await call('POST', '/admin/client-grants', { client_id: client.client_id, audience: api.identifier, scope: ['read:clients', 'write:clients'] })).status).toBe(201);
      const token = await clientCredentials(client.client_id, client.client_secret, api.identifier);
      expect(token.status).toBe(200);
      const { access_token, scope } = await token.json();
      expect(scope).toBe('read:clients write:clients');
      for (const [method, path] of [['GET', '/admin/clients'], ['POST', '/admin/clients']]) {
        const res = await call(method, path, method === 'POST' ? ccClient() : undefined, access_token);
        expect(res.status).toBe(401);
        expect(res.headers.get('www-authenticate')).toMatch(/^Bearer /);
      }
    });

    it('answers 403 insufficient_scope when the token lacks the scope, naming it in the challenge', async () => {
      const token = await s.adminToken('read:clients');
      expect(decodeJwt(token).scope).toBe('read:clients');
      const res = await call('GET', '/admin/users', undefined, token);
      expect(res.status).toBe(403);
      expect(res.body).toMatchObject({ statusCode: 403, error: 'insufficient_scope' });
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer .*error="insufficient_scope".*scope="read:users"/);
    });

    // The write calls carry an invalid body: 400 proves the scope check passed (guards run before
    // validation), 403 that it did not, and nothing is changed either way.
    // [read scope, write scope, read call, write call, status of the write call once allowed]
    it.each([
      ['read:clients', 'write:clients', 'GET', '/admin/clients', 'POST', '/admin/clients', 400],
      ['read:clients', 'write:clients', 'GET', '/admin/clients/nope', 'PATCH', '/admin/clients/nope', 400],
      ['read:clients', 'write:clients', 'GET', '/admin/clients/nope', 'DELETE', '/admin/clients/nope', 404],
      ['read:clients', 'write:clients', 'GET', '/admin/clients/nope', 'POST', '/admin/clients/nope/secret', 404],
      ['read:users', 'write:users', 'GET', '/admin/users', 'POST', '/admin/users', 400],
      ['read:users', 'write:users', 'GET', '/admin/users/nope', 'PATCH', '/admin/users/nope', 400],
      ['read:users', 'write:users', 'GET', '/admin/users/nope', 'DELETE', '/admin/users/nope', 404],
      ['read:apis', 'write:apis', 'GET', '/admin/apis', 'POST', '/admin/apis', 400],
      ['read:apis', 'write:apis', 'GET', '/admin/apis/nope', 'PATCH', '/admin/apis/nope', 400],
      ['read:apis', 'write:apis', 'GET', '/admin/apis/nope', 'DELETE', '/admin/apis/nope', 404],
      ['read:client_grants', 'write:client_grants', 'GET', '/admin/client-grants', 'POST', '/admin/client-grants', 400],
      ['read:client_grants', 'write:client_grants', 'GET', '/admin/client-grants', 'DELETE', '/admin/client-grants/nope', 404],
      ['read:keys', 'write:keys', 'GET', '/admin/keys', 'POST', '/admin/keys/rotate', 400],
    ])('%s reads and %s writes: %s %s / %s %s', async (readScope, writeScope, readMethod, readPath, writeMethod, writePath, allowedStatus) => {
      const reader = await s.adminToken(readScope);
      const writer = await s.adminToken(writeScope);
      const other = await s.adminToken(readScope === 'read:keys' ? 'read:users' : 'read:keys');
      const writeBody = writeMethod === 'DELETE' || writePath.endsWith('/secret') ? undefined : { not_a_field: true };

      const read = await call(readMethod, readPath, undefined, reader);
      expect([200, 404]).toContain(read.status);
      expect((await call(readMethod, readPath, undefined, writer)).status).toBe(403);
      expect((await call(readMethod, readPath, undefined, other)).status).toBe(403);

      const denied = await call(writeMethod, writePath, writeBody, reader);
      expect(denied.status).toBe(403);
      expect(denied.body.error).toBe('insufficient_scope');
      const allowed = await call(writeMethod, writePath, writeBody, writer);
      expect(allowed.status).toBe(allowedStatus);
    });
  });

  describe('clients', () => {
    it('creates (201, secret once), lists, gets, patches and deletes (204) a client', async () => {
      const created = await call('POST', '/admin/clients', { ...ccClient('Billing worker'), scope: 'read:things', allowed_origins: ['https://app.example.com'] });
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({
        client_id: expect.any(String), client_id_issued_at: expect.any(Number), client_secret: expect.any(String),
        client_name: 'Billing worker', grant_types: ['client_credentials'], token_endpoint_auth_method: 'client_secret_basic',
        redirect_uris: [], first_party: false, refresh_token_rotation: true, allowed_origins: ['https://app.example.com'], scope: 'read:things',
      });
      expect(created.body.client_secret.length).toBeGreaterThanOrEqual(32);
      expect(Math.abs(created.body.client_id_issued_at - Date.now() / 1000)).toBeLessThan(60);
      const id = created.body.client_id;

      const got = await call('GET', `/admin/clients/${id}`);
      expect(got.status).toBe(200);
      const { client_secret: _, client_secret_expires_at: __, ...metadata } = created.body;
      expect(got.body).toEqual(metadata);
      expect(got.body).not.toHaveProperty('client_secret');

      const pages = await allPages('/admin/clients', 200);
      const listed = pages.flatMap((p) => p.items).find((c) => c.client_id === id);
      expect(listed).toEqual(metadata);
      for (const c of pages.flatMap((p) => p.items)) expect(c).not.toHaveProperty('client_secret');

      const patched = await call('PATCH', `/admin/clients/${id}`, { client_name: 'Billing', first_party: true });
      expect(patched.status).toBe(200);
      expect(patched.body).toMatchObject({ client_id: id, client_name: 'Billing', first_party: true, grant_types: ['client_credentials'], scope: 'read:things' });
      expect(patched.body).not.toHaveProperty('client_secret');
      expect((await call('GET', `/admin/clients/${id}`)).body).toMatchObject({ client_name: 'Billing', first_party: true });

      const deleted = await call('DELETE', `/admin/clients/${id}`);
      expect(deleted.status).toBe(204);
      expect(deleted.body).toBeUndefined();
      expect((await call('GET', `/admin/clients/${id}`)).status).toBe(404);
    });

    it('applies the defaults: authorization_code, client_secret_basic, refresh-token rotation on', async () => {
      const res = await call('POST', '/admin/clients', { client_name: 'Web app', redirect_uris: ['https://app.example.com/callback'] });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({
        grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_basic',
        refresh_token_rotation: true, first_party: false, post_logout_redirect_uris: [], allowed_origins: [], client_secret: expect.any(String),
      });
    });

    it('registers a public client (token_endpoint_auth_method none) without a secret, and has none to rotate', async () => {
      const res = await call('POST', '/admin/clients', { client_name: 'SPA', redirect_uris: ['https://spa.example.com/cb'], token_endpoint_auth_method: 'none' });
      expect(res.status).toBe(201);
      expect(res.body.token_endpoint_auth_method).toBe('none');
      expect(res.body).not.toHaveProperty('client_secret');
      expect((await call('POST', `/admin/clients/${res.body.client_id}/secret`)).status).toBe(400);
    });

    it.each([
      ['GET', '/admin/clients/{id}'],
      ['PATCH', '/admin/clients/{id}'],
      ['DELETE', '/admin/clients/{id}'],
      ['POST', '/admin/clients/{id}/secret'],
    ])('answers 404 for %s %s of an unknown client', async (method, path) => {
      for (const id of ['no-such-client', 'x'.repeat(300)]) {
        const res = await call(method, path.replace('{id}', id), method === 'PATCH' ? { client_name: 'x' } : undefined);
        expect(res.status).toBe(404);
        expect(res.body).toMatchObject({ statusCode: 404, error: 'not_found', message: expect.anything() });
      }
    });

    it('rotates the secret: the new one is returned once and works at /oauth/token, the old one stops working', async () => {
      const api = await newApi();
      const client = await newClient('Rotating');
      expect((await call('POST', '/admin/client-grants', { client_id: client.client_id, audience: api.identifier, scope: ['read:things'] })).status).toBe(201);
      expect((await clientCredentials(client.client_id, client.client_secret, api.identifier)).status).toBe(200);

      const rotated = await call('POST', `/admin/clients/${client.client_id}/secret`);
      expect(rotated.status).toBe(200);
      expect(rotated.body).toMatchObject({ client_id: client.client_id, client_secret: expect.any(String) });
      expect(rotated.body.client_secret).not.toBe(client.client_secret);

      const old = await clientCredentials(client.client_id, client.client_secret, api.identifier);
      expect(old.status).toBe(401);
      expect((await old.json()).error).toBe('invalid_client');
      expect((await clientCredentials(client.client_id, rotated.body.client_secret, api.identifier)).status).toBe(200);

      const got = await call('GET', `/admin/clients/${client.client_id}`);
      expect(got.body).not.toHaveProperty('client_secret');
      expect(JSON.stringify(got.body)).not.toContain(rotated.body.client_secret);
    });

    it('refuses to rotate the secret of a client that has none (400)', async () => {
      const res = await call('POST', '/admin/clients', {
        client_name: 'Signed', grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt',
        jwks: { keys: [{ kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0' }] },
      });
      expect(res.status).toBe(201);
      expect(res.body).not.toHaveProperty('client_secret');
      const rotate = await call('POST', `/admin/clients/${res.body.client_id}/secret`);
      expect(rotate.status).toBe(400);
      expect(message(rotate.body)).toMatch(/token_endpoint_auth_method/);
    });

    it.each([
      ['redirect_uris must be https', { redirect_uris: ['http://app.example.com/cb'] }, /redirect_uris\[0\]/],
      ['redirect_uris without a fragment', { redirect_uris: ['https://app.example.com/cb#frag'] }, /redirect_uris\[0\].*fragment/],
      ['redirect_uris without a wildcard (exact match only)', { redirect_uris: ['https://*.example.com/cb'] }, /redirect_uris\[0\]/],
      ['redirect_uris absolute', { redirect_uris: ['/cb'] }, /redirect_uris\[0\]/],
      ['redirect_uris needed for authorization_code', { grant_types: ['authorization_code'] }, /redirect_uris/],
      ['redirect_uris not javascript:', { redirect_uris: ['javascript:alert(1)'] }, /redirect_uris\[0\]/],
      ['redirect_uris: each bad one named', { redirect_uris: ['https://ok.example.com/cb', 'http://evil.example.com/cb'] }, /redirect_uris\[1\]/],
      ['post_logout_redirect_uris must be https', { post_logout_redirect_uris: ['http://app.example.com/bye'] }, /post_logout_redirect_uris\[0\]/],
      ['private_key_jwt needs jwks or jwks_uri', { token_endpoint_auth_method: 'private_key_jwt' }, /jwks/],
      // NODE_ENV=test means IDP_OUTBOUND=local: http only to loopback and private addresses (test/outbound.e2e-spec.ts has both modes).
      ['jwks_uri must be https to a public address', { token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'http://93.184.215.14/jwks' }, /jwks_uri must be an https URL/],
      ['jwks_uri is never a cloud metadata address', { token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'http://169.254.169.254/latest/meta-data/' }, /jwks_uri must not point at a link-local, cloud metadata/],
      ['jwks holds public keys only', { token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [{ kty: 'oct', k: 'c2VjcmV0' }] } }, /jwks/],
      ['a public client cannot use client_credentials', { token_endpoint_auth_method: 'none' }, /grant_types.*client_credentials/],
      ['an unknown grant_type is refused', { grant_types: ['client_credentials', 'urn:example:magic'] }, /grant_types.*urn:example:magic/],
      ['an unknown token_endpoint_auth_method is refused', { token_endpoint_auth_method: 'client_secret_jwt_magic' }, /token_endpoint_auth_method/],
      ['allowed_origins are origins', { allowed_origins: ['https://app.example.com/path'] }, /allowed_origins\[0\]/],
      ['client_name is a string', { client_name: 42 }, /client_name/],
      ['first_party is a boolean', { first_party: 'yes' }, /first_party/],
      ['grant_types is an array', { grant_types: 'client_credentials' }, /grant_types/],
    ])('refuses metadata (400): %s', async (_, metadata, pattern) => {
      const res = await call('POST', '/admin/clients', { ...ccClient(), ...metadata });
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ statusCode: 400, error: 'invalid_request' });
      expect(message(res.body)).toMatch(pattern);
    });

    it('names every bad field at once', async () => {
      const res = await call('POST', '/admin/clients', { client_name: 7, first_party: 'no', refresh_token_rotation: 'maybe', redirect_uris: 'https://x.example.com' });
      expect(res.status).toBe(400);
      for (const field of ['client_name', 'first_party', 'refresh_token_rotation', 'redirect_uris']) expect(message(res.body)).toContain(field);
    });

    it.each([
      ['https', ['https://app.example.com/callback?x=1']],
      ['http on 127.0.0.1', ['http://127.0.0.1:8080/callback']],
      ['http on localhost', ['http://localhost/callback']],
      ['http on [::1]', ['http://[::1]:3000/cb']],
    ])('accepts redirect_uris: %s, and returns them exactly', async (_, uris) => {
      const res = await call('POST', '/admin/clients', { ...ccClient(), redirect_uris: uris });
      expect(res.status).toBe(201);
      expect(res.body.redirect_uris).toEqual(uris);
    });

    it('accepts private_key_jwt with jwks_uri, without issuing a secret', async () => {
      const res = await call('POST', '/admin/clients', { ...ccClient(), token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'https://keys.example.com/jwks.json' });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'https://keys.example.com/jwks.json' });
      expect(res.body).not.toHaveProperty('client_secret');
    });

    it('checks the metadata rules on PATCH too, and leaves the client unchanged on 400', async () => {
      const client = await newClient('Patched');
      for (const patch of [{ redirect_uris: ['http://evil.example.com/cb'] }, { token_endpoint_auth_method: 'none' }, { grant_types: ['nope'] }, { client_name: 'x'.repeat(256) }]) {
        const res = await call('PATCH', `/admin/clients/${client.client_id}`, patch);
        expect(res.status).toBe(400);
        expect(message(res.body)).toMatch(new RegExp(Object.keys(patch)[0] === 'token_endpoint_auth_method' ? 'client_credentials' : Object.keys(patch)[0]));
      }
      const { client_secret: _, client_secret_expires_at: __, ...metadata } = client;
      expect((await call('GET', `/admin/clients/${client.client_id}`)).body).toEqual(metadata);
    });

    it('deleting a client deletes its grants', async () => {
      const api = await newApi();
      const client = await newClient('Short-lived');
      const grant = await call('POST', '/admin/client-grants', { client_id: client.client_id, audience: api.identifier, scope: ['read:things'] });
      expect(grant.status).toBe(201);
      expect((await call('GET', `/admin/client-grants?client_id=${client.client_id}`)).body.items).toHaveLength(1);
      expect((await call('DELETE', `/admin/clients/${client.client_id}`)).status).toBe(204);
      expect((await call('GET', `/admin/client-grants?client_id=${client.client_id}`)).body).toEqual({ items: [], next_cursor: null });
      expect((await call('DELETE', `/admin/client-grants/${grant.body.id}`)).status).toBe(404);
      expect((await clientCredentials(client.client_id, client.client_secret, api.identifier)).status).toBe(401);
    });
  });

  describe('users', () => {
    it('creates (201), gets, patches and deletes (204) a user, normalizing the email and never returning the password', async () => {
      const created = await call('POST', '/admin/users', { email: 'Ada.Lovelace@Example.COM', password: 'analytical engine', name: 'Ada', email_verified: true });
      expect(created.status).toBe(201);
      expect(created.body).toEqual({
        user_id: expect.any(String), email: 'ada.lovelace@example.com', name: 'Ada', email_verified: true, blocked: false,
        created_at: expect.any(String), updated_at: expect.any(String),
      });
      const id = created.body.user_id;
      expect((await call('GET', `/admin/users/${id}`)).body).toEqual(created.body);

      const patched = await call('PATCH', `/admin/users/${id}`, { name: 'Augusta Ada King', blocked: true, password: 'difference engine', email: 'ADA@example.com' });
      expect(patched.status).toBe(200);
      expect(patched.body).toMatchObject({ user_id: id, name: 'Augusta Ada King', blocked: true, email: 'ada@example.com', email_verified: true });
      expect(new Date(patched.body.updated_at).getTime()).toBeGreaterThanOrEqual(new Date(created.body.updated_at).getTime());
      expect((await call('GET', `/admin/users/${id}`)).body).toEqual(patched.body);

      const cleared = await call('PATCH', `/admin/users/${id}`, { name: null });
      expect(cleared.status).toBe(200);
      expect(cleared.body.name).toBeNull();

      expect((await call('DELETE', `/admin/users/${id}`)).status).toBe(204);
      expect((await call('GET', `/admin/users/${id}`)).status).toBe(404);
      expect((await call('DELETE', `/admin/users/${id}`)).status).toBe(404);
    });

    it('finds a user by ?email=, case-insensitively', async () => {
      const user = await newUser({ email: 'grace@example.com' });
      for (const q of ['grace@example.com', 'Grace@EXAMPLE.com']) {
        const res = await call('GET', `/admin/users?email=${encodeURIComponent(q)}`);
        expect(res.status).toBe(200);
        expect(res.body).toEqual({ items: [user], next_cursor: null });
      }
      expect((await call('GET', '/admin/users?email=nobody%40example.com')).body).toEqual({ items: [], next_cursor: null });
    });

    it('answers 409 for a duplicate email, on create (in any case) and on patch', async () => {
      await newUser({ email: 'dup@example.com' });
      const again = await call('POST', '/admin/users', { email: 'DUP@Example.com', password: 'another password' });
      expect(again.status).toBe(409);
      expect(again.body).toMatchObject({ statusCode: 409, error: 'conflict' });
      expect(message(again.body)).toMatch(/email/);
      const other = await newUser();
      const patch = await call('PATCH', `/admin/users/${other.user_id}`, { email: 'dup@example.com' });
      expect(patch.status).toBe(409);
      expect((await call('GET', `/admin/users/${other.user_id}`)).body.email).toBe(other.email);
    });

    it.each([
      ['email', { email: 'not-an-email', password: 'long enough password' }],
      ['password', { email: 'short@example.com', password: 'short' }],
      ['password', { email: 'nopass@example.com' }],
      ['email', { password: 'long enough password' }],
      ['email_verified', { email: 'ev@example.com', password: 'long enough password', email_verified: 'yes' }],
      ['blocked', { email: 'bl@example.com', password: 'long enough password', blocked: 1 }],
      ['name', { email: 'nm@example.com', password: 'long enough password', name: ['Ada'] }],
      ['name', { email: 'nm2@example.com', password: 'long enough password', name: 'x'.repeat(256) }],
      ['password', { email: 'pw@example.com', password: 'x'.repeat(257) }],
      ['email', { email: `${'x'.repeat(320)}@example.com`, password: 'long enough password' }],
    ])('answers 400 naming %s (case %#)', async (field, body) => {
      const res = await call('POST', '/admin/users', body);
      expect(res.status).toBe(400);
      expect(message(res.body)).toContain(field);
    });

    it('names every bad field at once, on create and on patch', async () => {
      const res = await call('POST', '/admin/users', { email: 'nope', password: 1, email_verified: 'x', blocked: 'y' });
      expect(res.status).toBe(400);
      for (const f of ['email', 'password', 'email_verified', 'blocked']) expect(message(res.body)).toContain(f);
      const user = await newUser();
      const patch = await call('PATCH', `/admin/users/${user.user_id}`, { email: 'nope', password: 'short', blocked: 'y' });
      expect(patch.status).toBe(400);
      for (const f of ['email', 'password', 'blocked']) expect(message(patch.body)).toContain(f);
    });

    it.each([['GET'], ['PATCH'], ['DELETE']])('answers 404 for %s of an unknown user', async (method) => {
      for (const id of ['01900000-0000-7000-8000-000000000000', 'not-a-uuid', 'x'.repeat(300)]) {
        const res = await call(method, `/admin/users/${id}`, method === 'PATCH' ? { name: 'x' } : undefined);
        expect(res.status).toBe(404);
        expect(res.body).toMatchObject({ statusCode: 404, error: 'not_found' });
      }
    });

    it('pages through users with ?limit= and next_cursor: every user exactly once, next_cursor null at the end', async () => {
      const created = [];
      for (let i = 0; i < 7; i++) created.push((await newUser()).user_id);
      const pages = await allPages('/admin/users', 3);
      const ids = pages.flatMap((p) => p.items.map((u) => u.user_id));
      expect(new Set(ids).size).toBe(ids.length);
      for (const id of created) expect(ids.filter((x) => x === id)).toHaveLength(1);
      expect(pages.length).toBeGreaterThanOrEqual(3);
      for (const p of pages.slice(0, -1)) {
        expect(p.items).toHaveLength(3);
        expect(p.next_cursor).toEqual(expect.any(String));
      }
      expect(pages[pages.length - 1].next_cursor).toBeNull();
      expect(pages[pages.length - 1].items.length).toBeGreaterThanOrEqual(1);
      // Without ?limit (default 50) the same users in one page.
      const all = await call('GET', '/admin/users');
      expect(all.body.items.map((u: { user_id: string }) => u.user_id)).toEqual(ids);
      expect(all.body.next_cursor).toBeNull();
    });
  });

  describe('lists', () => {
    it.each([['/admin/clients'], ['/admin/users'], ['/admin/apis'], ['/admin/client-grants'], ['/admin/keys']])('%s answers {items, next_cursor}', async (path) => {
      const res = await call('GET', path);
      expect(res.status).toBe(200);
      expect(Object.keys(res.body).sort()).toEqual(['items', 'next_cursor']);
      expect(Array.isArray(res.body.items)).toBe(true);
    });

    it.each([['/admin/clients'], ['/admin/users'], ['/admin/apis'], ['/admin/client-grants']])('%s pages with next_cursor', async (path) => {
      // At least two of each exist by now (the admin API and client among them).
      const pages = await allPages(path, 1);
      expect(pages.length).toBeGreaterThanOrEqual(2);
      const keys = pages.flatMap((p) => p.items.map((i) => i.id ?? i.client_id ?? i.user_id));
      expect(new Set(keys).size).toBe(keys.length);
      expect(pages[pages.length - 1].next_cursor).toBeNull();
      expect(keys.length).toBe((await call('GET', `${path}?limit=200`)).body.items.length);
    });

    it.each([
      ['limit=0', /limit/], ['limit=201', /limit/], ['limit=abc', /limit/], ['limit=-1', /limit/], ['limit=1.5', /limit/], ['limit=', /limit/],
      ['limit=1&limit=2', /limit/], ['cursor=abc', /cursor/], ['cursor=%21%21%21', /cursor/], ['cursor=<600 characters>', /cursor/],
      [`cursor=${Buffer.from('not a cursor').toString('base64url')}`, /cursor/], ['unknown_param=1', /unknown_param/],
    ])('answers 400 for ?%s', async (query, pattern) => {
      for (const path of ['/admin/users', '/admin/clients', '/admin/apis', '/admin/client-grants']) {
        const res = await call('GET', `${path}?${query.replace('<600 characters>', 'A'.repeat(600))}`);
        expect(res.status).toBe(400);
        expect(res.body).toMatchObject({ statusCode: 400, error: 'invalid_request' });
        expect(message(res.body)).toMatch(pattern);
      }
    });

    it('accepts ?limit=1 and ?limit=200', async () => {
      expect((await call('GET', '/admin/apis?limit=1')).body.items).toHaveLength(1);
      expect((await call('GET', '/admin/apis?limit=200')).status).toBe(200);
    });
  });

  describe('apis', () => {
    it('lists the admin API with identifier $ISSUER/admin and its 11 scopes', async () => {
      const pages = await allPages('/admin/apis', 200);
      const admin = pages.flatMap((p) => p.items).find((a) => a.identifier === `${s.url}/admin`);
      expect(admin).toBeDefined();
      expect(admin.is_system).toBe(true);
      expect(admin.scopes.map((sc: { value: string }) => sc.value).sort()).toEqual(
        ['read:clients', 'write:clients', 'read:users', 'write:users', 'read:apis', 'write:apis', 'read:client_grants', 'write:client_grants', 'read:keys', 'write:keys', 'read:audit_events'].sort(),
      );
      for (const sc of admin.scopes) expect(sc.description).toEqual(expect.any(String));
    });

    it('creates (201), gets, patches and deletes (204) an API', async () => {
      const created = await call('POST', '/admin/apis', {
        identifier: 'https://api.example.com/inventory', name: 'Inventory', scopes: [{ value: 'read:stock', description: 'Read stock' }], token_lifetime: 900, allow_offline_access: true,
      });
      expect(created.status).toBe(201);
      expect(created.body).toEqual({
        id: expect.any(String), identifier: 'https://api.example.com/inventory', name: 'Inventory', scopes: [{ value: 'read:stock', description: 'Read stock' }],
        token_lifetime: 900, allow_offline_access: true, is_system: false, created_at: expect.any(String), updated_at: expect.any(String),
      });
      const id = created.body.id;
      expect((await call('GET', `/admin/apis/${id}`)).body).toEqual(created.body);
      const defaults = await call('POST', '/admin/apis', { identifier: 'urn:example:defaults', name: 'Defaults' });
      expect(defaults.status).toBe(201);
      expect(defaults.body).toMatchObject({ scopes: [], token_lifetime: 86400, allow_offline_access: false });

      const patched = await call('PATCH', `/admin/apis/${id}`, { name: 'Stock', scopes: [{ value: 'read:stock', description: 'Read' }, { value: 'write:stock', description: 'Write' }], token_lifetime: 60 });
      expect(patched.status).toBe(200);
      expect(patched.body).toMatchObject({ id, identifier: 'https://api.example.com/inventory', name: 'Stock', token_lifetime: 60 });
      expect(patched.body.scopes).toHaveLength(2);
      expect((await call('GET', `/admin/apis/${id}`)).body).toEqual(patched.body);

      expect((await call('DELETE', `/admin/apis/${id}`)).status).toBe(204);
      expect((await call('GET', `/admin/apis/${id}`)).status).toBe(404);
    });

    it('answers 409 for a duplicate identifier, and 409 for deleting the admin API', async () => {
      const api = await newApi();
      const dup = await call('POST', '/admin/apis', { identifier: api.identifier, name: 'Again' });
      expect(dup.status).toBe(409);
      expect(message(dup.body)).toMatch(/identifier/);
      const adminApi = (await allPages('/admin/apis', 200)).flatMap((p) => p.items).find((a) => a.is_system);
      const del = await call('DELETE', `/admin/apis/${adminApi.id}`);
      expect(del.status).toBe(409);
      expect(del.body).toMatchObject({ statusCode: 409, error: 'conflict' });
      expect((await call('GET', `/admin/apis/${adminApi.id}`)).status).toBe(200);
      // Its scopes are fixed too.
      expect((await call('PATCH', `/admin/apis/${adminApi.id}`, { scopes: [] })).status).toBe(400);
    });

    it.each([
      ['identifier', { identifier: 'not a uri', name: 'X' }],
      ['identifier', { identifier: 'https://api.example.com/#frag', name: 'X' }],
      ['identifier', { name: 'X' }],
      ['name', { identifier: 'https://n.example.com' }],
      ['name', { identifier: 'https://n.example.com', name: '' }],
      ['token_lifetime', { identifier: 'https://t.example.com', name: 'X', token_lifetime: 5 }],
      ['token_lifetime', { identifier: 'https://t.example.com', name: 'X', token_lifetime: 86401 }],
      ['token_lifetime', { identifier: 'https://t.example.com', name: 'X', token_lifetime: '600' }],
      ['allow_offline_access', { identifier: 'https://o.example.com', name: 'X', allow_offline_access: 'true' }],
      ['scopes', { identifier: 'https://s.example.com', name: 'X', scopes: 'read:x' }],
      ['scopes.0.value', { identifier: 'https://s.example.com', name: 'X', scopes: [{ value: 'has space', description: 'd' }] }],
      ['scopes.0.description', { identifier: 'https://s.example.com', name: 'X', scopes: [{ value: 'ok' }] }],
      ['scopes', { identifier: 'https://s.example.com', name: 'X', scopes: [{ value: 'a', description: 'a' }, { value: 'a', description: 'b' }] }],
      ['scopes', { identifier: 'https://s.example.com', name: 'X', scopes: [{ value: 'openid', description: 'reserved' }] }],
    ])('answers 400 naming %s', async (field, body) => {
      const res = await call('POST', '/admin/apis', body);
      expect(res.status).toBe(400);
      expect(message(res.body)).toContain(field);
    });

    it.each([['GET'], ['PATCH'], ['DELETE']])('answers 404 for %s of an unknown API', async (method) => {
      for (const id of ['01900000-0000-7000-8000-000000000000', 'nope', 'x'.repeat(300)]) {
        expect((await call(method, `/admin/apis/${id}`, method === 'PATCH' ? { name: 'x' } : undefined)).status).toBe(404);
      }
    });
  });

  describe('client grants', () => {
    it('creates (201), lists by ?client_id=, and deletes (204) a grant; duplicates are 409', async () => {
      const api = await newApi();
      const client = await newClient('Granted');
      const created = await call('POST', '/admin/client-grants', { client_id: client.client_id, audience: api.identifier, scope: ['read:things'] });
      expect(created.status).toBe(201);
      expect(created.body).toEqual({ id: expect.any(String), client_id: client.client_id, audience: api.identifier, scope: ['read:things'], created_at: expect.any(String) });

      const dup = await call('POST', '/admin/client-grants', { client_id: client.client_id, audience: api.identifier, scope: ['write:things'] });
      expect(dup.status).toBe(409);
      expect(dup.body).toMatchObject({ statusCode: 409, error: 'conflict' });

      const listed = await call('GET', `/admin/client-grants?client_id=${client.client_id}`);
      expect(listed.body).toEqual({ items: [created.body], next_cursor: null });
      const all = (await allPages('/admin/client-grants', 200)).flatMap((p) => p.items);
      expect(all).toContainEqual(created.body);

      expect((await call('DELETE', `/admin/client-grants/${created.body.id}`)).status).toBe(204);
      expect((await call('GET', `/admin/client-grants?client_id=${client.client_id}`)).body.items).toEqual([]);
      expect((await call('DELETE', `/admin/client-grants/${created.body.id}`)).status).toBe(404);
      expect((await clientCredentials(client.client_id, client.client_secret, api.identifier)).status).toBe(400);
    });

    it('answers 404 for an unknown client_id or audience, and for deleting an unknown grant', async () => {
      const api = await newApi();
      const client = await newClient();
      expect((await call('POST', '/admin/client-grants', { client_id: 'no-such-client', audience: api.identifier, scope: [] })).status).toBe(404);
      expect((await call('POST', '/admin/client-grants', { client_id: client.client_id, audience: 'https://nowhere.example.com', scope: [] })).status).toBe(404);
      for (const id of ['01900000-0000-7000-8000-000000000000', 'x'.repeat(300)]) expect((await call('DELETE', `/admin/client-grants/${id}`)).status).toBe(404);
    });

    it.each([
      ['client_id', { audience: 'https://api.example.com/1', scope: [] }],
      ['audience', { client_id: 'c', scope: [] }],
      ['scope', { client_id: 'c', audience: 'https://api.example.com/1' }],
      ['scope', { client_id: 'c', audience: 'https://api.example.com/1', scope: 'read:things' }],
      ['scope', { client_id: 'c', audience: 'https://api.example.com/1', scope: [1] }],
    ])('answers 400 naming %s', async (field, body) => {
      const res = await call('POST', '/admin/client-grants', body);
      expect(res.status).toBe(400);
      expect(message(res.body)).toContain(field);
    });

    it('refuses scopes the API does not define (400)', async () => {
      const api = await newApi(['read:things']);
      const client = await newClient();
      const res = await call('POST', '/admin/client-grants', { client_id: client.client_id, audience: api.identifier, scope: ['read:things', 'fly:things'] });
      expect(res.status).toBe(400);
      expect(message(res.body)).toMatch(/scope.*fly:things/);
    });
  });

  describe('keys', () => {
    it('lists the signing keys and rotates (201): the published next key is scheduled, the current one signs until then and stays published after', async () => {
      const before = await call('GET', '/admin/keys');
      expect(before.status).toBe(200);
      expect(before.body.next_cursor).toBeNull();
      const current = before.body.items.filter((k: { status: string }) => k.status === 'current');
      expect(current).toHaveLength(1);
      expect(current[0]).toEqual({ kid: expect.any(String), alg: 'RS256', status: 'current', created_at: expect.any(String), activates_at: expect.any(String), publish_until: null });
      const next = before.body.items.filter((k: { status: string }) => k.status === 'next');
      expect(next).toEqual([{ kid: expect.any(String), alg: 'RS256', status: 'next', created_at: expect.any(String), activates_at: null, publish_until: null }]);
      for (const k of before.body.items) expect(Object.keys(k).sort()).toEqual(['activates_at', 'alg', 'created_at', 'kid', 'publish_until', 'status']);

      // The next key was written at boot, less than the activation lead (120 s) ago: it signs from
      // its created_at + the lead, not at once.
      const rotated = await call('POST', '/admin/keys/rotate', {});
      expect(rotated.status).toBe(201);
      expect(rotated.body).toMatchObject({ kid: next[0].kid, status: 'next' });
      const activatesAt = new Date(rotated.body.activates_at).getTime();
      expect(activatesAt).toBe(new Date(next[0].created_at).getTime() + 120_000);

      const after = (await call('GET', '/admin/keys')).body.items;
      const old = after.find((k: { kid: string }) => k.kid === current[0].kid);
      expect(old.status).toBe('current');
      expect(new Date(old.publish_until).getTime()).toBeGreaterThan(activatesAt);
      const fresh = after.filter((k: { status: string; activates_at: string | null }) => k.status === 'next' && !k.activates_at);
      expect(fresh).toHaveLength(1);
      expect(fresh[0].kid).not.toBe(rotated.body.kid);
      const jwks = await (await s.fetch('/.well-known/jwks.json')).json();
      expect(jwks.keys.map((k: { kid: string }) => k.kid)).toEqual(expect.arrayContaining([rotated.body.kid, current[0].kid, fresh[0].kid]));
      // The admin token signed by the old key still works.
      expect((await call('GET', '/admin/keys')).status).toBe(200);
    });

    it('rotates to another algorithm on request, and refuses an unknown one naming alg', async () => {
      const es = await call('POST', '/admin/keys/rotate', { alg: 'ES256' });
      expect(es.status).toBe(201);
      expect(es.body.alg).toBe('ES256');
      const bad = await call('POST', '/admin/keys/rotate', { alg: 'HS256' });
      expect(bad.status).toBe(400);
      expect(message(bad.body)).toContain('alg');
      expect((await call('POST', '/admin/keys/rotate', { alg: 'RS256' })).status).toBe(201);
    });
  });

  describe('OpenAPI document', () => {
    it('is served at /admin/openapi.json and lists the admin paths', async () => {
      const res = await s.fetch('/admin/openapi.json');
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      const doc = await res.json();
      expect(doc.openapi).toMatch(/^3\./);
      for (const path of ['/admin/clients', '/admin/users', '/admin/apis', '/admin/client-grants', '/admin/keys', '/admin/keys/rotate']) {
        expect(doc.paths).toHaveProperty([path]);
      }
      expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/admin/clients/{client_id}', '/admin/clients/{client_id}/secret', '/admin/users/{user_id}', '/admin/apis/{id}', '/admin/client-grants/{id}']));
      expect(Object.keys(doc.paths).every((p) => p.startsWith('/admin/'))).toBe(true);
    });
  });

  describe('secrets in responses', () => {
    it('records the admin changes above in the audit log, read with read:audit_events only', async () => {
      expect((await call('GET', '/admin/audit-events', undefined, await s.adminToken('read:users'))).status).toBe(403);
      const events = (await allPages('/admin/audit-events', 200)).flatMap((p) => p.items);
      expect(events.map((e) => e.type)).toEqual(expect.arrayContaining(['client.created', 'client.secret_rotated', 'client.deleted', 'user.created', 'user.updated', 'api.created', 'client_grant.created', 'key.rotated']));
      expect(events.filter((e) => e.type === 'user.created' && e.actor === ADMIN_CLIENT_ID).length).toBeGreaterThan(7);
    });

    it('never returns a password or a hash of one, nor a client secret outside creation and rotation', () => {
      const offending: string[] = [];
      const walk = (v: unknown, path: string, allowSecret: boolean) => {
        if (Array.isArray(v)) return v.forEach((x, i) => walk(x, `${path}[${i}]`, false));
        if (typeof v === 'string') {
          if (/\$argon2/.test(v) || v.includes('correct horse battery') || v.includes('analytical engine') || v.includes('difference engine')) offending.push(path);
          return;
        }
        if (!v || typeof v !== 'object') return;
        for (const [k, x] of Object.entries(v)) {
          if (/password|hash/i.test(k)) offending.push(`${path}.${k}`);
          if (k === 'client_secret' && !allowSecret) offending.push(`${path}.${k}`);
          walk(x, `${path}.${k}`, false);
        }
      };
      // Creation, rotation (and a PATCH to a secret-based method) answer one client at the top level:
      // the only place a secret may be.
      const mayHoldSecret = ({ method, path }: { method: string; path: string }) =>
        (method === 'POST' && /^\/admin\/clients(\/[^/]+\/secret)?$/.test(path)) || (method === 'PATCH' && path.startsWith('/admin/clients/'));
      seen.forEach((r) => walk(r.body, `${r.method} ${r.path}`, mayHoldSecret(r)));
      expect(seen.length).toBeGreaterThan(100);
      expect(offending).toEqual([]);
      // And no secret handed out once shows up anywhere else (lists, gets, the audit log).
      const secrets = seen.filter(mayHoldSecret).map((r) => (r.body as { client_secret?: string })?.client_secret).filter((x): x is string => !!x);
      expect(secrets.length).toBeGreaterThan(10);
      const elsewhere = seen.filter((r) => !mayHoldSecret(r)).map((r) => JSON.stringify(r.body ?? null)).join('\n');
      expect(secrets.filter((secret) => elsewhere.includes(secret))).toEqual([]);
    });
  });
});
