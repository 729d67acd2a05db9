import { existsSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { chromium, type Browser } from 'playwright-core';
import { TestServer, basic, postForm, startServer } from './support/server';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const available = existsSync(CHROMIUM);
if (!available) {
  // eslint-disable-next-line no-console
  console.warn(`browser suite skipped: Chromium not found at ${CHROMIUM} (apt-get install -y chromium; .ci/run installs it)`);
}
const describeIf = available ? describe : describe.skip;

/** A real browser types into the login page, clicks Allow, and lands on the client with a code that exchanges. */
describeIf('the login and consent pages in Chromium', () => {
  let s: TestServer;
  let browser: Browser;
  let client: { client_id: string; client_secret: string };
  // The client's redirect URI: a page on the IdP's own origin is not needed; any URL whose request we intercept works.
  const REDIRECT = 'http://127.0.0.1:9/callback';

  beforeAll(async () => {
    s = await startServer();
    await s.admin('POST', '/admin/users', { email: 'kay@example.com', password: 'typed by a real browser' });
    client = (await s.admin('POST', '/admin/clients', { client_name: 'Browser App', redirect_uris: [REDIRECT] })).body;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
    });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await s?.close();
  });

  it('signs in, consents and ends on the redirect URI with a code that exchanges for tokens', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    let callback: URL | undefined;
    await page.route(`${REDIRECT}**`, (route) => {
      callback = new URL(route.request().url());
      return route.fulfill({ status: 200, contentType: 'text/html', body: '<p>app</p>' });
    });
    const verifier = randomBytes(32).toString('base64url');
    const challenge = createHash('sha256').update(verifier).digest('base64url');
    const params = new URLSearchParams({ client_id: client.client_id, redirect_uri: REDIRECT, response_type: 'code', scope: 'openid email', state: 'browser-state', code_challenge: challenge, code_challenge_method: 'S256' });
    await page.goto(`${s.url}/authorize?${params}`);

    await page.fill('input[name=username]', 'kay@example.com');
    await page.fill('input[name=password]', 'wrong password');
    await page.click('button[type=submit]');
    await page.waitForSelector('[role=alert]');
    expect(await page.textContent('[role=alert]')).toContain('Wrong email or password');

    await page.fill('input[name=password]', 'typed by a real browser');
    await page.click('button[type=submit]');
    await page.waitForSelector('button[name=decision][value=allow]');
    expect(await page.textContent('body')).toContain('Read your email address');
    await page.click('button[name=decision][value=allow]');
    await page.waitForURL(`${REDIRECT}**`);

    expect(callback!.searchParams.get('state')).toBe('browser-state');
    expect(callback!.searchParams.get('iss')).toBe(s.url);
    const res = await postForm(s, '/oauth/token', { grant_type: 'authorization_code', code: callback!.searchParams.get('code')!, redirect_uri: REDIRECT, code_verifier: verifier }, { authorization: basic(client.client_id, client.client_secret) });
    expect(res.status).toBe(200);
    expect((await res.json()).id_token).toEqual(expect.any(String));

    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === 'idp_session')!;
    expect(session.httpOnly).toBe(true);
    expect(session.sameSite).toBe('Lax');
    await context.close();
  }, 60_000);
});
