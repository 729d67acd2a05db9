import { randomUUID } from 'node:crypto';
import { Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CryptoKey, JWK, SignJWT, createRemoteJWKSet, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import { TestServer, postForm, startServer } from './support/server';

/**
 * private_key_jwt client authentication (RFC 7523 §2.2, OIDC Core §9) over HTTP: a client
 * registered through the admin API with `jwks` or `jwks_uri` gets client_credentials tokens with
 * a signed assertion, each assertion once.
 */

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const API = 'https://api.example.com/reports';

type KeyPair = { publicKey: CryptoKey; privateKey: CryptoKey };

async function publicJwk(pair: KeyPair, kid: string, alg: string): Promise<JWK> {
  return { ...(await exportJWK(pair.publicKey)), kid, alg, use: 'sig' };
}

describe('private_key_jwt (end to end)', () => {
  let s: TestServer;
  let meta: { issuer: string; token_endpoint: string; introspection_endpoint: string; jwks_uri: string; token_endpoint_auth_methods_supported: string[]; token_endpoint_auth_signing_alg_values_supported: string[] };
  let rsa: KeyPair;
  let client: { client_id: string; [k: string]: unknown };

  /** A client assertion for `clientId`, valid for a minute, aud = the token endpoint unless overridden. */
  function assertion(clientId: string, key: CryptoKey, header: { alg: string; kid: string }, claims: Record<string, unknown> = {}): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ iss: clientId, sub: clientId, aud: meta.token_endpoint, iat: now, exp: now + 60, jti: randomUUID(), ...claims })
      .setProtectedHeader(header)
      .sign(key);
  }

  const token = (clientAssertion: string, extra: Record<string, string> = {}) =>
    postForm(s, new URL(meta.token_endpoint).pathname, { grant_type: 'client_credentials', audience: API, client_assertion_type: JWT_BEARER, client_assertion: clientAssertion, ...extra });

  async function grantAccess(clientId: string): Promise<void> {
    expect((await s.admin('POST', '/admin/client-grants', { client_id: clientId, audience: API, scope: ['read:reports'] })).status).toBe(201);
  }

  beforeAll(async () => {
    s = await startServer();
    meta = await (await s.fetch('/.well-known/oauth-authorization-server')).json();
    rsa = await generateKeyPair('RS256', { extractable: true });
    expect((await s.admin('POST', '/admin/apis', { identifier: API, name: 'Reports', scopes: [{ value: 'read:reports', description: 'Read reports' }], token_lifetime: 300 })).status).toBe(201);
    const created = await s.admin('POST', '/admin/clients', {
      client_name: 'Report job', grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [await publicJwk(rsa, 'job-key-1', 'RS256')] },
    });
    expect(created.status).toBe(201);
    client = created.body;
    await grantAccess(client.client_id);
  });
  afterAll(() => s?.close());

  it('advertises private_key_jwt and asymmetric signing algorithms only in discovery', () => {
    expect(meta.token_endpoint_auth_methods_supported).toContain('private_key_jwt');
    expect(meta.token_endpoint_auth_signing_alg_values_supported).toEqual(expect.arrayContaining(['RS256', 'ES256']));
    expect(meta.token_endpoint_auth_signing_alg_values_supported.filter((a) => /^(HS|none)/i.test(a))).toEqual([]);
  });

  it('registers the client with its jwks and without a client secret', () => {
    expect(client).toMatchObject({ token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [expect.objectContaining({ kid: 'job-key-1', kty: 'RSA' })] } });
    expect(client).not.toHaveProperty('client_secret');
  });

  it.each([
    ['the token endpoint URL', () => meta.token_endpoint],
    ['the issuer', () => meta.issuer],
  ])('issues a client_credentials token for an assertion whose aud is %s', async (_, aud) => {
    const res = await token(await assertion(client.client_id, rsa.privateKey, { alg: 'RS256', kid: 'job-key-1' }, { aud: aud() }));
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body).toMatchObject({ token_type: 'Bearer', expires_in: 300, scope: 'read:reports' });
    const { payload } = await jwtVerify(body.access_token, createRemoteJWKSet(new URL(meta.jwks_uri)), { issuer: meta.issuer, audience: API, typ: 'at+jwt' });
    expect(payload).toMatchObject({ sub: client.client_id, client_id: client.client_id });
  });

  it('answers 401 invalid_client when the same assertion is presented again', async () => {
    const jwt = await assertion(client.client_id, rsa.privateKey, { alg: 'RS256', kid: 'job-key-1' });
    expect((await token(jwt)).status).toBe(200);
    const replay = await token(jwt);
    expect(replay.status).toBe(401);
    expect(replay.headers.get('cache-control')).toBe('no-store');
    expect(replay.headers.get('www-authenticate')).toBeNull();
    expect(await replay.json()).toEqual({ error: 'invalid_client', error_description: expect.any(String) });
  });

  it('accepts exactly one of several simultaneous uses of one assertion', async () => {
    const jwt = await assertion(client.client_id, rsa.privateKey, { alg: 'RS256', kid: 'job-key-1' });
    const statuses = (await Promise.all(Array.from({ length: 5 }, () => token(jwt)))).map((r) => r.status);
    expect(statuses.sort()).toEqual([200, 401, 401, 401, 401]);
  });

  it.each<[string, () => Promise<string>]>([
    ['it is signed by a key the client did not register', async () => assertion(client.client_id, (await generateKeyPair('RS256')).privateKey, { alg: 'RS256', kid: 'job-key-1' })],
    ['its aud is another server', () => assertion(client.client_id, rsa.privateKey, { alg: 'RS256', kid: 'job-key-1' }, { aud: 'https://other.example.com/oauth/token' })],
    ['it has expired', () => assertion(client.client_id, rsa.privateKey, { alg: 'RS256', kid: 'job-key-1' }, { iat: Math.floor(Date.now() / 1000) - 300, exp: Math.floor(Date.now() / 1000) - 120 })],
  ])('answers 401 invalid_client when %s', async (_, jwt) => {
    const res = await token(await jwt());
    expect(res.status).toBe(401);
    expect((await res.json()).error).toBe('invalid_client');
  });

  describe('assertions that live up to an hour, and why one is refused', () => {
    const now = () => Math.floor(Date.now() / 1000);
    const job = { alg: 'RS256', kid: 'job-key-1' };
    /** An assertion of the report job, signed with its registered key unless told otherwise. */
    const signed = (claims: Record<string, unknown>, header = job, key?: CryptoKey) => assertion(client.client_id, key ?? rsa.privateKey, header, claims);
    const foreignKey = async () => (await generateKeyPair('RS256')).privateKey;

    it.each<[string, () => Promise<string>]>([
      ['exp = iat + 3600 (what a stock Authlib client signs)', () => signed({ iat: now(), exp: now() + 3600 })],
      ['iat 59 minutes ago and exp in one', () => signed({ iat: now() - 3540, exp: now() + 60 })],
      ['no iat and exp an hour ahead', () => signed({ iat: undefined, exp: now() + 3600 })],
    ])('issues a token when the assertion has %s', async (_, jwt) => {
      const res = await token(await jwt());
      expect(res.status).toBe(200);
      expect((await res.json()).scope).toBe('read:reports');
    });

    it.each<[string, () => Promise<string>, () => string[]]>([
      ['exp = iat + 3601', () => signed({ iat: now(), exp: now() + 3601 }), () => ['lives too long', 'exp - iat']],
      ['no iat and exp 3700 s ahead', () => signed({ iat: undefined, exp: now() + 3700 }), () => ['lives too long', 'ahead']],
      ['iat 3700 s ago', () => signed({ iat: now() - 3700, exp: now() + 60 }), () => ['too old']],
      ['the aud of another server', () => signed({ aud: 'https://other.example.com/oauth/token' }), () => ['wrong aud', `the issuer (${meta.issuer})`, `the token endpoint URL (${meta.token_endpoint})`]],
      ['a kid the JWKS does not hold', async () => signed({}, { alg: 'RS256', kid: 'not-registered' }, await foreignKey()), () => ['unknown key']],
      ["a registered kid but another key's signature", async () => signed({}, job, await foreignKey()), () => ['bad signature']],
      ['a jti already used', async () => {
        const jwt = await signed({ iat: now(), exp: now() + 3600 });
        expect((await token(jwt)).status).toBe(200);
        return jwt;
      }, () => ['jti was already used']],
      ['a used jti, newly signed', async () => {
        const jti = randomUUID();
        expect((await token(await signed({ jti, iat: now() - 1800, exp: now() + 1800 }))).status).toBe(200);
        return signed({ jti, iat: now(), exp: now() + 3600 });
      }, () => ['jti was already used']],
      ['exp in the past', () => signed({ iat: now() - 300, exp: now() - 120 }), () => ['expired']],
      ['the iss of another client', () => signed({ iss: 'another-client' }), () => ['wrong iss']],
    ])('answers 401 invalid_client, saying why, when the assertion has %s', async (_, jwt, says) => {
      const sent = await jwt();
      const res = await token(sent);
      expect(res.status).toBe(401);
      const body = await res.json();
      expect(body).toEqual({ error: 'invalid_client', error_description: expect.any(String) });
      for (const words of says()) expect(body.error_description).toContain(words);
      // RFC 6749 §5.2's characters, and nothing of the assertion itself.
      expect(body.error_description).toMatch(/^[\x20\x21\x23-\x5b\x5d-\x7e]+$/);
      for (const part of sent.split('.')) expect(body.error_description).not.toContain(part);
    });

    it("names the endpoint's own URL among the accepted audiences where the assertion is sent to another endpoint", async () => {
      const res = await postForm(s, new URL(meta.introspection_endpoint).pathname, {
        token: 'anything', client_assertion_type: JWT_BEARER, client_assertion: await signed({ aud: 'https://other.example.com/oauth/introspect' }),
      });
      expect(res.status).toBe(401);
      expect((await res.json()).error_description).toBe(
        `wrong aud: the accepted audiences are the issuer (${meta.issuer}) and the token endpoint URL (${meta.token_endpoint}), or this endpoint's URL (${meta.introspection_endpoint})`,
      );
    });
  });

  describe('with a jwks_uri', () => {
    let jwksServer: Server;
    let ec: KeyPair;
    let uriClient: { client_id: string };

    beforeAll(async () => {
      ec = await generateKeyPair('ES256', { extractable: true });
      const jwks = JSON.stringify({ keys: [await publicJwk(ec, 'remote-1', 'ES256')] });
      jwksServer = createServer((req, res) => {
        if (req.url !== '/.well-known/jwks.json') return void res.writeHead(404).end();
        res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(jwks);
      });
      await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
      const { port } = jwksServer.address() as AddressInfo;
      const created = await s.admin('POST', '/admin/clients', {
        client_name: 'Remote keys job', grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt', jwks_uri: `http://127.0.0.1:${port}/.well-known/jwks.json`,
      });
      expect(created.status).toBe(201);
      expect(created.body).not.toHaveProperty('client_secret');
      uriClient = created.body;
      await grantAccess(uriClient.client_id);
    });
    afterAll(async () => {
      jwksServer.closeAllConnections();
      await new Promise((resolve) => jwksServer.close(resolve));
    });

    it('issues a token for an assertion verified against the keys published at the jwks_uri', async () => {
      const res = await token(await assertion(uriClient.client_id, ec.privateKey, { alg: 'ES256', kid: 'remote-1' }));
      expect(res.status).toBe(200);
      expect((await res.json()).scope).toBe('read:reports');
    });

    it('answers 401 invalid_client for an assertion signed by a key the jwks_uri does not publish', async () => {
      const res = await token(await assertion(uriClient.client_id, (await generateKeyPair('ES256')).privateKey, { alg: 'ES256', kid: 'remote-1' }));
      expect(res.status).toBe(401);
      expect((await res.json()).error).toBe('invalid_client');
    });
  });
});
