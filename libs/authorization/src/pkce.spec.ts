import { createHash } from 'node:crypto';
import { PKCE_VERIFIER, S256_CHALLENGE, verifyPkce } from './pkce';

/**
 * RFC 7636 with S256 only: the verifier's shape (§4.1), the S256 transformation (§4.2, checked with
 * Appendix B's vector), and `plain` refused (RFC 9700 §2.1.1): a challenge equal to its verifier
 * never verifies.
 */

// RFC 7636 Appendix B.
const APPENDIX_B_VERIFIER = 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk';
const APPENDIX_B_CHALLENGE = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';

const s256 = (verifier: string) => createHash('sha256').update(verifier, 'utf8').digest('base64url');
/** The unreserved characters of §4.1, each at least once. */
const ALL_UNRESERVED = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~';

describe('verifyPkce (S256)', () => {
  it("accepts RFC 7636 Appendix B's verifier for its challenge", () => {
    expect(verifyPkce(APPENDIX_B_CHALLENGE, APPENDIX_B_VERIFIER)).toBe(true);
  });

  it('refuses the plain method: a challenge equal to the verifier does not verify', () => {
    expect(verifyPkce(APPENDIX_B_VERIFIER, APPENDIX_B_VERIFIER)).toBe(false);
    const verifier = 'a'.repeat(43);
    expect(verifyPkce(verifier, verifier)).toBe(false);
  });

  it.each<[string, string]>([
    ['another valid verifier', 'x'.repeat(43)],
    ['the verifier with its last character changed', `${APPENDIX_B_VERIFIER.slice(0, -1)}Y`],
    ['the verifier with one more character', `${APPENDIX_B_VERIFIER}a`],
  ])('refuses %s', (_, verifier) => {
    expect(PKCE_VERIFIER.test(verifier)).toBe(true);
    expect(verifyPkce(APPENDIX_B_CHALLENGE, verifier)).toBe(false);
  });

  it.each<[string, string]>([
    ['with one character changed', `${APPENDIX_B_CHALLENGE.slice(0, -1)}d`],
    ['in other case', APPENDIX_B_CHALLENGE.toUpperCase()],
    ['with base64 padding', `${APPENDIX_B_CHALLENGE}=`],
    ['in standard base64 (+ and / for - and _)', Buffer.from(APPENDIX_B_CHALLENGE, 'base64url').toString('base64').replace(/=+$/, '')],
    ['as hexadecimal', createHash('sha256').update(APPENDIX_B_VERIFIER).digest('hex')],
    ['empty', ''],
  ])('refuses the right verifier against the challenge %s', (_, challenge) => {
    expect(challenge).not.toBe(APPENDIX_B_CHALLENGE);
    expect(verifyPkce(challenge, APPENDIX_B_VERIFIER)).toBe(false);
  });

  it('accepts verifiers of 43 and of 128 characters, every unreserved character included', () => {
    for (const verifier of ['b'.repeat(43), ALL_UNRESERVED.padEnd(128, '~')]) {
      expect(verifyPkce(s256(verifier), verifier)).toBe(true);
    }
  });

  it.each<[string, string]>([
    ['42 characters (too short)', 'c'.repeat(42)],
    ['129 characters (too long)', 'd'.repeat(129)],
    ['empty', ''],
    ['a space', `${'e'.repeat(42)} `],
    ['"+" and "/"', `${'f'.repeat(41)}+/`],
    ['"="', `${'g'.repeat(42)}=`],
    ['a non-ASCII letter', `${'h'.repeat(42)}é`],
    ['a NUL', `${'i'.repeat(42)}\0`],
  ])('refuses a verifier with %s, even when the challenge is its own S256', (_, verifier) => {
    expect(PKCE_VERIFIER.test(verifier)).toBe(false);
    expect(verifyPkce(s256(verifier), verifier)).toBe(false);
  });
});

describe('S256_CHALLENGE', () => {
  it("matches an S256 challenge: Appendix B's, and the hash of any valid verifier", () => {
    expect(S256_CHALLENGE.test(APPENDIX_B_CHALLENGE)).toBe(true);
    for (const verifier of ['j'.repeat(43), 'k'.repeat(128), ALL_UNRESERVED]) expect(S256_CHALLENGE.test(s256(verifier))).toBe(true);
  });

  it.each<[string, string]>([
    ['42 characters', APPENDIX_B_CHALLENGE.slice(0, 42)],
    ['44 characters', `${APPENDIX_B_CHALLENGE}A`],
    ['base64 padding', `${APPENDIX_B_CHALLENGE.slice(0, 42)}=`],
    ['"+"', `${APPENDIX_B_CHALLENGE.slice(0, 42)}+`],
    ['"/"', `${APPENDIX_B_CHALLENGE.slice(0, 42)}/`],
    ['"." (allowed in a verifier, never in base64url)', `${APPENDIX_B_CHALLENGE.slice(0, 42)}.`],
    ['"~" (allowed in a verifier, never in base64url)', `${APPENDIX_B_CHALLENGE.slice(0, 42)}~`],
    ['a plain verifier of 64 characters', 'l'.repeat(64)],
  ])('does not match a value with %s', (_, challenge) => {
    expect(S256_CHALLENGE.test(challenge)).toBe(false);
  });
});
