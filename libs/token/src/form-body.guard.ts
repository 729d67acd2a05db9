import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import type { Request } from 'express';
import { OAuthError, invalidRequest } from '@idp/core';

/** Parameters longer than this are refused outright (no legitimate one comes close). */
export const MAX_PARAM_LENGTH = 8192;

/**
 * The token, revocation and introspection endpoints take `application/x-www-form-urlencoded`
 * only (RFC 6749 §3.2, RFC 7009 §2.1, RFC 7662 §2.1), with each parameter at most once (§3.2).
 * Runs before client authentication, so bad input never reaches it.
 */
@Injectable()
export class FormBodyGuard implements CanActivate {
  canActivate(ctx: ExecutionContext): boolean {
    const req = ctx.switchToHttp().getRequest<Request>();
    if (!req.is('application/x-www-form-urlencoded')) {
      throw invalidRequest('the request body must be application/x-www-form-urlencoded');
    }
    const body = req.body;
    if (!body || typeof body !== 'object') throw invalidRequest('the request body is empty');
    for (const [name, value] of Object.entries(body as Record<string, unknown>)) {
      if (Array.isArray(value)) {
        if (name === 'resource') throw new OAuthError('invalid_target', 'only one resource may be requested per token', 400);
        throw invalidRequest(`parameter ${safeName(name)} is repeated`);
      }
      if (typeof value !== 'string') throw invalidRequest(`parameter ${safeName(name)} is malformed`);
      if (value.length > MAX_PARAM_LENGTH) throw invalidRequest(`parameter ${safeName(name)} is too long`);
    }
    return true;
  }
}

function safeName(name: string): string {
  return /^[A-Za-z0-9_.-]{1,64}$/.test(name) ? name : '(unnamed)';
}
