import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Test, TestingModule } from '@nestjs/testing';
import { TypeOrmModule, getDataSourceToken } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { CryptoKey, JWTPayload, SignJWT, createLocalJWKSet, decodeProtectedHeader, errors as joseErrors, generateKeyPair, jwtVerify } from 'jose';
import { CoreModule, SecretKeyring, loadConfig } from '@idp/core';
import { dataSourceOptions } from '@idp/identity';
import { KeysModule } from './keys.module';
import { KeysService, SigningAlg } from './keys.service';
import { SigningKey } from './signing-key.entity';

/**
 * The signing keys: sealed at rest with IDP_SECRET_KEY, kept across restarts, sign/verify of our
 * own JWTs, rotation with a publication window. Real KeysModule on SQLite (in memory, or a file
 * when a second service must see the same database).
 */

const ISSUER = 'http://idp.test';
const now = () => Math.floor(Date.now() / 1000);
const newSecretKey = () => randomBytes(32).toString('base64url');

async function keysModule(opts: { databaseUrl?: string; secretKey?: string; signingAlg?: SigningAlg } = {}): Promise<TestingModule> {
  const databaseUrl = opts.databaseUrl ?? 'sqlite::memory:';
  const config = loadConfig({
    NODE_ENV: 'test', ISSUER, DATABASE_URL: databaseUrl, IDP_SECRET_KEY: opts.secretKey ?? newSecretKey(), IDP_SIGNING_ALG: opts.signingAlg,
  });
  const moduleRef = await Test.createTestingModule({
    imports: [CoreModule.forRoot(config), TypeOrmModule.forRoot({ ...dataSourceOptions(databaseUrl), migrationsRun: true }), KeysModule],
  }).compile();
  try {
    await moduleRef.init();
  } catch (err) {
    await moduleRef.close().catch(() => undefined);
    throw err;
  }
  return moduleRef;
}

/** The rows as stored, sealed column included. */
function storedKeys(moduleRef: TestingModule): Promise<SigningKey[]> {
  return moduleRef.get<DataSource>(getDataSourceToken()).getRepository(SigningKey).createQueryBuilder('k').addSelect('k.private_sealed').getMany();
}

/** Claims of a token we would issue, valid for a minute unless overridden. */
function claims(extra: JWTPayload = {}): JWTPayload {
  return { iss: ISSUER, sub: 'user-1', aud: 'https://api.example.com', iat: now(), exp: now() + 60, ...extra };
}

describe('KeysService', () => {
  describe('keys at rest', () => {
    let moduleRef: TestingModule;
    let secretKey: string;
    beforeAll(async () => {
      secretKey = newSecretKey();
      moduleRef = await keysModule({ secretKey });
      await moduleRef.get(KeysService).rotate({ alg: 'ES256', retireAfterSeconds: 60 });
    });
    afterAll(() => moduleRef.close());

    it('stores private keys sealed: no private JWK member, no PEM, only the public JWK in clear', async () => {
      const rows = await storedKeys(moduleRef);
      expect(rows).toHaveLength(2);
      for (const row of rows) {
        expect(row.private_sealed).toMatch(/^v1\.[\w-]+\.[\w-]+\.[\w-]+$/);
        for (const clear of ['"d":', '"p":', '"q":', '"dp":', '"kty"', 'PRIVATE KEY', '-----BEGIN']) expect(row.private_sealed).not.toContain(clear);
        expect(row.public_jwk).not.toHaveProperty('d');
        // What the seal hides is the private JWK, whose `d` appears nowhere else in clear.
        const privateJwk = JSON.parse(new SecretKeyring(secretKey).unseal(row.private_sealed, `signing-key:${row.kid}`));
        expect(privateJwk.d).toEqual(expect.any(String));
        expect(row.private_sealed).not.toContain(privateJwk.d);
        expect(JSON.stringify(row.public_jwk)).not.toContain(privateJwk.d);
      }
    });

    it('cannot be unsealed with another IDP_SECRET_KEY', async () => {
      const [row] = await storedKeys(moduleRef);
      expect(() => new SecretKeyring(newSecretKey()).unseal(row.private_sealed, `signing-key:${row.kid}`)).toThrow();
    });

    it('binds each sealed key to its kid: a sealed value moved to another key does not unseal', async () => {
      const [a, b] = await storedKeys(moduleRef);
      expect(() => new SecretKeyring(secretKey).unseal(a.private_sealed, `signing-key:${b.kid}`)).toThrow();
    });
  });

  describe('across restarts (file-backed SQLite)', () => {
    let dir: string;
    const secretKey = newSecretKey();
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'idp-keys-'));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const database = (name: string) => `sqlite:${join(dir, `${name}.sqlite`)}`;

    it('creates a key on first start and keeps using it after a restart', async () => {
      const databaseUrl = database('restart');
      const first = await keysModule({ databaseUrl, secretKey });
      const kid = first.get(KeysService).current().kid;
      const token = await first.get(KeysService).sign(claims({ exp: now() + 600 }), { typ: 'at+jwt' });
      await first.close();

      const second = await keysModule({ databaseUrl, secretKey });
      try {
        const keys = second.get(KeysService);
        expect(keys.current().kid).toBe(kid);
        expect(keys.jwks().keys.map((k) => k.kid)).toEqual([kid]);
        expect(await storedKeys(second)).toHaveLength(1);
        await expect(keys.verify(token, { typ: 'at+jwt', audience: 'https://api.example.com' })).resolves.toMatchObject({ payload: { sub: 'user-1' } });
      } finally {
        await second.close();
      }
    });

    it('refuses to start with another IDP_SECRET_KEY rather than sign with a new key', async () => {
      const databaseUrl = database('other-secret');
      await (await keysModule({ databaseUrl, secretKey })).close();
      // AES-GCM authentication fails: the sealed keys do not open under another key.
      await expect(keysModule({ databaseUrl, secretKey: newSecretKey() })).rejects.toThrow(/IDP_SECRET_KEY|unable to authenticate/);
      const check = await keysModule({ databaseUrl, secretKey });
      try {
        expect(await storedKeys(check)).toHaveLength(1);
      } finally {
        await check.close();
      }
    });
  });

  describe('sign() and verify()', () => {
    let moduleRef: TestingModule;
    let keys: KeysService;
    let foreignKey: CryptoKey;
    beforeAll(async () => {
      moduleRef = await keysModule();
      keys = moduleRef.get(KeysService);
      foreignKey = (await generateKeyPair('RS256')).privateKey;
    });
    afterAll(() => moduleRef.close());

    it('signs with the current key (alg, kid, typ in the header) and verifies with typ and audience', async () => {
      const token = await keys.sign(claims(), { typ: 'at+jwt' });
      expect(decodeProtectedHeader(token)).toEqual({ alg: 'RS256', kid: keys.current().kid, typ: 'at+jwt' });
      const { payload } = await keys.verify(token, { typ: 'at+jwt', audience: 'https://api.example.com' });
      expect(payload).toMatchObject({ iss: ISSUER, sub: 'user-1', aud: 'https://api.example.com' });
    });

    it('publishes what an outside verifier needs: the token verifies against jwks()', async () => {
      const token = await keys.sign(claims(), { typ: 'at+jwt' });
      const jwks = keys.jwks();
      expect(jwks.keys).toEqual([expect.objectContaining({ kid: keys.current().kid, alg: 'RS256', use: 'sig', kty: 'RSA' })]);
      expect(jwks.keys[0]).not.toHaveProperty('d');
      await expect(jwtVerify(token, createLocalJWKSet(jwks as never), { issuer: ISSUER, typ: 'at+jwt' })).resolves.toBeDefined();
    });

    it.each<[string, () => Promise<string>, { typ?: string; audience?: string }]>([
      ['the typ differs', () => keys.sign(claims(), { typ: 'JWT' }), { typ: 'at+jwt' }],
      ['the token has no typ and one is required', () => keys.sign(claims()), { typ: 'at+jwt' }],
      ['the audience differs', () => keys.sign(claims(), { typ: 'at+jwt' }), { typ: 'at+jwt', audience: 'https://other.example.com' }],
      ['the token has no aud and one is required', () => keys.sign(claims({ aud: undefined }), { typ: 'at+jwt' }), { typ: 'at+jwt', audience: 'https://api.example.com' }],
      ['the token has expired', () => keys.sign(claims({ iat: now() - 120, exp: now() - 60 }), { typ: 'at+jwt' }), { typ: 'at+jwt' }],
      ['the issuer is not ours', () => keys.sign(claims({ iss: 'https://evil.example.com' }), { typ: 'at+jwt' }), { typ: 'at+jwt' }],
      ['a foreign key signed it under our kid', () =>
        new SignJWT(claims()).setProtectedHeader({ alg: 'RS256', kid: keys.current().kid, typ: 'at+jwt' }).sign(foreignKey), { typ: 'at+jwt' }],
      ['a foreign key signed it under an unknown kid', () =>
        new SignJWT(claims()).setProtectedHeader({ alg: 'RS256', kid: 'not-ours', typ: 'at+jwt' }).sign(foreignKey), { typ: 'at+jwt' }],
      ['it has no kid', () => new SignJWT(claims()).setProtectedHeader({ alg: 'RS256', typ: 'at+jwt' }).sign(foreignKey), { typ: 'at+jwt' }],
      ['its payload was altered after signing', async () => {
        const [h, , s] = (await keys.sign(claims(), { typ: 'at+jwt' })).split('.');
        return [h, Buffer.from(JSON.stringify(claims({ sub: 'admin' }))).toString('base64url'), s].join('.');
      }, { typ: 'at+jwt' }],
      ['it is not a JWT', async () => 'not-a-jwt', {}],
    ])('verify() rejects a token when %s', async (_, token, opts) => {
      await expect(keys.verify(await token(), opts)).rejects.toBeInstanceOf(joseErrors.JOSEError);
    });

    // A token verified once is remembered (its signature is not checked again); every other check
    // still runs on each call, with the errors jose itself would throw.
    it.each<[string, JWTPayload, string | undefined, { typ?: string; audience?: string }]>([
      ['another typ is required', claims(), 'JWT', { typ: 'at+jwt' }],
      ['a typ is required and it has none', claims(), undefined, { typ: 'at+jwt' }],
      ['another audience is required', claims(), 'at+jwt', { typ: 'at+jwt', audience: 'https://other.example.com' }],
      ['an audience is required and it has none', claims({ aud: undefined }), 'at+jwt', { audience: 'https://api.example.com' }],
    ])('verify() of a token it verified before still refuses it when %s, as jose does', async (_, c, typ, opts) => {
      const token = await keys.sign(c, typ ? { typ } : {});
      const expected = await jwtVerify(token, createLocalJWKSet(keys.jwks() as never), { issuer: ISSUER, clockTolerance: 5, ...opts }).then(
        () => null,
        (err: Error) => err.constructor,
      );
      expect(expected).not.toBeNull();
      await expect(keys.verify(token, {})).resolves.toBeDefined();
      await expect(keys.verify(token, opts)).rejects.toBeInstanceOf(expected!);
      await expect(keys.verify(token, opts)).rejects.toBeInstanceOf(expected!);
    });

    it('verify() of a token it verified before still checks its expiry against the clock', async () => {
      const token = await keys.sign(claims({ exp: now() + 2 }), { typ: 'at+jwt' });
      await expect(keys.verify(token, { typ: 'at+jwt', audience: 'https://api.example.com' })).resolves.toBeDefined();
      await expect(keys.verify(token, { typ: 'at+jwt', audience: ['https://x.example.com', 'https://api.example.com'] })).resolves.toBeDefined();
      jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'clearImmediate', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'queueMicrotask', 'hrtime', 'performance'] });
      try {
        jest.setSystemTime(Date.now() + 8_000); // past exp + the 5 s clock tolerance
        await expect(keys.verify(token, { typ: 'at+jwt' })).rejects.toBeInstanceOf(joseErrors.JWTExpired);
      } finally {
        jest.useRealTimers();
      }
    });
  });

  describe('rotate()', () => {
    let moduleRef: TestingModule;
    let keys: KeysService;
    beforeEach(async () => {
      // ES256 only to keep key generation fast; rotation does not depend on the algorithm.
      moduleRef = await keysModule({ signingAlg: 'ES256' });
      keys = moduleRef.get(KeysService);
    });
    afterEach(() => {
      jest.useRealTimers();
      return moduleRef.close();
    });

    it('makes a new key current and keeps the previous one published and valid until publish_until', async () => {
      const oldKid = keys.current().kid;
      const before = await keys.sign(claims({ exp: now() + 3600 }), { typ: 'at+jwt' });
      const view = await keys.rotate({ retireAfterSeconds: 3600 });
      expect(view).toMatchObject({ kid: expect.any(String), status: 'current', publish_until: null });
      expect(view.kid).not.toBe(oldKid);
      expect(keys.current().kid).toBe(view.kid);
      expect(decodeProtectedHeader(await keys.sign(claims())).kid).toBe(view.kid);
      expect(keys.list()).toEqual(expect.arrayContaining([
        expect.objectContaining({ kid: view.kid, status: 'current' }),
        expect.objectContaining({ kid: oldKid, status: 'previous', publish_until: expect.any(String) }),
      ]));
      expect(keys.jwks().keys.map((k) => k.kid).sort()).toEqual([oldKid, view.kid].sort());
      await expect(keys.verify(before, { typ: 'at+jwt' })).resolves.toBeDefined();
    });

    it('drops the previous key from jwks() and refuses its tokens once publish_until has passed (database changed, then reload())', async () => {
      const oldKid = keys.current().kid;
      const before = await keys.sign(claims({ exp: now() + 3600 }), { typ: 'at+jwt' });
      const { kid } = await keys.rotate({ retireAfterSeconds: 3600 });
      await expect(keys.verify(before, { typ: 'at+jwt' })).resolves.toBeDefined(); // and remembered
      await moduleRef.get<DataSource>(getDataSourceToken()).getRepository(SigningKey).update({ kid: oldKid }, { publish_until: new Date(Date.now() - 1000) });
      await keys.reload();
      expect(keys.jwks().keys.map((k) => k.kid)).toEqual([kid]);
      await expect(keys.verify(before, { typ: 'at+jwt' })).rejects.toBeInstanceOf(joseErrors.JOSEError);
    });

    it('drops the previous key from jwks() and refuses its tokens once publish_until has passed (clock moved, no reload)', async () => {
      const oldKid = keys.current().kid;
      const before = await keys.sign(claims({ exp: now() + 3600 }), { typ: 'at+jwt' });
      const { kid } = await keys.rotate({ retireAfterSeconds: 1 });
      expect(keys.jwks().keys.map((k) => k.kid)).toContain(oldKid);
      const after = await keys.sign(claims({ exp: now() + 3600 }), { typ: 'at+jwt' });
      await expect(keys.verify(before, { typ: 'at+jwt' })).resolves.toBeDefined(); // and remembered
      // Only the clock is faked: 10 s later, past publish_until and any JWKS response cache.
      jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'clearImmediate', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'queueMicrotask', 'hrtime', 'performance'] });
      jest.setSystemTime(Date.now() + 10_000);
      expect(keys.jwks().keys.map((k) => k.kid)).toEqual([kid]);
      await expect(keys.verify(before, { typ: 'at+jwt' })).rejects.toBeInstanceOf(joseErrors.JOSEError);
      await expect(keys.verify(after, { typ: 'at+jwt' })).resolves.toBeDefined();
    });
  });

  describe.each<[SigningAlg, Record<string, unknown>]>([
    ['ES256', { kty: 'EC', crv: 'P-256' }],
    ['EdDSA', { kty: 'OKP', crv: 'Ed25519' }],
  ])('%s keys', (alg, jwkShape) => {
    let moduleRef: TestingModule;
    afterEach(() => moduleRef.close());

    it(`creates the first key with IDP_SIGNING_ALG=${alg} and signs and verifies with it`, async () => {
      moduleRef = await keysModule({ signingAlg: alg });
      const keys = moduleRef.get(KeysService);
      expect(keys.current().alg).toBe(alg);
      const token = await keys.sign(claims(), { typ: 'at+jwt' });
      expect(decodeProtectedHeader(token)).toMatchObject({ alg, kid: keys.current().kid });
      await expect(keys.verify(token, { typ: 'at+jwt', audience: 'https://api.example.com' })).resolves.toBeDefined();
      expect(keys.jwks().keys).toEqual([expect.objectContaining({ ...jwkShape, alg, kid: keys.current().kid, use: 'sig' })]);
      await expect(jwtVerify(token, createLocalJWKSet(keys.jwks() as never), { issuer: ISSUER })).resolves.toBeDefined();
    });

    it(`rotates from RS256 to ${alg}, and both keys keep verifying their tokens`, async () => {
      moduleRef = await keysModule();
      const keys = moduleRef.get(KeysService);
      const rsaToken = await keys.sign(claims());
      await keys.rotate({ alg, retireAfterSeconds: 60 });
      const token = await keys.sign(claims());
      expect(decodeProtectedHeader(token).alg).toBe(alg);
      await expect(keys.verify(token)).resolves.toBeDefined();
      await expect(keys.verify(rsaToken)).resolves.toBeDefined();
      const jwks = createLocalJWKSet(keys.jwks() as never);
      await expect(jwtVerify(token, jwks, { issuer: ISSUER })).resolves.toBeDefined();
      await expect(jwtVerify(rsaToken, jwks, { issuer: ISSUER })).resolves.toBeDefined();
    });
  });
});
