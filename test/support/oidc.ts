import * as oidc from 'openid-client';

/**
 * An authorization request as openid-client builds it: PKCE (S256), state and nonce, with the
 * caller's parameters (redirect_uri and scope at least) on top. Returns the URL and the secrets
 * the code redemption needs.
 */
export async function authorizationRequest(config: oidc.Configuration, params: Record<string, string>) {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const url = oidc.buildAuthorizationUrl(config, {
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state, nonce, ...params,
  });
  return { url: url.toString(), verifier, state, nonce };
}
