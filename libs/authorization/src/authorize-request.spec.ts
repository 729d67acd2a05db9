import { createHash, randomBytes } from 'node:crypto';
import { Test, TestingModule } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { SignJWT, generateKeyPair } from 'jose';
import { CoreModule, OAuthError, loadConfig } from '@idp/core';
import { Client, ClientsService } from '@idp/clients';
import { KeysService } from '@idp/keys';
import { ResourcesService } from '@idp/resources';
import { dataSourceOptions } from '@idp/identity';
import type { Interaction } from '@idp/session';
import { AuthorizationModule } from './authorization.module';
import { AuthorizeRequest, AuthorizeRequestValidator, AuthorizeTarget, loginCheckOf } from './authorize-request';

/**
 * The /authorize checks (RFC 6749 §4.1.2.1, OIDC Core §3.1.2.2, RFC 7636, RFC 9700): first the
 * client and the exact redirect URI, whose failures are shown on a page and never reach the
 * redirect URI (`redirectable: false`, no target announced); then everything else, whose failures
 * go back to the client at the target announced by `onTarget`. The validator comes from a real
 * AuthorizationModule on SQLite in memory, with real clients, APIs, claims and signing keys.
 */

const ISSUER = 'http://idp.test';
const WEB_CB = 'https://web.example.com/callback';
const LOOPBACK_CB = 'http://127.0.0.1:8080/cb';
const SPA_CB = 'https://spa.example.com/cb';
const ORDERS = 'https://api.example.com/orders';
const REPORTS = 'https://api.example.com/reports';
const CHALLENGE = createHash('sha256').update('v'.repeat(43)).digest('base64url');

const scopes = (...values: string[]) => values.map((value) => ({ value, description: value }));

describe('AuthorizeRequestValidator', () => {
  let moduleRef: TestingModule;
  let validator: AuthorizeRequestValidator;
  let keys: KeysService;
  /** Confidential, authorization_code and refresh_token. */
  let web: Client;
  /** Public (token_endpoint_auth_method none). */
  let spa: Client;
  /** Confidential, limited to `scope: email offline_access read:orders`, without the refresh_token grant. */
  let limited: Client;
  /** client_credentials only, though it lists a redirect URI. */
  let machine: Client;

  beforeAll(async () => {
    moduleRef = await Test.createTestingModule({
      imports: [
        CoreModule.forRoot(loadConfig({ NODE_ENV: 'test', DATABASE_URL: 'sqlite::memory:', IDP_SECRET_KEY: randomBytes(32).toString('base64url'), ISSUER })),
        TypeOrmModule.forRoot({ ...dataSourceOptions('sqlite::memory:'), migrationsRun: true }),
        AuthorizationModule,
      ],
    }).compile();
    await moduleRef.init();
    validator = moduleRef.get(AuthorizeRequestValidator);
    keys = moduleRef.get(KeysService);
    const clients = moduleRef.get(ClientsService);
    const resources = moduleRef.get(ResourcesService);
    web = (await clients.register({ client_name: 'web', redirect_uris: [WEB_CB, LOOPBACK_CB], grant_types: ['authorization_code', 'refresh_token'] })).client;
    spa = (await clients.register({ client_name: 'spa', redirect_uris: [SPA_CB], grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_method: 'none' })).client;
    limited = (await clients.register({ client_name: 'limited', redirect_uris: [WEB_CB], scope: 'email offline_access read:orders' })).client;
    machine = (await clients.register({ client_name: 'machine', redirect_uris: [WEB_CB], grant_types: ['client_credentials'] })).client;
    await resources.createApi({ identifier: ORDERS, name: 'Orders', scopes: scopes('read:orders', 'write:orders'), allow_offline_access: true });
    await resources.createApi({ identifier: REPORTS, name: 'Reports', scopes: scopes('read:reports') });
  });
  afterAll(() => moduleRef?.close());

  const base = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    client_id: web.client_id, redirect_uri: WEB_CB, response_type: 'code', scope: 'openid', state: 'st-1', ...extra,
  });

  /** Validates; returns the request and every target announced. */
  async function accepted(source: Record<string, unknown>, interaction?: Interaction): Promise<{ ar: AuthorizeRequest; targets: AuthorizeTarget[] }> {
    const targets: AuthorizeTarget[] = [];
    const ar = await validator.validate(source, interaction, (t) => targets.push(t));
    return { ar, targets };
  }

  /** Validates what must fail; returns the error and every target announced before it. */
  async function refused(source: Record<string, unknown>): Promise<{ err: OAuthError; targets: AuthorizeTarget[] }> {
    const targets: AuthorizeTarget[] = [];
    const err = await validator.validate(source, undefined, (t) => targets.push(t)).then(
      (ar) => { throw new Error(`accepted: ${JSON.stringify(ar.params)}`); },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(OAuthError);
    return { err: err as OAuthError, targets };
  }

  describe('stage 1: client and redirect URI (never redirected)', () => {
    it.each<[string, Record<string, unknown>, RegExp]>([
      ['no client_id', { client_id: undefined }, /no client_id/],
      ['an empty client_id', { client_id: '' }, /no client_id/],
      ['client_id twice', { client_id: ['a', 'b'] }, /more than once/],
      ['an unknown client_id', { client_id: 'no-such-client' }, /not registered/],
      ['a client_id over 128 characters', { client_id: 'c'.repeat(129) }, /not registered/],
      ['no redirect_uri', { redirect_uri: undefined }, /no redirect_uri/],
      ['redirect_uri twice', { redirect_uri: [WEB_CB, WEB_CB] }, /more than once/],
    ])('refuses %s on the error page', async (_, extra, description) => {
      const { err, targets } = await refused(base(extra));
      expect(err).toMatchObject({ code: 'invalid_request', status: 400, redirectable: false, description: expect.stringMatching(description) });
      expect(targets).toEqual([]);
    });

    // RFC 9700 §4.1.3: exact string matching, no normalisation of any kind.
    it.each<[string, string]>([
      ['a trailing slash', `${WEB_CB}/`],
      ['a prefix of it', WEB_CB.slice(0, -1)],
      ['a path below it', `${WEB_CB}/more`],
      ['an added query', `${WEB_CB}?next=/admin`],
      ['an empty fragment', `${WEB_CB}#`],
      ['the host in capitals', WEB_CB.replace('web.example.com', 'WEB.example.com')],
      ['the default port spelled out', WEB_CB.replace('web.example.com', 'web.example.com:443')],
      ['a dot segment', 'https://web.example.com/x/../callback'],
      ['a percent-encoded character', WEB_CB.replace('callback', 'c%61llback')],
      ['http for https', WEB_CB.replace('https:', 'http:')],
      ['another port on the loopback URI', LOOPBACK_CB.replace('8080', '8081')],
      ["another client's URI", SPA_CB],
    ])('refuses a redirect_uri that differs from the registered one by %s', async (_, redirectUri) => {
      const { err, targets } = await refused(base({ redirect_uri: redirectUri }));
      expect(err).toMatchObject({ code: 'invalid_request', redirectable: false, description: expect.stringMatching(/not registered/) });
      expect(targets).toEqual([]);
    });

    it('accepts each registered redirect URI exactly as registered', async () => {
      for (const redirectUri of [WEB_CB, LOOPBACK_CB]) expect((await accepted(base({ redirect_uri: redirectUri }))).ar.redirectUri).toBe(redirectUri);
    });

    it('checks the redirect URI before anything else: other errors with a bad redirect_uri are not redirected either', async () => {
      const { err, targets } = await refused(base({ redirect_uri: 'https://evil.example.com/', response_type: 'token', scope: undefined, prompt: 'bogus' }));
      expect(err).toMatchObject({ code: 'invalid_request', redirectable: false });
      expect(targets).toEqual([]);
    });
  });

  describe('the target of stage 2 errors', () => {
    it('is announced once the redirect URI is verified, with the state, before the next check fails', async () => {
      const { err, targets } = await refused(base({ response_type: 'token' }));
      expect(err).toMatchObject({ code: 'unsupported_response_type', redirectable: true });
      expect(targets).toEqual([{ redirectUri: WEB_CB, responseMode: 'query', state: 'st-1', interactionId: undefined }]);
    });

    it('carries form_post when asked, and the query for an unsupported or repeated response_mode (itself refused)', async () => {
      expect((await accepted(base({ response_mode: 'form_post' }))).targets[0]).toMatchObject({ responseMode: 'form_post' });
      expect((await accepted(base({ response_mode: 'query' }))).ar.responseMode).toBe('query');
      for (const mode of ['fragment', 'web_message', ['form_post', 'form_post']]) {
        const { err, targets } = await refused(base({ response_mode: mode }));
        expect(err).toMatchObject({ code: 'invalid_request', redirectable: true });
        expect(targets[0].responseMode).toBe('query');
      }
    });

    it('leaves out a state too long to echo (and refuses the request for it)', async () => {
      const { err, targets } = await refused(base({ state: 's'.repeat(2049) }));
      expect(err).toMatchObject({ code: 'invalid_request', description: 'the parameter state is too long' });
      expect(targets[0].state).toBeUndefined();
      expect((await accepted(base({ state: 's'.repeat(2048) }))).targets[0].state).toHaveLength(2048);
    });

    it("names a resumed interaction, whose id the error page needs", async () => {
      const interaction: Interaction = { id: 'interaction-1', params: {}, client_id: web.client_id, created_at: Date.now() };
      const { ar, targets } = await accepted(base(), interaction);
      expect(targets[0].interactionId).toBe('interaction-1');
      expect(ar.interaction).toBe(interaction);
    });
  });

  describe('stage 2: the request itself (back to the client)', () => {
    it.each<[string, Record<string, unknown>, string | RegExp, RegExp]>([
      ['a parameter given twice', { nonce: ['n1', 'n2'] }, 'invalid_request', /^the parameter nonce was given more than once$/],
      ['an oddly named parameter given twice, not named back', { 'x<script>': ['1', '2'] }, 'invalid_request', /^the parameter \(unnamed\) was given more than once$/],
      ['a parameter over 2,048 characters', { login_hint: 'h'.repeat(2049) }, 'invalid_request', /login_hint is too long/],
      ['a request object', { request: 'eyJ...' }, 'request_not_supported', /./],
      // CONTRACT §2: never ignored; a request_uri not pushed here (PAR, §11) is to be invalid_request_uri.
      ['a request_uri', { request_uri: 'urn:ietf:params:oauth:request_uri:abc' }, /^(request_uri_not_supported|invalid_request_uri)$/, /./],
      ['no response_type', { response_type: undefined }, 'invalid_request', /response_type is required/],
      ['response_type=token', { response_type: 'token' }, 'unsupported_response_type', /./],
      ['response_type=code id_token', { response_type: 'code id_token' }, 'unsupported_response_type', /./],
      ['response_type=CODE', { response_type: 'CODE' }, 'unsupported_response_type', /./],
    ])('refuses %s', async (_, extra, code, description) => {
      const { err, targets } = await refused(base(extra));
      expect(err).toMatchObject({ code: typeof code === 'string' ? code : expect.stringMatching(code), status: 400, redirectable: true, description: expect.stringMatching(description) });
      expect(targets).toHaveLength(1);
    });

    it('refuses a client without the authorization_code grant with unauthorized_client', async () => {
      const { err } = await refused(base({ client_id: machine.client_id }));
      expect(err).toMatchObject({ code: 'unauthorized_client', redirectable: true });
    });

    it('ignores values that are not strings (nested query objects) and keeps the parameters as strings', async () => {
      const { ar } = await accepted(base({ display: 'page', extra: { nested: 'x' }, max_age: '60' }));
      expect(ar.params).toEqual({ client_id: web.client_id, redirect_uri: WEB_CB, response_type: 'code', scope: 'openid', state: 'st-1', display: 'page', max_age: '60' });
    });

    it('returns the validated request', async () => {
      const { ar } = await accepted(base({ scope: 'openid profile', nonce: 'n-0S6', login_hint: 'ada@example.com', prompt: 'login', max_age: '300', code_challenge: CHALLENGE, code_challenge_method: 'S256' }));
      expect(ar).toMatchObject({
        redirectUri: WEB_CB, responseMode: 'query', state: 'st-1', scopes: ['openid', 'profile'], nonce: 'n-0S6', loginHint: 'ada@example.com',
        prompt: ['login'], maxAge: 300, codeChallenge: CHALLENGE, api: undefined, idTokenHintSub: undefined,
      });
      expect(ar.client.client_id).toBe(web.client_id);
      expect(loginCheckOf(ar)).toEqual({ params: ar.params, clientId: web.client_id, prompt: ['login'], maxAge: 300, idTokenHintSub: undefined, interaction: undefined });
    });
  });

  describe('PKCE (S256 only; required for public clients)', () => {
    it('requires a challenge from a public client', async () => {
      const { err } = await refused(base({ client_id: spa.client_id, redirect_uri: SPA_CB }));
      expect(err).toMatchObject({ code: 'invalid_request', description: expect.stringMatching(/PKCE .* required for public clients/) });
      const { ar } = await accepted(base({ client_id: spa.client_id, redirect_uri: SPA_CB, code_challenge: CHALLENGE, code_challenge_method: 'S256' }));
      expect(ar.codeChallenge).toBe(CHALLENGE);
    });

    it('lets a confidential client go without one', async () => {
      expect((await accepted(base())).ar.codeChallenge).toBeUndefined();
    });

    it.each<[string, Record<string, string>, RegExp]>([
      ['a method without a challenge', { code_challenge_method: 'S256' }, /without code_challenge/],
      ['a challenge without a method (plain by RFC 7636 §4.3)', { code_challenge: CHALLENGE }, /must be S256/],
      ['the plain method', { code_challenge: CHALLENGE, code_challenge_method: 'plain' }, /must be S256/],
      ['the method in lower case', { code_challenge: CHALLENGE, code_challenge_method: 's256' }, /must be S256/],
      ['a plain verifier sent as an S256 challenge', { code_challenge: 'v'.repeat(64), code_challenge_method: 'S256' }, /not a valid S256 challenge/],
      ['a challenge of 42 characters', { code_challenge: CHALLENGE.slice(0, 42), code_challenge_method: 'S256' }, /not a valid S256 challenge/],
      ['a padded challenge', { code_challenge: `${CHALLENGE}=`, code_challenge_method: 'S256' }, /not a valid S256 challenge/],
      ['an empty challenge', { code_challenge: '', code_challenge_method: 'S256' }, /not a valid S256 challenge/],
    ])('refuses %s, from any client', async (_, pkce, description) => {
      for (const client of [{ client_id: web.client_id, redirect_uri: WEB_CB }, { client_id: spa.client_id, redirect_uri: SPA_CB }]) {
        const { err } = await refused(base({ ...client, ...pkce }));
        expect(err).toMatchObject({ code: 'invalid_request', redirectable: true, description: expect.stringMatching(description) });
      }
    });
  });

  describe('prompt and max_age', () => {
    it.each<[string, string[]]>([
      ['none', ['none']],
      ['login consent', ['login', 'consent']],
      ['  select_account  ', ['select_account']],
      ['', []],
    ])('accepts prompt=%j as %j', async (prompt, expected) => {
      expect((await accepted(base({ prompt }))).ar.prompt).toEqual(expected);
    });

    it.each<[string, RegExp]>([
      ['create', /unsupported value/],
      ['NONE', /unsupported value/],
      ['login bogus', /unsupported value/],
      ['none login', /cannot be combined/],
      ['consent none', /cannot be combined/],
    ])('refuses prompt=%j', async (prompt, description) => {
      expect((await refused(base({ prompt }))).err).toMatchObject({ code: 'invalid_request', description: expect.stringMatching(description) });
    });

    it.each<[string, number]>([['0', 0], ['3600', 3600], ['999999999', 999_999_999]])('accepts max_age=%s', async (maxAge, expected) => {
      expect((await accepted(base({ max_age: maxAge }))).ar.maxAge).toBe(expected);
    });

    it.each(['', '-1', '1.5', '1e3', ' 60', '0x10', '1000000000'])('refuses max_age=%j', async (maxAge) => {
      expect((await refused(base({ max_age: maxAge }))).err).toMatchObject({ code: 'invalid_request', description: 'max_age must be a whole number of seconds' });
    });

    it('leaves max_age unset when absent', async () => {
      expect((await accepted(base())).ar.maxAge).toBeUndefined();
    });
  });

  describe('id_token_hint', () => {
    const now = () => Math.floor(Date.now() / 1000);

    it('takes the sub of an ID token we signed, expired or not, and of any length', async () => {
      const fresh = await keys.sign({ iss: ISSUER, sub: 'user-1', aud: web.client_id, iat: now(), exp: now() + 60 });
      expect((await accepted(base({ id_token_hint: fresh }))).ar.idTokenHintSub).toBe('user-1');
      // OIDC Core §3.1.2.1: an expired ID token is still a hint.
      const expired = await keys.sign({ iss: ISSUER, sub: 'user-2', aud: web.client_id, iat: now() - 7200, exp: now() - 3600 });
      expect((await accepted(base({ id_token_hint: expired }))).ar.idTokenHintSub).toBe('user-2');
      const long = await keys.sign({ iss: ISSUER, sub: 'user-3', aud: web.client_id, exp: now() + 60, name: 'n'.repeat(3000) });
      expect(long.length).toBeGreaterThan(2048);
      expect((await accepted(base({ id_token_hint: long }))).ar.idTokenHintSub).toBe('user-3');
    });

    it('refuses a token we did not sign, another issuer, one without sub, or garbage', async () => {
      const { kid, alg } = keys.current();
      const { privateKey } = await generateKeyPair(alg);
      const forged = await new SignJWT({ sub: 'user-1' }).setProtectedHeader({ alg, kid }).setIssuer(ISSUER).setExpirationTime('1m').sign(privateKey);
      const otherIssuer = await keys.sign({ iss: 'https://other.example.com', sub: 'user-1', exp: now() + 60 });
      const noSub = await keys.sign({ iss: ISSUER, exp: now() + 60 });
      const numericSub = await keys.sign({ iss: ISSUER, sub: 42 as unknown as string, exp: now() + 60 });
      const tampered = (await keys.sign({ iss: ISSUER, sub: 'user-1', exp: now() + 60 })).replace(/\.([^.]+)\./, (_, p: string) => `.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), sub: 'admin' })).toString('base64url')}.`);
      for (const hint of [forged, otherIssuer, noSub, numericSub, tampered, 'not-a-jwt', '']) {
        const { err } = await refused(base({ id_token_hint: hint }));
        expect(err).toMatchObject({ code: 'invalid_request', description: 'id_token_hint is not an ID token issued by this server' });
      }
    });
  });

  describe('audience and resource', () => {
    it.each<[string, Record<string, string>]>([
      ['audience', { audience: ORDERS }],
      ['resource', { resource: ORDERS }],
      ['both, naming the same API', { audience: ORDERS, resource: ORDERS }],
    ])('takes the API named by %s', async (_, target) => {
      expect((await accepted(base(target))).ar.api?.identifier).toBe(ORDERS);
    });

    it.each<[string, Record<string, string>, string]>([
      ['audience and resource naming different APIs', { audience: ORDERS, resource: REPORTS }, 'invalid_request'],
      ['an API not registered', { audience: 'https://nowhere.example.com/' }, 'invalid_target'],
      ['a resource not registered', { resource: `${ORDERS}/` }, 'invalid_target'],
      ['the admin API', { audience: `${ISSUER}/admin` }, 'invalid_target'],
    ])('refuses %s', async (_, target, code) => {
      expect((await refused(base(target))).err).toMatchObject({ code, redirectable: true });
    });
  });

  describe('scope', () => {
    it.each<[string, 'web' | 'limited', Record<string, string>, string, string[]]>([
      ['the OpenID scopes', 'web', {}, 'openid profile email offline_access', ['openid', 'profile', 'email', 'offline_access']],
      ['scopes twice', 'web', {}, 'openid profile openid', ['openid', 'profile']],
      ['unknown scopes (dropped, as Auth0 does)', 'web', {}, 'openid address admin', ['openid']],
      ["an API's scopes without its audience (dropped)", 'web', {}, 'openid read:orders', ['openid']],
      ["the API's scopes with its audience", 'web', { audience: ORDERS }, 'openid read:orders write:orders delete:orders', ['openid', 'read:orders', 'write:orders']],
      ["another API's scopes (dropped)", 'web', { audience: ORDERS }, 'read:orders read:reports', ['read:orders']],
      ['offline_access for an API that allows it', 'web', { audience: ORDERS }, 'openid offline_access', ['openid', 'offline_access']],
      ['offline_access for an API that does not allow it (dropped)', 'web', { audience: REPORTS }, 'openid offline_access read:reports', ['openid', 'read:reports']],
      ["scopes outside the client's `scope` (dropped; openid is always allowed)", 'limited', {}, 'openid profile email', ['openid', 'email']],
      ['offline_access from a client without the refresh_token grant (dropped)', 'limited', {}, 'openid offline_access', ['openid']],
      ["the API's scopes within the client's `scope`", 'limited', { audience: ORDERS }, 'read:orders write:orders', ['read:orders']],
    ])('grants %s', async (_, client, target, scope, expected) => {
      const clientId = client === 'limited' ? limited.client_id : web.client_id;
      expect((await accepted(base({ client_id: clientId, scope, ...target }))).ar.scopes).toEqual(expected);
    });

    it.each<[string, unknown]>([
      ['no scope', undefined],
      ['an empty scope', ''],
      ['only spaces', '   '],
    ])('refuses %s with invalid_scope', async (_, scope) => {
      expect((await refused(base({ scope }))).err).toMatchObject({ code: 'invalid_scope', description: expect.stringMatching(/scope is required/) });
    });

    it.each(['openid "profile"', 'openid a\\b', 'openid caf\u00e9'])('refuses a malformed scope (%j) with invalid_scope', async (scope) => {
      expect((await refused(base({ scope }))).err).toMatchObject({ code: 'invalid_scope', description: 'scope is malformed' });
    });

    it('refuses with invalid_scope when nothing requested is available to the client', async () => {
      expect((await refused(base({ scope: 'admin address' }))).err).toMatchObject({ code: 'invalid_scope', description: expect.stringMatching(/none of the requested scopes/) });
      expect((await refused(base({ client_id: limited.client_id, scope: 'offline_access' }))).err).toMatchObject({ code: 'invalid_scope' });
    });
  });
});
