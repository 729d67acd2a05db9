import type { ClaimsContext, IdpUser } from '@idp/users';
import type { ClientCredentials, ClientAuthContext } from '@idp/clients';
import type { TokenCustomizerContext, TokenRequest, TokenResponse, BearerToken } from '@idp/token';
import type { LoginDecision, LoginPolicyContext } from '@idp/session';
import type { IdpEventMap, IdpEventName } from '@idp/core';
import type { IdentityOptions } from '@idp/identity';
import type { ApiScope } from '@idp/resources';

/**
 * The documented interfaces, as the libs' index files export them (docs/extending.md). Nothing
 * here runs: `npm run typecheck` (and .ci/run) compiles this file, and it compiles only while each
 * index exports the type with the documented members. (It replaces a jest test whose one runtime
 * assertion, an array's length, could not fail.)
 */
export const documentedInterfaces = {
  claims: { use: 'id_token', scopes: [], clientId: 'c' } satisfies ClaimsContext,
  user: { id: 'u', email: 'e', email_verified: true, blocked: false } satisfies IdpUser,
  creds: { clientId: 'c', method: 'm', secret: 's' } satisfies ClientCredentials,
  ctx: { endpointUrl: 'https://x' } satisfies ClientAuthContext,
  request: { grant_type: 'g' } satisfies TokenRequest,
  response: { access_token: 'a', token_type: 'Bearer', expires_in: 1 } satisfies TokenResponse,
  customize: { tokenType: 'access_token', claims: {}, grantType: 'g', scopes: [], audience: [] } satisfies Omit<TokenCustomizerContext, 'client'>,
  policy: { user: { id: 'u', email: 'e', email_verified: true, blocked: false }, stage: 'login' } satisfies Omit<LoginPolicyContext, 'client'>,
  decision: { allow: false, reason: 'r' } satisfies LoginDecision,
  event: { userId: 'u' } satisfies IdpEventMap['user.login'],
  name: 'user.login' satisfies IdpEventName,
  options: { entities: [], migrations: [], theme: { views: 'v', assets: 'a' }, adminScopes: [] } satisfies IdentityOptions,
  scope: { value: 'v', description: 'd' } satisfies ApiScope,
  token: { client_id: 'c', scope: 's' } satisfies Pick<BearerToken, 'client_id' | 'scope'>,
};
