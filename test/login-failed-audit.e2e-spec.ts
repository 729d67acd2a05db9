import { randomBytes } from 'node:crypto';
import { UserStore, UsersService } from '@idp/users';
import { Browser, Page, forms } from './support/browser';
import { TestServer, startServer } from './support/server';

/**
 * CONTRACT §4 audit events: "a failure names the account that was tried: its user_id when it
 * exists, and the identifier typed", never the password. The login page answers the same for a
 * known and an unknown account, from one lookup and one password verification either way.
 */

const REDIRECT = 'https://app.example.com/callback';
const secret = (label: string) => `${label}-${randomBytes(12).toString('base64url')}`;
const ADA = { email: 'ada.tried@example.com', password: secret('ada-right') };
const BLOCKED = { email: 'bob.blocked@example.com', password: secret('bob-right') };
const LOCKED = { email: 'carol.locked@example.com', password: secret('carol-right') };
const DAVE = { email: 'dave.checked@example.com', password: secret('dave-right') };
const LOCAL = /^(::ffff:)?127\.0\.0\.1$/;

interface AuditItem { type: string; user_id: string | null; client_id: string | null; ip: string | null; request_id: string | null; data: Record<string, unknown> }

describe('the audit event of a failed sign-in', () => {
  let s: TestServer;
  let clientId: string;
  const ids: Record<string, string> = {};
  /** Every password sent in this suite, right or wrong: none may appear in the audit log or the logs. */
  const passwords = new Set<string>([ADA.password, BLOCKED.password, LOCKED.password, DAVE.password]);

  beforeAll(async () => {
    // Three failures lock an account; the address threshold stays out of the way.
    s = await startServer({ LOG_LEVEL: 'debug', IDP_LOCKOUT_THRESHOLD: '3', IDP_LOCKOUT_SECONDS: '60', IDP_LOCKOUT_MAX_SECONDS: '60' });
    for (const [name, user] of Object.entries({ ada: ADA, blocked: BLOCKED, locked: LOCKED, dave: DAVE })) {
      const res = await s.admin('POST', '/admin/users', user);
      expect(res.status).toBe(201);
      ids[name] = res.body.user_id;
    }
    expect((await s.admin('PATCH', `/admin/users/${ids.blocked}`, { blocked: true })).status).toBe(200);
    clientId = (await s.admin('POST', '/admin/clients', { redirect_uris: [REDIRECT], first_party: true })).body.client_id;
  });
  afterAll(() => s?.close());
  afterEach(() => jest.restoreAllMocks());

  /** A fresh browser at the login page, then one sign-in with `username` and `password`, sent with `X-Request-Id: requestId`. */
  async function signInAttempt(username: string, password: string, requestId: string, browser = new Browser(s.url)): Promise<Page> {
    passwords.add(password);
    const params = new URLSearchParams({ client_id: clientId, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256' });
    const login = await browser.go(`/authorize?${params}`);
    expect(login.url).toContain('/login');
    browser.headers['x-request-id'] = requestId;
    return browser.submit(login, forms(login.html)[0], { username, password });
  }

  async function events(query: string): Promise<AuditItem[]> {
    const res = await s.admin('GET', `/admin/audit-events?${query}`);
    expect(res.status).toBe(200);
    return res.body.items;
  }
  const byRequest = async (requestId: string) => (await events('type=user.login_failed&limit=200')).filter((e) => e.request_id === requestId);
  const alert = (page: Page) => /role="alert">([^<]*)</.exec(page.html)?.[1];

  it('names a known account by its user_id and the identifier typed (normalised), for a wrong password', async () => {
    const page = await signInAttempt('  Ada.Tried@Example.COM ', secret('ada-wrong'), 'known-wrong');
    expect(page.status).toBe(401);

    const found = await events(`type=user.login_failed&user_id=${ids.ada}`);
    expect(found).toEqual([expect.objectContaining({
      type: 'user.login_failed', user_id: ids.ada, client_id: clientId, request_id: 'known-wrong', ip: expect.stringMatching(LOCAL),
      data: { identifier: 'ada.tried@example.com', reason: 'wrong password' },
    })]);
  });

  it('names an unknown account by the identifier typed alone, and answers it as it answers a known one', async () => {
    const known = await signInAttempt(ADA.email, secret('ada-wrong'), 'known-wrong-2');
    const unknown = await signInAttempt('Nobody.Here@Example.com', secret('nobody'), 'unknown');
    // The page cannot tell the two apart.
    expect([unknown.status, alert(unknown)]).toEqual([known.status, alert(known)]);
    expect(alert(unknown)).toBe('Wrong email or password.');

    expect(await byRequest('unknown')).toEqual([expect.objectContaining({
      user_id: null, client_id: clientId, data: { identifier: 'nobody.here@example.com', reason: 'unknown account' },
    })]);
  });

  it.each([
    ['a known account', () => DAVE.email],
    ['an unknown account', () => 'someone.else@example.com'],
  ])('checks the password of %s with one lookup and one verification, nothing more', async (_, username) => {
    const store = s.app.get(UserStore);
    const users = s.app.get(UsersService);
    const check = jest.spyOn(store, 'checkPassword');
    const others = (['findByEmail', 'findById', 'list', 'verifyPassword'] as const).map((m) => jest.spyOn(users, m));
    expect((await signInAttempt(username(), secret('wrong'), `one-lookup-${username()}`)).status).toBe(401);
    expect(check).toHaveBeenCalledTimes(1);
    for (const spy of others) expect(spy).not.toHaveBeenCalled();
  });

  it('names a blocked user who typed the right password, with the generic answer', async () => {
    const page = await signInAttempt(BLOCKED.email, BLOCKED.password, 'blocked');
    expect([page.status, alert(page)]).toEqual([401, 'Wrong email or password.']);
    expect(await byRequest('blocked')).toEqual([expect.objectContaining({
      user_id: ids.blocked, data: { identifier: BLOCKED.email, reason: 'blocked' },
    })]);
  });

  it('names the account of the wrong password that reaches the lock, beside its user.locked', async () => {
    for (let i = 1; i <= 2; i++) expect((await signInAttempt(LOCKED.email, secret(`carol-wrong-${i}`), `lock-${i}`)).status).toBe(401);
    const third = await signInAttempt(LOCKED.email, secret('carol-wrong-3'), 'lock-3');
    expect(third.status).toBe(429);

    expect((await events(`type=user.login_failed&user_id=${ids.locked}`)).map((e) => e.request_id).sort()).toEqual(['lock-1', 'lock-2', 'lock-3']);
    expect(await byRequest('lock-3')).toEqual([expect.objectContaining({ user_id: ids.locked, data: { identifier: LOCKED.email, reason: 'wrong password' } })]);
    expect((await events('type=user.locked')).filter((e) => e.request_id === 'lock-3')).toHaveLength(1);

    // While locked, the right password is refused without a check: no failed check to record.
    expect((await signInAttempt(LOCKED.email, LOCKED.password, 'lock-4')).status).toBe(429);
    expect(await byRequest('lock-4')).toEqual([]);
  });

  it('keeps at most 320 characters of the identifier typed', async () => {
    const long = `${'x'.repeat(400)}@EXAMPLE.com`;
    expect((await signInAttempt(long, secret('long'), 'too-long')).status).toBe(401);
    expect(await byRequest('too-long')).toEqual([expect.objectContaining({
      user_id: null, data: { identifier: long.toLowerCase().slice(0, 320), reason: 'input too long' },
    })]);
  });

  it('never holds a password, in the audit API nor in any log line', async () => {
    // Its own attempts (a known account, an unknown one), then every attempt of the suite.
    await signInAttempt(DAVE.email, secret('dave-wrong'), 'leak-known');
    await signInAttempt('leak.unknown@example.com', secret('leak-unknown'), 'leak-unknown');
    expect((await byRequest('leak-known'))[0]).toMatchObject({ user_id: ids.dave, data: { identifier: DAVE.email } });
    expect((await byRequest('leak-unknown'))[0]).toMatchObject({ user_id: null, data: { identifier: 'leak.unknown@example.com' } });

    const all: AuditItem[] = [];
    let cursor: string | null = null;
    do {
      const res: { status: number; body: { items: AuditItem[]; next_cursor: string | null } } = await s.admin('GET', `/admin/audit-events?limit=200${cursor ? `&cursor=${cursor}` : ''}`);
      all.push(...res.body.items);
      cursor = res.body.next_cursor;
    } while (cursor);
    const answer = JSON.stringify(all);
    const logs = s.logs.join('\n');
    // The audit records are written to the log too: the identifier is there, no password is.
    expect(logs).toContain('leak.unknown@example.com');
    for (const password of passwords) {
      expect([password, answer.includes(password)]).toEqual([password, false]);
      expect([password, logs.includes(password)]).toEqual([password, false]);
    }
  });
});
