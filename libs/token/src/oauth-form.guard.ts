import { CanActivate, ExecutionContext, Injectable, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { OAuthError, invalidRequest } from '@idp/core';

const UNBOUNDED = 'idp:oauth-form:unbounded';
const FORM = 'application/x-www-form-urlencoded';

/** Parameters longer than this are refused outright (no legitimate one comes close), unless the route holds one to the body limit alone. */
export const MAX_PARAM_LENGTH = 8192;

/**
 * Form parameters held to the body limit alone, not to the per-parameter length limit: a value the
 * endpoint must answer whatever its length (introspection's and revocation's `token`, RFC 7662 §2.2).
 */
export const UnboundedParams = (...names: string[]) => SetMetadata(UNBOUNDED, names);

interface FormRequest {
  headers: Record<string, string | string[] | undefined>;
  body?: unknown;
}

/**
 * RFC 6749 §3.2 (and RFC 7009 §2.1, RFC 7662 §2.1): the body of a protocol endpoint is a form,
 * each parameter at most once, every value a string of sane length. Runs before client
 * authentication, so that no check reads a parameter given twice.
 */
@Injectable()
export class OAuthFormGuard implements CanActivate {
  constructor(private readonly reflector: Reflector) {}

  canActivate(ctx: ExecutionContext): boolean {
    const req = ctx.switchToHttp().getRequest<FormRequest>();
    const type = req.headers['content-type'];
    const mediaType = typeof type === 'string' ? type.split(';', 1)[0].trim().toLowerCase() : '';
    if (mediaType !== FORM) throw invalidRequest(`the request body must be ${FORM}`);
    const body = req.body;
    if (!body || typeof body !== 'object') throw invalidRequest('the request body is empty');
    const unbounded = this.reflector.getAllAndOverride<string[] | undefined>(UNBOUNDED, [ctx.getHandler(), ctx.getClass()]) ?? [];
    for (const [name, value] of Object.entries(body as Record<string, unknown>)) {
      if (Array.isArray(value)) {
        if (name === 'resource') throw new OAuthError('invalid_target', 'only one resource may be requested per token', 400);
        throw invalidRequest(`parameter ${safeName(name)} is repeated`);
      }
      if (typeof value !== 'string') throw invalidRequest(`parameter ${safeName(name)} is malformed`);
      if (value.length > MAX_PARAM_LENGTH && !unbounded.includes(name)) throw invalidRequest(`parameter ${safeName(name)} is too long`);
    }
    return true;
  }
}

/** A parameter's name as an error may quote it (RFC 6749 §5.2's characters, bounded). */
function safeName(name: string): string {
  return /^[A-Za-z0-9_.-]{1,64}$/.test(name) ? name : '(unnamed)';
}
