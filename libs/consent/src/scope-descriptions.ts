/** How the consent page describes the OpenID Connect scopes (OIDC Core §5.4). */
export const OIDC_SCOPE_DESCRIPTIONS: Record<string, string> = {
  openid: 'Sign you in with your account',
  profile: 'Read your name and profile',
  email: 'Read your email address',
  offline_access: 'Stay connected when you are not using the application',
};
