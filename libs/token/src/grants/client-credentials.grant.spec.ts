import { randomBytes } from 'node:crypto';
import { Test, TestingModule } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { decodeProtectedHeader } from 'jose';
import { CoreModule, loadConfig } from '@idp/core';
import { Client, ClientsService } from '@idp/clients';
import { KeysService } from '@idp/keys';
import { ResourcesService } from '@idp/resources';
import { dataSourceOptions } from '@idp/identity';
import { GrantHandler, GrantRegistry, TokenRequest, TokenResponse } from '../grant-handler';
import { TokenModule } from '../token.module';

/**
 * RFC 6749 §4.4 client_credentials with `audience` (Auth0) or `resource` (RFC 8707): the API must
 * be registered, the client needs a client grant for it, and scopes narrow within that grant.
 * The handler is taken from the grant registry of a real TokenModule on SQLite in memory.
 */

const ISSUER = 'http://idp.test';
const ORDERS = 'https://api.example.com/orders';
const OTHER = 'https://api.example.com/other';
const INVENTORY = 'https://api.example.com/inventory';

const scopes = (...values: string[]) => values.map((value) => ({ value, description: value }));
const sorted = (scope: string | undefined) => (scope ?? '').split(' ').filter(Boolean).sort();

describe('client_credentials grant', () => {
  let moduleRef: TestingModule;
  let grant: GrantHandler;
  let keys: KeysService;
  let resources: ResourcesService;
  let worker: Client;
  let inventoryWorker: Client;

  beforeAll(async () => {
    moduleRef = await Test.createTestingModule({
      imports: [
        CoreModule.forRoot(loadConfig({ NODE_ENV: 'test', DATABASE_URL: 'sqlite::memory:', IDP_SECRET_KEY: randomBytes(32).toString('base64url'), ISSUER })),
        TypeOrmModule.forRoot({ ...dataSourceOptions('sqlite::memory:'), migrationsRun: true }),
        TokenModule,
      ],
    }).compile();
    await moduleRef.init();
    grant = moduleRef.get(GrantRegistry).get('client_credentials')!;
    keys = moduleRef.get(KeysService);
    resources = moduleRef.get(ResourcesService);
    const clients = moduleRef.get(ClientsService);

    await resources.createApi({ identifier: ORDERS, name: 'Orders', scopes: scopes('read:orders', 'write:orders', 'delete:orders'), token_lifetime: 600 });
    await resources.createApi({ identifier: OTHER, name: 'Other', scopes: scopes('read:other') });
    await resources.createApi({ identifier: INVENTORY, name: 'Inventory', scopes: scopes('read:stock', 'write:stock', 'audit:stock') });
    worker = (await clients.register({ client_name: 'worker', grant_types: ['client_credentials'] })).client;
    inventoryWorker = (await clients.register({ client_name: 'inventory worker', grant_types: ['client_credentials'] })).client;
    await resources.createGrant({ client_id: worker.client_id, audience: ORDERS, scope: ['read:orders', 'write:orders'] });
    await resources.createGrant({ client_id: inventoryWorker.client_id, audience: INVENTORY, scope: ['read:stock', 'write:stock', 'audit:stock'] });
  });
  afterAll(() => moduleRef?.close());

  const request = (params: Record<string, string | undefined>): TokenRequest => ({ grant_type: 'client_credentials', ...params });
  const accessClaims = async (res: TokenResponse, audience: string) =>
    (await keys.verify(res.access_token, { typ: 'at+jwt', audience })).payload as Record<string, unknown>;

  it('issues an RFC 9068 access token for the client itself, for the API and lifetime of the grant', async () => {
    const res = await grant.handle(request({ audience: ORDERS }), worker);
    expect(res).toMatchObject({ token_type: 'Bearer', expires_in: 600 });
    expect(decodeProtectedHeader(res.access_token).typ).toBe('at+jwt');
    const claims = await accessClaims(res, ORDERS);
    expect(claims).toMatchObject({ iss: ISSUER, sub: worker.client_id, client_id: worker.client_id, aud: ORDERS, jti: expect.any(String) });
    expect((claims.exp as number) - (claims.iat as number)).toBe(600);
  });

  describe('scope narrowing', () => {
    it.each<[string, string | undefined, string[]]>([
      ['no scope', undefined, ['read:orders', 'write:orders']],
      ['one granted scope', 'read:orders', ['read:orders']],
      ['every granted scope, in another order', 'write:orders read:orders', ['read:orders', 'write:orders']],
      ['a granted scope twice', 'read:orders read:orders', ['read:orders']],
    ])('with %s (%s), grants %j', async (_, scope, expected) => {
      const res = await grant.handle(request({ audience: ORDERS, scope }), worker);
      expect(sorted(res.scope)).toEqual(expected);
      expect(sorted((await accessClaims(res, ORDERS)).scope as string)).toEqual(expected);
    });

    it.each<[string, string]>([
      ['a scope the API defines but the grant does not include', 'delete:orders'],
      ['granted scopes plus one outside the grant', 'read:orders delete:orders'],
      ['a scope no API defines', 'admin'],
      ["another API's scope", 'read:other'],
    ])('rejects %s (%s) with invalid_scope, never widening or silently dropping', async (_, scope) => {
      await expect(grant.handle(request({ audience: ORDERS, scope }), worker)).rejects.toMatchObject({ code: 'invalid_scope', status: 400 });
    });

    it('does not issue scopes removed from the API after the grant was made', async () => {
      const api = (await resources.findByIdentifier(INVENTORY))!;
      await resources.updateApi(api.id, { scopes: scopes('read:stock', 'write:stock') });
      const res = await grant.handle(request({ audience: INVENTORY }), inventoryWorker);
      expect(sorted(res.scope)).toEqual(['read:stock', 'write:stock']);
      expect(sorted((await accessClaims(res, INVENTORY)).scope as string)).toEqual(['read:stock', 'write:stock']);
      await expect(grant.handle(request({ audience: INVENTORY, scope: 'audit:stock' }), inventoryWorker)).rejects.toMatchObject({ code: 'invalid_scope' });
    });
  });

  describe('the API: audience and resource', () => {
    it.each<[string, Record<string, string>]>([
      ['audience', { audience: ORDERS }],
      ['resource', { resource: ORDERS }],
      ['audience and resource naming the same API', { audience: ORDERS, resource: ORDERS }],
    ])('issues a token for the API named by %s', async (_, params) => {
      const res = await grant.handle(request(params), worker);
      expect((await accessClaims(res, ORDERS)).aud).toBe(ORDERS);
    });

    it.each<[string, Record<string, string>, string, RegExp?]>([
      ['audience and resource name different APIs', { audience: ORDERS, resource: OTHER }, 'invalid_request'],
      ['neither audience nor resource is sent', {}, 'invalid_request'],
      ['the resource has a fragment (RFC 8707 §2)', { resource: `${ORDERS}#section` }, 'invalid_target', /fragment/],
      ['the resource has an empty fragment', { resource: `${ORDERS}#` }, 'invalid_target', /fragment/],
      ['the resource is not an absolute URI', { resource: '/orders' }, 'invalid_target', /absolute URI/],
      ['the resource is not a registered API', { resource: 'https://nowhere.example.com/' }, 'invalid_target', /not a registered API/],
      ['the audience is not a registered API', { audience: 'https://nowhere.example.com/' }, 'invalid_target', /not a registered API/],
      ['the client has no grant for the API', { audience: OTHER }, 'unauthorized_client'],
      ["the API is another client's grant", { audience: INVENTORY }, 'unauthorized_client'],
    ])('rejects the request when %s', async (_, params, error, description = /./) => {
      await expect(grant.handle(request(params), worker)).rejects.toMatchObject({ code: error, status: 400, description: expect.stringMatching(description) });
    });
  });
});
