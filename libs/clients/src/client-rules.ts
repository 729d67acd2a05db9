import { isIP } from 'node:net';
import type { ClientMetadataDto } from './client-metadata.dto';

/** A scope token (RFC 6749 §3.3): printable ASCII except space, `"` and `\`. */
export const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || (isIP(h) === 4 && h.startsWith('127.'));
}

/**
 * Checks a redirect URI (RFC 6749 §3.1.2, RFC 8252, RFC 9700 §2.1): absolute, no fragment, no
 * wildcard; https, or http on a loopback address, or a private-use scheme for native apps.
 * Returns the problem, or undefined when it is fine.
 */
export function redirectUriProblem(uri: string): string | undefined {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return 'must be an absolute URI';
  }
  if (url.hash || uri.includes('#')) return 'must not contain a fragment';
  if (uri.includes('*')) return 'must not contain a wildcard';
  if (url.username || url.password) return 'must not contain user information';
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:') return isLoopbackHost(url.hostname) ? undefined : 'must use https (http only on loopback addresses)';
  if (/^(javascript|data|file|vbscript|blob):$/.test(url.protocol)) return 'uses a forbidden scheme';
  // Private-use URI scheme of a native app (RFC 8252 §7.1): reverse domain name, with a dot.
  return url.protocol.slice(0, -1).includes('.') ? undefined : 'must use https, http on loopback, or a reverse-domain private-use scheme';
}

export function originProblem(origin: string): string | undefined {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return 'must be an origin like https://app.example.com';
  }
  if (url.origin !== origin) return 'must be an origin (scheme, host and port only) like https://app.example.com';
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHost(url.hostname))) return 'must use https (http only on loopback)';
  return undefined;
}

export function jwksProblem(jwks: unknown): string | undefined {
  const keys = (jwks as { keys?: unknown })?.keys;
  if (!Array.isArray(keys) || keys.length === 0 || keys.length > 20) return 'must be a JWK Set with 1 to 20 keys';
  for (const k of keys as Record<string, unknown>[]) {
    if (!k || typeof k !== 'object' || typeof k.kty !== 'string') return 'must contain JWKs with a kty';
    if (!['RSA', 'EC', 'OKP'].includes(k.kty)) return 'must contain only public RSA, EC or OKP keys';
    if ('d' in k || 'p' in k || 'q' in k || 'k' in k) return 'must contain public keys only (no private parts)';
  }
  return undefined;
}

export type Metadata = Required<Pick<ClientMetadataDto, 'redirect_uris' | 'post_logout_redirect_uris' | 'grant_types' | 'token_endpoint_auth_method' | 'allowed_origins'>> &
  ClientMetadataDto;

export interface MetadataRules {
  methods: string[];
  grantTypes?: string[];
  /** The outbound policy (IDP_OUTBOUND) for URLs the server will fetch, such as jwks_uri: OutboundClient.urlProblem. */
  fetchableUrlProblem: (url: string) => string | undefined;
}

/** Every problem of a full set of metadata, each naming its field. */
export function metadataProblems(m: Metadata, supported: MetadataRules): string[] {
  const problems: string[] = [];
  m.redirect_uris.forEach((u, i) => {
    const p = redirectUriProblem(u);
    if (p) problems.push(`redirect_uris[${i}] ${p}`);
  });
  m.post_logout_redirect_uris.forEach((u, i) => {
    const p = redirectUriProblem(u);
    if (p) problems.push(`post_logout_redirect_uris[${i}] ${p}`);
  });
  m.allowed_origins.forEach((o, i) => {
    const p = originProblem(o);
    if (p) problems.push(`allowed_origins[${i}] ${p}`);
  });
  if (!supported.methods.includes(m.token_endpoint_auth_method)) {
    problems.push(`token_endpoint_auth_method must be one of: ${supported.methods.join(', ')}`);
  }
  if (m.grant_types.length === 0) problems.push('grant_types must not be empty');
  if (new Set(m.grant_types).size !== m.grant_types.length) problems.push('grant_types must not repeat a value');
  if (supported.grantTypes) {
    for (const g of m.grant_types) if (!supported.grantTypes.includes(g)) problems.push(`grant_types: "${g}" is not supported (supported: ${supported.grantTypes.join(', ')})`);
  }
  if (m.grant_types.includes('authorization_code') && m.redirect_uris.length === 0) problems.push('redirect_uris must list at least one URI for the authorization_code grant');
  if (m.grant_types.includes('refresh_token') && !m.grant_types.includes('authorization_code')) problems.push('grant_types: refresh_token needs authorization_code');
  if (m.response_types && (m.response_types.some((r) => r !== 'code') || (m.response_types.length > 0) !== m.grant_types.includes('authorization_code'))) {
    problems.push('response_types must be ["code"] with the authorization_code grant, or empty without it');
  }
  if (m.token_endpoint_auth_method === 'none' && m.grant_types.includes('client_credentials')) {
    problems.push('grant_types: client_credentials needs a confidential client (token_endpoint_auth_method other than none)');
  }
  if (m.token_endpoint_auth_method === 'private_key_jwt') {
    if (!m.jwks && !m.jwks_uri) problems.push('jwks or jwks_uri is required with private_key_jwt');
  }
  if (m.jwks && m.jwks_uri) problems.push('jwks and jwks_uri must not both be set (RFC 7591 §2)');
  if (m.jwks) {
    const p = jwksProblem(m.jwks);
    if (p) problems.push(`jwks ${p}`);
  }
  if (m.jwks_uri) {
    // Fetched by the server (private_key_jwt): never an internal address (CONTRACT §1 IDP_OUTBOUND).
    const p = supported.fetchableUrlProblem(m.jwks_uri);
    if (p) problems.push(`jwks_uri ${p}`);
  }
  if (m.scope !== undefined && m.scope !== null && m.scope.split(' ').some((s) => !SCOPE_TOKEN.test(s))) {
    problems.push('scope must be space-separated scope tokens');
  }
  return problems;
}
