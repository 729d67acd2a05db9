import { TestServer, basic, startServer } from './support/server';

/**
 * Hostile input over real HTTP. Every answer is a 4xx in the endpoint's own format (RFC 6749 §5.2
 * JSON at the token endpoint, `{statusCode, error, message}` at the admin API), never a 5xx, and
 * never shows a stack trace.
 */
describe('hostile input (end to end)', () => {
  let s: TestServer;
  let client: { client_id: string; client_secret: string };
  let token: string;
  const API = 'https://api.example.com/hostile';

  beforeAll(async () => {
    // Lockouts are not what this suite checks: its failed client authentications must not add up to one.
    s = await startServer({ IDP_LOCKOUT_THRESHOLD: '1000', IDP_LOCKOUT_IP_THRESHOLD: '100000' });
    token = await s.adminToken();
    expect((await s.admin('POST', '/admin/apis', { identifier: API, name: 'Hostile', scopes: [{ value: 'read:x', description: 'Read' }] })).status).toBe(201);
    const created = await s.admin('POST', '/admin/clients', { client_name: 'Target', grant_types: ['client_credentials'] });
    expect(created.status).toBe(201);
    client = created.body;
    expect((await s.admin('POST', '/admin/client-grants', { client_id: client.client_id, audience: API, scope: ['read:x'] })).status).toBe(201);
  });
  afterAll(() => s.close());

  const FORM = 'application/x-www-form-urlencoded';
  const TEN_KB = 'x'.repeat(10 * 1024);
  const ONE_MB = 'x'.repeat(1024 * 1024);
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const form = (params: [string, string][]) => params.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
  /** A JWT-shaped assertion (never verified: these requests must fail before that). */
  const assertionFor = (sub: string) => `${Buffer.from('{"alg":"RS256"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub, iss: sub })).toString('base64url')}.c2ln`;

  interface Answer {
    status: number;
    headers: Headers;
    text: string;
  }
  async function send(method: string, path: string, headers: Record<string, string>, body?: string | Uint8Array): Promise<Answer> {
    const res = await s.fetch(path, { method, headers, body: body as BodyInit | undefined });
    return { status: res.status, headers: res.headers, text: await res.text() };
  }

  /** Nothing a client sees may look like a stack trace or a raw exception. */
  function expectNoInternals(text: string): void {
    expect(text).not.toMatch(/Error:|\bat [\w.<>]+ \(|node_modules|\.[jt]s:\d+|QueryFailed|SQLITE_|TypeORM|violates|stack/i);
  }

  function expectTokenError(res: Answer, status: number | number[], error: string): Record<string, string> {
    expect([status].flat()).toContain(res.status);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expectNoInternals(res.text);
    const body = JSON.parse(res.text);
    expect(Object.keys(body).sort()).toEqual(['error', 'error_description']);
    expect(body.error).toBe(error);
    expect(body.error_description).toEqual(expect.any(String));
    // RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E.
    expect(body.error_description).toMatch(/^[\x20\x21\x23-\x5B\x5D-\x7E]*$/);
    return body;
  }

  function expectAdminError(res: Answer, status: number | number[], field?: string | RegExp): { statusCode: number; error: string; message: string | string[] } {
    expect([status].flat()).toContain(res.status);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expectNoInternals(res.text);
    const body = JSON.parse(res.text);
    expect(body).toEqual({ statusCode: res.status, error: expect.stringMatching(/^[a-z_]+$/), message: expect.anything() });
    const message = ([] as string[]).concat(body.message).join('\n');
    expect(message.length).toBeGreaterThan(0);
    if (field) expect(message).toMatch(typeof field === 'string' ? new RegExp(`(^|[^a-z_])${field.replace(/[.[\]]/g, '\\$&')}([^a-z_]|$)`, 'm') : field);
    return body;
  }

  describe('at /oauth/token', () => {
    const basicAuth = () => ({ authorization: basic(client.client_id, client.client_secret) });
    const cc = () => [['grant_type', 'client_credentials'], ['audience', API]] as [string, string][];

    it('still answers a well-formed request (the baseline the rows below break)', async () => {
      const res = await send('POST', '/oauth/token', { 'content-type': FORM, ...basicAuth() }, form(cc()));
      expect(res.status).toBe(200);
    });

    // [case, headers, body, status, error]
    it.each<[string, () => Record<string, string>, () => string | Uint8Array | undefined, number | number[], string]>([
      ['a JSON body instead of a form', () => ({ 'content-type': 'application/json', ...basicAuth() }), () => JSON.stringify({ grant_type: 'client_credentials', audience: API }), 400, 'invalid_request'],
      ['a text/plain body', () => ({ 'content-type': 'text/plain', ...basicAuth() }), () => form(cc()), 400, 'invalid_request'],
      ['a multipart body', () => ({ 'content-type': 'multipart/form-data; boundary=x', ...basicAuth() }), () => `--x\r\nContent-Disposition: form-data; name="grant_type"\r\n\r\nclient_credentials\r\n--x--\r\n`, 400, 'invalid_request'],
      ['a body without a content type', () => basicAuth(), () => new TextEncoder().encode(form(cc())), 400, 'invalid_request'],
      ['an empty form body (client authenticated)', () => ({ 'content-type': FORM, ...basicAuth() }), () => '', 400, 'invalid_request'],
      ['no body at all', () => basicAuth(), () => undefined, 400, 'invalid_request'],
      ['an empty form body and no client authentication', () => ({ 'content-type': FORM }), () => '', 401, 'invalid_client'],
      ['a missing grant_type', () => ({ 'content-type': FORM, ...basicAuth() }), () => form([['audience', API]]), 400, 'invalid_request'],
      ['an empty grant_type', () => ({ 'content-type': FORM, ...basicAuth() }), () => form([['grant_type', ''], ['audience', API]]), 400, 'invalid_request'],
      ['an unknown grant_type', () => ({ 'content-type': FORM, ...basicAuth() }), () => form([['grant_type', 'urn:example:magic'], ['audience', API]]), 400, 'unsupported_grant_type'],
      ['the password grant (not offered)', () => ({ 'content-type': FORM, ...basicAuth() }), () => form([['grant_type', 'password'], ['username', 'a'], ['password', 'b']]), 400, 'unsupported_grant_type'],
      ['grant_type twice', () => ({ 'content-type': FORM, ...basicAuth() }), () => form([...cc(), ['grant_type', 'client_credentials']]), 400, 'invalid_request'],
      ['grant_type twice, with different values', () => ({ 'content-type': FORM, ...basicAuth() }), () => form([...cc(), ['grant_type', 'authorization_code']]), 400, 'invalid_request'],
      ['audience twice', () => ({ 'content-type': FORM, ...basicAuth() }), () => form([...cc(), ['audience', API]]), 400, 'invalid_request'],
      ['scope twice', () => ({ 'content-type': FORM, ...basicAuth() }), () => form([...cc(), ['scope', 'read:x'], ['scope', 'read:x']]), 400, 'invalid_request'],
      ['client_secret twice (client_secret_post)', () => ({ 'content-type': FORM }), () => form([...cc(), ['client_id', client.client_id], ['client_secret', 'a'], ['client_secret', 'b']]), 400, 'invalid_request'],
      ['a 10 kB audience', () => ({ 'content-type': FORM, ...basicAuth() }), () => form([['grant_type', 'client_credentials'], ['audience', TEN_KB]]), 400, 'invalid_request'],
      ['a 10 kB scope', () => ({ 'content-type': FORM, ...basicAuth() }), () => form([...cc(), ['scope', TEN_KB]]), 400, 'invalid_request'],
      ['a 10 kB grant_type', () => ({ 'content-type': FORM, ...basicAuth() }), () => form([['grant_type', TEN_KB]]), 400, 'invalid_request'],
      ['a 10 kB client_id (client_secret_post)', () => ({ 'content-type': FORM }), () => form([...cc(), ['client_id', TEN_KB], ['client_secret', 'x']]), 400, 'invalid_request'],
      ['a 10 kB unknown parameter', () => ({ 'content-type': FORM, ...basicAuth() }), () => form([...cc(), ['junk', TEN_KB]]), 400, 'invalid_request'],
      ['a 1 MB body', () => ({ 'content-type': FORM, ...basicAuth() }), () => `${form(cc())}&junk=${ONE_MB}`, [400, 413], 'invalid_request'],
      ['a thousand parameters', () => ({ 'content-type': FORM, ...basicAuth() }), () => form([...cc(), ...Array.from({ length: 1000 }, (_, i) => [`p${i}`, 'x'] as [string, string])]), [400, 413], 'invalid_request'],
      ['an unsupported charset', () => ({ 'content-type': `${FORM}; charset=utf-7`, ...basicAuth() }), () => form(cc()), [400, 415], 'invalid_request'],
      ['a body that claims gzip but is not', () => ({ 'content-type': FORM, 'content-encoding': 'gzip', ...basicAuth() }), () => form(cc()), [400, 415], 'invalid_request'],
      ['an unknown content encoding', () => ({ 'content-type': FORM, 'content-encoding': 'x-magic', ...basicAuth() }), () => form(cc()), [400, 415], 'invalid_request'],
      ['a NUL character in client_id', () => ({ 'content-type': FORM }), () => form([...cc(), ['client_id', 'a\u0000b'], ['client_secret', 'x']]), 400, 'invalid_request'],
      ['a NUL character in audience', () => ({ 'content-type': FORM, ...basicAuth() }), () => form([['grant_type', 'client_credentials'], ['audience', `${API}\u0000`]]), 400, 'invalid_request'],
      ['malformed percent-encoding', () => ({ 'content-type': FORM, ...basicAuth() }), () => 'grant_type=client_credentials&audience=%E0%A4%A', 400, 'invalid_target'],
      ['Basic and client_secret_post at once', () => ({ 'content-type': FORM, ...basicAuth() }), () => form([...cc(), ['client_id', client.client_id], ['client_secret', client.client_secret]]), 400, 'invalid_request'],
      ['Basic and private_key_jwt at once', () => ({ 'content-type': FORM, ...basicAuth() }), () => form([...cc(), ['client_assertion_type', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'], ['client_assertion', assertionFor(client.client_id)]]), 400, 'invalid_request'],
      ['client_secret_post and private_key_jwt at once', () => ({ 'content-type': FORM }), () => form([...cc(), ['client_id', client.client_id], ['client_secret', client.client_secret], ['client_assertion_type', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'], ['client_assertion', assertionFor(client.client_id)]]), 400, 'invalid_request'],
      ['a Bearer header instead of client authentication', () => ({ 'content-type': FORM, authorization: `Bearer ${token}` }), () => form(cc()), 401, 'invalid_client'],
      ['a client_assertion that is not a JWT', () => ({ 'content-type': FORM }), () => form([...cc(), ['client_assertion_type', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'], ['client_assertion', 'not.a.jwt']]), 401, 'invalid_client'],
      ['an unknown client_assertion_type', () => ({ 'content-type': FORM }), () => form([...cc(), ['client_assertion_type', 'urn:example:magic'], ['client_assertion', assertionFor(client.client_id)]]), 400, 'invalid_request'],
    ])('refuses %s', async (_, headers, body, status, error) => {
      expectTokenError(await send('POST', '/oauth/token', headers(), body()), status, error);
    });

    // Malformed HTTP Basic credentials: 401 invalid_client with a Basic challenge (RFC 6749 §5.2),
    // or 400 invalid_request when the credentials are not form-urlencoded (§2.3.1).
    it.each([
      ['no credentials after the scheme', 'Basic'],
      ['credentials that are not base64', 'Basic !!!!****'],
      ['no colon', `Basic ${b64('just-an-id')}`],
      ['an empty client_id', `Basic ${b64(':secret')}`],
      ['an empty secret', () => `Basic ${b64(`${client.client_id}:`)}`],
      ['a 10 kB client_id', `Basic ${b64(`${TEN_KB}:secret`)}`],
      ['a NUL character in the client_id', `Basic ${b64('a\u0000b:secret')}`],
      ['a percent-encoded NUL in the client_id', `Basic ${b64('a%00b:secret')}`],
      ['bad percent-encoding', `Basic ${b64('%E0%A4%A:secret')}`],
      ['the scheme twice', () => `Basic ${basic(client.client_id, client.client_secret)}`],
      ['an unknown scheme', 'Digest username="x"'],
    ])('refuses a malformed Basic header: %s', async (_, header) => {
      const res = await send('POST', '/oauth/token', { 'content-type': FORM, authorization: typeof header === 'function' ? header() : header }, form(cc()));
      if (res.status === 400) {
        expectTokenError(res, 400, 'invalid_request');
      } else {
        expectTokenError(res, 401, 'invalid_client');
        if (/^basic/i.test(typeof header === 'function' ? header() : header)) expect(res.headers.get('www-authenticate')).toMatch(/^Basic /);
      }
    });

    it.each([['GET'], ['PUT'], ['DELETE']])('answers %s with a 4xx and no internals', async (method) => {
      const res = await send(method, '/oauth/token', basicAuth());
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      expectNoInternals(res.text);
    });
  });

  describe('at the admin API', () => {
    const json = () => ({ authorization: `Bearer ${token}`, 'content-type': 'application/json' });
    const user = (extra: Record<string, unknown> = {}) => JSON.stringify({ email: `u${Math.random().toString(36).slice(2)}@example.com`, password: 'long enough password', ...extra });
    const cc = (extra: Record<string, unknown> = {}) => JSON.stringify({ client_name: 'x', grant_types: ['client_credentials'], ...extra });
    const api = (extra: Record<string, unknown> = {}) => JSON.stringify({ identifier: `https://a${Math.random().toString(36).slice(2)}.example.com`, name: 'x', ...extra });
    const grant = (extra: Record<string, unknown> = {}) => JSON.stringify({ client_id: client.client_id, audience: API, scope: ['read:x'], ...extra });

    // [case, method, path, body, status, field named in the message]
    it.each<[string, string, string, () => string, number | number[], string | RegExp | undefined]>([
      // malformed JSON
      ['truncated JSON', 'POST', '/admin/users', () => '{"email": "a@example.com", ', 400, /JSON/],
      ['a trailing comma', 'POST', '/admin/clients', () => '{"client_name": "x",}', 400, /JSON/],
      ['single quotes', 'POST', '/admin/apis', () => "{'identifier': 'https://x.example.com'}", 400, /JSON/],
      ['a bare string', 'POST', '/admin/users', () => '"a@example.com"', 400, undefined],
      ['a bare number', 'PATCH', '/admin/users/x', () => '42', 400, undefined],
      ['null', 'POST', '/admin/client-grants', () => 'null', 400, undefined],
      ['an empty body with a JSON content type', 'POST', '/admin/apis', () => '', 400, undefined],
      // unknown fields
      ['an unknown field', 'POST', '/admin/users', () => user({ is_admin: true }), 400, 'is_admin'],
      ['a client choosing its own secret', 'POST', '/admin/clients', () => cc({ client_secret: 'mine' }), 400, 'client_secret'],
      ['a client choosing its own client_id', 'POST', '/admin/clients', () => cc({ client_id: 'mine' }), 400, 'client_id'],
      ['an API claiming to be the admin API', 'POST', '/admin/apis', () => api({ is_system: true }), 400, 'is_system'],
      ['a grant choosing its id', 'POST', '/admin/client-grants', () => grant({ id: 'mine' }), 400, 'id'],
      ['an unknown field in a PATCH', 'PATCH', '/admin/clients/x', () => JSON.stringify({ client_id_issued_at: 0 }), 400, 'client_id_issued_at'],
      ['an unknown field inside a scope', 'POST', '/admin/apis', () => api({ scopes: [{ value: 'a', description: 'b', hidden: true }] }), 400, 'hidden'],
      ['a __proto__ field', 'POST', '/admin/users', () => user().replace(/}$/, ',"__proto__":{"blocked":true}}'), 400, '__proto__'],
      ['a constructor field', 'POST', '/admin/users', () => user({ constructor: { name: 'x' } }), 400, 'constructor'],
      ['a toString field', 'POST', '/admin/apis', () => api({ toString: 'x' }), 400, 'toString'],
      ['an unknown field in the key rotation', 'POST', '/admin/keys/rotate', () => JSON.stringify({ kid: 'mine' }), 400, 'kid'],
      // wrong types
      ['a number for email', 'POST', '/admin/users', () => user({ email: 123 }), 400, 'email'],
      ['a boolean for password', 'POST', '/admin/users', () => user({ password: true }), 400, 'password'],
      ['a string for blocked', 'PATCH', '/admin/users/x', () => JSON.stringify({ blocked: 'false' }), 400, 'blocked'],
      ['a string for token_lifetime', 'POST', '/admin/apis', () => api({ token_lifetime: '3600' }), 400, 'token_lifetime'],
      ['a fraction for token_lifetime', 'POST', '/admin/apis', () => api({ token_lifetime: 600.5 }), 400, 'token_lifetime'],
      ['a string for redirect_uris', 'POST', '/admin/clients', () => cc({ redirect_uris: 'https://app.example.com/cb' }), 400, 'redirect_uris'],
      ['numbers in redirect_uris', 'POST', '/admin/clients', () => cc({ redirect_uris: [1, 2] }), 400, 'redirect_uris'],
      ['a string for jwks', 'POST', '/admin/clients', () => cc({ token_endpoint_auth_method: 'private_key_jwt', jwks: '{"keys":[]}' }), 400, 'jwks'],
      ['a string for a grant scope', 'POST', '/admin/client-grants', () => grant({ scope: 'read:x' }), 400, 'scope'],
      ['a number for alg', 'POST', '/admin/keys/rotate', () => JSON.stringify({ alg: 256 }), 400, 'alg'],
      ['null for a required field', 'POST', '/admin/apis', () => api({ name: null }), 400, 'name'],
      // 10 kB strings
      ['a 10 kB name', 'POST', '/admin/users', () => user({ name: TEN_KB }), 400, 'name'],
      ['a 10 kB email', 'POST', '/admin/users', () => user({ email: `${TEN_KB}@example.com` }), 400, 'email'],
      ['a 10 kB password', 'POST', '/admin/users', () => user({ password: TEN_KB }), 400, 'password'],
      ['a 10 kB client_name', 'POST', '/admin/clients', () => cc({ client_name: TEN_KB }), 400, 'client_name'],
      ['a 10 kB redirect URI', 'POST', '/admin/clients', () => cc({ redirect_uris: [`https://app.example.com/${TEN_KB}`] }), 400, 'redirect_uris'],
      ['a 10 kB scope string', 'POST', '/admin/clients', () => cc({ scope: TEN_KB }), 400, 'scope'],
      ['a 10 kB identifier', 'POST', '/admin/apis', () => api({ identifier: `https://api.example.com/${TEN_KB}` }), 400, 'identifier'],
      ['a 10 kB scope value', 'POST', '/admin/apis', () => api({ scopes: [{ value: TEN_KB, description: 'x' }] }), 400, 'scopes.0.value'],
      ['a 10 kB scope description', 'POST', '/admin/apis', () => api({ scopes: [{ value: 'a', description: TEN_KB }] }), 400, 'scopes.0.description'],
      ['a 10 kB client_id in a grant', 'POST', '/admin/client-grants', () => grant({ client_id: TEN_KB }), 400, 'client_id'],
      ['a 10 kB audience in a grant', 'POST', '/admin/client-grants', () => grant({ audience: TEN_KB }), 400, 'audience'],
      ['a 10 kB field name', 'POST', '/admin/users', () => user({ [TEN_KB]: 1 }), 400, undefined],
      // arrays where objects are expected (and the reverse)
      ['an empty array as the body', 'POST', '/admin/users', () => '[]', 400, undefined],
      ['an array of users as the body', 'POST', '/admin/users', () => `[${user()}]`, 400, undefined],
      ['an array as the PATCH body', 'PATCH', '/admin/apis/x', () => '[{"name":"x"}]', 400, undefined],
      ['an array for jwks', 'POST', '/admin/clients', () => cc({ token_endpoint_auth_method: 'private_key_jwt', jwks: [{ kty: 'EC' }] }), 400, 'jwks'],
      ['arrays inside scopes', 'POST', '/admin/apis', () => api({ scopes: [[]] }), 400, 'scopes'],
      ['nested arrays inside scopes', 'POST', '/admin/apis', () => api({ scopes: [[[{ value: 'a', description: 'b' }]]] }), 400, 'scopes'],
      ['strings inside scopes', 'POST', '/admin/apis', () => api({ scopes: ['read:x'] }), 400, 'scopes'],
      ['an object for scopes', 'PATCH', '/admin/apis/x', () => JSON.stringify({ scopes: { value: 'a', description: 'b' } }), 400, 'scopes'],
      ['objects inside grant_types', 'POST', '/admin/clients', () => cc({ grant_types: [{ type: 'client_credentials' }] }), 400, 'grant_types'],
      ['an object for a grant scope', 'POST', '/admin/client-grants', () => grant({ scope: { 0: 'read:x' } }), 400, 'scope'],
      // huge or deep bodies
      ['a 1 MB body', 'POST', '/admin/users', () => user({ name: ONE_MB }), 413, undefined],
      ['a 1 MB body of junk fields', 'POST', '/admin/clients', () => JSON.stringify(Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`f${i}`, 'xxxxxxxxxxxxxx']))), 413, undefined],
      ['500 redirect URIs', 'POST', '/admin/clients', () => cc({ redirect_uris: Array.from({ length: 500 }, (_, i) => `https://a.example.com/${i}`) }), 400, 'redirect_uris'],
      ['1000 scopes', 'POST', '/admin/apis', () => api({ scopes: Array.from({ length: 1000 }, (_, i) => ({ value: `s${i}`, description: '' })) }), 400, 'scopes'],
      ['10 000 redirect URIs', 'POST', '/admin/clients', () => cc({ redirect_uris: Array.from({ length: 10_000 }, (_, i) => `https://a.example.com/${i}`) }), 413, undefined],
      ['a body nested 5000 levels deep', 'POST', '/admin/users', () => user().replace(/}$/, `,"x":${'['.repeat(5000)}${']'.repeat(5000)}}`), 400, undefined],
      ['jwks nested 5000 levels deep', 'POST', '/admin/clients', () => cc({ token_endpoint_auth_method: 'private_key_jwt' }).replace(/}$/, `,"jwks":{"keys":${'['.repeat(5000)}${']'.repeat(5000)}}}`), 400, undefined],
      ['scopes nested 2000 objects deep', 'POST', '/admin/apis', () => api().replace(/}$/, `,"scopes":[${'{"value":'.repeat(2000)}"a"${'}'.repeat(2000)}]}`), 400, undefined],
      // characters no database column takes
      ['a NUL character in a name', 'POST', '/admin/users', () => user({ name: 'Ada\u0000Lovelace' }), 400, 'name'],
      ['a NUL character in an email', 'POST', '/admin/users', () => user({ email: 'a\u0000@example.com' }), 400, 'email'],
      ['a NUL character in a client_name', 'PATCH', '/admin/clients/x', () => JSON.stringify({ client_name: '\u0000' }), 400, 'client_name'],
      ['a NUL character in a grant client_id', 'POST', '/admin/client-grants', () => grant({ client_id: '\u0000' }), 400, 'client_id'],
      ['a NUL character in a field name', 'POST', '/admin/users', () => user({ 'a\u0000b': 1 }), 400, undefined],
    ])('refuses %s', async (_, method, path, body, status, field) => {
      expectAdminError(await send(method, path, json(), body()), status, field);
    });

    // [case, method, path, content type, body]
    it.each([
      ['text/plain', 'POST', '/admin/users', 'text/plain', () => user()],
      ['a form body', 'POST', '/admin/clients', 'application/x-www-form-urlencoded', () => 'client_name=x&grant_types=client_credentials'],
      ['multipart', 'POST', '/admin/apis', 'multipart/form-data; boundary=x', () => '--x\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n--x--\r\n'],
      ['application/xml', 'PATCH', '/admin/users/x', 'application/xml', () => '<user><name>x</name></user>'],
      ['no content type', 'POST', '/admin/client-grants', undefined, () => grant()],
      ['a JSON look-alike type', 'PATCH', '/admin/apis/x', 'application/jsonx', () => '{"name":"x"}'],
    ])('answers 415 for %s', async (_, method, path, type, body) => {
      const headers: Record<string, string> = { authorization: `Bearer ${token}`, ...(type ? { 'content-type': type } : {}) };
      const b = body();
      const res = await send(method, path, headers, type ? b : new TextEncoder().encode(b));
      expectAdminError(res, 415);
      expect(JSON.parse(res.text).error).toBe('unsupported_media_type');
    });

    it.each([
      ['a NUL character in a path id', '/admin/users/%00'],
      ['a NUL character in a client id', '/admin/clients/a%00b'],
      ['a NUL character in ?email=', '/admin/users?email=a%00%40example.com'],
      ['a NUL character in ?client_id=', '/admin/client-grants?client_id=%00'],
      ['a NUL character in ?cursor=', '/admin/apis?cursor=%00'],
      ['a 10 kB ?email=', `/admin/users?email=${TEN_KB}`],
      ['a 10 kB ?client_id=', `/admin/client-grants?client_id=${TEN_KB}`],
      ['an array for ?email=', '/admin/users?email=a&email=b'],
    ])('refuses %s with 400', async (_, path) => {
      expectAdminError(await send('GET', path, { authorization: `Bearer ${token}` }), 400);
    });

    it.each([
      ['a 10 kB user id', `/admin/users/${TEN_KB}`],
      ['a 10 kB client id', `/admin/clients/${TEN_KB}`],
      ['a 10 kB API id', `/admin/apis/${TEN_KB}`],
      ['an id with SQL in it', `/admin/users/${encodeURIComponent("' OR '1'='1")}`],
      ['an id with a LIKE wildcard', '/admin/clients/%25'],
      ['an id of unicode', `/admin/apis/${encodeURIComponent('ü😀\u202e')}`],
    ])('answers 404 for %s', async (_, path) => {
      expectAdminError(await send('GET', path, { authorization: `Bearer ${token}` }), 404);
    });

    it.each([
      ['an id that is not UTF-8', '/admin/users/%FF%FE'],
      ['an id with a lone surrogate', '/admin/clients/%ED%A0%80'],
      ['an id with a broken escape', '/admin/apis/%E0%A4%A'],
    ])('answers 400 or 404 for %s', async (_, path) => {
      expectAdminError(await send('GET', path, { authorization: `Bearer ${token}` }), [400, 404]);
    });

    it('stores odd but valid unicode as given', async () => {
      const name = 'Zoë 😀 \u202eevil\u202c <script>alert(1)</script> \'; DROP TABLE users; --';
      const res = await s.admin('POST', '/admin/users', { email: 'unicode@example.com', password: 'long enough password', name });
      expect(res.status).toBe(201);
      expect((await s.admin('GET', `/admin/users/${res.body.user_id}`)).body.name).toBe(name);
    });

    it('a __proto__ field never reaches the created object', async () => {
      const res = await send('POST', '/admin/users', json(), '{"email":"proto@example.com","password":"long enough password","__proto__":{"blocked":true}}');
      expect(res.status).toBe(400);
      expect((await s.admin('GET', '/admin/users?email=proto%40example.com')).body.items).toEqual([]);
      expect(({} as Record<string, unknown>).blocked).toBeUndefined();
    });
  });

  describe('at the pages', () => {
    // Refused before anything is known about the client: the HTML error page, never a redirect.
    it.each<[string, string, string, string | undefined, number | number[]]>([
      ['a NUL character in client_id at /authorize', 'GET', '/authorize?response_type=code&client_id=%00', undefined, 400],
      ['a NUL character in state at /authorize', 'GET', '/authorize?response_type=code&client_id=x&state=%00', undefined, 400],
      ['a 100 kB form at /authorize', 'POST', '/authorize', `client_id=x&junk=${'x'.repeat(100_000)}`, 413],
      ['a 100 kB login form', 'POST', '/login', `username=${'x'.repeat(100_000)}&password=x`, 413],
      ['a NUL character in the login form', 'POST', '/login', 'username=a%00%40example.com&password=x', 400],
    ])('answers %s with the error page', async (_, method, path, body, status) => {
      const res = await send(method, path, body === undefined ? {} : { 'content-type': FORM }, body);
      expect([status].flat()).toContain(res.status);
      expect(res.headers.get('content-type')).toMatch(/^text\/html/);
      expect(res.headers.get('location')).toBeNull();
      expectNoInternals(res.text);
    });
  });

  it('answered nothing with a 5xx', () => {
    const statuses = s.logs.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request').map((l) => l.status);
    expect(statuses.length).toBeGreaterThan(100);
    expect(statuses.filter((st) => st >= 500)).toEqual([]);
  });
});
