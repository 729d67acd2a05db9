import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * `n` bytes from the CSPRNG, taken from a 4 KiB block drawn at once: the same generator as
 * randomBytes(n), without a call into OpenSSL for every id and token of every request. Each byte
 * is handed out once.
 */
function random(n: number): Buffer {
  if (n > RANDOM_BLOCK) return randomBytes(n);
  if (randomOffset + n > randomBlock.length) {
    randomBlock = randomBytes(RANDOM_BLOCK);
    randomOffset = 0;
  }
  const out = randomBlock.subarray(randomOffset, randomOffset + n);
  randomOffset += n;
  return out;
}
const RANDOM_BLOCK = 4096;
let randomBlock = Buffer.alloc(0);
let randomOffset = 0;

/** A URL-safe random string carrying `bytes` bytes of entropy (32 bytes = 256 bits by default). */
export function randomToken(bytes = 32): string {
  return random(bytes).toString('base64url');
}

export function sha256(value: string | Buffer): string {
  return createHash('sha256').update(value).digest('base64url');
}

/** Constant-time comparison of two strings (length differences leak nothing but the length check). */
export function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  if (ab.length !== bb.length) {
    // Compare against itself so that the time spent does not depend on where the strings differ.
    timingSafeEqual(ab, ab);
    return false;
  }
  return timingSafeEqual(ab, bb);
}

/**
 * Time-ordered unique id (UUID version 7, RFC 9562): sorts by creation time, so a primary key
 * index doubles as the order of cursor pagination.
 */
export function uuidv7(now = Date.now()): string {
  const b = random(16);
  b.writeUIntBE(now, 0, 6);
  b[6] = (b[6] & 0x0f) | 0x70;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * Keys derived from IDP_SECRET_KEY, one per purpose (HKDF-SHA256), so that a key used to seal
 * private signing keys is never the key that hashes client secrets or signs cookies.
 */
export class SecretKeyring {
  private readonly cache = new Map<string, Buffer>();
  constructor(private readonly master: string) {
    if (!master || master.length < 32) throw new Error('IDP_SECRET_KEY must be at least 32 characters');
  }

  derive(purpose: string): Buffer {
    let key = this.cache.get(purpose);
    if (!key) {
      key = Buffer.from(hkdfSync('sha256', Buffer.from(this.master, 'utf8'), Buffer.alloc(0), `idp:${purpose}`, 32));
      this.cache.set(purpose, key);
    }
    return key;
  }

  /** AES-256-GCM; output `v1.<iv>.<tag>.<ciphertext>` (base64url), bound to `purpose` as AAD. */
  seal(plaintext: string, purpose: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.derive(`seal:${purpose}`), iv);
    cipher.setAAD(Buffer.from(purpose));
    const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return ['v1', iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), ct.toString('base64url')].join('.');
  }

  unseal(sealed: string, purpose: string): string {
    const [v, iv, tag, ct] = sealed.split('.');
    if (v !== 'v1' || !iv || !tag || ct === undefined) throw new Error('sealed value has an unknown format');
    const decipher = createDecipheriv('aes-256-gcm', this.derive(`seal:${purpose}`), Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(purpose));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]).toString('utf8');
  }

  /**
   * Keyed hash for high-entropy secrets (client secrets, refresh tokens, codes): HMAC-SHA256.
   * A slow password hash buys nothing against a 256-bit random value (it cannot be guessed), and
   * the key means a stolen table cannot even be checked against candidate secrets offline.
   */
  hashSecret(secret: string): string {
    return createHmac('sha256', this.derive('secret-hash')).update(secret, 'utf8').digest('base64url');
  }

  verifySecret(secret: string, hash: string | null | undefined): boolean {
    const computed = this.hashSecret(secret);
    return safeEqual(computed, hash ?? '');
  }
}
