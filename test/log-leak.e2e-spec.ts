import { createHash, randomBytes } from 'node:crypto';
import { Browser, signIn } from './support/browser';
import { ADMIN_CLIENT_SECRET, TestServer, basic, postForm, startServer } from './support/server';

const REDIRECT = 'https://app.example.com/callback';

/**
 * Runs the code flow, refresh, client_credentials, revocation, introspection and admin calls with
 * the server's log captured, then looks for every secret that passed through: none may appear.
 */
describe('logs never contain a secret', () => {
  let s: TestServer;
  const secrets = new Set<string>();

  beforeAll(async () => {
    s = await startServer({ LOG_LEVEL: 'debug' });
  });
  afterAll(() => s.close());

  it('has no password, client secret, code, verifier, refresh token or access token in any log line', async () => {
    const password = `pw-${randomBytes(12).toString('base64url')}`;
    secrets.add(password).add(ADMIN_CLIENT_SECRET);
    const admin = await s.adminToken();
    secrets.add(admin);
    const user = await s.admin('POST', '/admin/users', { email: 'leak@example.com', password });
    await s.admin('PATCH', `/admin/users/${user.body.user_id}`, { password: `${password}-2` });
    secrets.add(`${password}-2`);
    await s.admin('PATCH', `/admin/users/${user.body.user_id}`, { password });

    const web = (await s.admin('POST', '/admin/clients', { redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token', 'client_credentials'] })).body;
    secrets.add(web.client_secret);
    const rotated = (await s.admin('POST', `/admin/clients/${web.client_id}/secret`)).body.client_secret;
    secrets.add(rotated);
    await s.admin('POST', '/admin/apis', { identifier: 'https://api.example.com/leak', name: 'Leak', scopes: [{ value: 'read', description: 'r' }] });
    await s.admin('POST', '/admin/client-grants', { client_id: web.client_id, audience: 'https://api.example.com/leak', scope: ['read'] });

    const cc = await (await postForm(s, '/oauth/token', { grant_type: 'client_credentials', audience: 'https://api.example.com/leak' }, { authorization: basic(web.client_id, rotated) })).json();
    secrets.add(cc.access_token);
    await postForm(s, '/oauth/token', { grant_type: 'client_credentials', audience: 'https://api.example.com/leak' }, { authorization: basic(web.client_id, 'a-wrong-secret-that-must-not-be-logged') });
    secrets.add('a-wrong-secret-that-must-not-be-logged');

    const verifier = randomBytes(32).toString('base64url');
    secrets.add(verifier);
    const browser = new Browser(s.url);
    const wrongPassword = 'wrong-password-that-must-not-be-logged';
    secrets.add(wrongPassword);
    const authorize = `${s.url}/authorize?${new URLSearchParams({ client_id: web.client_id, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid offline_access', state: 'state-value', nonce: 'nonce-value', code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256' })}`;
    await signIn(new Browser(s.url), authorize, { email: 'leak@example.com', password: wrongPassword });
    const page = await signIn(browser, authorize, { email: 'leak@example.com', password });
    const code = new URL(page.url).searchParams.get('code')!;
    secrets.add(code);
    const tokens = await (await postForm(s, '/oauth/token', { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier }, { authorization: basic(web.client_id, rotated) })).json();
    expect(tokens.refresh_token).toEqual(expect.any(String));
    secrets.add(tokens.access_token).add(tokens.refresh_token).add(tokens.id_token);
    const refreshed = await (await postForm(s, '/oauth/token', { grant_type: 'refresh_token', refresh_token: tokens.refresh_token }, { authorization: basic(web.client_id, rotated) })).json();
    expect(refreshed).toMatchObject({ access_token: expect.any(String), refresh_token: expect.any(String) });
    secrets.add(refreshed.access_token).add(refreshed.refresh_token);
    // Reuse of the used refresh token (family revoked) and userinfo, introspection, revocation.
    await postForm(s, '/oauth/token', { grant_type: 'refresh_token', refresh_token: tokens.refresh_token }, { authorization: basic(web.client_id, rotated) });
    await s.fetch('/userinfo', { headers: { authorization: `Bearer ${refreshed.access_token}` } });
    await postForm(s, '/oauth/introspect', { token: refreshed.access_token }, { authorization: basic(web.client_id, rotated) });
    await postForm(s, '/oauth/revoke', { token: refreshed.refresh_token }, { authorization: basic(web.client_id, rotated) });
    await s.fetch(`/oidc/logout?id_token_hint=${tokens.id_token}`);
    // The replay path (invalid_grant) must not log the code either.
    await postForm(s, '/oauth/token', { grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier }, { authorization: basic(web.client_id, rotated) });
    // Secrets in headers and query strings: the session cookie (signed in), a made-up cookie, bearer
    // token, proxy credential and API key, and tokens in query strings, on a protocol endpoint, a
    // page, the admin API and a route that does not exist.
    const session = browser.cookieHeader();
    expect(session).toContain('idp_session=');
    secrets.add(session.slice(session.indexOf('idp_session=') + 'idp_session='.length).split(';')[0]);
    const header = (name: string) => `${name}-${randomBytes(16).toString('base64url')}`;
    const [cookie, bearer, proxy, apiKey, query] = ['cookie', 'bearer', 'proxy', 'api-key', 'query'].map(header);
    secrets.add(cookie).add(bearer).add(proxy).add(apiKey).add(query);
    for (const path of ['/userinfo', '/authorize', '/admin/users', '/no-such-route']) {
      await s.fetch(`${path}?access_token=${query}&code=${query}`, {
        headers: { cookie: `${session}; other=${cookie}`, authorization: `Bearer ${bearer}`, 'proxy-authorization': `Basic ${proxy}`, 'x-api-key': apiKey },
      });
    }

    // A request's log line is written when its response has finished, which may come after the
    // answer has reached this test: one more request, and its line, mean those before are in.
    await s.fetch('/health/live', { headers: { 'x-request-id': 'log-leak-last-request' } });
    for (let turn = 0; !s.logs.some((l) => l.includes('"request_id":"log-leak-last-request"')); turn++) {
      if (turn > 10_000) throw new Error('the last request was never logged');
      await new Promise(setImmediate);
    }
    const log = s.logs.join('\n');
    expect(s.logs.length).toBeGreaterThan(20);
    expect([...secrets].filter((x) => typeof x !== "string")).toEqual([]);
    for (const secret of secrets) {
      expect(secret.length).toBeGreaterThan(8);
      if (log.includes(secret)) throw new Error(`a secret appeared in the log: ${secret.slice(0, 6)}…`);
      // Nor its signature part alone (the last segment of a JWT).
      const sig = secret.split('.').pop()!;
      if (sig.length > 20 && log.includes(sig)) throw new Error(`a token signature appeared in the log: ${sig.slice(0, 6)}…`);
    }
    // Every line is one JSON object.
    for (const line of s.logs) expect(() => JSON.parse(line)).not.toThrow();
  });
});
