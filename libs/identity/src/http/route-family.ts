/**
 * The families of routes, each with its own error format and policies (rate-limit bucket, CORS,
 * sessions). The one classification every policy uses, so that a path means the same everywhere:
 * routing matches case-insensitively and with or without a trailing slash, and so does this.
 */
export type RouteFamily =
  | 'token' | 'revocation' | 'introspection' | 'userinfo'
  | 'metadata' | 'pages' | 'admin' | 'health' | 'assets' | 'other';

const FAMILIES: [RegExp, RouteFamily][] = [
  [/^\/oauth\/token$/, 'token'],
  [/^\/oauth\/revoke$/, 'revocation'],
  [/^\/oauth\/introspect$/, 'introspection'],
  [/^\/userinfo$/, 'userinfo'],
  [/^\/\.well-known\/(openid-configuration|oauth-authorization-server|jwks\.json)$/, 'metadata'],
  [/^\/(authorize(\/resume)?|login|consent|oidc\/logout)$/, 'pages'],
  [/^\/admin(\/|$)/, 'admin'],
  [/^\/health(\/|$)/, 'health'],
  [/^\/assets\//, 'assets'],
];

/** The path as routing compares it: lower case, without trailing slashes (`/` stays `/`). */
export function normalizePath(path: string): string {
  let p = path.toLowerCase();
  while (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
  return p;
}

/** The family of a request path (without its query string). */
export function routeFamily(path: string): RouteFamily {
  const p = normalizePath(path);
  for (const [pattern, family] of FAMILIES) if (pattern.test(p)) return family;
  return 'other';
}

/** Families whose errors are RFC 6749 §5.2 JSON (`error`, `error_description`, no-store). */
export function speaksOAuth(family: RouteFamily): boolean {
  return family === 'token' || family === 'revocation' || family === 'introspection' || family === 'userinfo';
}

/** Families a person's browser visits: errors are the HTML error page. */
export function isPage(family: RouteFamily): boolean {
  return family === 'pages';
}
