import * as oidc from 'openid-client';
import { UserStore } from '@idp/users';
import { Browser, signIn } from './support/browser';
import { TestServer, startServer } from './support/server';

const REDIRECT = 'https://app.example.com/callback';
const PASSWORD = 'correct horse battery staple';

/**
 * The test harness runs several applications in one process; Passport's strategies live on one
 * process-wide object. Each live server runs on modules of its own (test/support/server.ts, inRegistry),
 * so each signs its users in with its own strategies, against its own database.
 */
describe('several applications alive in one test process', () => {
  let a: TestServer;
  let b: TestServer;

  beforeAll(async () => {
    a = await startServer();
    b = await startServer();
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  async function authorizeUrl(s: TestServer) {
    const web = (await s.admin('POST', '/admin/clients', { client_name: 'Web', redirect_uris: [REDIRECT], first_party: true })).body;
    const config = await oidc.discovery(new URL(s.url), web.client_id, undefined, oidc.ClientSecretBasic(web.client_secret), { execute: [oidc.allowInsecureRequests] });
    const verifier = oidc.randomPKCECodeVerifier();
    return oidc.buildAuthorizationUrl(config, { redirect_uri: REDIRECT, scope: 'openid', code_challenge: await oidc.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' }).toString();
  }

  it('signs each server\'s own users in, with its own Passport strategies and database', async () => {
    expect((await a.admin('POST', '/admin/users', { email: 'only-on-a@example.com', password: PASSWORD })).status).toBe(201);
    expect((await b.admin('POST', '/admin/users', { email: 'only-on-b@example.com', password: PASSWORD })).status).toBe(201);
    const checksA = jest.spyOn(a.get(UserStore), 'checkPassword');
    const checksB = jest.spyOn(b.get(UserStore), 'checkPassword');
    // The first server started is signed in to last: with one shared Passport it would use the second's strategy.
    expect((await signIn(new Browser(b.url), await authorizeUrl(b), { email: 'only-on-b@example.com', password: PASSWORD })).url.startsWith(REDIRECT)).toBe(true);
    expect((await signIn(new Browser(a.url), await authorizeUrl(a), { email: 'only-on-a@example.com', password: PASSWORD })).url.startsWith(REDIRECT)).toBe(true);
    const wrongServer = await signIn(new Browser(b.url), await authorizeUrl(b), { email: 'only-on-a@example.com', password: PASSWORD });
    expect(wrongServer.status).toBe(401);
    expect(checksA).toHaveBeenCalledTimes(1);
    expect(checksB).toHaveBeenCalledTimes(2);
  });

  it('gives each server its own providers through server.get', () => {
    expect(a.get(UserStore)).not.toBe(b.get(UserStore));
    expect(a.get(UserStore)).toBe(a.app.get(UserStore, { strict: false }));
  });
});
