import { TestServer, startServer } from './support/server';

describe('discovery and JWKS', () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startServer();
  });
  afterAll(() => s.close());

  it('serves the same metadata at both well-known paths, built from ISSUER, listing only what works', async () => {
    const oidc = await (await s.fetch('/.well-known/openid-configuration')).json();
    const oauth = await (await s.fetch('/.well-known/oauth-authorization-server')).json();
    expect(oauth).toEqual(oidc);
    expect(oidc).toMatchObject({
      issuer: s.url,
      authorization_endpoint: `${s.url}/authorize`,
      token_endpoint: `${s.url}/oauth/token`,
      userinfo_endpoint: `${s.url}/userinfo`,
      jwks_uri: `${s.url}/.well-known/jwks.json`,
      revocation_endpoint: `${s.url}/oauth/revoke`,
      introspection_endpoint: `${s.url}/oauth/introspect`,
      end_session_endpoint: `${s.url}/oidc/logout`,
      response_types_supported: ['code'],
      response_modes_supported: ['query', 'form_post'],
      code_challenge_methods_supported: ['S256'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256'],
      authorization_response_iss_parameter_supported: true,
      request_parameter_supported: false,
      request_uri_parameter_supported: false,
    });
    expect(oidc.grant_types_supported.sort()).toEqual(['authorization_code', 'client_credentials', 'refresh_token']);
    expect(oidc.token_endpoint_auth_methods_supported.sort()).toEqual(['client_secret_basic', 'client_secret_post', 'none', 'private_key_jwt']);
    expect(oidc.scopes_supported).toEqual(expect.arrayContaining(['openid', 'profile', 'email', 'offline_access']));
    expect(oidc.claims_supported).toEqual(expect.arrayContaining(['sub', 'name', 'email', 'email_verified']));
    // Every advertised endpoint answers (none is a 404).
    for (const key of ['authorization_endpoint', 'jwks_uri', 'userinfo_endpoint', 'end_session_endpoint']) {
      expect([200, 302, 303, 400, 401]).toContain((await fetch(oidc[key], { redirect: 'manual' })).status);
    }
  });

  it('publishes public signing keys with kid, alg and use, and never a private part', async () => {
    const res = await s.fetch('/.well-known/jwks.json');
    expect(res.headers.get('content-type')).toMatch(/json/);
    const { keys } = await res.json();
    expect(keys.length).toBeGreaterThanOrEqual(1);
    for (const k of keys) {
      expect(k).toMatchObject({ kty: 'RSA', kid: expect.any(String), alg: 'RS256', use: 'sig', n: expect.any(String), e: 'AQAB' });
      for (const secret of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k']) expect(k[secret]).toBeUndefined();
      expect(Buffer.from(k.n, 'base64url').length * 8).toBe(2048);
    }
  });

  it('serves the admin API OpenAPI document generated from the controllers', async () => {
    const doc = await (await s.fetch('/admin/openapi.json')).json();
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/admin/clients', '/admin/users', '/admin/apis', '/admin/client-grants', '/admin/keys', '/admin/keys/rotate', '/admin/audit-events']));
  });
});
