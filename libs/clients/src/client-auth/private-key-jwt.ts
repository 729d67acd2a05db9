import { Injectable, OnModuleDestroy } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { LessThan, Repository } from 'typeorm';
import { JWTVerifyGetKey, createLocalJWKSet, createRemoteJWKSet, customFetch, decodeJwt, errors, jwtVerify } from 'jose';
import { IdpConfig, OutboundClient, OutboundError, invalidClient, invalidRequest, isUniqueViolation, ProtocolRequest } from '@idp/core';
import type { Client } from '../client.entity';
import { UsedAssertion } from '../used-assertion.entity';
import { ClientAuthContext, ClientAuthMethod, ClientCredentials, formParam } from './client-auth-method';

export const JWT_BEARER_ASSERTION = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** Asymmetric algorithms only: a shared-secret HMAC would not be "private key" JWT. */
export const ASSERTION_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
/** The longest an assertion may live (exp - now, now - iat, and exp - iat). */
const MAX_ASSERTION_AGE_S = 600;

/**
 * RFC 7523 §2.2 / OIDC Core §9 private_key_jwt: a JWT signed with the client's private key,
 * iss = sub = client_id, aud = our issuer or token endpoint (or the URL being called), exp in the
 * near future, and a jti that is accepted once.
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
  ) {
    this.cleanup = setInterval(() => void this.used.delete({ expires_at: LessThan(new Date()) }).catch(() => undefined), 10 * 60_000);
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

  async verify(client: Client, creds: ClientCredentials, ctx: ClientAuthContext): Promise<void> {
    const getKey = this.keySet(client);
    if (!getKey) throw invalidClient('client authentication failed', 'client has no jwks or jwks_uri');
    let exp: number;
    let jti: string;
    try {
      const { payload } = await jwtVerify(creds.assertion!, getKey, {
        issuer: client.client_id,
        subject: client.client_id,
        audience: [...new Set([this.config.issuer, this.config.tokenEndpoint, ctx.endpointUrl])],
        algorithms: ASSERTION_ALGS,
        requiredClaims: ['exp', 'jti'],
        clockTolerance: 5,
      });
      exp = payload.exp!;
      jti = String(payload.jti);
      const now = Math.floor(Date.now() / 1000);
      if (exp - now > MAX_ASSERTION_AGE_S) throw new Error('assertion lives too long');
      if (payload.iat !== undefined && now - payload.iat > MAX_ASSERTION_AGE_S) throw new Error('assertion is too old');
      // RFC 7523 §3 item 4: the whole lifetime (exp - iat) is bounded, not only what is left of it.
      if (payload.iat !== undefined && exp - payload.iat > MAX_ASSERTION_AGE_S) throw new Error('assertion lives too long');
      if (jti.length === 0 || jti.length > 255) throw new Error('bad jti');
    } catch (err) {
      const keys = jwksUriProblem(err);
      if (keys) throw invalidClient(keys.description, keys.hint);
      throw invalidClient('client authentication failed', `assertion rejected: ${(err as Error).message}`);
    }
    try {
      await this.used.insert({ client_id: client.client_id, jti, expires_at: new Date(exp * 1000) });
    } catch (err) {
      if (isUniqueViolation(err)) throw invalidClient('client authentication failed', 'assertion jti replayed');
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
