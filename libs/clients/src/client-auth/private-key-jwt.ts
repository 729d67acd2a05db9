import { Injectable, OnModuleDestroy } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { LessThan, Repository } from 'typeorm';
import { JWTPayload, JWTVerifyGetKey, createLocalJWKSet, createRemoteJWKSet, customFetch, decodeJwt, errors, jwtVerify } from 'jose';
import { Clock, IdpConfig, OAuthError, OutboundClient, OutboundError, invalidClient, invalidRequest, isUniqueViolation, ProtocolRequest } from '@idp/core';
import type { Client } from '../client.entity';
import { UsedAssertion } from '../used-assertion.entity';
import { ClientAuthContext, ClientAuthMethod, ClientCredentials, formParam } from './client-auth-method';

export const JWT_BEARER_ASSERTION = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** Asymmetric algorithms only: a shared-secret HMAC would not be "private key" JWT. */
export const ASSERTION_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
/**
 * The longest an assertion may live: exp - iat, and exp ahead of now or iat behind it (with the
 * clock tolerance). An hour, the default of common client libraries (Authlib signs exp = iat + 3600).
 */
const MAX_ASSERTION_LIFETIME_S = 3600;
/** The difference between the client's clock and ours that is forgiven on exp, nbf and iat. */
const CLOCK_TOLERANCE_S = 5;

/**
 * RFC 7523 §2.2 / OIDC Core §9 private_key_jwt: a JWT signed with the client's private key,
 * iss = sub = client_id, aud = our issuer or token endpoint (or the URL being called), living an
 * hour at most, and a jti that is accepted once (kept until the assertion expires).
 */
@ClientAuthMethod({ name: 'private_key_jwt' })
@Injectable()
export class PrivateKeyJwt implements ClientAuthMethod, OnModuleDestroy {
  readonly name = 'private_key_jwt';
  readonly usesSecret = false;
  private readonly keySets = new Map<string, { version: string; getKey: JWTVerifyGetKey }>();
  private cleanup?: NodeJS.Timeout;

  constructor(
    private readonly config: IdpConfig,
    @InjectRepository(UsedAssertion) private readonly used: Repository<UsedAssertion>,
    private readonly outbound: OutboundClient,
    private readonly clock: Clock,
  ) {
    this.cleanup = setInterval(() => void this.used.delete({ expires_at: LessThan(this.clock.date()) }).catch(() => undefined), 10 * 60_000);
    this.cleanup.unref();
  }

  onModuleDestroy(): void {
    if (this.cleanup) clearInterval(this.cleanup);
  }

  extract(req: ProtocolRequest): ClientCredentials | undefined {
    const assertion = formParam(req, 'client_assertion');
    const type = formParam(req, 'client_assertion_type');
    if (assertion === undefined && type === undefined) return undefined;
    if (type !== JWT_BEARER_ASSERTION) throw invalidRequest(`client_assertion_type must be ${JWT_BEARER_ASSERTION}`);
    if (!assertion) throw invalidRequest('client_assertion is missing');
    let sub: string | undefined;
    try {
      const claims = decodeJwt(assertion);
      sub = typeof claims.sub === 'string' ? claims.sub : undefined;
    } catch {
      throw invalidClient('client assertion is not a JWT');
    }
    const clientId = formParam(req, 'client_id');
    if (!sub || (clientId !== undefined && clientId !== sub)) throw invalidClient('client assertion sub does not match client_id');
    return { clientId: sub, assertion, method: this.name };
  }

  /**
   * Verifies the assertion. A refusal says why in its description (what the client can fix: the
   * key, the audience, the lifetime, the jti), never echoing the assertion or anything secret.
   */
  async verify(client: Client, creds: ClientCredentials, ctx: ClientAuthContext): Promise<void> {
    const getKey = this.keySet(client);
    if (!getKey) throw refused('the client has no jwks or jwks_uri registered');
    const audiences = { issuer: this.config.issuer, tokenEndpoint: this.config.tokenEndpoint, endpoint: ctx.endpointUrl };
    let payload: JWTPayload;
    // exp, nbf and the lifetime bounds are checked against our clock at this instant.
    const at = this.clock.now();
    try {
      ({ payload } = await jwtVerify(creds.assertion!, getKey, {
        issuer: client.client_id,
        subject: client.client_id,
        audience: [...new Set(Object.values(audiences))],
        algorithms: ASSERTION_ALGS,
        requiredClaims: ['exp', 'jti'],
        clockTolerance: CLOCK_TOLERANCE_S,
        currentDate: new Date(at),
      }));
    } catch (err) {
      const keys = jwksUriProblem(err);
      if (keys) throw invalidClient(keys.description, keys.hint);
      throw refused(whyRefused(err, audiences));
    }
    const now = Math.floor(at / 1000);
    const exp = payload.exp!;
    const { iat, jti } = payload;
    if (iat !== undefined && now - iat > MAX_ASSERTION_LIFETIME_S + CLOCK_TOLERANCE_S) {
      throw refused(`the client assertion is too old: its iat is more than ${MAX_ASSERTION_LIFETIME_S} s ago`);
    }
    if (exp - now > MAX_ASSERTION_LIFETIME_S + CLOCK_TOLERANCE_S) {
      throw refused(`the client assertion lives too long: its exp is more than ${MAX_ASSERTION_LIFETIME_S} s ahead`);
    }
    // RFC 7523 §3 item 4: the whole lifetime (exp - iat) is bounded, not only what is left of it.
    if (iat !== undefined && exp - iat > MAX_ASSERTION_LIFETIME_S) {
      throw refused(`the client assertion lives too long: exp - iat is more than ${MAX_ASSERTION_LIFETIME_S} s`);
    }
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > 255) throw refused('the client assertion jti must be a string of 1 to 255 characters');
    try {
      // Kept for as long as the assertion would be accepted: until exp, and the clock tolerance past it.
      await this.used.insert({ client_id: client.client_id, jti, expires_at: new Date((exp + CLOCK_TOLERANCE_S) * 1000) });
    } catch (err) {
      if (isUniqueViolation(err)) throw refused('the client assertion jti was already used: sign each assertion with a new jti');
      throw err;
    }
  }

  /**
   * The client's keys: its registered `jwks`, or its `jwks_uri` fetched through the outbound client
   * (IDP_OUTBOUND policy, 5 s, 256 KiB, no redirects) and cached by jose's remote set.
   */
  private keySet(client: Client): JWTVerifyGetKey | undefined {
    const version = client.jwks_uri ? `uri:${client.jwks_uri}` : client.jwks ? `jwks:${JSON.stringify(client.jwks)}` : '';
    if (!version) return undefined;
    const cached = this.keySets.get(client.client_id);
    if (cached && cached.version === version) return cached.getKey;
    const getKey = client.jwks_uri
      ? createRemoteJWKSet(new URL(client.jwks_uri), {
          cacheMaxAge: 10 * 60_000, cooldownDuration: 30_000, timeoutDuration: 5_000,
          [customFetch]: (url, init) => this.outbound.fetch(url, init),
        })
      : createLocalJWKSet(client.jwks as never);
    this.keySets.set(client.client_id, { version, getKey: getKey as JWTVerifyGetKey });
    return getKey as JWTVerifyGetKey;
  }
}

/** A refused assertion: 401 invalid_client, the reason in error_description (RFC 6749 §5.2's characters only). */
function refused(reason: string): OAuthError {
  return invalidClient(reason.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, '?'));
}

/** Why jose refused the assertion, in words a client can act on. */
function whyRefused(err: unknown, audiences: { issuer: string; tokenEndpoint: string; endpoint: string }): string {
  if (err instanceof errors.JWKSNoMatchingKey) return "unknown key: no key in the client's JWKS matches the assertion's kid and alg";
  if (err instanceof errors.JWSSignatureVerificationFailed) return "bad signature: the client assertion's signature does not verify with the client's key";
  if (err instanceof errors.JOSEAlgNotAllowed) return `the client assertion's alg is not accepted: use one of ${ASSERTION_ALGS.join(', ')}`;
  if (err instanceof errors.JWTExpired) return 'expired: the client assertion exp has passed';
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.reason === 'missing') return `the client assertion has no ${err.claim} claim`;
    switch (err.claim) {
      case 'iss':
        return 'wrong iss: the client assertion iss must be the client_id';
      case 'sub':
        return 'wrong sub: the client assertion sub must be the client_id';
      case 'aud': {
        const accepted = `the issuer (${audiences.issuer}) and the token endpoint URL (${audiences.tokenEndpoint})`;
        const here = audiences.endpoint !== audiences.tokenEndpoint && audiences.endpoint !== audiences.issuer ? `, or this endpoint's URL (${audiences.endpoint})` : '';
        return `wrong aud: the accepted audiences are ${accepted}${here}`;
      }
      case 'nbf':
        return 'the client assertion is not valid yet (nbf)';
      case 'exp':
      case 'iat':
        return `the client assertion ${err.claim} must be a number (seconds since the epoch)`;
    }
    return 'the client assertion claims are not valid';
  }
  if (err instanceof errors.JWKSMultipleMatchingKeys) return "several keys in the client's JWKS match the assertion: name one with kid";
  if (err instanceof errors.JOSEError) return 'the client assertion is not a valid signed JWT';
  return 'the client assertion could not be verified';
}

/**
 * When verifying failed because the client's jwks_uri could not give us its keys: what the client
 * is told (enough to act on, nothing about our network) and the reason for the logs.
 */
function jwksUriProblem(err: unknown): { description: string; hint: string } | undefined {
  if (err instanceof OutboundError) return { description: "the client's jwks_uri could not be fetched", hint: `jwks_uri: ${err.reason}` };
  if (err instanceof errors.JWKSTimeout) return { description: "the client's jwks_uri could not be fetched", hint: 'jwks_uri: timeout' };
  // jose's remote set throws its generic JOSEError only for the response: not 200, or not JSON.
  if (err instanceof errors.JWKSInvalid || (err instanceof errors.JOSEError && err.code === 'ERR_JOSE_GENERIC')) {
    return { description: "the client's jwks_uri did not return a JSON Web Key Set", hint: 'jwks_uri: not a JWK Set' };
  }
  return undefined;
}
