import { gzipSync } from 'node:zlib';
import { decodeJwt } from 'jose';
import { TestServer, basic, startServer } from './support/server';

const API = 'https://api.example.com/reports';
const REDIRECT = 'https://app.example.com/callback';

/**
 * CONTRACT §4 client grants: the admin API records a grant for any client; the token endpoint is
 * what refuses client_credentials, with unauthorized_client (RFC 6749 §5.2), to a client whose
 * grant_types lack it (as Auth0 does). So a PATCH of grant_types never leaves a grant the API could
 * not create again, and adding the grant type back is enough.
 */
describe('client grants and the client_credentials grant type (end to end)', () => {
  let s: TestServer;

  beforeAll(async () => {
    s = await startServer();
    const api = await s.admin('POST', '/admin/apis', {
      identifier: API, name: 'Reports', scopes: [{ value: 'read:reports', description: 'Read reports' }, { value: 'write:reports', description: 'Write reports' }],
    });
    expect(api.status).toBe(201);
  });
  afterAll(() => s?.close());

  /**
   * A client_credentials request, its form sent plain (read by the protocol server itself) or
   * gzipped (decoded by body-parser): both reach the same token endpoint.
   */
  const clientCredentials = async (client: { client_id: string; client_secret?: string }, encoding: 'plain' | 'gzip' = 'plain') => {
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
    if (client.client_secret) headers.authorization = basic(client.client_id, client.client_secret);
    const form = new URLSearchParams({ grant_type: 'client_credentials', audience: API, ...(client.client_secret ? {} : { client_id: client.client_id }) }).toString();
    let body: string | Uint8Array<ArrayBuffer> = form;
    if (encoding === 'gzip') {
      headers['content-encoding'] = 'gzip';
      body = Uint8Array.from(gzipSync(form));
    }
    const res = await s.fetch('/oauth/token', { method: 'POST', headers, body });
    return { status: res.status, cacheControl: res.headers.get('cache-control'), body: await res.json() };
  };
  const expectUnauthorizedClient = (res: Awaited<ReturnType<typeof clientCredentials>>) => {
    expect(res.status).toBe(400);
    expect(res.cacheControl).toBe('no-store');
    expect(res.body).toMatchObject({ error: 'unauthorized_client', error_description: expect.any(String) });
    expect(res.body).not.toHaveProperty('access_token');
  };

  it.each([['plain'], ['gzip']] as const)('creates a grant for an authorization_code-only client; the token endpoint answers per its grant_types as they change (%s form)', async (encoding) => {
    const created = await s.admin('POST', '/admin/clients', { client_name: 'Web', redirect_uris: [REDIRECT], grant_types: ['authorization_code'] });
    expect(created.status).toBe(201);
    const client = created.body;

    const grant = await s.admin('POST', '/admin/client-grants', { client_id: client.client_id, audience: API, scope: ['read:reports', 'write:reports'] });
    expect(grant.status).toBe(201);
    expect(grant.body).toMatchObject({ client_id: client.client_id, audience: API, scope: ['read:reports', 'write:reports'] });
    expectUnauthorizedClient(await clientCredentials(client, encoding));

    const added = await s.admin('PATCH', `/admin/clients/${client.client_id}`, { grant_types: ['authorization_code', 'client_credentials'] });
    expect(added.status).toBe(200);
    const ok = await clientCredentials(client, encoding);
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ token_type: 'Bearer', scope: 'read:reports write:reports' });
    expect(decodeJwt(ok.body.access_token)).toMatchObject({ aud: API, sub: client.client_id, scope: 'read:reports write:reports' });

    const removed = await s.admin('PATCH', `/admin/clients/${client.client_id}`, { grant_types: ['authorization_code'] });
    expect(removed.status).toBe(200);
    expectUnauthorizedClient(await clientCredentials(client, encoding));
    const listed = await s.admin('GET', `/admin/client-grants?client_id=${client.client_id}`);
    expect(listed.status).toBe(200);
    expect(listed.body.items).toEqual([grant.body]);
  });

  it.each([['plain'], ['gzip']] as const)('creates a grant for a public client, which the token endpoint still refuses client_credentials (%s form)', async (encoding) => {
    const created = await s.admin('POST', '/admin/clients', { client_name: 'SPA', redirect_uris: [REDIRECT], token_endpoint_auth_method: 'none' });
    expect(created.status).toBe(201);
    const grant = await s.admin('POST', '/admin/client-grants', { client_id: created.body.client_id, audience: API, scope: ['read:reports'] });
    expect(grant.status).toBe(201);
    expectUnauthorizedClient(await clientCredentials(created.body, encoding));
  });
});
