import { randomBytes, randomUUID } from 'node:crypto';
import { Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Test, TestingModule } from '@nestjs/testing';
import { TypeOrmModule, getDataSourceToken } from '@nestjs/typeorm';
import type { FastifyRequest as Request } from 'fastify';
import { DataSource } from 'typeorm';
import { CryptoKey, JWK, JWTPayload, SignJWT, UnsecuredJWT, exportJWK, exportSPKI, generateKeyPair } from 'jose';
import { CoreModule, IdpEventMap, IdpEvents, OAuthError, loadConfig } from '@idp/core';
import { dataSourceOptions } from '@idp/identity';
import { Client } from '../client.entity';
import { UsedAssertion } from '../used-assertion.entity';
import { ClientsModule } from '../clients.module';
import { ClientsService } from '../clients.service';
import { ClientAuthenticator } from './client-authenticator';
import { JWT_BEARER_ASSERTION } from './private-key-jwt';

/**
 * Client authentication at the token endpoint (RFC 6749 §2.3, RFC 7523 §2.2 / §3, OIDC Core §9),
 * through ClientAuthenticator.authenticate(req) with the real ClientsModule on SQLite in memory.
 */

const ISSUER = 'http://idp.test';
const TOKEN_ENDPOINT = `${ISSUER}/oauth/token`;
const now = () => Math.floor(Date.now() / 1000);

type KeyPair = { publicKey: CryptoKey; privateKey: CryptoKey };
interface Registered {
  client_id: string;
  secret?: string;
}

/** A fake Express request for POST /oauth/token: what the authenticator reads and nothing more. */
function tokenRequest(body: Record<string, string>, headers: Record<string, string> = {}, path = '/oauth/token'): Request {
  return {
    method: 'POST',
    path,
    ip: '127.0.0.1',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: { grant_type: 'client_credentials', ...body },
    is: (type: string) => (type === 'application/x-www-form-urlencoded' ? type : false),
  } as unknown as Request;
}

function basic(id: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

async function publicJwk(pair: KeyPair, kid: string, alg: string): Promise<JWK> {
  return { ...(await exportJWK(pair.publicKey)), kid, alg, use: 'sig' };
}

describe('client authentication (ClientAuthenticator)', () => {
  let moduleRef: TestingModule;
  let auth: ClientAuthenticator;
  let clients: ClientsService;
  let db: DataSource;
  let failures: IdpEventMap['client.auth_failed'][];

  let rsa: KeyPair;
  let ec: KeyPair;
  let foreign: KeyPair;
  let basicClient: Registered;
  let postClient: Registered;
  let publicClient: Registered;
  let jwtClient: Registered;
  let otherJwtClient: Registered;

  beforeAll(async () => {
    moduleRef = await Test.createTestingModule({
      imports: [
        // Lockouts have their own suite; these tables fail one client many times on purpose.
        CoreModule.forRoot(loadConfig({ NODE_ENV: 'test', DATABASE_URL: 'sqlite::memory:', IDP_SECRET_KEY: randomBytes(32).toString('base64url'), ISSUER, IDP_LOCKOUT_THRESHOLD: '1000', IDP_LOCKOUT_IP_THRESHOLD: '1000' })),
        TypeOrmModule.forRoot({ ...dataSourceOptions('sqlite::memory:'), migrationsRun: true }),
        ClientsModule,
      ],
    }).compile();
    await moduleRef.init();
    auth = moduleRef.get(ClientAuthenticator);
    clients = moduleRef.get(ClientsService);
    db = moduleRef.get(getDataSourceToken());
    moduleRef.get(IdpEvents).on('client.auth_failed', (p) => void failures.push(p));

    [rsa, ec, foreign] = await Promise.all([generateKeyPair('RS256', { extractable: true }), generateKeyPair('ES256', { extractable: true }), generateKeyPair('RS256', { extractable: true })]);
    const register = async (metadata: Parameters<ClientsService['register']>[0]): Promise<Registered> => {
      const { client, secret } = await clients.register(metadata);
      return { client_id: client.client_id, secret };
    };
    basicClient = await register({ client_name: 'basic', grant_types: ['client_credentials'] });
    postClient = await register({ client_name: 'post', grant_types: ['client_credentials'], token_endpoint_auth_method: 'client_secret_post' });
    publicClient = await register({ client_name: 'spa', redirect_uris: ['https://app.example.com/cb'], token_endpoint_auth_method: 'none' });
    jwtClient = await register({
      client_name: 'jwt', grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt',
      jwks: { keys: [await publicJwk(rsa, 'rsa-1', 'RS256'), await publicJwk(ec, 'ec-1', 'ES256')] as Record<string, unknown>[] },
    });
    otherJwtClient = await register({
      client_name: 'other jwt', grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt',
      jwks: { keys: [await publicJwk(foreign, 'foreign-1', 'RS256')] as Record<string, unknown>[] },
    });
  });
  afterAll(() => moduleRef?.close());
  beforeEach(() => {
    failures = [];
  });

  /** The OAuthError that authenticate() rejects with (fails the test if it resolves). */
  async function rejection(req: Request): Promise<OAuthError> {
    const err = await auth.authenticate(req).then(
      (c) => new Error(`expected a rejection, authenticated ${c.client_id}`),
      (e: unknown) => e,
    );
    if (!(err instanceof OAuthError)) throw err;
    return err;
  }

  function expectInvalidClient(err: OAuthError, { basicChallenge }: { basicChallenge: boolean }): void {
    expect({ code: err.code, status: err.status }).toEqual({ code: 'invalid_client', status: 401 });
    if (basicChallenge) expect(err.headers['WWW-Authenticate']).toMatch(/^Basic /);
    else expect(err.headers['WWW-Authenticate']).toBeUndefined();
  }

  /** Signs a client assertion: valid for `client` unless `claims` / `header` / `key` say otherwise (undefined removes a claim). */
  async function assertion(
    client: Registered,
    claims: Partial<Record<keyof JWTPayload, unknown>> = {},
    header: { alg?: string; kid?: string } = {},
    key: CryptoKey | Uint8Array = rsa.privateKey,
  ): Promise<string> {
    const payload: Record<string, unknown> = { iss: client.client_id, sub: client.client_id, aud: ISSUER, iat: now(), exp: now() + 60, jti: randomUUID(), ...claims };
    for (const k of Object.keys(payload)) if (payload[k] === undefined) delete payload[k];
    return new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: 'rsa-1', ...header }).sign(key);
  }

  const withAssertion = (jwt: string, extra: Record<string, string> = {}) =>
    tokenRequest({ client_assertion_type: JWT_BEARER_ASSERTION, client_assertion: jwt, ...extra });

  describe('client_secret_basic', () => {
    it('authenticates the client with its secret in the Basic header, without exposing the secret hash', async () => {
      const client = await auth.authenticate(tokenRequest({}, { authorization: basic(basicClient.client_id, basicClient.secret!) }));
      expect(client).toBeInstanceOf(Client);
      expect(client.client_id).toBe(basicClient.client_id);
      expect(client).not.toHaveProperty('secret_hash');
    });

    it.each<[string, () => string]>([
      ['the secret is wrong', () => basic(basicClient.client_id, 'wrong-secret')],
      ['the secret is empty', () => basic(basicClient.client_id, '')],
      ['the secret of another client is used', () => basic(basicClient.client_id, postClient.secret!)],
      ['the client is unknown', () => basic('no-such-client', basicClient.secret!)],
      ['the client registered client_secret_post', () => basic(postClient.client_id, postClient.secret!)],
      ['the client is public (none) and sends a secret', () => basic(publicClient.client_id, 'anything')],
      ['the client registered private_key_jwt', () => basic(jwtClient.client_id, 'anything')],
      ['the header has no client_id:secret pair', () => `Basic ${Buffer.from('no-colon').toString('base64')}`],
    ])('rejects with 401 invalid_client and a Basic challenge when %s', async (_, header) => {
      expectInvalidClient(await rejection(tokenRequest({}, { authorization: header() })), { basicChallenge: true });
    });

    it('reports the failure as client.auth_failed, never with the secret', async () => {
      await rejection(tokenRequest({}, { authorization: basic(basicClient.client_id, 'wrong-secret-value') }));
      expect(failures).toEqual([expect.objectContaining({ clientId: basicClient.client_id, method: 'client_secret_basic', reason: expect.any(String) })]);
      expect(JSON.stringify(failures)).not.toContain('wrong-secret-value');
    });
  });

  describe('client_secret_post', () => {
    it('authenticates the client with client_id and client_secret in the form body', async () => {
      const client = await auth.authenticate(tokenRequest({ client_id: postClient.client_id, client_secret: postClient.secret! }));
      expect(client.client_id).toBe(postClient.client_id);
      expect(client).not.toHaveProperty('secret_hash');
    });

    it.each<[string, () => Record<string, string>]>([
      ['the secret is wrong', () => ({ client_id: postClient.client_id, client_secret: 'wrong-secret' })],
      ['the client is unknown', () => ({ client_id: 'no-such-client', client_secret: postClient.secret! })],
      ['client_id is missing', () => ({ client_secret: postClient.secret! })],
      ['the client registered client_secret_basic', () => ({ client_id: basicClient.client_id, client_secret: basicClient.secret! })],
      ['the client is public (none) and sends a secret', () => ({ client_id: publicClient.client_id, client_secret: 'anything' })],
    ])('rejects with 401 invalid_client (no Basic challenge) when %s', async (_, body) => {
      expectInvalidClient(await rejection(tokenRequest(body())), { basicChallenge: false });
    });
  });

  describe('none (public clients)', () => {
    it('identifies a public client by client_id alone', async () => {
      const client = await auth.authenticate(tokenRequest({ client_id: publicClient.client_id }));
      expect(client.client_id).toBe(publicClient.client_id);
      expect(client.isPublic).toBe(true);
    });

    it.each<[string, () => Record<string, string>]>([
      ['the client is unknown', () => ({ client_id: 'no-such-client' })],
      ['the client is confidential (client_secret_basic) and sends no secret', () => ({ client_id: basicClient.client_id })],
      ['the client is confidential (client_secret_post) and sends no secret', () => ({ client_id: postClient.client_id })],
      ['the client registered private_key_jwt and sends no assertion', () => ({ client_id: jwtClient.client_id })],
      ['no client credentials at all are sent', () => ({})],
    ])('rejects with 401 invalid_client when %s', async (_, body) => {
      expectInvalidClient(await rejection(tokenRequest(body())), { basicChallenge: false });
    });
  });

  describe('more than one method in one request (RFC 6749 §2.3)', () => {
    it.each<[string, () => Promise<Request>]>([
      ['Basic header and client_secret in the body', async () => tokenRequest({ client_id: basicClient.client_id, client_secret: basicClient.secret! }, { authorization: basic(basicClient.client_id, basicClient.secret!) })],
      ['Basic header and a client assertion', async () => tokenRequest({ client_assertion_type: JWT_BEARER_ASSERTION, client_assertion: await assertion(jwtClient) }, { authorization: basic(basicClient.client_id, basicClient.secret!) })],
      ['client_secret in the body and a client assertion', async () => withAssertion(await assertion(jwtClient), { client_secret: postClient.secret! })],
    ])('rejects %s with 400 invalid_request, even when each is valid', async (_, req) => {
      const err = await rejection(await req());
      expect({ code: err.code, status: err.status }).toEqual({ code: 'invalid_request', status: 400 });
    });
  });

  describe('private_key_jwt (RFC 7523)', () => {
    it.each<[string, Partial<JWTPayload>, { alg: string; kid: string }, () => CryptoKey]>([
      ['aud = the issuer, RS256', { aud: ISSUER }, { alg: 'RS256', kid: 'rsa-1' }, () => rsa.privateKey],
      ['aud = the token endpoint URL, RS256', { aud: TOKEN_ENDPOINT }, { alg: 'RS256', kid: 'rsa-1' }, () => rsa.privateKey],
      ['aud = the issuer, ES256', { aud: ISSUER }, { alg: 'ES256', kid: 'ec-1' }, () => ec.privateKey],
      ['aud = the token endpoint URL, ES256', { aud: TOKEN_ENDPOINT }, { alg: 'ES256', kid: 'ec-1' }, () => ec.privateKey],
      ['a lifetime of an hour (exp = iat + 3600)', { iat: now(), exp: now() + 3600 }, { alg: 'RS256', kid: 'rsa-1' }, () => rsa.privateKey],
    ])('accepts an assertion with %s', async (_, claims, header, key) => {
      const client = await auth.authenticate(withAssertion(await assertion(jwtClient, claims, header, key())));
      expect(client.client_id).toBe(jwtClient.client_id);
    });

    it('accepts client_id in the body when it names the assertion subject', async () => {
      const client = await auth.authenticate(withAssertion(await assertion(jwtClient), { client_id: jwtClient.client_id }));
      expect(client.client_id).toBe(jwtClient.client_id);
    });

    it('accepts a jti once: replaying the same assertion fails', async () => {
      const jwt = await assertion(jwtClient);
      await expect(auth.authenticate(withAssertion(jwt))).resolves.toMatchObject({ client_id: jwtClient.client_id });
      expectInvalidClient(await rejection(withAssertion(jwt)), { basicChallenge: false });
      // The same jti in a freshly signed assertion is a replay too.
      const { jti } = JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());
      expectInvalidClient(await rejection(withAssertion(await assertion(jwtClient, { jti, exp: now() + 120 }))), { basicChallenge: false });
      expect(failures.at(-1)).toMatchObject({ clientId: jwtClient.client_id, method: 'private_key_jwt' });
    });

    it('keeps a used jti for as long as its assertion would be accepted (exp and the clock tolerance)', async () => {
      const exp = now() + 3600;
      const jwt = await assertion(jwtClient, { exp });
      await auth.authenticate(withAssertion(jwt));
      const { jti } = JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());
      const row = await db.getRepository(UsedAssertion).findOneByOrFail({ client_id: jwtClient.client_id, jti });
      expect(row.expires_at.getTime()).toBe((exp + 5) * 1000);
    });

    it.each<[string, () => Promise<string>]>([
      ['it has expired', () => assertion(jwtClient, { iat: now() - 120, exp: now() - 60 })],
      ['its aud is another server', () => assertion(jwtClient, { aud: 'https://other.example.com' })],
      ["its aud is another server's token endpoint", () => assertion(jwtClient, { aud: 'https://other.example.com/oauth/token' })],
      ['it has no aud', () => assertion(jwtClient, { aud: undefined })],
      ['its iss is not its sub', () => assertion(jwtClient, { iss: otherJwtClient.client_id })],
      ['it has no iss', () => assertion(jwtClient, { iss: undefined })],
      ['it lives longer than an hour (exp = iat + 3601)', () => assertion(jwtClient, { iat: now(), exp: now() + 3601 })],
      ['it lives longer than an hour (no iat, exp 61 minutes from now)', () => assertion(jwtClient, { iat: undefined, exp: now() + 3660 })],
      ['it lives longer than an hour (issued 30 minutes ago, expires in 31)', () => assertion(jwtClient, { iat: now() - 1800, exp: now() + 1860 })],
      ['it was issued more than an hour ago', () => assertion(jwtClient, { iat: now() - 3660, exp: now() + 30 })],
      ['it has no exp', () => assertion(jwtClient, { exp: undefined })],
      ['it has no jti', () => assertion(jwtClient, { jti: undefined })],
      ["its kid is not in the client's jwks", () => assertion(jwtClient, {}, { kid: 'unknown-kid' }, foreign.privateKey)],
      ["it is signed by a key not in the client's jwks (claiming a registered kid)", () => assertion(jwtClient, {}, { kid: 'rsa-1' }, foreign.privateKey)],
      ["it is signed by another client's key", () => assertion(jwtClient, {}, { kid: 'foreign-1' }, foreign.privateKey)],
      ["it is HS256-signed with the client's public key as the HMAC secret", async () =>
        assertion(jwtClient, {}, { alg: 'HS256', kid: 'rsa-1' }, new TextEncoder().encode(await exportSPKI(rsa.publicKey)))],
      ['it is unsigned (alg none)', () =>
        Promise.resolve(new UnsecuredJWT({ iss: jwtClient.client_id, sub: jwtClient.client_id, aud: ISSUER, jti: randomUUID() }).setIssuedAt().setExpirationTime('1m').encode())],
      ["its sub names another client, signed with this client's key", () =>
        assertion(otherJwtClient, {}, { kid: 'rsa-1' }, rsa.privateKey)],
      ['its sub is an unknown client', () => assertion({ client_id: 'no-such-client' })],
    ])('rejects with 401 invalid_client when %s', async (_, jwt) => {
      expectInvalidClient(await rejection(withAssertion(await jwt())), { basicChallenge: false });
    });

    it('rejects with 401 invalid_client when the assertion sub differs from the client_id sent', async () => {
      const err = await rejection(withAssertion(await assertion(jwtClient), { client_id: otherJwtClient.client_id }));
      expectInvalidClient(err, { basicChallenge: false });
    });

    it('rejects a client_assertion_type other than jwt-bearer with invalid_request', async () => {
      const err = await rejection(tokenRequest({ client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:saml2-bearer', client_assertion: await assertion(jwtClient) }));
      expect(err.code).toBe('invalid_request');
    });

    it('rejects an HS256 assertion even when the key set (tampered in the database) holds the matching secret', async () => {
      // Registration never stores a symmetric key; HMAC must be refused even if one got there.
      const secret = randomBytes(32);
      const { client } = await clients.register({
        grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt',
        jwks: { keys: [(await publicJwk(rsa, 'rsa-1', 'RS256')) as Record<string, unknown>] },
      });
      const stored = await db.getRepository(Client).findOneByOrFail({ client_id: client.client_id });
      stored.jwks = { keys: [{ kty: 'oct', k: secret.toString('base64url'), kid: 'hmac' }] };
      await db.getRepository(Client).save(stored);
      const jwt = await assertion(client, {}, { alg: 'HS256', kid: 'hmac' }, secret);
      expectInvalidClient(await rejection(withAssertion(jwt)), { basicChallenge: false });
    });

    describe('with a jwks_uri', () => {
      let server: Server;
      let requests = 0;
      let uriClient: Registered;

      beforeAll(async () => {
        const jwks = { keys: [await publicJwk(ec, 'remote-ec', 'ES256')] };
        server = createServer((req, res) => {
          requests++;
          if (req.url !== '/jwks.json') return void res.writeHead(404).end();
          res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(JSON.stringify(jwks));
        });
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        const { port } = server.address() as AddressInfo;
        const { client } = await clients.register({
          grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt', jwks_uri: `http://127.0.0.1:${port}/jwks.json`,
        });
        uriClient = { client_id: client.client_id };
      });
      afterAll(async () => {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      });

      it('verifies an assertion against the keys fetched from the jwks_uri', async () => {
        const jwt = await assertion(uriClient, { aud: TOKEN_ENDPOINT }, { alg: 'ES256', kid: 'remote-ec' }, ec.privateKey);
        await expect(auth.authenticate(withAssertion(jwt))).resolves.toMatchObject({ client_id: uriClient.client_id });
        expect(requests).toBeGreaterThanOrEqual(1);
      });

      it('rejects an assertion signed by a key the jwks_uri does not publish', async () => {
        const jwt = await assertion(uriClient, {}, { alg: 'ES256', kid: 'remote-ec' }, (await generateKeyPair('ES256')).privateKey);
        expectInvalidClient(await rejection(withAssertion(jwt)), { basicChallenge: false });
      });
    });
  });
});
