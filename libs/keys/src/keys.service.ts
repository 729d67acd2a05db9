import { Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { KeyObject, createPrivateKey, createPublicKey, generateKeyPair, sign as cryptoSign, webcrypto } from 'node:crypto';
import { promisify } from 'node:util';
import { DataSource } from 'typeorm';
import { JWTPayload, JWTVerifyResult, calculateJwkThumbprint, compactVerify, jwtVerify, decodeProtectedHeader, errors as joseErrors } from 'jose';
import { IdpConfig, IdpEvents, RequestContext } from '@idp/core';
import { SigningKey } from './signing-key.entity';

export type SigningAlg = 'RS256' | 'ES256' | 'EdDSA';
export const SIGNING_ALGS: SigningAlg[] = ['RS256', 'ES256', 'EdDSA'];

interface LoadedKey {
  kid: string;
  alg: SigningAlg;
  status: SigningKey['status'];
  publicJwk: Record<string, unknown>;
  publicKey: KeyObject;
  privateKey?: KeyObject;
  /** The public key as a WebCrypto CryptoKey, imported once, for jose's jwtVerify. */
  verifyKey: CryptoKey;
  createdAt: Date;
  publishUntil: Date | null;
}

export interface KeyView {
  kid: string;
  alg: string;
  status: 'current' | 'previous';
  created_at: string;
  publish_until: string | null;
}

const genKeyPair = promisify(generateKeyPair);

/**
 * The JWS signature (RFC 7515 §5.1, RFC 7518 §3) of `input`, computed on libuv's thread pool
 * (node:crypto's callback form): RSASSA-PKCS1-v1_5 SHA-256, ECDSA P-256 SHA-256 as r || s
 * (IEEE P1363), or Ed25519. Straight from the KeyObject, without WebCrypto's per-call layers.
 */
function signJws(alg: SigningAlg, key: KeyObject, input: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    cryptoSign(alg === 'EdDSA' ? null : 'sha256', input, alg === 'ES256' ? { key, dsaEncoding: 'ieee-p1363' } : key, (err, sig) => (err ? reject(err) : resolve(sig))),
  );
}

/** WebCrypto parameters of each signing algorithm. */
const WEBCRYPTO: Record<SigningAlg, RsaHashedImportParams | EcKeyImportParams | Algorithm> = {
  RS256: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
  ES256: { name: 'ECDSA', namedCurve: 'P-256' },
  EdDSA: { name: 'Ed25519' },
};
const RELOAD_MS = 30_000;

const CLOCK_TOLERANCE_S = 5;
/** How many verified JWTs are remembered (about 1 KiB each). */
const VERIFIED_CACHE_SIZE = 5_000;

/**
 * The claim checks of jose's jwtVerify (with the options `verify` passes), for a JWT whose
 * signature was verified before: `exp` and `nbf` against now (with the same clock tolerance),
 * `typ`, `iss` and `aud`. Throws jose's own errors, so callers see no difference.
 */
export function checkCached(v: JWTVerifyResult, opts: { typ?: string; audience?: string | string[] }, issuer: string): JWTVerifyResult {
  const { payload, protectedHeader } = v;
  const now = Math.floor(Date.now() / 1000);
  const normalize = (t: string) => t.toLowerCase().replace(/^application\//, '');
  if (opts.typ && (typeof protectedHeader.typ !== 'string' || normalize(protectedHeader.typ) !== normalize(opts.typ))) {
    throw new joseErrors.JWTClaimValidationFailed('unexpected "typ" JWT header value', payload, 'typ', 'check_failed');
  }
  if (payload.iss !== issuer) throw new joseErrors.JWTClaimValidationFailed('unexpected "iss" claim value', payload, 'iss', 'check_failed');
  if (opts.audience) {
    const wanted = Array.isArray(opts.audience) ? opts.audience : [opts.audience];
    const aud = typeof payload.aud === 'string' ? [payload.aud] : (payload.aud ?? []);
    if (!wanted.some((a) => aud.includes(a))) throw new joseErrors.JWTClaimValidationFailed('unexpected "aud" claim value', payload, 'aud', 'check_failed');
  }
  if (payload.nbf !== undefined && payload.nbf > now + CLOCK_TOLERANCE_S) {
    throw new joseErrors.JWTClaimValidationFailed('"nbf" claim timestamp check failed', payload, 'nbf', 'check_failed');
  }
  if (payload.exp !== undefined && payload.exp <= now - CLOCK_TOLERANCE_S) {
    throw new joseErrors.JWTExpired('"exp" claim timestamp check failed', payload, 'exp', 'check_failed');
  }
  return { payload, protectedHeader };
}

/**
 * Every signature and every verification of our own JWTs goes through here. Keys are loaded once
 * into memory as KeyObjects (private parts unsealed once, never re-parsed per request) and
 * reloaded every 30 s and on an unknown `kid`, so a rotation made by another replica is seen.
 */
@Injectable()
export class KeysService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('KeysService');
  private keys = new Map<string, LoadedKey>();
  private currentKid?: string;
  private timer?: NodeJS.Timeout;
  private lastReload = 0;
  private jwksCache?: { at: number; body: { keys: Record<string, unknown>[] } };
  /**
   * JWTs whose signature has been verified here, with their decoded parts (bounded, oldest out
   * first). A bearer token is presented many times in its life: the signature of the same bytes
   * need not be checked again, but everything that depends on time, on the caller's options or on
   * the key (retired since?) is, on every call (`checkCached`). Revocation is the caller's check.
   */
  private readonly verified = new Map<string, JWTVerifyResult & { kid: string }>();

  constructor(
    @InjectDataSource() private readonly db: DataSource,
    private readonly config: IdpConfig,
    private readonly events: IdpEvents,
  ) {}

  async onModuleInit(): Promise<void> {
    await this.reload();
    if (!this.currentKid) {
      await this.rotate({ alg: this.config.signingAlg, retireAfterSeconds: 0, reason: 'initial' });
    }
    this.timer = setInterval(() => this.reload().catch((e) => this.logger.warn(`key reload failed: ${e.message}`)), RELOAD_MS);
    this.timer.unref();
  }

  onModuleDestroy(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Reads the published keys from the database and unseals the private parts of new ones. */
  async reload(): Promise<void> {
    this.lastReload = Date.now();
    const rows = await this.db
      .getRepository(SigningKey)
      .createQueryBuilder('k')
      .addSelect('k.private_sealed')
      .orderBy('k.created_at', 'DESC')
      .getMany();
    const next = new Map<string, LoadedKey>();
    let current: LoadedKey | undefined;
    for (const row of rows) {
      if (row.status === 'previous' && row.publish_until && row.publish_until.getTime() < Date.now()) continue;
      const known = this.keys.get(row.kid);
      const loaded: LoadedKey = known ? { ...known, status: row.status, publishUntil: row.publish_until } : await this.load(row);
      next.set(row.kid, loaded);
      // The newest key marked current wins (two replicas booting at once may both create one).
      if (row.status === 'current' && !current) current = loaded;
    }
    this.keys = next;
    this.currentKid = current?.kid;
    this.jwksCache = undefined;
  }

  /** Unseals and parses a key once, as KeyObjects and as CryptoKeys. */
  private async load(row: SigningKey): Promise<LoadedKey> {
    const alg = row.alg as SigningAlg;
    const privateJwk = JSON.parse(this.unseal(row)) as JsonWebKey;
    const { kid: _k, alg: _a, use: _u, ...publicJwk } = row.public_jwk as JsonWebKey & { kid?: string; use?: string };
    const params = WEBCRYPTO[alg];
    return {
      kid: row.kid,
      alg,
      status: row.status,
      publicJwk: row.public_jwk,
      publicKey: createPublicKey({ key: row.public_jwk as never, format: 'jwk' }),
      privateKey: createPrivateKey({ key: privateJwk as never, format: 'jwk' }),
      verifyKey: await webcrypto.subtle.importKey('jwk', publicJwk, params, true, ['verify']),
      createdAt: row.created_at,
      publishUntil: row.publish_until,
    };
  }

  private unseal(row: SigningKey): string {
    try {
      return this.config.keyring.unseal(row.private_sealed, `signing-key:${row.kid}`);
    } catch {
      throw new Error(`IDP_SECRET_KEY cannot decrypt signing key ${row.kid}: it is not the key the database was set up with`);
    }
  }

  /**
   * Makes a new key current. The previous current key keeps being published (and accepted) for
   * `retireAfterSeconds`, the longest lifetime of a token it may have signed.
   */
  async rotate(opts: { alg?: SigningAlg; retireAfterSeconds: number; actor?: string; reason?: string; ctx?: RequestContext }): Promise<KeyView> {
    const alg = opts.alg ?? this.config.signingAlg;
    const { publicKey, privateKey } = await generate(alg);
    const publicJwk = publicKey.export({ format: 'jwk' }) as Record<string, unknown>;
    const kid = await calculateJwkThumbprint(publicJwk as never, 'sha256');
    const sealed = this.config.keyring.seal(JSON.stringify(privateKey.export({ format: 'jwk' })), `signing-key:${kid}`);
    const now = new Date();
    const publishUntil = new Date(now.getTime() + opts.retireAfterSeconds * 1000);
    let previousKid: string | undefined;
    await this.db.transaction(async (m) => {
      // Rotations are serialized so that exactly one key is current afterwards: on PostgreSQL with a
      // transaction-scoped advisory lock (a later rotation then sees the earlier one's key and
      // demotes it); SQLite has one writer at a time already.
      if (this.db.options.type === 'postgres') await m.query(`SELECT pg_advisory_xact_lock(hashtext('idp:key-rotation'))`);
      const repo = m.getRepository(SigningKey);
      const previous = await repo.find({ where: { status: 'current' } });
      previousKid = previous[0]?.kid;
      if (previous.length) await repo.update(previous.map((p) => p.kid), { status: 'previous', publish_until: publishUntil });
      const jwk: Record<string, unknown> = { ...publicJwk, kid, alg, use: 'sig' };
      await repo.insert({ kid, alg, public_jwk: jwk as SigningKey['public_jwk'], private_sealed: sealed, status: 'current', created_at: now, publish_until: null });
    });
    await this.reload();
    this.logger.log(`signing key ${kid} (${alg}) is now current${opts.reason ? ` (${opts.reason})` : ''}`);
    if (opts.reason !== 'initial') await this.events.emit('key.rotated', { kid, previousKid, actor: opts.actor }, opts.ctx);
    return this.view(this.keys.get(kid)!);
  }

  list(): KeyView[] {
    return [...this.keys.values()].map((k) => this.view(k));
  }

  private view(k: LoadedKey): KeyView {
    return { kid: k.kid, alg: k.alg, status: k.status, created_at: k.createdAt.toISOString(), publish_until: k.publishUntil?.toISOString() ?? null };
  }

  /** The JWK Set (RFC 7517 §5): the current key and every previous key still within its window. */
  jwks(): { keys: Record<string, unknown>[] } {
    if (this.jwksCache && Date.now() - this.jwksCache.at < 5_000) return this.jwksCache.body;
    const now = Date.now();
    const keys = [...this.keys.values()]
      .filter((k) => k.status === 'current' || !k.publishUntil || k.publishUntil.getTime() > now)
      .map((k) => ({ ...k.publicJwk, kid: k.kid, alg: k.alg, use: 'sig' }));
    this.jwksCache = { at: now, body: { keys } };
    return this.jwksCache.body;
  }

  /** Algorithms of the published keys, for discovery. */
  algorithms(): SigningAlg[] {
    return [...new Set([this.current().alg, ...SIGNING_ALGS.filter((a) => [...this.keys.values()].some((k) => k.alg === a))])];
  }

  current(): LoadedKey {
    const k = this.currentKid ? this.keys.get(this.currentKid) : undefined;
    if (!k || !k.privateKey) throw new Error('no current signing key');
    return k;
  }

  /** Signs a JWT with the current key; `typ` goes in the protected header (e.g. `at+jwt`, RFC 9068). */
  async sign(claims: JWTPayload, opts: { typ?: string } = {}): Promise<string> {
    const k = this.current();
    const header = Buffer.from(JSON.stringify({ alg: k.alg, kid: k.kid, ...(opts.typ ? { typ: opts.typ } : {}) })).toString('base64url');
    const input = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
    return `${input}.${(await signJws(k.alg, k.privateKey!, Buffer.from(input))).toString('base64url')}`;
  }

  /**
   * Verifies a JWT signed by one of our published keys: signature, `iss` = issuer, `exp`/`nbf`,
   * and optionally `typ` and `aud`. Throws jose's errors on failure.
   */
  async verify(jwt: string, opts: { typ?: string; audience?: string | string[] } = {}): Promise<JWTVerifyResult> {
    let kid: string | undefined;
    try {
      kid = decodeProtectedHeader(jwt).kid;
    } catch {
      throw new joseErrors.JWSInvalid('malformed token');
    }
    let key = kid ? this.keys.get(kid) : undefined;
    if (!key && kid && Date.now() - this.lastReload > 1_000) {
      await this.reload();
      key = this.keys.get(kid);
    }
    if (!key) throw new joseErrors.JWKSNoMatchingKey();
    if (key.status === 'previous' && key.publishUntil && key.publishUntil.getTime() < Date.now()) throw new joseErrors.JWKSNoMatchingKey();
    const cached = this.verified.get(jwt);
    if (cached && cached.kid === key.kid) return checkCached(cached, opts, this.config.issuer);
    const result = await jwtVerify(jwt, key.verifyKey, {
      issuer: this.config.issuer,
      algorithms: [key.alg],
      typ: opts.typ,
      audience: opts.audience,
      clockTolerance: CLOCK_TOLERANCE_S,
    });
    if (this.verified.size >= VERIFIED_CACHE_SIZE) this.verified.delete(this.verified.keys().next().value!);
    this.verified.set(jwt, { ...result, kid: key.kid });
    return result;
  }

  /**
   * Checks only that we signed this JWT (with any key we ever published and still hold) and that
   * `iss` is ours; expiry is not checked. For hints such as `id_token_hint` (OIDC Core §3.1.2.1:
   * an expired ID token is a valid hint).
   */
  async verifySignatureOnly(jwt: string): Promise<JWTPayload> {
    let kid: string | undefined;
    try {
      kid = decodeProtectedHeader(jwt).kid;
    } catch {
      throw new joseErrors.JWSInvalid('malformed token');
    }
    const key = kid ? this.keys.get(kid) : undefined;
    if (!key) throw new joseErrors.JWKSNoMatchingKey();
    const { payload } = await compactVerify(jwt, key.verifyKey, { algorithms: [key.alg] });
    const claims = JSON.parse(new TextDecoder().decode(payload)) as JWTPayload;
    if (claims.iss !== this.config.issuer) throw new joseErrors.JWTClaimValidationFailed('unexpected iss', claims, 'iss');
    return claims;
  }
}

async function generate(alg: SigningAlg): Promise<{ publicKey: KeyObject; privateKey: KeyObject }> {
  switch (alg) {
    case 'RS256':
      return genKeyPair('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
    case 'ES256':
      return genKeyPair('ec', { namedCurve: 'P-256' });
    case 'EdDSA':
      return genKeyPair('ed25519');
  }
}
