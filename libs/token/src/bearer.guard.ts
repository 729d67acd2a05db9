import { CanActivate, ExecutionContext, Injectable, SetMetadata, createParamDecorator } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest as Request } from 'fastify';
import type { JWTPayload } from 'jose';
import { IdpConfig, OAuthError, insufficientScope, invalidToken, isDatabaseUnavailable } from '@idp/core';
import { KeysService } from '@idp/keys';
import { RevocationService } from './revocation.service';

const SCOPES = 'idp:bearer:scopes';
const AUDIENCE = 'idp:bearer:audience';

/** Scopes a bearer token must carry for this route (all of them). */
export const RequireScopes = (...scopes: string[]) => SetMetadata(SCOPES, scopes);
/** The `aud` a bearer token must have for this route, computed from the configuration. */
export const BearerAudience = (audience: (config: IdpConfig) => string) => SetMetadata(AUDIENCE, audience);

export interface BearerToken extends JWTPayload {
  client_id: string;
  scope?: string;
}

/**
 * RFC 6750 bearer tokens: our own RFC 9068 JWT access tokens (`typ: at+jwt`), signature, issuer,
 * expiry and audience checked by the keys module. Failures carry the RFC 6750 §3 challenge.
 */
@Injectable()
export class BearerGuard implements CanActivate {
  constructor(
    private readonly keys: KeysService,
    private readonly reflector: Reflector,
    private readonly config: IdpConfig,
    private readonly revocation: RevocationService,
  ) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const req = ctx.switchToHttp().getRequest<Request & { token?: BearerToken }>();
    const targets = [ctx.getHandler(), ctx.getClass()];
    const audience = this.reflector.getAllAndOverride<(c: IdpConfig) => string>(AUDIENCE, targets);
    const scopes = this.reflector.getAllAndOverride<string[]>(SCOPES, targets) ?? [];
    req.token = await this.authenticate(req.headers.authorization, audience?.(this.config), scopes);
    return true;
  }

  /**
   * The claims of the bearer token in an Authorization header, checked for `audience` (when given)
   * and every one of `scopes`; throws the RFC 6750 error with its challenge.
   */
  async authenticate(header: string | undefined, audience?: string, scopes: string[] = []): Promise<BearerToken> {
    const match = header ? /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i.exec(header.trim()) : null;
    if (!match) {
      throw new OAuthError('invalid_token', 'a bearer access token is required', 401, false, undefined, { 'WWW-Authenticate': 'Bearer realm="idp"' });
    }
    let payload: BearerToken;
    try {
      payload = (await this.keys.verify(match[1], { typ: 'at+jwt', audience })).payload as BearerToken;
      if (await this.revocation.isRevoked(payload.jti)) throw new Error('revoked');
    } catch (err) {
      // The revocation list could not be read: the token is not known to be invalid, so 503, not 401.
      if (isDatabaseUnavailable(err)) throw err;
      throw invalidToken().withHeaders({ 'WWW-Authenticate': 'Bearer realm="idp", error="invalid_token", error_description="the access token is invalid or expired"' });
    }
    const granted = new Set((payload.scope ?? '').split(' '));
    const missing = scopes.filter((s) => !granted.has(s));
    if (missing.length) {
      throw insufficientScope(`this call needs the scope ${missing.join(' ')}`).withHeaders({
        'WWW-Authenticate': `Bearer realm="idp", error="insufficient_scope", scope="${scopes.join(' ')}"`,
      });
    }
    return payload;
  }
}

/** The verified bearer token's claims. */
export const CurrentToken = createParamDecorator((_: unknown, ctx: ExecutionContext): BearerToken => {
  return ctx.switchToHttp().getRequest<Request & { token: BearerToken }>().token;
});
