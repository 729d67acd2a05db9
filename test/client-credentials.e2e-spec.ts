import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { DataSource } from 'typeorm';
import { KeysService, SigningKey } from '@idp/keys';
import { TestServer, basic, postForm, startServer } from './support/server';

describe('client_credentials (end to end)', () => {
  let s: TestServer;
  let client: { client_id: string; client_secret: string };
  const API = 'https://api.example.com/orders';

  beforeAll(async () => {
    s = await startServer();
    expect((await s.admin('POST', '/admin/apis', { identifier: API, name: 'Orders', scopes: [{ value: 'read:orders', description: 'Read orders' }, { value: 'write:orders', description: 'Write orders' }], token_lifetime: 600 })).status).toBe(201);
    const created = await s.admin('POST', '/admin/clients', { client_name: 'Worker', grant_types: ['client_credentials'] });
    expect(created.status).toBe(201);
    client = created.body;
    expect((await s.admin('POST', '/admin/client-grants', { client_id: client.client_id, audience: API, scope: ['read:orders', 'write:orders'] })).status).toBe(201);
  });
  afterAll(() => s.close());

  const token = (form: Record<string, string>, headers: Record<string, string> = { authorization: basic(client.client_id, client.client_secret) }) =>
    postForm(s, '/oauth/token', { grant_type: 'client_credentials', ...form }, headers);

  it.each([['audience'], ['resource']])('issues an RFC 9068 access token for the API named by %s, verifiable against the published JWKS', async (param) => {
    const res = await token({ [param]: API });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const body = await res.json();
    expect(body).toEqual({ access_token: expect.any(String), token_type: 'Bearer', expires_in: 600, scope: 'read:orders write:orders' });
    // As an outside resource server would: discovery -> jwks_uri -> verify.
    const meta = await (await fetch(`${s.url}/.well-known/oauth-authorization-server`)).json();
    const jwks = createRemoteJWKSet(new URL(meta.jwks_uri));
    const { payload, protectedHeader } = await jwtVerify(body.access_token, jwks, { issuer: meta.issuer, audience: API, typ: 'at+jwt' });
    expect(protectedHeader.alg).toBe('RS256');
    expect(protectedHeader.kid).toEqual(expect.any(String));
    expect(payload).toMatchObject({ iss: s.url, sub: client.client_id, aud: API, client_id: client.client_id, scope: 'read:orders write:orders' });
    expect(payload.jti).toEqual(expect.any(String));
    expect(payload.exp! - payload.iat!).toBe(600);
  });

  it('narrows to the requested scopes', async () => {
    const body = await (await token({ audience: API, scope: 'read:orders' })).json();
    expect(body.scope).toBe('read:orders');
    expect(JSON.parse(Buffer.from(body.access_token.split('.')[1], 'base64url').toString()).scope).toBe('read:orders');
  });

  it('refuses a scope outside the grant with invalid_scope', async () => {
    const res = await token({ audience: API, scope: 'read:orders delete:orders' });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'invalid_scope' });
  });

  it('refuses an API without a grant, and an unknown API', async () => {
    await s.admin('POST', '/admin/apis', { identifier: 'https://api.example.com/other', name: 'Other' });
    const noGrant = await token({ audience: 'https://api.example.com/other' });
    expect(noGrant.status).toBe(400);
    expect((await noGrant.json()).error).toBe('unauthorized_client');
    const unknown = await token({ resource: 'https://nowhere.example.com/' });
    expect(unknown.status).toBe(400);
    expect((await unknown.json()).error).toBe('invalid_target');
    const none = await token({});
    expect((await none.json()).error).toBe('invalid_request');
  });

  it('answers 401 invalid_client with a Basic challenge for a wrong secret', async () => {
    const res = await token({ audience: API }, { authorization: basic(client.client_id, 'wrong') });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Basic /);
    expect(await res.json()).toEqual({ error: 'invalid_client', error_description: expect.any(String) });
  });

  it('refuses client_secret_post for a client registered with client_secret_basic', async () => {
    const res = await token({ audience: API, client_id: client.client_id, client_secret: client.client_secret }, {});
    expect(res.status).toBe(401);
    expect((await res.json()).error).toBe('invalid_client');
  });

  it('signs with the new key after rotation (of a next key published longer than the activation lead) and keeps the old key published', async () => {
    const before = await (await token({ audience: API })).json();
    const oldKid = decodeProtectedHeader(before.access_token).kid;
    // As on a server up for more than the lead (120 s): the next key was written that long ago.
    const nextKid = (await s.admin('GET', '/admin/keys')).body.items.find((k: { status: string }) => k.status === 'next').kid;
    await s.app.get(DataSource).getRepository(SigningKey).update({ kid: nextKid }, { created_at: new Date(Date.now() - 121_000) });
    await s.app.get(KeysService).reload();
    const rotated = await s.admin('POST', '/admin/keys/rotate', {});
    expect(rotated.status).toBe(201);
    expect(rotated.body).toMatchObject({ kid: nextKid, status: 'current' });
    const after = await (await token({ audience: API })).json();
    expect(decodeProtectedHeader(after.access_token).kid).toBe(rotated.body.kid);
    const kids = (await (await s.fetch('/.well-known/jwks.json')).json()).keys.map((k: { kid: string }) => k.kid);
    expect(kids).toEqual(expect.arrayContaining([oldKid, rotated.body.kid]));
    const jwks = createRemoteJWKSet(new URL(`${s.url}/.well-known/jwks.json`));
    await expect(jwtVerify(before.access_token, jwks, { issuer: s.url, audience: API })).resolves.toBeDefined();
  });
});
