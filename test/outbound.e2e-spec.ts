import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { CryptoKey, SignJWT, exportJWK, generateKeyPair } from 'jose';
import { Client } from '@idp/clients';
import { closeLocalServers, serveLocal } from './support/local-http';
import { TestServer, postForm, startServer } from './support/server';

/**
 * Outbound fetches (CONTRACT §1 IDP_OUTBOUND) seen from outside: which jwks_uri the admin API
 * accepts in each mode, and what a private_key_jwt client gets when its jwks_uri streams 128 MiB,
 * redirects, or points at an address the server may not fetch. (A jwks_uri that never answers is
 * libs/core/src/outbound.spec.ts's, on a fake clock.)
 */

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const API = 'https://api.example.com/outbound';

const serve = serveLocal;
afterAll(closeLocalServers);

const message = (body: { message: string | string[] }) => ([] as string[]).concat(body.message).join('\n');
const pkjClient = (jwks_uri: string) => ({ client_name: 'Outbound job', grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt', jwks_uri });

describe('outbound fetches (end to end)', () => {
  describe.each(['public', 'local'] as const)('registering a jwks_uri with IDP_OUTBOUND=%s', (mode) => {
    let s: TestServer;
    beforeAll(async () => {
      s = await startServer({ IDP_OUTBOUND: mode });
    });
    afterAll(() => s?.close());

    it.each<[string, boolean, boolean]>([
      // [jwks_uri, accepted with IDP_OUTBOUND=public, accepted with IDP_OUTBOUND=local]
      ['http://169.254.169.254/latest/meta-data/', false, false],
      ['https://169.254.169.254/latest/meta-data/', false, false],
      ['http://metadata.google.internal/computeMetadata/v1/', false, false],
      ['https://metadata.google.internal/computeMetadata/v1/', false, false],
      ['https://[fe80::1]/jwks', false, false],
      ['https://[fd00:ec2::254]/latest/meta-data/', false, false],
      ['https://[::ffff:169.254.169.254]/jwks', false, false],
      ['http://0.0.0.0:6379/', false, false],
      ['https://10.0.0.1/jwks', false, true],
      ['https://192.168.1.1/jwks', false, true],
      ['https://172.16.0.1/jwks', false, true],
      ['http://127.0.0.1:6379/', false, true],
      ['http://localhost:6379/', false, true],
      ['http://[::1]:6379/', false, true],
      ['http://public.example.com/jwks', false, true],
      ['https://keys.example.com/jwks', true, true],
    ])('%s: accepted with public %s, with local %s', async (uri, inPublic, inLocal) => {
      const res = await s.admin('POST', '/admin/clients', pkjClient(uri));
      if (mode === 'public' ? inPublic : inLocal) {
        expect(res.status).toBe(201);
        expect(res.body.jwks_uri).toBe(uri);
      } else {
        expect(res.status).toBe(400);
        expect(res.body).toMatchObject({ statusCode: 400, error: 'invalid_request' });
        expect(message(res.body)).toMatch(/^jwks_uri must /m);
      }
    });

    it('checks a PATCHed jwks_uri too, and leaves the client unchanged on 400', async () => {
      const created = await s.admin('POST', '/admin/clients', pkjClient('https://keys.example.com/jwks'));
      expect(created.status).toBe(201);
      const res = await s.admin('PATCH', `/admin/clients/${created.body.client_id}`, { jwks_uri: 'http://169.254.169.254/latest/meta-data/' });
      expect(res.status).toBe(400);
      expect(message(res.body)).toMatch(/^jwks_uri must /m);
      expect((await s.admin('GET', `/admin/clients/${created.body.client_id}`)).body.jwks_uri).toBe('https://keys.example.com/jwks');
    });
  });

  describe('authenticating with private_key_jwt against the jwks_uri', () => {
    let s: TestServer;
    let key: { publicKey: CryptoKey; privateKey: CryptoKey };
    let jwks: string;
    let tokenPath: string;

    const assertion = (clientId: string) => {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ iss: clientId, sub: clientId, aud: s.config.tokenEndpoint, iat: now, exp: now + 60, jti: randomUUID() })
        .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
        .sign(key.privateKey);
    };
    const token = async (clientId: string) =>
      postForm(s, tokenPath, { grant_type: 'client_credentials', audience: API, client_assertion_type: JWT_BEARER, client_assertion: await assertion(clientId) });
    async function register(server: TestServer, jwksUri: string): Promise<string> {
      const created = await server.admin('POST', '/admin/clients', pkjClient(jwksUri));
      expect(created.status).toBe(201);
      expect((await server.admin('POST', '/admin/client-grants', { client_id: created.body.client_id, audience: API, scope: ['read:things'] })).status).toBe(201);
      return created.body.client_id;
    }
    async function expectCouldNotFetch(res: Response): Promise<void> {
      expect(res.status).toBe(401);
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(await res.json()).toEqual({ error: 'invalid_client', error_description: "the client's jwks_uri could not be fetched" });
    }

    beforeAll(async () => {
      s = await startServer({ IDP_OUTBOUND: 'local' });
      tokenPath = new URL(s.config.tokenEndpoint).pathname;
      key = await generateKeyPair('ES256', { extractable: true });
      jwks = JSON.stringify({ keys: [{ ...(await exportJWK(key.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] });
      expect((await s.admin('POST', '/admin/apis', { identifier: API, name: 'Outbound', scopes: [{ value: 'read:things', description: 'Read' }] })).status).toBe(201);
    });
    afterAll(() => s?.close());

    it('issues a token when the jwks_uri answers a JWK Set', async () => {
      const keys = await serve((_, res) => res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(jwks));
      const res = await token(await register(s, `${keys.url}/jwks.json`));
      expect(res.status).toBe(200);
      expect((await res.json()).scope).toBe('read:things');
    });

    it('answers 401 invalid_client, having read at most a few MiB, when the jwks_uri streams 128 MiB', async () => {
      let written = 0;
      let closed!: () => void;
      const done = new Promise<void>((resolve) => (closed = resolve));
      const huge = await serve((_, res) => {
        res.writeHead(200, { 'content-type': 'application/jwk-set+json' });
        res.on('close', closed);
        const chunk = Buffer.alloc(64 * 1024, ' ');
        const pump = () => {
          while (written < 128 * 1024 * 1024 && !res.destroyed) {
            written += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        res.write('{"keys":[');
        pump();
      });
      await expectCouldNotFetch(await token(await register(s, `${huge.url}/jwks.json`)));
      await done;
      // The server can hold no more than the socket buffers let through before it closed the connection.
      expect(written).toBeLessThan(8 * 1024 * 1024);
    });

    it('answers 401 invalid_client when the jwks_uri redirects, without following the redirect', async () => {
      const target = await serve((_, res) => res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(jwks));
      const redirecting = await serve((_, res) => res.writeHead(302, { location: `${target.url}/jwks.json` }).end());
      await expectCouldNotFetch(await token(await register(s, `${redirecting.url}/jwks.json`)));
      expect(redirecting.connections).toBe(1);
      expect(target.connections).toBe(0);
    });

    it('answers 401 invalid_client when the jwks_uri answers an error status', async () => {
      const failing = await serve((_, res) => res.writeHead(500).end('{"keys":[]}'));
      await expectCouldNotFetch(await token(await register(s, `${failing.url}/jwks.json`)));
    });

    it('with IDP_OUTBOUND=public, never fetches a loopback jwks_uri stored before the policy, and answers 401 invalid_client', async () => {
      const strict = await startServer({ IDP_OUTBOUND: 'public' });
      try {
        const keys = await serve((_, res) => res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(jwks));
        expect((await strict.admin('POST', '/admin/apis', { identifier: API, name: 'Outbound', scopes: [{ value: 'read:things', description: 'Read' }] })).status).toBe(201);
        const clientId = await register(strict, 'https://keys.example.com/jwks.json');
        // As if registered under IDP_OUTBOUND=local, or before this policy existed.
        // By the entity's name: this server may run on modules of its own (test/support/server.ts, inRegistry).
        await strict.get(DataSource).getRepository<Client>('Client').update({ client_id: clientId }, { jwks_uri: `${keys.url}/jwks.json` });
        const now = Math.floor(Date.now() / 1000);
        const jwt = await new SignJWT({ iss: clientId, sub: clientId, aud: strict.config.tokenEndpoint, iat: now, exp: now + 60, jti: randomUUID() })
          .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
          .sign(key.privateKey);
        await expectCouldNotFetch(await postForm(strict, tokenPath, { grant_type: 'client_credentials', audience: API, client_assertion_type: JWT_BEARER, client_assertion: jwt }));
        expect(keys.connections).toBe(0);
      } finally {
        await strict.close();
      }
    });

    it('never writes the assertion into a log line', () => {
      expect(s.logs.join('\n')).not.toMatch(/eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/);
    });
  });
});
