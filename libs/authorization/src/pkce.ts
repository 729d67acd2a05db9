import { createHash } from 'node:crypto';
import { safeEqual } from '@idp/core';

/** RFC 7636 §4.1: 43 to 128 characters of [A-Z a-z 0-9 - . _ ~]. */
export const PKCE_VERIFIER = /^[A-Za-z0-9\-._~]{43,128}$/;
/** An S256 challenge is the base64url SHA-256 of the verifier: exactly 43 characters. */
export const S256_CHALLENGE = /^[A-Za-z0-9\-_]{43}$/;

/** RFC 7636 §4.6 with S256 only (`plain` is refused at /authorize, RFC 9700 §2.1.1). */
export function verifyPkce(challenge: string, verifier: string): boolean {
  if (!PKCE_VERIFIER.test(verifier)) return false;
  return safeEqual(createHash('sha256').update(verifier, 'ascii').digest('base64url'), challenge);
}
