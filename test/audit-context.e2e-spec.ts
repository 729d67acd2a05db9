import { createHash, randomBytes } from 'node:crypto';
import { Browser, forms } from './support/browser';
import { TestServer, basic, postForm, startServer } from './support/server';

/**
 * CONTRACT §4 (audit events: "each with type, time, user, client, IP"): every audited event an
 * HTTP request causes carries that request's address and its request id (the `X-Request-Id` the
 * caller sent, as in the request log), whichever path served it: the lean protocol path (token,
 * revocation), Express's pages (login, consent, logout) or the admin API.
 */

const REDIRECT = 'https://app.example.com/callback';
const API = 'https://api.example.com/audited';
const USER = { email: 'ada.audit@example.com', password: 'correct horse battery staple' };
const LOCKED_USER = { email: 'locked.audit@example.com', password: 'another long password here' };
const LOCAL = /^(::ffff:)?127\.0\.0\.1$/;

describe('audit events carry the request id and address of the request that caused them', () => {
  let s: TestServer;
  let started: Date;
  /** Event type → the request id of the request expected to have caused it. */
  const expected: [string, string][] = [];

  const rid = (type: string, id: string) => {
    expected.push([type, id]);
    return { 'x-request-id': id };
  };

  async function admin(method: string, path: string, body: unknown, headers: Record<string, string>) {
    const res = await s.fetch(path, {
      method,
      headers: { authorization: `Bearer ${await s.adminToken()}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined, id: res.headers.get('x-request-id') };
  }

  beforeAll(async () => {
    // Three failures lock an account or a client (user.locked, client.locked); the address threshold stays out of the way.
    s = await startServer({ IDP_LOCKOUT_THRESHOLD: '3', IDP_LOCKOUT_SECONDS: '60', IDP_LOCKOUT_MAX_SECONDS: '60' });
    await s.adminToken();
    started = new Date();
  });
  afterAll(() => s?.close());

  it('records them for the admin API, the token endpoint, revocation and the login, consent and logout pages', async () => {
    // ------------------------------------------------------------ admin API
    const user = await admin('POST', '/admin/users', USER, rid('user.created', 'a-user-created'));
    expect(user.status).toBe(201);
    expect(user.id).toBe('a-user-created');
    expect((await admin('PATCH', `/admin/users/${user.body.user_id}`, { name: 'Ada' }, rid('user.updated', 'a-user-updated'))).status).toBe(200);
    expect((await admin('POST', '/admin/users', LOCKED_USER, {})).status).toBe(201);
    const doomed = await admin('POST', '/admin/users', { email: 'doomed.audit@example.com', password: 'a password to delete' }, {});
    expect((await admin('DELETE', `/admin/users/${doomed.body.user_id}`, undefined, rid('user.deleted', 'a-user-deleted'))).status).toBe(204);

    const api = await admin('POST', '/admin/apis', { identifier: API, name: 'Audited', allow_offline_access: true, scopes: [{ value: 'read:x', description: 'Read x' }] }, rid('api.created', 'a-api-created'));
    expect(api.status).toBe(201);
    expect((await admin('PATCH', `/admin/apis/${api.body.id}`, { name: 'Audited API' }, rid('api.updated', 'a-api-updated'))).status).toBe(200);
    const spare = await admin('POST', '/admin/apis', { identifier: 'https://api.example.com/spare', name: 'Spare' }, {});
    expect((await admin('DELETE', `/admin/apis/${spare.body.id}`, undefined, rid('api.deleted', 'a-api-deleted'))).status).toBe(204);

    const app = await admin('POST', '/admin/clients', {
      client_name: 'Third party', redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
    }, rid('client.created', 'a-client-created'));
    expect(app.status).toBe(201);
    expect((await admin('PATCH', `/admin/clients/${app.body.client_id}`, { client_name: 'Third party app' }, rid('client.updated', 'a-client-updated'))).status).toBe(200);
    const rotated = await admin('POST', `/admin/clients/${app.body.client_id}/secret`, undefined, rid('client.secret_rotated', 'a-secret-rotated'));
    expect(rotated.status).toBe(200);
    const client = { client_id: app.body.client_id as string, client_secret: rotated.body.client_secret as string };
    const other = await admin('POST', '/admin/clients', { client_name: 'Other', redirect_uris: [REDIRECT] }, {});
    const grant = await admin('POST', '/admin/client-grants', { client_id: client.client_id, audience: API, scope: ['read:x'] }, rid('client_grant.created', 'a-grant-created'));
    expect(grant.status).toBe(201);
    expect((await admin('POST', '/admin/keys/rotate', undefined, rid('key.rotated', 'a-key-rotated'))).status).toBeLessThan(300);

    // ------------------------------------------------------------ token endpoint, revocation (the lean path)
    const token = (form: Record<string, string>, headers: Record<string, string>, who: { client_id: string; client_secret: string } = client) =>
      postForm(s, '/oauth/token', form, { authorization: basic(who.client_id, who.client_secret), ...headers });
    const cc = await token({ grant_type: 'client_credentials', audience: API }, rid('token.issued', 't-client-credentials'));
    expect(cc.status).toBe(200);
    const { access_token: ccToken } = await cc.json();
    expect((await token({ grant_type: 'client_credentials', audience: API }, rid('client.auth_failed', 't-bad-secret'), { ...client, client_secret: 'wrong' })).status).toBe(401);
    const otherClient = { client_id: other.body.client_id as string, client_secret: 'not its secret' };
    for (let i = 1; i <= 2; i++) expect((await token({ grant_type: 'client_credentials' }, {}, otherClient)).status).toBe(401);
    expect((await token({ grant_type: 'client_credentials' }, rid('client.locked', 't-client-locked'), otherClient)).status).toBe(401);
    const revoke = await postForm(s, '/oauth/revoke', { token: ccToken }, { authorization: basic(client.client_id, client.client_secret), ...rid('token.revoked', 't-revoke') });
    expect(revoke.status).toBe(200);

    // ------------------------------------------------------------ login and consent pages
    const browser = new Browser(s.url);
    const authorize = async (who: { client_id: string }, headers: Record<string, string>) => {
      const verifier = randomBytes(32).toString('base64url');
      const url = new URL('/authorize', s.url);
      url.search = new URLSearchParams({
        response_type: 'code', client_id: who.client_id, redirect_uri: REDIRECT, scope: `openid offline_access read:x`, audience: API,
        state: randomBytes(8).toString('hex'), nonce: randomBytes(8).toString('hex'),
        code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256',
      }).toString();
      Object.assign(browser.headers, headers);
      return { page: await browser.go(url.toString()), verifier };
    };
    let { page, verifier } = await authorize(client, { 'x-request-id': 'b-authorize' });
    expect(page.url).toContain('/login');
    Object.assign(browser.headers, rid('user.login_failed', 'b-login-failed'));
    page = await browser.submit(page, forms(page.html)[0], { username: USER.email, password: 'not the password' });
    expect(page.url).toContain('/login');
    Object.assign(browser.headers, rid('user.login', 'b-login'));
    page = await browser.submit(page, forms(page.html)[0], { username: USER.email, password: USER.password });
    expect(page.url).toContain('/consent');
    Object.assign(browser.headers, rid('consent.granted', 'b-consent'));
    const [consentForm] = forms(page.html);
    page = await browser.submit(page, consentForm, {}, consentForm.buttons.find((b) => b.value === 'allow'));
    expect(page.url.startsWith(`${REDIRECT}?`)).toBe(true);
    const code = new URL(page.url).searchParams.get('code')!;

    const exchange = await token({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier }, { 'x-request-id': 't-code' });
    expect(exchange.status).toBe(200);
    const tokens = await exchange.json();
    expect((await token({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT, code_verifier: verifier }, rid('code.replayed', 't-code-replayed'))).status).toBe(400);

    // The replay revoked that code's tokens: a second flow (the session and consent stand) for a live refresh token.
    ({ page, verifier } = await authorize(client, { 'x-request-id': 'b-authorize-2' }));
    expect(page.url.startsWith(`${REDIRECT}?`)).toBe(true);
    const second = await token({ grant_type: 'authorization_code', code: new URL(page.url).searchParams.get('code')!, redirect_uri: REDIRECT, code_verifier: verifier }, { 'x-request-id': 't-code-2' });
    expect(second.status).toBe(200);
    const { refresh_token: first } = await second.json();
    expect((await token({ grant_type: 'refresh_token', refresh_token: first }, rid('token.issued', 't-refresh'))).status).toBe(200);
    expect((await token({ grant_type: 'refresh_token', refresh_token: first }, rid('token.refresh_reused', 't-refresh-reused'))).status).toBe(400);

    // Another client: the user says no.
    ({ page } = await authorize(other.body, rid('consent.denied', 'b-consent-denied')));
    expect(page.url).toContain('/consent');
    const [denyForm] = forms(page.html);
    page = await browser.submit(page, denyForm, {}, denyForm.buttons.find((b) => b.value === 'deny'));
    expect(page.url).toContain('error=access_denied');

    // Logout with an ID token hint ends the session at once.
    Object.assign(browser.headers, rid('user.logout', 'b-logout'));
    page = await browser.go(`/oidc/logout?${new URLSearchParams({ id_token_hint: tokens.id_token })}`);
    expect(page.status).toBeLessThan(400);

    // A locked account (three wrong passwords).
    const locker = new Browser(s.url);
    for (let i = 1; i <= 3; i++) {
      locker.headers['x-request-id'] = i === 3 ? 'b-user-locked' : `b-wrong-${i}`;
      const login = await locker.go(`/authorize?${new URLSearchParams({ response_type: 'code', client_id: client.client_id, redirect_uri: REDIRECT, scope: 'openid', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' })}`);
      await locker.submit(login, forms(login.html)[0], { username: LOCKED_USER.email, password: 'wrong password, again' });
    }
    expected.push(['user.locked', 'b-user-locked']);

    // ------------------------------------------------------------ admin API again: revoking a consent, deleting
    const grants = await admin('GET', `/admin/users/${user.body.user_id}/grants`, undefined, {});
    const consent = grants.body.items.find((g: { client_id: string }) => g.client_id === client.client_id);
    expect((await admin('DELETE', `/admin/users/${user.body.user_id}/grants/${consent.id}`, undefined, rid('consent.revoked', 'a-consent-revoked'))).status).toBe(204);
    expect((await admin('DELETE', `/admin/client-grants/${grant.body.id}`, undefined, rid('client_grant.deleted', 'a-grant-deleted'))).status).toBe(204);
    expect((await admin('DELETE', `/admin/clients/${other.body.client_id}`, undefined, rid('client.deleted', 'a-client-deleted'))).status).toBe(204);

    // ------------------------------------------------------------ the audit log
    const events: { type: string; time: string; ip: string | null; request_id: string | null; client_id: string | null }[] = [];
    let cursor: string | null = null;
    do {
      const page: { body: { items: typeof events; next_cursor: string | null } } = await admin('GET', `/admin/audit-events?limit=200${cursor ? `&cursor=${cursor}` : ''}`, undefined, {});
      events.push(...page.body.items);
      cursor = page.body.next_cursor;
    } while (cursor);
    const mine = events.filter((e) => new Date(e.time) >= started);

    const missing = expected.filter(([type, id]) => !mine.some((e) => e.type === type && e.request_id === id && LOCAL.test(e.ip ?? '')));
    expect(missing).toEqual([]);
    // Every event since the start came from a request: none lacks its request id or address.
    expect(mine.filter((e) => !e.request_id || !LOCAL.test(e.ip ?? ''))).toEqual([]);
    // And the token.issued of each grant is there with its own request.
    expect(mine.filter((e) => e.type === 'token.issued').map((e) => e.request_id)).toEqual(expect.arrayContaining(['t-client-credentials', 't-code', 't-code-2', 't-refresh']));
  });
});
