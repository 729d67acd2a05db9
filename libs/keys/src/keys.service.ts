import { Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { KeyObject, createPrivateKey, createPublicKey, generateKeyPair, sign as cryptoSign, webcrypto } from 'node:crypto';
import { promisify } from 'node:util';
import { DataSource, EntityManager } from 'typeorm';
import { JWTPayload, JWTVerifyResult, calculateJwkThumbprint, compactVerify, jwtVerify, decodeProtectedHeader, errors as joseErrors } from 'jose';
import { Clock, IdpConfig, IdpEvents, RequestContext, inTransaction } from '@idp/core';
import { KeyStatus, SigningKey } from './signing-key.entity';
import { KeyChangeListener, NOTIFY_KEYS_CHANGED } from './key-change-listener';

export type SigningAlg = 'RS256' | 'ES256' | 'EdDSA';
export const SIGNING_ALGS: SigningAlg[] = ['RS256', 'ES256', 'EdDSA'];

interface LoadedKey {
  kid: string;
  alg: SigningAlg;
  publicJwk: Record<string, unknown>;
  publicKey: KeyObject;
  privateKey?: KeyObject;
  /** The public key as a WebCrypto CryptoKey, imported once, for jose's jwtVerify. */
  verifyKey: CryptoKey;
  createdAt: Date;
  /** When it starts signing (ms since the epoch); null for a next key, published and not scheduled. */
  activatesAt: number | null;
  publishUntil: Date | null;
}

/**
 * A key as the admin API shows it, at the time of the call: `next` = published, not signing yet
 * (not scheduled, or scheduled for later); `current` = the signer; `previous` = signed before the
 * current one, published until `publish_until`.
 */
export interface KeyView {
  kid: string;
  alg: string;
  status: KeyStatus;
  created_at: string;
  activates_at: string | null;
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
/**
 * How the timings fit together. A key must be in every relying party's copy of our JWKS before any
 * instance signs with it. After a key is written, another instance has it in memory within
 * RELOAD_MS (its periodic reload; on PostgreSQL a NOTIFY usually brings it in milliseconds), serves
 * it within JWKS_MEMO_MS more (jwks() is memoized), and a relying party that fetched the JWKS just
 * before that holds its copy for up to JWKS_MAX_AGE_S (the Cache-Control we send). So a key signs
 * no sooner than ACTIVATION_LEAD_MS after it was written, which is at least the sum of the three,
 * plus ACTIVATION_MARGIN_MS for clock differences between instances and slow reloads.
 */
export const RELOAD_MS = 30_000;
/** The JWKS response's `Cache-Control: max-age` (jwks.controller.ts). */
export const JWKS_MAX_AGE_S = 60;
/** How long jwks() reuses the JWK Set it built. */
export const JWKS_MEMO_MS = 5_000;
export const ACTIVATION_MARGIN_MS = 25_000;
/** 120 s: how long a key is published before it may sign. */
export const ACTIVATION_LEAD_MS = JWKS_MAX_AGE_S * 1000 + RELOAD_MS + JWKS_MEMO_MS + ACTIVATION_MARGIN_MS;

/** What the rows say, read in the lock: `activates_at` of a legacy row written as current without one is its creation. */
function activationOf(row: Pick<SigningKey, 'activates_at' | 'status' | 'created_at'>): number | null {
  if (row.activates_at) return row.activates_at.getTime();
  return row.status === 'current' ? row.created_at.getTime() : null;
}

/** A next key: published, not scheduled, not retired. */
const isNextRow = (row: SigningKey) => row.status === 'next' && !row.activates_at;

/** What a set of published keys lacks at `t`: a key that signs, a next key. */
function lacking(keys: { activatesAt: number | null; next: boolean }[], t: number): { signer: boolean; next: boolean } {
  return { signer: !keys.some((k) => k.activatesAt !== null && k.activatesAt <= t), next: !keys.some((k) => k.next) };
}

/** Whether scheduled key `a` comes after `b`: a later activation, else a later creation, else a greater kid. */
function laterInSchedule(a: { kid: string; activatesAt: number | null; createdAt: Date }, b: { kid: string; activatesAt: number | null; createdAt: Date }): boolean {
  if (a.activatesAt !== b.activatesAt) return a.activatesAt! > b.activatesAt!;
  if (a.createdAt.getTime() !== b.createdAt.getTime()) return a.createdAt.getTime() > b.createdAt.getTime();
  return a.kid > b.kid;
}

/**
 * The key that signs at `t`: the one with the greatest activation time <= t (ties: the newest,
 * then the greatest kid, so every instance picks the same), with the next activation after `t`.
 * Keys that are not scheduled (activatesAt null) never sign.
 */
export function signerAt<K extends { kid: string; activatesAt: number | null; createdAt: Date }>(keys: Iterable<K>, t: number): { signer?: K; since: number; until: number } {
  let signer: K | undefined;
  let until = Infinity;
  for (const k of keys) {
    const at = k.activatesAt;
    if (at === null) continue;
    if (at > t) {
      until = Math.min(until, at);
      continue;
    }
    if (!signer || laterInSchedule(k, signer)) signer = k;
  }
  return { signer, since: signer ? signer.activatesAt! : -Infinity, until };
}

const CLOCK_TOLERANCE_S = 5;
/** How many verified JWTs are remembered (about 1 KiB each). */
const VERIFIED_CACHE_SIZE = 5_000;

/**
 * The claim checks of jose's jwtVerify (with the options `verify` passes), for a JWT whose
 * signature was verified before: `exp` and `nbf` against `now` (seconds since the epoch, with the
 * same clock tolerance), `typ`, `iss` and `aud`. Throws jose's own errors, so callers see no difference.
 */
export function checkCached(v: JWTVerifyResult, opts: { typ?: string; audience?: string | string[] }, issuer: string, now: number): JWTVerifyResult {
  const { payload, protectedHeader } = v;
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
 * reloaded every 30 s, on an unknown `kid`, and (PostgreSQL) when another instance announces a
 * change, so a rotation made by another replica is seen.
 *
 * Publish before signing (Auth0's "next key"): besides the signer there is always a published next
 * key that no one signs with. A rotation schedules it (`activates_at`) no sooner than
 * ACTIVATION_LEAD_MS after it was written, so every instance and every relying party's cached JWKS
 * hold it before any token it signs, and inserts a new next key. The signer at a time t is the key
 * with the greatest `activates_at` <= t, decided from memory: nothing is written when t passes, so
 * every instance switches at the same instant by its own clock.
 *
 * Times are the injected Clock's: the schedule, publication ends, the rows' times and the claims
 * checked by `verify`; the reloads are timers (real time), and so is the pause between two reloads
 * that an unknown kid may cause.
 */
@Injectable()
export class KeysService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('KeysService');
  private keys = new Map<string, LoadedKey>();
  /** The signer, from `signerSince` (its activation) until `switchAt` (the next activation), as last computed. */
  private signer?: LoadedKey;
  private signerSince = Infinity;
  private switchAt = -Infinity;
  private timer?: NodeJS.Timeout;
  private listener?: KeyChangeListener;
  private lastReload = 0;
  private reloading?: Promise<void>;
  private reloadAgain?: Promise<void>;
  private jwksCache?: { at: number; until: number; body: { keys: Record<string, unknown>[] } };
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
    private readonly clock: Clock,
  ) {}

  async onModuleInit(): Promise<void> {
    await this.reload();
    await this.ensureKeys();
    this.timer = setInterval(() => this.reload().catch((e) => this.logger.warn(`key reload failed: ${e.message}`)), RELOAD_MS);
    this.timer.unref();
    if (this.db.options.type === 'postgres') {
      this.listener = new KeyChangeListener(this.db, () => void this.reload().catch((e) => this.logger.warn(`key reload failed: ${e.message}`)));
      await this.listener.start();
    }
  }

  async onModuleDestroy(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.listener?.stop();
  }

  /**
   * Makes sure there is a signer and a next key. An empty table gets both (the first signer from
   * now: nothing is ahead of it); a table without a next key (an upgrade) gets one. Two instances
   * booting at once on one database make one key set: the keys are generated outside (in parallel),
   * but written in one transaction under the lock, after checking again what is missing; the
   * instance that finds everything there writes nothing and reloads.
   */
  private async ensureKeys(): Promise<void> {
    const held = [...this.keys.values()].map((k) => ({ activatesAt: k.activatesAt, next: k.activatesAt === null && !k.publishUntil }));
    const wanted = lacking(held, this.clock.now());
    if (!wanted.signer && !wanted.next) return;
    const alg = this.config.signingAlg;
    const [signer, next] = await Promise.all([wanted.signer ? this.newKey(alg) : undefined, wanted.next ? this.newKey(alg) : undefined]);
    const written: string[] = [];
    await inTransaction(this.db, async (m) => {
      await this.lock(m);
      const repo = m.getRepository(SigningKey);
      const at = this.clock.now();
      const rows = (await repo.find()).filter((r) => !r.publish_until || r.publish_until.getTime() > at);
      const still = lacking(rows.map((r) => ({ activatesAt: activationOf(r), next: isNextRow(r) })), at);
      const created = new Date(at);
      if (still.signer) {
        const key = signer ?? (await this.newKey(alg));
        await repo.insert({ ...key.row, status: 'current', created_at: created, activates_at: created, publish_until: null });
        written.push(`${key.row.kid} (${alg}, signing from now)`);
      }
      if (still.next) {
        const key = next ?? (await this.newKey(alg));
        await repo.insert({ ...key.row, status: 'next', created_at: created, activates_at: null, publish_until: null });
        written.push(`${key.row.kid} (${alg}, next)`);
      }
      if (written.length) await this.notify(m);
    });
    await this.reload();
    for (const w of written) this.logger.log(`signing key ${w} created`);
  }

  /**
   * Serializes the writers of the signing keys (boot and rotation), so that the schedule stays one
   * line: on PostgreSQL with a transaction-scoped advisory lock per schema (a later writer then sees
   * the earlier one's rows); SQLite has one writer at a time already.
   */
  private async lock(m: EntityManager): Promise<void> {
    if (this.db.options.type === 'postgres') await m.query(`SELECT pg_advisory_xact_lock(hashtext('idp:signing-keys:' || current_schema()))`);
  }

  /** Tells the other instances, at commit (PostgreSQL), to reload the keys. */
  private async notify(m: EntityManager): Promise<void> {
    if (this.db.options.type === 'postgres') await m.query(NOTIFY_KEYS_CHANGED);
  }

  /**
   * Reads the published keys from the database and unseals the private parts of new ones. Calls
   * overlapping one that is running are served by one more reload after it (never out of order).
   */
  reload(): Promise<void> {
    if (!this.reloading) {
      this.reloading = this.readKeys().finally(() => (this.reloading = undefined));
      return this.reloading;
    }
    this.reloadAgain ??= this.reloading
      .catch(() => undefined)
      .then(() => {
        this.reloadAgain = undefined;
        return this.reload();
      });
    return this.reloadAgain;
  }

  private async readKeys(): Promise<void> {
    this.lastReload = Date.now();
    const rows = await this.db
      .getRepository(SigningKey)
      .createQueryBuilder('k')
      .addSelect('k.private_sealed')
      .orderBy('k.created_at', 'DESC')
      .getMany();
    const now = this.clock.now();
    const next = new Map<string, LoadedKey>();
    for (const row of rows) {
      if (row.publish_until && row.publish_until.getTime() <= now) continue;
      const known = this.keys.get(row.kid);
      const activatesAt = activationOf(row);
      next.set(row.kid, known ? { ...known, createdAt: row.created_at, activatesAt, publishUntil: row.publish_until } : await this.load(row, activatesAt));
    }
    this.keys = next;
    this.schedule(now);
    this.jwksCache = undefined;
  }

  /** Computes the signer at `now` and until when it signs. */
  private schedule(now: number): void {
    const { signer, since, until } = signerAt(this.keys.values(), now);
    this.signer = signer;
    this.signerSince = since;
    this.switchAt = until;
  }

  /** Unseals and parses a key once, as KeyObjects and as CryptoKeys. */
  private async load(row: SigningKey, activatesAt: number | null): Promise<LoadedKey> {
    const alg = row.alg as SigningAlg;
    const privateJwk = JSON.parse(this.unseal(row)) as JsonWebKey;
    const { kid: _k, alg: _a, use: _u, ...publicJwk } = row.public_jwk as JsonWebKey & { kid?: string; use?: string };
    const params = WEBCRYPTO[alg];
    return {
      kid: row.kid,
      alg,
      publicJwk: row.public_jwk,
      publicKey: createPublicKey({ key: row.public_jwk as never, format: 'jwk' }),
      privateKey: createPrivateKey({ key: privateJwk as never, format: 'jwk' }),
      verifyKey: await webcrypto.subtle.importKey('jwk', publicJwk, params, true, ['verify']),
      createdAt: row.created_at,
      activatesAt,
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

  /** A new key pair of `alg`, its private JWK sealed (bound to its kid) before it goes anywhere. */
  private async newKey(alg: SigningAlg): Promise<{ row: Pick<SigningKey, 'kid' | 'alg' | 'public_jwk' | 'private_sealed'> }> {
    const { publicKey, privateKey } = await generate(alg);
    const publicJwk = publicKey.export({ format: 'jwk' }) as Record<string, unknown>;
    const kid = await calculateJwkThumbprint(publicJwk as never, 'sha256');
    const sealed = this.config.keyring.seal(JSON.stringify(privateKey.export({ format: 'jwk' })), `signing-key:${kid}`);
    return { row: { kid, alg, public_jwk: { ...publicJwk, kid, alg, use: 'sig' }, private_sealed: sealed } };
  }

  /**
   * Rotation: the next key (published since it was written) is scheduled to sign from
   * max(now, its creation + ACTIVATION_LEAD_MS), so at once if it has been published that long;
   * the key signing before it stays published (and accepted) until `retireAfterSeconds` after that
   * activation, the longest lifetime of a token it may sign until then; a new next key is written.
   * When `alg` is not the next key's, a fresh key of `alg` is scheduled instead, from now + the
   * lead (it has not been published yet), and the next key of the other algorithm is retired (it
   * never signed). Returns the scheduled key.
   */
  async rotate(opts: { alg?: SigningAlg; retireAfterSeconds: number; actor?: string; reason?: string; ctx?: RequestContext }): Promise<KeyView> {
    const alg = opts.alg ?? this.config.signingAlg;
    // Keys are generated before the lock is taken (RSA takes ~100 ms): the new next key always, and
    // a key to schedule when no next key of `alg` is in memory.
    const haveNext = [...this.keys.values()].some((k) => k.activatesAt === null && !k.publishUntil && k.alg === alg);
    const [fresh, next] = await Promise.all([haveNext ? undefined : this.newKey(alg), this.newKey(alg)]);
    let scheduled!: { kid: string; activatesAt: number; previousKid?: string };
    await inTransaction(this.db, async (m) => {
      await this.lock(m);
      const repo = m.getRepository(SigningKey);
      const now = this.clock.now();
      const rows = (await repo.find()).filter((r) => !r.publish_until || r.publish_until.getTime() > now);
      const candidate = rows.filter((r) => isNextRow(r) && r.alg === alg).sort((a, b) => a.created_at.getTime() - b.created_at.getTime())[0];
      const signers = rows.filter((r) => activationOf(r) !== null).sort((a, b) => activationOf(a)! - activationOf(b)!);
      const latest = signers.at(-1);
      // Never at or before a key already scheduled: the schedule is one line, each key after the one before.
      const after = latest ? activationOf(latest)! + 1 : -Infinity;
      const activatesAt = Math.max(candidate ? candidate.created_at.getTime() + ACTIVATION_LEAD_MS : now + ACTIVATION_LEAD_MS, now, after);
      let kid: string;
      if (candidate) {
        kid = candidate.kid;
        await repo.update({ kid }, { status: 'current', activates_at: new Date(activatesAt) });
      } else {
        const key = fresh ?? (await this.newKey(alg));
        kid = key.row.kid;
        await repo.insert({ ...key.row, status: 'current', created_at: new Date(now), activates_at: new Date(activatesAt), publish_until: null });
      }
      // The key signing just before `activatesAt` (and any other scheduled key still without an end,
      // which only an older version's race could leave) stops being published once every token it
      // may sign until then has expired.
      const ending = signers.filter((r) => !r.publish_until).map((r) => r.kid);
      if (ending.length) await repo.update(ending, { status: 'previous', publish_until: new Date(activatesAt + opts.retireAfterSeconds * 1000) });
      const unused = rows.filter((r) => isNextRow(r) && r.kid !== kid).map((r) => r.kid);
      if (unused.length) await repo.update(unused, { status: 'previous', publish_until: new Date(now) });
      await repo.insert({ ...next.row, status: 'next', created_at: new Date(now), activates_at: null, publish_until: null });
      await this.notify(m);
      scheduled = { kid, activatesAt, previousKid: latest?.kid };
    });
    await this.reload();
    const when = scheduled.activatesAt <= this.clock.now() ? 'now' : `at ${new Date(scheduled.activatesAt).toISOString()}`;
    this.logger.log(`signing key ${scheduled.kid} (${alg}) signs from ${when}; ${next.row.kid} is the next key${opts.reason ? ` (${opts.reason})` : ''}`);
    await this.events.emit('key.rotated', { kid: scheduled.kid, previousKid: scheduled.previousKid, activatesAt: new Date(scheduled.activatesAt).toISOString(), actor: opts.actor }, opts.ctx);
    return this.view(this.keys.get(scheduled.kid)!, this.clock.now());
  }

  /** Every published key, newest first, with its status now. */
  list(): KeyView[] {
    const now = this.clock.now();
    return [...this.keys.values()].filter((k) => !k.publishUntil || k.publishUntil.getTime() > now).map((k) => this.view(k, now));
  }

  private view(k: LoadedKey, now: number): KeyView {
    const status: KeyStatus = k === this.signerAt(now) ? 'current' : k.activatesAt === null || k.activatesAt > now ? 'next' : 'previous';
    return {
      kid: k.kid, alg: k.alg, status, created_at: k.createdAt.toISOString(),
      activates_at: k.activatesAt === null ? null : new Date(k.activatesAt).toISOString(), publish_until: k.publishUntil?.toISOString() ?? null,
    };
  }

  /**
   * The JWK Set (RFC 7517 §5): every key any instance may sign with now or next: the next key(s),
   * the scheduled ones, the signer, and the previous ones until their `publish_until`.
   */
  jwks(): { keys: Record<string, unknown>[] } {
    const now = this.clock.now();
    if (this.jwksCache && now >= this.jwksCache.at && now < this.jwksCache.until) return this.jwksCache.body;
    const published = [...this.keys.values()].filter((k) => !k.publishUntil || k.publishUntil.getTime() > now);
    const keys = published.map((k) => ({ ...k.publicJwk, kid: k.kid, alg: k.alg, use: 'sig' }));
    // Reused for JWKS_MEMO_MS, but never past the moment a key leaves it.
    const until = Math.min(now + JWKS_MEMO_MS, ...published.map((k) => k.publishUntil?.getTime() ?? Infinity));
    this.jwksCache = { at: now, until, body: { keys } };
    return this.jwksCache.body;
  }

  /** Algorithms of the published keys, for discovery. */
  algorithms(): SigningAlg[] {
    return [...new Set([this.current().alg, ...SIGNING_ALGS.filter((a) => [...this.keys.values()].some((k) => k.alg === a))])];
  }

  /** The key that signs at `now`, computed again only when `now` leaves the span it was computed for. */
  private signerAt(now: number): LoadedKey | undefined {
    if (now >= this.switchAt || now < this.signerSince) this.schedule(now);
    return this.signer;
  }

  /** The signing key now: two comparisons per call (the span it was computed for), as it runs for every token. */
  current(): LoadedKey {
    const k = this.signerAt(this.clock.now());
    if (!k || !k.privateKey) throw new Error('no current signing key');
    return k;
  }

  /**
   * Signs a JWT with the current key; `typ` goes in the protected header (e.g. `at+jwt`, RFC 9068).
   * Claims that depend on the key's algorithm (an ID token's `at_hash`) are given as a function of
   * it, so that they are computed for the very key that signs, even at the instant the next one
   * takes over.
   */
  async sign(claims: JWTPayload | ((key: { alg: SigningAlg }) => JWTPayload), opts: { typ?: string } = {}): Promise<string> {
    const k = this.current();
    const header = Buffer.from(JSON.stringify({ alg: k.alg, kid: k.kid, ...(opts.typ ? { typ: opts.typ } : {}) })).toString('base64url');
    const input = `${header}.${Buffer.from(JSON.stringify(typeof claims === 'function' ? claims(k) : claims)).toString('base64url')}`;
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
    const now = this.clock.now();
    if (key.publishUntil && key.publishUntil.getTime() <= now) throw new joseErrors.JWKSNoMatchingKey();
    const cached = this.verified.get(jwt);
    if (cached && cached.kid === key.kid) return checkCached(cached, opts, this.config.issuer, Math.floor(now / 1000));
    const result = await jwtVerify(jwt, key.verifyKey, {
      issuer: this.config.issuer,
      algorithms: [key.alg],
      typ: opts.typ,
      audience: opts.audience,
      clockTolerance: CLOCK_TOLERANCE_S,
      currentDate: new Date(now),
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
