/**
 * One error class for every OAuth / OIDC protocol error (RFC 6749 §4.1.2.1, §5.2; RFC 6750 §3.1;
 * OIDC Core §3.1.2.6). `description` is what the client sees; `hint` is for our logs only and must
 * never carry a secret, code or token.
 */
export class OAuthError extends Error {
  constructor(
    public readonly code: string,
    public readonly description: string,
    public readonly status = 400,
    public readonly redirectable = true,
    public readonly hint?: string,
    public readonly headers: Record<string, string> = {},
  ) {
    super(`${code}: ${description}`);
    this.name = 'OAuthError';
  }

  withHeaders(headers: Record<string, string>): OAuthError {
    return new OAuthError(this.code, this.description, this.status, this.redirectable, this.hint, { ...this.headers, ...headers });
  }
}

export const invalidRequest = (d: string, hint?: string) => new OAuthError('invalid_request', d, 400, true, hint);
export const invalidClient = (d = 'client authentication failed', hint?: string) => new OAuthError('invalid_client', d, 401, false, hint);
export const invalidGrant = (d: string, hint?: string) => new OAuthError('invalid_grant', d, 400, true, hint);
export const unauthorizedClient = (d: string, hint?: string) => new OAuthError('unauthorized_client', d, 400, true, hint);
export const unsupportedGrantType = (d: string) => new OAuthError('unsupported_grant_type', d, 400);
export const invalidScope = (d: string, hint?: string) => new OAuthError('invalid_scope', d, 400, true, hint);
export const invalidTarget = (d: string) => new OAuthError('invalid_target', d, 400);
export const accessDenied = (d: string) => new OAuthError('access_denied', d, 403);
export const serverError = (hint?: string) => new OAuthError('server_error', 'the server could not complete the request', 500, true, hint);
export const temporarilyUnavailable = (hint?: string) => new OAuthError('temporarily_unavailable', 'the service is temporarily unavailable', 503, true, hint);
export const invalidToken = (d = 'the access token is invalid or expired') => new OAuthError('invalid_token', d, 401, false);
export const insufficientScope = (d: string) => new OAuthError('insufficient_scope', d, 403, false);
