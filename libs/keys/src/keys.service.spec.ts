import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HEADERS_METADATA } from '@nestjs/common/constants';
import { Test, TestingModule } from '@nestjs/testing';
import { TypeOrmModule, getDataSourceToken } from '@nestjs/typeorm';
import { DataSource, Repository } from 'typeorm';
import { CryptoKey, JWTPayload, SignJWT, createLocalJWKSet, decodeProtectedHeader, errors as joseErrors, generateKeyPair, jwtVerify } from 'jose';
import { Clock, CoreModule, IdpEvents, ManualClock, SecretKeyring, loadConfig } from '@idp/core';
import { dataSourceOptions } from '@idp/identity';
import { JwksController } from './jwks.controller';
import { KeysModule } from './keys.module';
import { ACTIVATION_LEAD_MS, JWKS_MAX_AGE_S, JWKS_MEMO_MS, KeysService, RELOAD_MS, SigningAlg, signerAt } from './keys.service';
import { SigningKey } from './signing-key.entity';

/**
 * The signing keys: sealed at rest with IDP_SECRET_KEY, kept across restarts, sign/verify of our
 * own JWTs, rotation that publishes a key before it signs, with a publication window after. Real
 * KeysModule on SQLite (in memory, or a file when a second service must see the same database).
 * Time moves by a ManualClock given to CoreModule, never by faking Date (TypeORM's SQLite driver
 * does not convert Dates under a faked Date: see test/keys-replicas.e2e-spec.ts).
 */

const ISSUER = 'http://idp.test';
const now = () => Math.floor(Date.now() / 1000);
const newSecretKey = () => randomBytes(32).toString('base64url');

async function keysModule(opts: { databaseUrl?: string; secretKey?: string; signingAlg?: SigningAlg; clock?: Clock } = {}): Promise<TestingModule> {
  const databaseUrl = opts.databaseUrl ?? 'sqlite::memory:';
  const config = loadConfig({
    NODE_ENV: 'test', ISSUER, DATABASE_URL: databaseUrl, IDP_SECRET_KEY: opts.secretKey ?? newSecretKey(), IDP_SIGNING_ALG: opts.signingAlg,
  });
  const moduleRef = await Test.createTestingModule({
    imports: [CoreModule.forRoot(config, undefined, { clock: opts.clock }), TypeOrmModule.forRoot({ ...dataSourceOptions(databaseUrl), migrationsRun: true }), KeysModule],
  }).compile();
  try {
    await moduleRef.init();
  } catch (err) {
    await moduleRef.close().catch(() => undefined);
    throw err;
  }
  return moduleRef;
}

const repo = (moduleRef: TestingModule): Repository<SigningKey> => moduleRef.get<DataSource>(getDataSourceToken()).getRepository(SigningKey);

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
      // The first signer and next key (RS256), the rotation's ES256 key and next key.
      expect(rows).toHaveLength(4);
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

    it('creates a signer and a next key on first start and keeps both after a restart', async () => {
      const databaseUrl = database('restart');
      const first = await keysModule({ databaseUrl, secretKey });
      const kid = first.get(KeysService).current().kid;
      const kids = first.get(KeysService).list().map((k) => k.kid).sort();
      expect(kids).toHaveLength(2);
      const token = await first.get(KeysService).sign(claims({ exp: now() + 600 }), { typ: 'at+jwt' });
      await first.close();

      const second = await keysModule({ databaseUrl, secretKey });
      try {
        const keys = second.get(KeysService);
        expect(keys.current().kid).toBe(kid);
        expect(keys.jwks().keys.map((k) => k.kid).sort()).toEqual(kids);
        expect(await storedKeys(second)).toHaveLength(2);
        await expect(keys.verify(token, { typ: 'at+jwt', audience: 'https://api.example.com' })).resolves.toMatchObject({ payload: { sub: 'user-1' } });
      } finally {
        await second.close();
      }
    });

    it('gives a database without a next key (an upgrade) one at boot, and keeps its signer', async () => {
      const databaseUrl = database('upgrade');
      const first = await keysModule({ databaseUrl, secretKey });
      const kid = first.get(KeysService).current().kid;
      // As the version before left it: one key, current since its creation, no next key.
      await repo(first).delete({ status: 'next' });
      await first.close();

      const second = await keysModule({ databaseUrl, secretKey });
      try {
        const keys = second.get(KeysService);
        expect(keys.current().kid).toBe(kid);
        const rows = await storedKeys(second);
        expect(rows.map((r) => r.status).sort()).toEqual(['current', 'next']);
        expect(rows.find((r) => r.status === 'next')).toMatchObject({ activates_at: null, publish_until: null });
        expect(keys.jwks().keys.map((k) => k.kid).sort()).toEqual(rows.map((r) => r.kid).sort());
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
        expect(await storedKeys(check)).toHaveLength(2);
      } finally {
        await check.close();
      }
    });
  });

  describe('sign() and verify()', () => {
    let moduleRef: TestingModule;
    let keys: KeysService;
    let foreignKey: CryptoKey;
    const clock = new ManualClock();
    beforeAll(async () => {
      moduleRef = await keysModule({ clock });
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

    it('computes key-dependent claims for the key that signs, when they are given as a function of it', async () => {
      const seen: string[] = [];
      const token = await keys.sign((k) => {
        seen.push(k.alg);
        return { ...claims(), signed_with: k.alg };
      });
      expect(seen).toEqual([decodeProtectedHeader(token).alg]);
      expect((await keys.verify(token)).payload.signed_with).toBe('RS256');
    });

    it('publishes what an outside verifier needs: the token verifies against jwks()', async () => {
      const token = await keys.sign(claims(), { typ: 'at+jwt' });
      const jwks = keys.jwks();
      // The signer, and the next key (published, not signing yet).
      expect(jwks.keys).toHaveLength(2);
      expect(jwks.keys).toEqual(expect.arrayContaining([
        expect.objectContaining({ kid: keys.current().kid, alg: 'RS256', use: 'sig', kty: 'RSA' }),
        expect.objectContaining({ kid: keys.list().find((k) => k.status === 'next')!.kid, alg: 'RS256', use: 'sig', kty: 'RSA' }),
      ]));
      for (const jwk of jwks.keys) expect(jwk).not.toHaveProperty('d');
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

    it('verify() checks expiry against its clock, for a token it verified before too', async () => {
      const start = clock.now();
      const exp = clock.nowSeconds() + 2;
      const token = await keys.sign(claims({ iat: exp - 2, exp }), { typ: 'at+jwt' });
      const fresh = await keys.sign(claims({ iat: exp - 2, exp, jti: 'never verified before' }), { typ: 'at+jwt' });
      await expect(keys.verify(token, { typ: 'at+jwt', audience: 'https://api.example.com' })).resolves.toBeDefined();
      await expect(keys.verify(token, { typ: 'at+jwt', audience: ['https://x.example.com', 'https://api.example.com'] })).resolves.toBeDefined();
      try {
        clock.set((exp + 5) * 1000 - 1); // within the 5 s clock tolerance
        await expect(keys.verify(token, { typ: 'at+jwt' })).resolves.toBeDefined();
        clock.set((exp + 5) * 1000); // past exp + the tolerance
        await expect(keys.verify(token, { typ: 'at+jwt' })).rejects.toBeInstanceOf(joseErrors.JWTExpired);
        await expect(keys.verify(fresh, { typ: 'at+jwt' })).rejects.toBeInstanceOf(joseErrors.JWTExpired);
      } finally {
        clock.set(start);
      }
    });
  });

  describe('rotate(): publish before signing', () => {
    let moduleRef: TestingModule;
    let keys: KeysService;
    let clock: ManualClock;
    beforeEach(async () => {
      clock = new ManualClock();
      // ES256 only to keep key generation fast; rotation does not depend on the algorithm.
      moduleRef = await keysModule({ signingAlg: 'ES256', clock });
      keys = moduleRef.get(KeysService);
      // The keys were written at boot; the tests act a moment later (the clock stands still otherwise).
      clock.advance(1_000);
    });
    afterEach(() => moduleRef.close());

    /** The next key: published, not scheduled. */
    const nextKey = () => keys.list().find((k) => k.status === 'next' && k.activates_at === null)!;
    const at = (iso: string | null) => new Date(iso!).getTime();
    /** As if the next key had been written `ms` ago (and so published that long). */
    async function publishedFor(kid: string, ms: number): Promise<void> {
      await repo(moduleRef).update({ kid }, { created_at: new Date(clock.now() - ms) });
      await keys.reload();
    }

    it('starts with a signer (from its creation) and a published next key that no one signs with', () => {
      const listed = keys.list();
      expect(listed.map((k) => k.status).sort()).toEqual(['current', 'next']);
      const signer = listed.find((k) => k.status === 'current')!;
      expect(signer).toMatchObject({ kid: keys.current().kid, activates_at: signer.created_at, publish_until: null });
      expect(nextKey()).toMatchObject({ activates_at: null, publish_until: null });
      expect(keys.jwks().keys.map((k) => k.kid).sort()).toEqual(listed.map((k) => k.kid).sort());
    });

    it('schedules a next key written less than the lead ago at its created_at + the lead; the old key signs until then, the new one from then, with no write and no reload', async () => {
      const oldKid = keys.current().kid;
      const next = nextKey();
      const view = await keys.rotate({ retireAfterSeconds: 3600 });
      expect(view).toMatchObject({ kid: next.kid, status: 'next', created_at: next.created_at, publish_until: null });
      expect(at(view.activates_at)).toBe(at(next.created_at) + ACTIVATION_LEAD_MS);
      expect(keys.current().kid).toBe(oldKid);
      expect(decodeProtectedHeader(await keys.sign(claims())).kid).toBe(oldKid);
      expect(keys.jwks().keys.map((k) => k.kid)).toContain(next.kid);

      const reload = jest.spyOn(keys, 'reload');
      clock.set(at(view.activates_at) - 1);
      expect(keys.current().kid).toBe(oldKid);
      clock.set(at(view.activates_at));
      expect(keys.current().kid).toBe(next.kid);
      expect(decodeProtectedHeader(await keys.sign(claims())).kid).toBe(next.kid);
      expect(keys.list().find((k) => k.kid === next.kid)!.status).toBe('current');
      expect(keys.list().find((k) => k.kid === oldKid)!.status).toBe('previous');
      expect(reload).not.toHaveBeenCalled();
      // A clock set back before the activation gets the old signer back: the schedule, not the past, decides.
      clock.set(at(view.activates_at) - 1000);
      expect(keys.current().kid).toBe(oldKid);
    });

    it('announces the rotation (key.rotated) with the key that signs next, from when, and the key before it', async () => {
      const oldKid = keys.current().kid;
      const emit = jest.spyOn(moduleRef.get(IdpEvents), 'emit');
      const view = await keys.rotate({ retireAfterSeconds: 60, actor: 'admin-client' });
      expect(emit).toHaveBeenCalledWith('key.rotated', { kid: view.kid, previousKid: oldKid, activatesAt: view.activates_at, actor: 'admin-client' }, undefined);
    });

    it('makes a next key published for longer than the lead sign at once', async () => {
      const oldKid = keys.current().kid;
      const next = nextKey();
      await publishedFor(next.kid, ACTIVATION_LEAD_MS + 1000);
      const view = await keys.rotate({ retireAfterSeconds: 3600 });
      expect(view).toMatchObject({ kid: next.kid, status: 'current' });
      expect(at(view.activates_at)).toBe(clock.now());
      expect(keys.current().kid).toBe(next.kid);
      expect(decodeProtectedHeader(await keys.sign(claims())).kid).toBe(next.kid);
      expect(keys.list().find((k) => k.kid === oldKid)!.status).toBe('previous');
    });

    it('ends the publication of the key signing before the activation at that activation + retireAfterSeconds, and writes a new next key', async () => {
      const oldKid = keys.current().kid;
      const view = await keys.rotate({ retireAfterSeconds: 3600 });
      const old = keys.list().find((k) => k.kid === oldKid)!;
      expect(at(old.publish_until)).toBe(at(view.activates_at) + 3600_000);
      const fresh = nextKey();
      expect(fresh.kid).not.toBe(view.kid);
      expect(fresh).toMatchObject({ alg: 'ES256', activates_at: null, publish_until: null });
      expect(keys.jwks().keys.map((k) => k.kid).sort()).toEqual([oldKid, view.kid, fresh.kid].sort());
      const stored = await repo(moduleRef).find();
      expect(stored.map((r) => [r.kid, r.status]).sort()).toEqual([[oldKid, 'previous'], [view.kid, 'current'], [fresh.kid, 'next']].sort());

      // A second rotation within the lead schedules the new next key after the first, and ends the
      // first (not the original key, which already has its end).
      const second = await keys.rotate({ retireAfterSeconds: 60 });
      expect(second.kid).toBe(fresh.kid);
      expect(at(second.activates_at)).toBe(at(fresh.created_at) + ACTIVATION_LEAD_MS);
      expect(at(second.activates_at)).toBeGreaterThan(at(view.activates_at));
      expect(keys.list().find((k) => k.kid === view.kid)!.publish_until).toBe(new Date(at(second.activates_at) + 60_000).toISOString());
      expect(keys.list().find((k) => k.kid === oldKid)!.publish_until).toBe(old.publish_until);
    });

    it('schedules a fresh key at now + the lead when another algorithm is asked for, and retires the unused next key', async () => {
      const next = nextKey();
      const view = await keys.rotate({ alg: 'EdDSA', retireAfterSeconds: 60 });
      expect(view).toMatchObject({ alg: 'EdDSA', status: 'next' });
      expect(view.kid).not.toBe(next.kid);
      expect(at(view.activates_at)).toBe(clock.now() + ACTIVATION_LEAD_MS);
      expect(nextKey()).toMatchObject({ alg: 'EdDSA', activates_at: null });
      expect(keys.jwks().keys.map((k) => k.kid)).not.toContain(next.kid);
      expect(keys.list().map((k) => k.kid)).not.toContain(next.kid);
    });

    it('drops the previous key from jwks() and refuses its tokens once publish_until has passed (database changed, then reload())', async () => {
      const oldKid = keys.current().kid;
      const before = await keys.sign(claims({ exp: now() + 3600 }), { typ: 'at+jwt' });
      await publishedFor(nextKey().kid, ACTIVATION_LEAD_MS);
      const { kid } = await keys.rotate({ retireAfterSeconds: 3600 });
      await expect(keys.verify(before, { typ: 'at+jwt' })).resolves.toBeDefined(); // and remembered
      await repo(moduleRef).update({ kid: oldKid }, { publish_until: new Date(clock.now() - 1000) });
      await keys.reload();
      expect(keys.jwks().keys.map((k) => k.kid)).toEqual([nextKey().kid, kid]);
      await expect(keys.verify(before, { typ: 'at+jwt' })).rejects.toBeInstanceOf(joseErrors.JOSEError);
    });

    it('drops the previous key from jwks() and refuses its tokens once publish_until has passed (clock moved, no reload), even from a jwks() built just before', async () => {
      const oldKid = keys.current().kid;
      const before = await keys.sign(claims({ exp: now() + 3600 }), { typ: 'at+jwt' });
      await publishedFor(nextKey().kid, ACTIVATION_LEAD_MS);
      const { kid } = await keys.rotate({ retireAfterSeconds: 1 });
      const publishUntil = at(keys.list().find((k) => k.kid === oldKid)!.publish_until);
      const after = await keys.sign(claims({ exp: now() + 3600 }), { typ: 'at+jwt' });
      await expect(keys.verify(before, { typ: 'at+jwt' })).resolves.toBeDefined(); // and remembered
      clock.set(publishUntil - 1);
      expect(keys.jwks().keys.map((k) => k.kid)).toContain(oldKid);
      clock.set(publishUntil);
      expect(keys.jwks().keys.map((k) => k.kid)).toEqual([nextKey().kid, kid]);
      await expect(keys.verify(before, { typ: 'at+jwt' })).rejects.toBeInstanceOf(joseErrors.JOSEError);
      await expect(keys.verify(after, { typ: 'at+jwt' })).resolves.toBeDefined();
    });
  });

  describe('signerAt()', () => {
    const key = (kid: string, activatesAt: number | null, createdAt = 0) => ({ kid, activatesAt, createdAt: new Date(createdAt) });

    it.each<[string, ReturnType<typeof key>[], number, string | undefined, number, number]>([
      ['no key', [], 100, undefined, -Infinity, Infinity],
      ['only a next key (not scheduled)', [key('n', null)], 100, undefined, -Infinity, Infinity],
      ['one signer', [key('a', 10)], 100, 'a', 10, Infinity],
      ['the greatest activation <= t', [key('a', 10), key('b', 50), key('n', null)], 100, 'b', 50, Infinity],
      ['a scheduled key before its time', [key('a', 10), key('b', 150)], 100, 'a', 10, 150],
      ['a scheduled key at its time', [key('a', 10), key('b', 150)], 150, 'b', 150, Infinity],
      ['two scheduled keys ahead', [key('a', 10), key('c', 300), key('b', 150)], 100, 'a', 10, 150],
      ['a tie: the newest', [key('a', 10, 5), key('b', 10, 1)], 100, 'a', 10, Infinity],
      ['a tie of creation too: the greatest kid', [key('a', 10, 5), key('b', 10, 5)], 100, 'b', 10, Infinity],
      ['every key scheduled later', [key('a', 200)], 100, undefined, -Infinity, 200],
    ])('%s', (_, keys, t, kid, since, until) => {
      const picked = signerAt(keys, t);
      expect(picked.signer?.kid).toBe(kid);
      expect([picked.since, picked.until]).toEqual([since, until]);
      expect(signerAt([...keys].reverse(), t).signer?.kid).toBe(kid);
    });
  });

  describe('timings', () => {
    it('publish a key longer before it signs than a relying party may cache the JWKS plus how late another instance may learn of it', () => {
      const cacheControl = (Reflect.getMetadata(HEADERS_METADATA, JwksController.prototype.jwks) as { name: string; value: string }[])
        .find((h) => h.name.toLowerCase() === 'cache-control')!.value;
      const maxAge = Number(/max-age=(\d+)/.exec(cacheControl)![1]);
      expect(maxAge).toBe(JWKS_MAX_AGE_S);
      expect(ACTIVATION_LEAD_MS).toBeGreaterThanOrEqual(maxAge * 1000 + RELOAD_MS + JWKS_MEMO_MS + 20_000);
      expect(ACTIVATION_LEAD_MS).toBe(120_000);
    });
  });

  describe.each<[SigningAlg, Record<string, unknown>]>([
    ['ES256', { kty: 'EC', crv: 'P-256' }],
    ['EdDSA', { kty: 'OKP', crv: 'Ed25519' }],
  ])('%s keys', (alg, jwkShape) => {
    let moduleRef: TestingModule;
    afterEach(() => moduleRef.close());

    it(`creates the first key and the next key with IDP_SIGNING_ALG=${alg} and signs and verifies with it`, async () => {
      moduleRef = await keysModule({ signingAlg: alg });
      const keys = moduleRef.get(KeysService);
      expect(keys.current().alg).toBe(alg);
      const token = await keys.sign(claims(), { typ: 'at+jwt' });
      expect(decodeProtectedHeader(token)).toMatchObject({ alg, kid: keys.current().kid });
      await expect(keys.verify(token, { typ: 'at+jwt', audience: 'https://api.example.com' })).resolves.toBeDefined();
      expect(keys.jwks().keys).toHaveLength(2);
      for (const jwk of keys.jwks().keys) expect(jwk).toEqual(expect.objectContaining({ ...jwkShape, alg, use: 'sig' }));
      expect(keys.jwks().keys.map((k) => k.kid)).toContain(keys.current().kid);
      await expect(jwtVerify(token, createLocalJWKSet(keys.jwks() as never), { issuer: ISSUER })).resolves.toBeDefined();
    });

    it(`rotates from RS256 to ${alg}, and both keys keep verifying their tokens`, async () => {
      const clock = new ManualClock();
      moduleRef = await keysModule({ clock });
      const keys = moduleRef.get(KeysService);
      const rsaToken = await keys.sign(claims({ exp: now() + 3600 }));
      const view = await keys.rotate({ alg, retireAfterSeconds: 3600 });
      clock.set(new Date(view.activates_at!));
      const token = await keys.sign(claims({ iat: clock.nowSeconds(), exp: clock.nowSeconds() + 60 }));
      expect(decodeProtectedHeader(token)).toMatchObject({ alg, kid: view.kid });
      await expect(keys.verify(token)).resolves.toBeDefined();
      await expect(keys.verify(rsaToken)).resolves.toBeDefined();
      const jwks = createLocalJWKSet(keys.jwks() as never);
      await expect(jwtVerify(token, jwks, { issuer: ISSUER, currentDate: clock.date() })).resolves.toBeDefined();
      await expect(jwtVerify(rsaToken, jwks, { issuer: ISSUER, currentDate: clock.date() })).resolves.toBeDefined();
    });
  });
});
