import { randomUUID } from 'node:crypto';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { ConsentService } from '@idp/consent';
import { ClientsService } from '@idp/clients';
import { TestServer, onPostgres, postForm, startServer } from './support/server';

const where = onPostgres ? 'PostgreSQL' : 'SQLite';

/** Exactly-once under concurrency (issue #4 item 6); the code and refresh-token races are in their own suites. */
describe(`races (${where})`, () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(() => s.close());

  it('accepts one private_key_jwt assertion exactly once among 20 parallel uses of its jti', async () => {
    const pair = await generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' };
    const client = (await s.admin('POST', '/admin/clients', { grant_types: ['client_credentials'], token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [jwk] } })).body;
    await s.admin('POST', '/admin/apis', { identifier: 'https://api.example.com/race', name: 'Race' });
    await s.admin('POST', '/admin/client-grants', { client_id: client.client_id, audience: 'https://api.example.com/race', scope: [] });
    const now = Math.floor(Date.now() / 1000);
    const assertion = await new SignJWT({ iss: client.client_id, sub: client.client_id, aud: `${s.url}/oauth/token`, iat: now, exp: now + 60, jti: randomUUID() })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .sign(pair.privateKey);
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        postForm(s, '/oauth/token', { grant_type: 'client_credentials', audience: 'https://api.example.com/race', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: assertion }),
      ),
    );
    expect(results.map((r) => r.status).sort()).toEqual([200, ...Array(19).fill(401)]);
  });

  it('merges 20 parallel consent grants for one user and client into one row with every scope', async () => {
    const user = (await s.admin('POST', '/admin/users', { email: 'race@example.com', password: 'racing condition 42' })).body;
    const { client_id } = (await s.admin('POST', '/admin/clients', { redirect_uris: ['https://app.example.com/cb'] })).body;
    const client = (await s.app.get(ClientsService).find(client_id))!;
    const consents = s.app.get(ConsentService);
    const scopes = Array.from({ length: 20 }, (_, i) => `scope${i}`);
    await Promise.all(scopes.map((scope) => consents.grant({ userId: user.user_id, client, scopes: [scope], audience: 'https://api.example.com/race' })));
    const rows = await consents.listForUser(user.user_id);
    expect(rows).toHaveLength(1);
    expect(rows[0].scopes['https://api.example.com/race'].sort()).toEqual([...scopes].sort());
  });

  it('leaves exactly one current signing key after 10 parallel rotations, every new key published', async () => {
    const results = await Promise.all(Array.from({ length: 10 }, () => s.admin('POST', '/admin/keys/rotate', {})));
    expect(results.every((r) => r.status === 201)).toBe(true);
    const keys = (await s.admin('GET', '/admin/keys')).body.items as { kid: string; status: string }[];
    expect(keys.filter((k) => k.status === 'current')).toHaveLength(1);
    const published = (await (await s.fetch('/.well-known/jwks.json')).json()).keys.map((k: { kid: string }) => k.kid);
    for (const r of results) expect(published).toContain(r.body.kid);
  });
});
