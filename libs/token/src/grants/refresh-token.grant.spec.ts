import { getDataSourceToken } from '@nestjs/typeorm';
import { DataSource, Repository } from 'typeorm';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { IdpEvents, IdpEventMap, OAuthError, randomToken } from '@idp/core';
import { Client, ClientsService } from '@idp/clients';
import { KeysService } from '@idp/keys';
import { Api, ResourcesService } from '@idp/resources';
import { User, UsersService } from '@idp/users';
import { LibTestingModule, libTestingModule } from '../../../../test/support/testing-module';
import { GrantHandler, GrantRegistry, TokenRequest, TokenResponse } from '../grant-handler';
import { RefreshToken } from '../refresh-token.entity';
import { RevocationService } from '../revocation.service';
import { TokenIssuer } from '../token-issuer';
import { TokenModule } from '../token.module';
import { REFRESH_FAMILY_LIFETIME_S, UserGrant, UserTokens } from './user-tokens';

/**
 * RFC 6749 §6 with RFC 9700 §4.14: with rotation (the default, and always for public clients) a
 * refresh token is used once and a used one presented again revokes its whole family; without
 * rotation the token stays and only the access token is new. Scope may narrow, never widen, and a
 * narrowed refresh does not narrow the family. The family keeps the sign-in (sub, auth_time, sid,
 * amr) and its absolute expiry. The first refresh token of each test is issued by UserTokens (what
 * the authorization_code grant calls); the handler comes from the grant registry of a real
 * TokenModule, on SQLite in memory or, with TEST_DATABASE_URL, PostgreSQL.
 */

const ISSUER = 'http://idp.test';
const USERINFO = `${ISSUER}/userinfo`;
const ORDERS = 'https://api.example.com/orders';
const SCOPES = ['openid', 'profile', 'email', 'offline_access'];

describe('refresh_token grant', () => {
  let lib: LibTestingModule;
  let grant: GrantHandler;
  let tokens: UserTokens;
  let issuer: TokenIssuer;
  let keys: KeysService;
  let revocation: RevocationService;
  let users: UsersService;
  let resources: ResourcesService;
  let rows: Repository<RefreshToken>;
  /** Confidential, rotation on (the default). */
  let web: Client;
  /** Confidential, rotation off. */
  let steady: Client;
  /** Public (rotation on). */
  let spa: Client;
  let orders: Api;
  let ada: User;
  const reused: IdpEventMap['token.refresh_reused'][] = [];

  beforeAll(async () => {
    lib = await libTestingModule([TokenModule], { ISSUER });
    const get = lib.moduleRef.get.bind(lib.moduleRef);
    grant = get(GrantRegistry).get('refresh_token')!;
    tokens = get(UserTokens);
    issuer = get(TokenIssuer);
    keys = get(KeysService);
    revocation = get(RevocationService);
    users = get(UsersService);
    resources = get(ResourcesService);
    rows = get<DataSource>(getDataSourceToken()).getRepository(RefreshToken);
    const clients = get(ClientsService);
    const grantTypes = ['authorization_code', 'refresh_token'];
    web = (await clients.register({ client_name: 'web', redirect_uris: ['https://web.example.com/cb'], grant_types: grantTypes })).client;
    steady = (await clients.register({ client_name: 'steady', redirect_uris: ['https://steady.example.com/cb'], grant_types: grantTypes, refresh_token_rotation: false })).client;
    spa = (await clients.register({ client_name: 'spa', redirect_uris: ['https://spa.example.com/cb'], grant_types: grantTypes, token_endpoint_auth_method: 'none' })).client;
    orders = await resources.createApi({ identifier: ORDERS, name: 'Orders', scopes: [{ value: 'read:orders', description: 'r' }, { value: 'write:orders', description: 'w' }], token_lifetime: 900, allow_offline_access: true });
    ada = await users.create({ email: 'ada@example.com', password: 'correct horse battery', name: 'Ada', email_verified: true });
    get(IdpEvents).on('token.refresh_reused', (e) => void reused.push(e));
  });
  afterAll(() => lib?.close());

  /** A sign-in's first tokens, as the authorization_code grant issues them. */
  async function signIn(over: Partial<UserGrant> = {}): Promise<TokenResponse & { grant: UserGrant }> {
    const g: UserGrant = {
      client: web, user: ada, scopes: SCOPES, authTime: Math.floor(Date.now() / 1000) - 120, sid: `sid-${randomToken(6)}`, amr: ['pwd', 'hwk'],
      nonce: 'original-nonce', grantType: 'authorization_code', ...over,
    };
    const res = await tokens.issue(g, { grant_type: 'authorization_code' }, undefined);
    expect(res.refresh_token).toEqual(expect.any(String));
    return { ...res, grant: g };
  }

  const refresh = (client: Client, refreshToken: string | undefined, extra: Partial<TokenRequest> = {}) =>
    grant.handle({ grant_type: 'refresh_token', refresh_token: refreshToken, ...extra } as TokenRequest, client);

  const refused = async (promise: Promise<unknown>, code = 'invalid_grant', description: RegExp = /the refresh token is invalid, expired or revoked/) => {
    const err = await promise.then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(OAuthError);
    expect(err).toMatchObject({ code, status: 400, description: expect.stringMatching(description) });
  };

  const rowOf = (token: string) => rows.findOneByOrFail({ token_hash: issuer.hashRefreshToken(token) });
  const jwks = () => createLocalJWKSet(keys.jwks() as never);
  const accessClaims = async (token: string, audience = USERINFO) => (await jwtVerify(token, jwks(), { issuer: ISSUER, audience, typ: 'at+jwt' })).payload;
  /** Forgets the row UserTokens keeps of a token it issued, so that the grant reads the database. */
  const fromDatabase = (token: string) => void tokens.takeIssuedRefresh(issuer.hashRefreshToken(token));

  it.each<[string, string | undefined, string]>([
    ['no refresh_token', undefined, 'invalid_request'],
    ['an empty refresh_token', '', 'invalid_request'],
    ['a refresh token never issued', randomToken(32), 'invalid_grant'],
  ])('refuses %s', async (_, token, code) => {
    await refused(refresh(web, token), code, /./);
  });

  describe('rotation', () => {
    it('returns new tokens for the same sign-in, in the same family, with its absolute expiry', async () => {
      const first = await signIn();
      const firstRow = await rowOf(first.refresh_token!);
      const res = await refresh(web, first.refresh_token);
      expect(res).toMatchObject({ token_type: 'Bearer', scope: SCOPES.join(' '), refresh_token: expect.any(String), id_token: expect.any(String) });
      expect(res.refresh_token).not.toBe(first.refresh_token);

      const access = await accessClaims(res.access_token);
      expect(access).toMatchObject({ sub: ada.id, client_id: web.client_id, auth_time: first.grant.authTime, sid: first.grant.sid });
      expect(access.jti).not.toBe((await accessClaims(first.access_token)).jti);
      // OIDC Core §12.2: auth_time of the original sign-in, and no nonce.
      const id = (await jwtVerify(res.id_token!, jwks(), { issuer: ISSUER, audience: web.client_id })).payload;
      expect(id).toMatchObject({ sub: ada.id, auth_time: first.grant.authTime, sid: first.grant.sid, amr: ['pwd', 'hwk'], email: 'ada@example.com' });
      expect(id).not.toHaveProperty('nonce');

      const next = await rowOf(res.refresh_token!);
      expect(next).toMatchObject({ family_id: firstRow.family_id, scopes: SCOPES, sid: first.grant.sid, auth_time: first.grant.authTime, amr: 'pwd hwk', used_at: null, access_jti: access.jti });
      expect(next.expires_at.getTime()).toBe(firstRow.expires_at.getTime());
      expect(firstRow.expires_at.getTime() - firstRow.created_at.getTime()).toBe(REFRESH_FAMILY_LIFETIME_S * 1000);
      expect((await rowOf(first.refresh_token!)).used_at).toBeInstanceOf(Date);
    });

    it('refuses a used token, revokes its whole family (the newest token and the access tokens included) and announces the reuse', async () => {
      const first = await signIn();
      const second = await refresh(web, first.refresh_token);
      const third = await refresh(web, second.refresh_token);
      const before = reused.length;
      await refused(refresh(web, first.refresh_token));
      const { family_id } = await rowOf(first.refresh_token!);
      expect(reused.slice(before)).toEqual([{ clientId: web.client_id, userId: ada.id, familyId: family_id }]);
      for (const r of await rows.findBy({ family_id })) expect(r.revoked_at).toBeInstanceOf(Date);
      for (const res of [second, third]) expect(await revocation.isRevoked((await accessClaims(res.access_token)).jti)).toBe(true);
      await refused(refresh(web, third.refresh_token));
    });

    it('detects reuse of a token read from the database as well as from memory', async () => {
      const first = await signIn();
      const second = await refresh(web, first.refresh_token);
      fromDatabase(second.refresh_token!);
      const third = await refresh(web, second.refresh_token);
      await refused(refresh(web, second.refresh_token));
      await refused(refresh(web, third.refresh_token));
    });

    it('lets exactly one of concurrent uses win, and the losers revoke the family, the winner\'s token included', async () => {
      const first = await signIn();
      const results = await Promise.allSettled(Array.from({ length: 6 }, () => refresh(web, first.refresh_token)));
      const won = results.filter((r): r is PromiseFulfilledResult<TokenResponse> => r.status === 'fulfilled');
      expect(won).toHaveLength(1);
      for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'invalid_grant' });
      const { family_id } = await rowOf(first.refresh_token!);
      expect(await rows.countBy({ family_id })).toBe(2);
      await refused(refresh(web, won[0].value.refresh_token));
      expect(await revocation.isRevoked((await accessClaims(won[0].value.access_token)).jti)).toBe(true);
    });

    it('always rotates for a public client', async () => {
      const first = await signIn({ client: spa });
      const second = await refresh(spa, first.refresh_token);
      expect(second.refresh_token).toEqual(expect.any(String));
      await refused(refresh(spa, first.refresh_token));
      await refused(refresh(spa, second.refresh_token));
    });

    it("rotates a public client's tokens even when its rotation was switched off since", async () => {
      const first = await signIn({ client: spa });
      const { client: switchedOff } = await lib.moduleRef.get(ClientsService).update(spa.client_id, { refresh_token_rotation: false });
      try {
        expect(switchedOff.refresh_token_rotation).toBe(false);
        const res = await refresh(switchedOff, first.refresh_token);
        expect(res).not.toHaveProperty('refresh_token');
        expect((await rowOf(first.refresh_token!)).used_at).toBeInstanceOf(Date);
        await refused(refresh(switchedOff, first.refresh_token));
      } finally {
        await lib.moduleRef.get(ClientsService).update(spa.client_id, { refresh_token_rotation: true });
      }
    });
  });

  describe('without rotation', () => {
    it('keeps the same token valid, sends no new one, and records the newest access token', async () => {
      const first = await signIn({ client: steady });
      const a = await refresh(steady, first.refresh_token);
      const b = await refresh(steady, first.refresh_token);
      for (const res of [a, b]) expect(res).not.toHaveProperty('refresh_token');
      const row = await rowOf(first.refresh_token!);
      expect(row.used_at).toBeNull();
      expect(row.access_jti).toBe((await accessClaims(b.access_token)).jti);
      expect(await rows.countBy({ family_id: row.family_id })).toBe(1);
      // Revoking the family revokes the access token it last issued.
      await revocation.revokeFamilies([row.family_id]);
      expect(await revocation.isRevoked((await accessClaims(b.access_token)).jti)).toBe(true);
      await refused(refresh(steady, first.refresh_token));
    });
  });

  describe('scope', () => {
    it('narrows the access token to the scopes asked, and leaves the family its scopes', async () => {
      const first = await signIn();
      const narrowed = await refresh(web, first.refresh_token, { scope: 'profile offline_access' });
      expect(narrowed.scope).toBe('profile offline_access');
      expect(narrowed).not.toHaveProperty('id_token');
      expect((await accessClaims(narrowed.access_token)).scope).toBe('profile offline_access');
      expect((await rowOf(narrowed.refresh_token!)).scopes).toEqual(SCOPES);
      // The next refresh without scope gets the family's scopes back, ID token included.
      const full = await refresh(web, narrowed.refresh_token);
      expect(full).toMatchObject({ scope: SCOPES.join(' '), id_token: expect.any(String) });
    });

    it('still rotates when the narrowed scope leaves out offline_access', async () => {
      const first = await signIn();
      const res = await refresh(web, first.refresh_token, { scope: 'openid' });
      expect(res).toMatchObject({ scope: 'openid', refresh_token: expect.any(String), id_token: expect.any(String) });
      expect((await rowOf(res.refresh_token!)).scopes).toEqual(SCOPES);
    });

    it.each<[string, string, RegExp]>([
      ['a scope never granted', 'openid admin', /exceeds what was granted: admin/],
      ['only scopes never granted', 'phone address', /exceeds what was granted: phone address/],
      ["an API's scope the family does not hold", 'read:orders', /exceeds what was granted: read:orders/],
      ['a malformed scope', 'openid "x"', /malformed/],
    ])('refuses %s with invalid_scope, without using the token up', async (_, scope, description) => {
      const first = await signIn();
      await refused(refresh(web, first.refresh_token, { scope }), 'invalid_scope', description);
      expect((await rowOf(first.refresh_token!)).used_at).toBeNull();
      expect((await refresh(web, first.refresh_token)).scope).toBe(SCOPES.join(' '));
    });

    it('treats an empty or repeated scope as the family\'s or as one', async () => {
      const first = await signIn();
      const same = await refresh(web, first.refresh_token, { scope: '  ' });
      expect(same.scope).toBe(SCOPES.join(' '));
      expect((await refresh(web, same.refresh_token, { scope: 'email email' })).scope).toBe('email');
    });

    it("keeps an API family's audience and scopes, and narrows within them", async () => {
      const first = await signIn({ scopes: ['openid', 'offline_access', 'read:orders', 'write:orders'], api: orders });
      const res = await refresh(web, first.refresh_token, { scope: 'read:orders' });
      expect(res).toMatchObject({ scope: 'read:orders', expires_in: 900 });
      expect(await accessClaims(res.access_token, ORDERS)).toMatchObject({ aud: ORDERS, scope: 'read:orders' });
      const full = await refresh(web, res.refresh_token);
      expect(await accessClaims(full.access_token, ORDERS)).toMatchObject({ scope: 'read:orders write:orders' });
    });
  });

  describe('refusals', () => {
    it("refuses another client's refresh token, which stays good for its own client", async () => {
      const first = await signIn();
      for (const client of [steady, spa]) await refused(refresh(client, first.refresh_token));
      expect((await rowOf(first.refresh_token!)).used_at).toBeNull();
      expect((await refresh(web, first.refresh_token)).refresh_token).toEqual(expect.any(String));
    });

    it.each([['read back from the database', true], ['as issued here (the database decides)', false]])('refuses a revoked token %s', async (_, read) => {
      const first = await signIn();
      if (read) fromDatabase(first.refresh_token!);
      await revocation.revokeForUserAndClient(ada.id, web.client_id);
      const { family_id } = await rowOf(first.refresh_token!);
      await refused(refresh(web, first.refresh_token));
      expect(await rows.countBy({ family_id })).toBe(1);
    });

    it.each([['read back from the database', true], ['as issued here (the database decides)', false]])('refuses an expired family %s, issuing nothing', async (_, read) => {
      const first = await signIn();
      if (read) fromDatabase(first.refresh_token!);
      const row = await rowOf(first.refresh_token!);
      await rows.update({ token_hash: row.token_hash }, { expires_at: new Date(Date.now() - 1000) });
      await refused(refresh(web, first.refresh_token));
      expect(await rows.countBy({ family_id: row.family_id })).toBe(1);
      expect((await rowOf(first.refresh_token!)).used_at).toBeNull();
    });

    it('refuses the token of a user blocked since, and revokes the family (unblocking does not bring it back)', async () => {
      const bob = await users.create({ email: `bob-${randomToken(4)}@example.com`, password: 'correct horse battery' });
      const first = await signIn({ user: bob });
      await users.update(bob.id, { blocked: true });
      await refused(refresh(web, first.refresh_token));
      expect((await rowOf(first.refresh_token!)).revoked_at).toBeInstanceOf(Date);
      await users.update(bob.id, { blocked: false });
      await refused(refresh(web, first.refresh_token));
    });

    it('refuses the token of a user deleted since', async () => {
      const eve = await users.create({ email: `eve-${randomToken(4)}@example.com`, password: 'correct horse battery' });
      const first = await signIn({ user: eve });
      await users.remove(eve.id);
      await refused(refresh(web, first.refresh_token));
    });

    it('refuses the token of an API deleted since', async () => {
      const api = await resources.createApi({ identifier: `https://api.example.com/gone-${randomToken(4)}`, name: 'Gone', scopes: [{ value: 'read:gone', description: 'r' }], allow_offline_access: true });
      const first = await signIn({ scopes: ['offline_access', 'read:gone'], api });
      await resources.removeApi(api.id);
      await refused(refresh(web, first.refresh_token));
    });
  });

  it("gives a confidential client's request from a browser (Origin) no new refresh token", async () => {
    const first = await signIn();
    const res = await refresh(web, first.refresh_token, { origin: 'https://web.example.com' });
    expect(res.access_token).toEqual(expect.any(String));
    expect(res).not.toHaveProperty('refresh_token');
  });
});
