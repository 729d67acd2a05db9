import { createHash, randomBytes } from 'node:crypto';
import { Injectable, Module } from '@nestjs/common';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';
import { SecretKeyring } from '@idp/core';
import { Client, ClientsService } from '@idp/clients';
import { KeysService } from '@idp/keys';
import { IdpUser, UsersService } from '@idp/users';
import { LibTestingModule, libTestingModule } from '../../../test/support/testing-module';
import { TokenCustomizer, TokenCustomizerContext } from './token-customizer';
import { ID_TOKEN_LIFETIME, TokenIssuer } from './token-issuer';
import { TokenModule } from './token.module';

/**
 * What the token issuer mints: RFC 9068 access tokens (`typ: at+jwt`) and OIDC ID tokens (OIDC
 * Core §2, `at_hash` by §3.1.3.6 with the hash of the signing algorithm), each verified here with
 * jose against the JWKS the server publishes, and opaque refresh tokens stored only as a keyed
 * hash. A real TokenModule (SQLite in memory, or PostgreSQL with TEST_DATABASE_URL), with one
 * token customizer registered to show that core claims cannot be overridden.
 */

const ISSUER = 'http://idp.test';
const API = 'https://api.example.com/orders';

/** Adds claims for the client named "customized", and tries to override every core claim. */
@TokenCustomizer({ name: 'spec-customizer' })
@Injectable()
class OverreachingCustomizer implements TokenCustomizer {
  readonly seen: TokenCustomizerContext[] = [];
  customize(ctx: TokenCustomizerContext) {
    if (ctx.client.client_name !== 'customized') return undefined;
    this.seen.push(ctx);
    return {
      role: ctx.tokenType === 'id_token' ? 'id-role' : 'access-role',
      iss: 'https://evil.example.com', sub: 'someone-else', aud: 'evil', exp: 9_999_999_999, iat: 1, nbf: 9_999_999_999, jti: 'fixed',
      client_id: 'evil', scope: 'admin', auth_time: 1, nonce: 'evil', at_hash: 'evil', sid: 'evil', amr: ['evil'], azp: 'evil', cnf: { jkt: 'evil' },
    };
  }
}

@Module({ providers: [OverreachingCustomizer] })
class CustomizerModule {}

const now = () => Math.floor(Date.now() / 1000);
/** OIDC Core §3.1.3.6: the left half of the hash of the access token's ASCII octets, base64url. */
const leftHalfHash = (token: string, hash: 'sha256' | 'sha512') => {
  const digest = createHash(hash).update(token, 'ascii').digest();
  return digest.subarray(0, digest.length / 2).toString('base64url');
};

describe('TokenIssuer', () => {
  let lib: LibTestingModule;
  let issuer: TokenIssuer;
  let keys: KeysService;
  let client: Client;
  let customized: Client;
  let user: IdpUser;

  beforeAll(async () => {
    lib = await libTestingModule([TokenModule, CustomizerModule], { ISSUER });
    issuer = lib.moduleRef.get(TokenIssuer);
    keys = lib.moduleRef.get(KeysService);
    const clients = lib.moduleRef.get(ClientsService);
    client = (await clients.register({ client_name: 'web', redirect_uris: ['https://web.example.com/cb'] })).client;
    customized = (await clients.register({ client_name: 'customized', redirect_uris: ['https://c.example.com/cb'] })).client;
    user = await lib.moduleRef.get(UsersService).create({ email: 'Ada@Example.com', password: 'correct horse battery', name: 'Ada Lovelace', email_verified: true });
  });
  afterAll(() => lib?.close());

  /** Verifies a JWT as a relying party would: with jose, against the published JWKS. */
  const verify = async (jwt: string, audience: string, typ?: string) =>
    (await jwtVerify(jwt, createLocalJWKSet(keys.jwks() as never), { issuer: ISSUER, audience, typ, algorithms: [keys.current().alg] })).payload;

  const accessSpec = (extra: Partial<Parameters<TokenIssuer['accessToken']>[0]> = {}): Parameters<TokenIssuer['accessToken']>[0] => ({
    client, sub: user.id, audience: API, scope: ['read:orders', 'write:orders'], lifetime: 600, grantType: 'authorization_code', userId: user.id, user, ...extra,
  });

  describe('access tokens (RFC 9068)', () => {
    it('are at+jwt tokens signed by the current key, with the core claims, verified against the JWKS', async () => {
      const before = now();
      const issued = await issuer.accessToken(accessSpec({ authTime: before - 30, sid: 'sid-1' }));
      const after = now();
      expect(decodeProtectedHeader(issued.token)).toEqual({ alg: keys.current().alg, kid: keys.current().kid, typ: 'at+jwt' });
      const claims = await verify(issued.token, API, 'at+jwt');
      expect(claims).toEqual({
        iss: ISSUER, sub: user.id, aud: API, client_id: client.client_id, scope: 'read:orders write:orders',
        jti: issued.jti, iat: expect.any(Number), exp: expect.any(Number), auth_time: before - 30, sid: 'sid-1',
      });
      expect(claims.iat).toBeGreaterThanOrEqual(before);
      expect(claims.iat).toBeLessThanOrEqual(after);
      expect(claims.exp! - claims.iat!).toBe(600);
      expect(issued).toMatchObject({ expiresIn: 600, exp: claims.exp });
    });

    it('leave out auth_time and sid when there are none (client_credentials)', async () => {
      const claims = await verify((await issuer.accessToken(accessSpec({ sub: client.client_id, user: undefined, userId: undefined, grantType: 'client_credentials' }))).token, API);
      expect(claims).not.toHaveProperty('auth_time');
      expect(claims).not.toHaveProperty('sid');
      expect(claims.sub).toBe(client.client_id);
    });

    it('carry a new 128-bit jti each time', async () => {
      const jtis = await Promise.all([1, 2, 3].map(async () => (await issuer.accessToken(accessSpec())).jti));
      expect(new Set(jtis).size).toBe(3);
      for (const jti of jtis) expect(jti).toMatch(/^[\w-]{22}$/);
    });

    it('take every audience given', async () => {
      const claims = await verify((await issuer.accessToken(accessSpec({ audience: [API, issuer.userinfoAudience] }))).token, issuer.userinfoAudience);
      expect(claims.aud).toEqual([API, `${ISSUER}/userinfo`]);
    });

    it('are refused by a relying party expecting another audience or another typ', async () => {
      const { token } = await issuer.accessToken(accessSpec());
      await expect(verify(token, 'https://api.example.com/other')).rejects.toThrow(/aud/);
      await expect(verify(token, API, 'JWT')).rejects.toThrow(/typ/);
    });

    it('take extra claims, but never in place of a core claim', async () => {
      const { token } = await issuer.accessToken(accessSpec({ extra: { org_id: 'org-1', iss: 'https://evil.example.com', sub: 'x', aud: 'x', scope: 'admin', client_id: 'x', jti: 'x', exp: 9_999_999_999, cnf: { jkt: 'x' } } }));
      const claims = await verify(token, API);
      expect(claims).toMatchObject({ org_id: 'org-1', iss: ISSUER, sub: user.id, aud: API, scope: 'read:orders write:orders', client_id: client.client_id });
      expect(claims.jti).not.toBe('x');
      expect(claims.exp).toBeLessThan(now() + 601);
      expect(claims).not.toHaveProperty('cnf');
    });

    it("add a customizer's claims, but not its core claims, and tell it what is being issued", async () => {
      const customizer = lib.moduleRef.get(OverreachingCustomizer);
      const seen = customizer.seen.length;
      const { token, jti } = await issuer.accessToken(accessSpec({ client: customized, authTime: 1000, sid: 'sid-c' }));
      const claims = await verify(token, API);
      expect(claims).toEqual({
        role: 'access-role', iss: ISSUER, sub: user.id, aud: API, client_id: customized.client_id, scope: 'read:orders write:orders',
        jti, iat: expect.any(Number), exp: claims.iat! + 600, auth_time: 1000, sid: 'sid-c',
      });
      expect(customizer.seen.slice(seen)).toEqual([expect.objectContaining({ tokenType: 'access_token', grantType: 'authorization_code', scopes: ['read:orders', 'write:orders'], audience: [API], user })]);
    });

    it('describe themselves in the token.issued event, without the token', async () => {
      const { event, jti, token } = await issuer.accessToken(accessSpec());
      expect(event).toEqual({ clientId: client.client_id, grantType: 'authorization_code', userId: user.id, audience: [API], jti, scope: 'read:orders write:orders' });
      expect(JSON.stringify(event)).not.toContain(token);
    });
  });

  describe('ID tokens (OIDC Core §2)', () => {
    const idSpec = (extra: Partial<Parameters<TokenIssuer['idToken']>[0]> = {}): Parameters<TokenIssuer['idToken']>[0] => ({
      client, user, scopes: ['openid'], authTime: now() - 60, sid: 'sid-1', amr: ['pwd', 'otp'], nonce: 'n-0S6_WzA2Mj', accessToken: 'access-token', grantType: 'authorization_code', ...extra,
    });

    it('carry iss, sub, aud = client_id, iat, exp an hour later, auth_time, nonce, amr, sid and at_hash, verified against the JWKS', async () => {
      const { token: accessToken } = await issuer.accessToken(accessSpec());
      const authTime = now() - 60;
      const before = now();
      const idToken = await issuer.idToken(idSpec({ authTime, accessToken }));
      const after = now();
      expect(decodeProtectedHeader(idToken)).toEqual({ alg: keys.current().alg, kid: keys.current().kid });
      const claims = await verify(idToken, client.client_id);
      expect(claims).toEqual({
        iss: ISSUER, sub: user.id, aud: client.client_id, iat: expect.any(Number), exp: expect.any(Number), auth_time: authTime,
        nonce: 'n-0S6_WzA2Mj', amr: ['pwd', 'otp'], sid: 'sid-1', at_hash: leftHalfHash(accessToken, 'sha256'),
      });
      expect(claims.iat).toBeGreaterThanOrEqual(before);
      expect(claims.iat).toBeLessThanOrEqual(after);
      expect(claims.exp! - claims.iat!).toBe(ID_TOKEN_LIFETIME);
      expect(ID_TOKEN_LIFETIME).toBe(3600);
    });

    it('bind at_hash to the very access token issued beside them', async () => {
      const [a, b] = await Promise.all([issuer.accessToken(accessSpec()), issuer.accessToken(accessSpec())]);
      const claims = await verify(await issuer.idToken(idSpec({ accessToken: a.token })), client.client_id);
      expect(claims.at_hash).toBe(leftHalfHash(a.token, 'sha256'));
      expect(claims.at_hash).not.toBe(leftHalfHash(b.token, 'sha256'));
      expect(claims.at_hash).toHaveLength(22);
    });

    it('leave out nonce when none was sent', async () => {
      for (const nonce of [undefined, null, '']) expect(await verify(await issuer.idToken(idSpec({ nonce })), client.client_id)).not.toHaveProperty('nonce');
    });

    it('carry the claims of the granted scopes only', async () => {
      const bare = await verify(await issuer.idToken(idSpec({ scopes: ['openid'] })), client.client_id);
      for (const claim of ['name', 'email', 'email_verified', 'updated_at']) expect(bare).not.toHaveProperty(claim);
      const profile = await verify(await issuer.idToken(idSpec({ scopes: ['openid', 'profile'] })), client.client_id);
      expect(profile).toMatchObject({ name: 'Ada Lovelace', updated_at: Math.floor(user.updated_at!.getTime() / 1000) });
      expect(profile).not.toHaveProperty('email');
      const email = await verify(await issuer.idToken(idSpec({ scopes: ['openid', 'email'] })), client.client_id);
      expect(email).toMatchObject({ email: 'ada@example.com', email_verified: true });
      expect(email).not.toHaveProperty('name');
    });

    it("add a customizer's claims, but not its core claims", async () => {
      const customizer = lib.moduleRef.get(OverreachingCustomizer);
      const seen = customizer.seen.length;
      const { token: accessToken } = await issuer.accessToken(accessSpec({ client: customized }));
      const authTime = now() - 5;
      const claims = await verify(await issuer.idToken(idSpec({ client: customized, accessToken, authTime, nonce: 'n-1', sid: 'sid-c', amr: ['pwd'] })), customized.client_id);
      expect(claims).toEqual({
        role: 'id-role', iss: ISSUER, sub: user.id, aud: customized.client_id, iat: expect.any(Number), exp: claims.iat! + ID_TOKEN_LIFETIME,
        auth_time: authTime, nonce: 'n-1', amr: ['pwd'], sid: 'sid-c', at_hash: leftHalfHash(accessToken, 'sha256'),
      });
      expect(customizer.seen.slice(seen).map((c) => c.tokenType)).toEqual(['access_token', 'id_token']);
      expect(customizer.seen.at(-1)).toMatchObject({ audience: [customized.client_id], scopes: ['openid'] });
    });
  });

  describe('at_hash by the signing algorithm', () => {
    it.each<['ES256' | 'EdDSA', 'sha256' | 'sha512', number]>([
      ['ES256', 'sha256', 22],
      ['EdDSA', 'sha512', 43],
    ])('with %s keys, is the left half of %s', async (alg, hash, length) => {
      const other = await libTestingModule([TokenModule], { ISSUER, IDP_SIGNING_ALG: alg });
      try {
        const otherIssuer = other.moduleRef.get(TokenIssuer);
        const otherKeys = other.moduleRef.get(KeysService);
        expect(otherKeys.current().alg).toBe(alg);
        const { token: accessToken } = await otherIssuer.accessToken({ client, sub: 'user-1', audience: API, scope: [], lifetime: 60, grantType: 'authorization_code' });
        const idToken = await otherIssuer.idToken({ client, user, scopes: ['openid'], authTime: now(), sid: 's', amr: ['pwd'], accessToken, grantType: 'authorization_code' });
        const { payload, protectedHeader } = await jwtVerify<JWTPayload>(idToken, createLocalJWKSet(otherKeys.jwks() as never), { issuer: ISSUER, audience: client.client_id });
        expect(protectedHeader.alg).toBe(alg);
        expect(payload.at_hash).toBe(leftHalfHash(accessToken, hash));
        expect(payload.at_hash).toHaveLength(length);
      } finally {
        await other.close();
      }
    });
  });

  describe('refresh tokens', () => {
    it('are 256 random bits, stored only as a hash keyed by IDP_SECRET_KEY', () => {
      const a = issuer.refreshToken();
      const b = issuer.refreshToken();
      expect(a.token).toMatch(/^[\w-]{43}$/);
      expect(a.token).not.toBe(b.token);
      expect(a.hash).not.toBe(b.hash);
      expect(a.hash).not.toContain(a.token);
      expect(issuer.hashRefreshToken(a.token)).toBe(a.hash);
      expect(a.hash).toBe(lib.config.keyring.hashSecret(a.token));
      expect(new SecretKeyring(randomBytes(32).toString('base64url')).hashSecret(a.token)).not.toBe(a.hash);
      expect(a.hash).not.toBe(createHash('sha256').update(a.token).digest('base64url'));
    });
  });

  it('names /userinfo as the audience of tokens for it', () => {
    expect(issuer.userinfoAudience).toBe(`${ISSUER}/userinfo`);
  });
});
