import type { ApiScope } from '@idp/resources';

/** The custom grant type: a URN of our own (RFC 6749 §4.5: extension grants are absolute URIs). */
export const DEPARTMENT_TOKEN_GRANT = 'urn:example:params:oauth:grant-type:department-token';

/** The custom client authentication method (a `token_endpoint_auth_method` value). */
export const CLIENT_SECRET_HEADER = 'client_secret_header';

/** The one API whose access tokens carry the user's department (the token customizer). */
export const HR_API = 'https://hr.acme.example/api';

/** The admin API scopes of this module's admin routes, given to IdentityModule.forRoot({ adminScopes }). */
export const ACME_ADMIN_SCOPES: ApiScope[] = [
  { value: 'read:login_stats', description: 'Read Acme sign-in counters' },
  { value: 'read:employee_profiles', description: 'Read Acme employee profiles' },
  { value: 'write:employee_profiles', description: 'Set Acme employee profiles (department, flagged)' },
];
