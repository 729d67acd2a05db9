import { createHash } from 'node:crypto';
import { getDataSourceToken } from '@nestjs/typeorm';
import { DataSource, Repository } from 'typeorm';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { IdpEventMap, IdpEvents, OAuthError, randomToken, sha256 } from '@idp/core';
import { Client, ClientsService } from '@idp/clients';
import { AuthorizationCode, AuthorizationService } from '@idp/authorization';
import { KeysService } from '@idp/keys';
import { ResourcesService } from '@idp/resources';
import type { SessionUser } from '@idp/session';
import { User, UsersService } from '@idp/users';
// The validator is not exported by the authorization lib: this spec builds its requests with it,
// as /authorize does, so that the codes are the ones the server issues.
import { AuthorizeRequestValidator } from '../../../authorization/src/authorize-request';
import { LibTestingModule, libTestingModule } from '../../../../test/support/testing-module';
import { GrantHandler, GrantRegistry, TokenRequest, TokenResponse } from '../grant-handler';
import { RefreshToken } from '../refresh-token.entity';
import { RevocationService } from '../revocation.service';
import { TokenModule } from '../token.module';
import { USERINFO_TOKEN_LIFETIME } from './user-tokens';

/**
 * RFC 6749 §4.1.3, OIDC Core §3.1.3, RFC 7636 §4.6, RFC 9700 §2.1.1 and §4.2.4: a code is traded
 * once, by the client it was issued to, with the redirect URI and the PKCE verifier of its
 * request, before it expires; a failed attempt uses it up; a second redemption is refused and
 * revokes what the first one issued. The codes come from the real AuthorizeRequestValidator and
 * AuthorizationService; the handler from the grant registry of a real TokenModule, on SQLite in
 * memory or, with TEST_DATABASE_URL, PostgreSQL.
 */

const ISSUER = 'http://idp.test';
const WEB_CB = 'https://web.example.com/callback';
const SPA_CB = 'https://spa.example.com/callback';
const ORDERS = 'https://api.example.com/orders';

const pkcePair = () => {
  const verifier = randomToken(48);
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
};

describe('authorization_code grant', () => {
  let lib: LibTestingModule;
  let grant: GrantHandler;
  let refreshGrant: GrantHandler;
  let keys: KeysService;
  let validator: AuthorizeRequestValidator;
  let authorization: AuthorizationService;
  let revocation: RevocationService;
  let users: UsersService;
  let resources: ResourcesService;
  let codes: Repository<AuthorizationCode>;
  let refreshRows: Repository<RefreshToken>;
  /** Confidential, with the refresh_token grant. */
  let web: Client;
  /** Another confidential client, registered for the same redirect URI. */
  let other: Client;
  /** Public, rotation on (the default). */
  let spa: Client;
  /** Public, rotation off: never gets a refresh token. */
  let spaNoRotation: Client;
  let ada: User;
  const events: { name: string; payload: unknown }[] = [];

  beforeAll(async () => {
    lib = await libTestingModule([TokenModule], { ISSUER });
    const get = lib.moduleRef.get.bind(lib.moduleRef);
    grant = get(GrantRegistry).get('authorization_code')!;
    refreshGrant = get(GrantRegistry).get('refresh_token')!;
    keys = get(KeysService);
    validator = get(AuthorizeRequestValidator);
    authorization = get(AuthorizationService);
    revocation = get(RevocationService);
    users = get(UsersService);
    resources = get(ResourcesService);
    const ds = get<DataSource>(getDataSourceToken());
    codes = ds.getRepository(AuthorizationCode);
    refreshRows = ds.getRepository(RefreshToken);
    const clients = get(ClientsService);
    const grantTypes = ['authorization_code', 'refresh_token'];
    web = (await clients.register({ client_name: 'web', redirect_uris: [WEB_CB], grant_types: grantTypes })).client;
    other = (await clients.register({ client_name: 'other', redirect_uris: [WEB_CB], grant_types: grantTypes })).client;
    spa = (await clients.register({ client_name: 'spa', redirect_uris: [SPA_CB], grant_types: grantTypes, token_endpoint_auth_method: 'none' })).client;
    spaNoRotation = (await clients.register({ client_name: 'spa2', redirect_uris: [SPA_CB], grant_types: grantTypes, token_endpoint_auth_method: 'none', refresh_token_rotation: false })).client;
    await resources.createApi({ identifier: ORDERS, name: 'Orders', scopes: [{ value: 'read:orders', description: 'read' }], token_lifetime: 900, allow_offline_access: true });
    ada = await users.create({ email: 'ada@example.com', password: 'correct horse battery', name: 'Ada', email_verified: true });
    const bus = get(IdpEvents);
    for (const name of ['token.issued', 'code.replayed'] as const) bus.on(name, (payload) => void events.push({ name, payload }));
  });
  afterAll(() => lib?.close());

  const signIn = (user: User = ada): SessionUser => ({ sub: user.id, auth_time: Math.floor(Date.now() / 1000) - 30, sid: `sid-${randomToken(6)}`, amr: ['pwd', 'otp'] });

  /** A code as /authorize issues it: the request validated, then the code issued for the signed-in user. */
  async function authorize(params: Record<string, string>, session: SessionUser = signIn()): Promise<string> {
    const client = params.client_id ?? web.client_id;
    const redirectUri = client === spa.client_id || client === spaNoRotation.client_id ? SPA_CB : WEB_CB;
    const ar = await validator.validate({ client_id: client, redirect_uri: redirectUri, response_type: 'code', scope: 'openid', ...params }, undefined);
    return authorization.issueCode(ar, session, undefined);
  }

  const redeem = (client: Client, params: Record<string, string | undefined>): Promise<TokenResponse> =>
    grant.handle({ grant_type: 'authorization_code', redirect_uri: client === spa || client === spaNoRotation ? SPA_CB : WEB_CB, ...params } as TokenRequest, client);

  const refused = async (promise: Promise<unknown>, code = 'invalid_grant', description: RegExp = /./) => {
    const err = await promise.then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(OAuthError);
    expect(err).toMatchObject({ code, status: 400, description: expect.stringMatching(description) });
  };

  const row = (code: string) => codes.findOneByOrFail({ code_hash: sha256(code) });
  const accessClaims = async (token: string, audience = `${ISSUER}/userinfo`) => (await keys.verify(token, { typ: 'at+jwt', audience })).payload;
  const eventsOf = (name: string, from: number) => events.slice(from).filter((e) => e.name === name).map((e) => e.payload);

  it('trades a code for an access token for /userinfo and an ID token, both verified against the JWKS', async () => {
    const { verifier, challenge } = pkcePair();
    const session = signIn();
    const code = await authorize({ scope: 'openid profile email', nonce: 'n-0S6', code_challenge: challenge, code_challenge_method: 'S256' }, session);
    const before = events.length;
    const res = await redeem(web, { code, code_verifier: verifier });
    expect(res).toMatchObject({ token_type: 'Bearer', expires_in: USERINFO_TOKEN_LIFETIME, scope: 'openid profile email', access_token: expect.any(String), id_token: expect.any(String) });
    expect(res).not.toHaveProperty('refresh_token');

    const jwks = createLocalJWKSet(keys.jwks() as never);
    const access = (await jwtVerify(res.access_token, jwks, { issuer: ISSUER, audience: `${ISSUER}/userinfo`, typ: 'at+jwt' })).payload;
    expect(access).toMatchObject({ sub: ada.id, client_id: web.client_id, scope: 'openid profile email', auth_time: session.auth_time, sid: session.sid });
    const id = (await jwtVerify(res.id_token!, jwks, { issuer: ISSUER, audience: web.client_id })).payload;
    expect(id).toMatchObject({
      sub: ada.id, nonce: 'n-0S6', auth_time: session.auth_time, sid: session.sid, amr: ['pwd', 'otp'], name: 'Ada', email: 'ada@example.com', email_verified: true,
      at_hash: createHash('sha256').update(res.access_token).digest().subarray(0, 16).toString('base64url'),
    });

    const stored = await row(code);
    expect(stored.used_at).toBeInstanceOf(Date);
    expect(stored.access_jti).toBe(access.jti);
    expect(eventsOf('token.issued', before)).toEqual([{ clientId: web.client_id, grantType: 'authorization_code', userId: ada.id, audience: [`${ISSUER}/userinfo`], jti: access.jti, scope: 'openid profile email' }]);
  });

  it('issues no ID token without the openid scope', async () => {
    const res = await redeem(web, { code: await authorize({ scope: 'profile' }) });
    expect(res).not.toHaveProperty('id_token');
    expect(res.scope).toBe('profile');
  });

  it("issues a token for the code's API: that API alone, its scopes only, its lifetime", async () => {
    const res = await redeem(web, { code: await authorize({ scope: 'openid read:orders', audience: ORDERS }) });
    expect(res).toMatchObject({ expires_in: 900, scope: 'read:orders', id_token: expect.any(String) });
    const claims = await accessClaims(res.access_token, ORDERS);
    expect(claims).toMatchObject({ aud: ORDERS, scope: 'read:orders' });
    expect(claims.exp! - claims.iat!).toBe(900);
  });

  it.each<[string, Record<string, string | undefined>, string, RegExp]>([
    ['no code', { code: undefined }, 'invalid_request', /code is required/],
    ['an empty code', { code: '' }, 'invalid_request', /code is required/],
    ['no redirect_uri', { code: 'x', redirect_uri: undefined }, 'invalid_request', /redirect_uri is required/],
    ['a code never issued', { code: randomToken(32) }, 'invalid_grant', /invalid, expired or already used/],
    ['a code over 256 characters', { code: 'c'.repeat(257) }, 'invalid_grant', /invalid, expired or already used/],
  ])('refuses %s', async (_, params, code, description) => {
    await refused(redeem(web, params), code, description);
  });

  describe('a code is used once', () => {
    it('refuses a second redemption and revokes the access and refresh tokens of the first', async () => {
      const code = await authorize({ scope: 'openid offline_access' });
      const first = await redeem(web, { code });
      expect(first.refresh_token).toEqual(expect.any(String));
      const { jti } = await accessClaims(first.access_token);
      expect(await revocation.isRevoked(jti)).toBe(false);

      const before = events.length;
      await refused(redeem(web, { code }), 'invalid_grant', /invalid, expired or already used/);
      expect(await revocation.isRevoked(jti)).toBe(true);
      const family = await refreshRows.findBy({ code_hash: sha256(code) });
      expect(family).toHaveLength(1);
      expect(family[0].revoked_at).toBeInstanceOf(Date);
      await refused(refreshGrant.handle({ grant_type: 'refresh_token', refresh_token: first.refresh_token! }, web), 'invalid_grant');
      expect(eventsOf('code.replayed', before)).toEqual([{ clientId: web.client_id, userId: ada.id }]);
      expect(eventsOf('token.issued', before)).toEqual([]);
    });

    it('revokes the tokens of a refresh family started by the code, rotated since', async () => {
      const code = await authorize({ scope: 'openid offline_access' });
      const first = await redeem(web, { code });
      const rotated = await refreshGrant.handle({ grant_type: 'refresh_token', refresh_token: first.refresh_token! }, web);
      const { jti } = await accessClaims(rotated.access_token);
      await refused(redeem(web, { code }));
      expect(await revocation.isRevoked(jti)).toBe(true);
      await refused(refreshGrant.handle({ grant_type: 'refresh_token', refresh_token: rotated.refresh_token! }, web), 'invalid_grant');
    });

    it('lets exactly one of concurrent redemptions win, and the losers revoke what it got', async () => {
      const code = await authorize({ scope: 'openid offline_access' });
      const results = await Promise.allSettled(Array.from({ length: 6 }, () => redeem(web, { code })));
      const won = results.filter((r): r is PromiseFulfilledResult<TokenResponse> => r.status === 'fulfilled');
      expect(won).toHaveLength(1);
      for (const r of results.filter((r) => r.status === 'rejected')) expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'invalid_grant' });
      expect(await revocation.isRevoked((await accessClaims(won[0].value.access_token)).jti)).toBe(true);
      expect(await refreshRows.countBy({ code_hash: sha256(code) })).toBe(1);
      await refused(refreshGrant.handle({ grant_type: 'refresh_token', refresh_token: won[0].value.refresh_token! }, web), 'invalid_grant');
    });
  });

  describe('a code is bound to its request; a failed attempt uses it up', () => {
    /** Fails with `attempt`, then shows that the code no longer works even when redeemed rightly. */
    async function usedUpBy(attempt: (code: string) => Promise<unknown>, description: RegExp, params: Record<string, string> = {}, right: Record<string, string> = {}, client = web) {
      const code = await authorize(params);
      await refused(attempt(code), 'invalid_grant', description);
      expect((await row(code)).used_at).toBeInstanceOf(Date);
      await refused(redeem(client, { code, ...right }), 'invalid_grant');
    }

    it('refuses a code issued to another client', async () => {
      await usedUpBy((code) => redeem(other, { code }), /invalid, expired or already used/);
    });

    it.each([
      ['a trailing slash', `${WEB_CB}/`],
      ['a prefix of it', WEB_CB.slice(0, -1)],
      ['an added query', `${WEB_CB}?x=1`],
      ['the host in capitals', WEB_CB.replace('web.', 'WEB.')],
      ['another registered URI of another client', SPA_CB],
    ])('refuses a redirect_uri that differs by %s', async (_, redirectUri) => {
      await usedUpBy((code) => redeem(web, { code, redirect_uri: redirectUri }), /redirect_uri does not match/);
    });

    it('refuses a wrong code_verifier, or none, for a code issued with a challenge', async () => {
      const { verifier, challenge } = pkcePair();
      const pkce = { code_challenge: challenge, code_challenge_method: 'S256' };
      await usedUpBy((code) => redeem(web, { code, code_verifier: pkcePair().verifier }), /code_verifier does not match/, pkce, { code_verifier: verifier });
      await usedUpBy((code) => redeem(web, { code }), /code_verifier does not match/, pkce, { code_verifier: verifier });
      // plain: the challenge itself sent as the verifier.
      await usedUpBy((code) => redeem(web, { code, code_verifier: challenge }), /code_verifier does not match/, pkce, { code_verifier: verifier });
    });

    it('redeems with the verifier of the challenge, for a public client too', async () => {
      const { verifier, challenge } = pkcePair();
      const code = await authorize({ client_id: spa.client_id, code_challenge: challenge, code_challenge_method: 'S256' });
      expect((await redeem(spa, { code, code_verifier: verifier })).access_token).toEqual(expect.any(String));
    });

    it('refuses a code_verifier for a code issued without a challenge (PKCE downgrade)', async () => {
      await usedUpBy((code) => redeem(web, { code, code_verifier: pkcePair().verifier }), /issued without code_challenge/);
    });

    it('refuses an expired code', async () => {
      const code = await authorize({});
      // The first lookup of a code issued here is answered from memory: have it, so the next reads the row.
      expect(await authorization.findCode(code)).not.toBeNull();
      await codes.update({ code_hash: sha256(code) }, { expires_at: new Date(Date.now() - 1000) });
      await refused(redeem(web, { code }), 'invalid_grant', /invalid, expired or already used/);
      expect((await row(code)).used_at).toBeInstanceOf(Date);
    });

    it('lets the database decide expiry when the code was read from memory: nothing is issued', async () => {
      const code = await authorize({ scope: 'openid offline_access' });
      await codes.update({ code_hash: sha256(code) }, { expires_at: new Date(Date.now() - 1000) });
      const before = events.length;
      await refused(redeem(web, { code }), 'invalid_grant', /invalid, expired or already used/);
      expect(eventsOf('token.issued', before)).toEqual([]);
      expect(await refreshRows.countBy({ code_hash: sha256(code) })).toBe(0);
      expect((await row(code)).access_jti).toBeNull();
    });

    it('refuses the code of a user blocked or deleted since', async () => {
      const bob = await users.create({ email: `bob-${randomToken(4)}@example.com`, password: 'correct horse battery' });
      const code = await authorize({}, signIn(bob));
      await users.update(bob.id, { blocked: true });
      await refused(redeem(web, { code }), 'invalid_grant', /not allowed to sign in/);
      const eve = await users.create({ email: `eve-${randomToken(4)}@example.com`, password: 'correct horse battery' });
      const code2 = await authorize({}, signIn(eve));
      await users.remove(eve.id);
      await refused(redeem(web, { code: code2 }), 'invalid_grant', /not allowed to sign in/);
    });

    it('refuses the code of an API deleted since', async () => {
      const api = await resources.createApi({ identifier: 'https://api.example.com/gone', name: 'Gone', scopes: [{ value: 'read:gone', description: 'read' }] });
      const code = await authorize({ scope: 'read:gone', audience: api.identifier });
      await resources.removeApi(api.id);
      await refused(redeem(web, { code }), 'invalid_grant', /no longer exists/);
    });
  });

  describe('refresh tokens (CONTRACT §2)', () => {
    it.each<[string, () => Client, Record<string, string>, Partial<TokenRequest>, boolean]>([
      ['to a confidential client, with offline_access', () => web, { scope: 'openid offline_access' }, {}, true],
      ['not without offline_access', () => web, { scope: 'openid' }, {}, false],
      ["not to a confidential client's request from a browser (Origin)", () => web, { scope: 'openid offline_access' }, { origin: 'https://web.example.com' }, false],
      ['to a public client with rotation', () => spa, { scope: 'openid offline_access' }, {}, true],
      ['not to a public client without rotation', () => spaNoRotation, { scope: 'openid offline_access' }, {}, false],
    ])('are issued %s', async (_, client, params, extra, expected) => {
      const { verifier, challenge } = pkcePair();
      const code = await authorize({ client_id: client().client_id, code_challenge: challenge, code_challenge_method: 'S256', ...params });
      const res = await redeem(client(), { code, code_verifier: verifier, ...extra });
      expect(typeof res.refresh_token === 'string').toBe(expected);
      expect(await refreshRows.countBy({ code_hash: sha256(code) })).toBe(expected ? 1 : 0);
    });

    it('are stored by hash only, with the grant they continue', async () => {
      const session = signIn();
      const code = await authorize({ scope: 'openid offline_access read:orders', audience: ORDERS }, session);
      const res = await redeem(web, { code });
      const [stored] = await refreshRows.findBy({ code_hash: sha256(code) });
      expect(stored.token_hash).not.toContain(res.refresh_token);
      expect(JSON.stringify(stored)).not.toContain(res.refresh_token);
      expect(stored).toMatchObject({
        client_id: web.client_id, user_id: ada.id, scopes: ['openid', 'offline_access', 'read:orders'], audience: ORDERS, sid: session.sid,
        auth_time: session.auth_time, amr: 'pwd otp', used_at: null, revoked_at: null, access_jti: (await accessClaims(res.access_token, ORDERS)).jti,
      });
      const days = (stored.expires_at.getTime() - stored.created_at.getTime()) / 86_400_000;
      expect(days).toBe(30);
    });
  });
});
