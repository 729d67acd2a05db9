// oidc-provider (the reference), configured as close to our server as it allows:
// RS256 with one 2048-bit key, JWT access tokens (RFC 9068) for the bench API through resource
// indicators, the same clients (ids and secrets copied from ours), refresh-token rotation, PKCE,
// introspection, userinfo, the same claims in the ID token (conformIdTokenClaims off, as ours puts
// the profile and email claims in it). Interactions complete themselves (login as the bench user,
// consent to everything asked): the load generator drives them once per session to establish it.
//
// Configuration: BENCH_OIDC (JSON) = { port, issuer, api: { identifier, scopes, lifetime },
//   clients: [oidc-provider client metadata], user: { sub, email, name, email_verified, updated_at },
//   adapter: 'map' | 'memory' }.
// Prints `ready <url>` on stdout when listening.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider, { errors } from 'oidc-provider';

const cfg = JSON.parse(process.env.BENCH_OIDC);

// --- persistence -----------------------------------------------------------------------------
// The stock MemoryAdapter is an LRU of 1,000 entries that rescans every token of a grant on each
// write (meant for development). 'map' (the default here) is what a key-value store adapter does:
// a Map with expiry, a set of token keys per grant; every code, token, session and grant is still
// really stored and looked up.
const grantable = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);
const store = new Map();
const grants = new Map();
const sessionUids = new Map();
const userCodes = new Map();
const epoch = () => Math.floor(Date.now() / 1000);

class MapAdapter {
  constructor(model) {
    this.model = model;
  }
  key(id) {
    return `${this.model}:${id}`;
  }
  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    store.set(key, { payload, exp: typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity });
    if (grantable.has(this.model) && payload.grantId) {
      let set = grants.get(payload.grantId);
      if (!set) grants.set(payload.grantId, (set = new Set()));
      set.add(key);
    }
    if (this.model === 'Session') sessionUids.set(payload.uid, id);
    if (payload.userCode) userCodes.set(payload.userCode, id);
  }
  async find(id) {
    const key = this.key(id);
    const e = store.get(key);
    if (!e) return undefined;
    if (e.exp <= Date.now()) {
      store.delete(key);
      return undefined;
    }
    return e.payload;
  }
  async findByUid(uid) {
    const id = sessionUids.get(uid);
    return id ? this.find(id) : undefined;
  }
  async findByUserCode(code) {
    const id = userCodes.get(code);
    return id ? this.find(id) : undefined;
  }
  async consume(id) {
    const e = store.get(this.key(id));
    if (e) e.payload.consumed = epoch();
  }
  async destroy(id) {
    store.delete(this.key(id));
  }
  async revokeByGrantId(grantId) {
    const set = grants.get(grantId);
    if (!set) return;
    for (const key of set) store.delete(key);
    grants.delete(grantId);
  }
}
// Expired entries go every 10 s (codes live 60 s), like a store with TTLs would drop them.
setInterval(() => {
  const now = Date.now();
  for (const [k, e] of store) if (e.exp <= now) store.delete(k);
}, 10_000).unref();

// --- keys ------------------------------------------------------------------------------------
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: randomBytes(8).toString('base64url'), alg: 'RS256', use: 'sig' };

// --- the account -----------------------------------------------------------------------------
const user = cfg.user;
async function findAccount(_ctx, sub) {
  if (sub !== user.sub) return undefined;
  return {
    accountId: sub,
    async claims() {
      return { sub, name: user.name, updated_at: user.updated_at, email: user.email, email_verified: user.email_verified };
    },
  };
}

const api = cfg.api;
const configuration = {
  ...(cfg.adapter === 'memory' ? {} : { adapter: MapAdapter }),
  clients: cfg.clients,
  jwks: { keys: [jwk] },
  findAccount,
  // auth_time and amr in the ID token, as ours (sid and at_hash oidc-provider only adds with front/back-channel logout and at the authorization endpoint).
  claims: { openid: ['sub', 'auth_time', 'amr'], profile: ['name', 'updated_at'], email: ['email', 'email_verified'] },
  conformIdTokenClaims: false,
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  enabledJWA: { idTokenSigningAlgValues: ['RS256'] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    userinfo: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (_ctx, _client, oneOf) => oneOf,
      // Like ours: the code and refresh grants keep the API the authorization request named.
      useGrantedResource: () => true,
      getResourceServerInfo(_ctx, indicator) {
        if (indicator !== api.identifier) throw new errors.InvalidTarget();
        return {
          scope: api.scopes.join(' '),
          audience: api.identifier,
          accessTokenTTL: api.lifetime,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  // offline_access is dropped by oidc-provider unless prompt=consent; ours issues a refresh token
  // whenever offline_access is granted. Issue one to every code flow of a client with the
  // refresh_token grant, not bound to the browser session (as offline_access would be).
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  expiresWithSession: async () => false,
  rotateRefreshToken: () => true,
  pkce: { required: () => false },
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 60,
    ClientCredentials: api.lifetime,
    IdToken: 3600,
    RefreshToken: 30 * 24 * 3600,
    Interaction: 3600,
    Session: 14 * 24 * 3600,
    Grant: 30 * 24 * 3600,
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  // Nothing on the console per request.
  renderError: async (ctx, out) => {
    ctx.type = 'json';
    ctx.body = out;
  },
};

const provider = new Provider(cfg.issuer, configuration);
provider.on('server_error', (_ctx, err) => process.stderr.write(`server_error: ${err?.stack ?? err}\n`));

// Interactions complete themselves: login as the bench user, then consent to all that is asked.
provider.use(async (ctx, next) => {
  if (ctx.method !== 'GET' || !ctx.path.startsWith('/interaction/')) return next();
  const { prompt, params, session, grantId } = await provider.interactionDetails(ctx.req, ctx.res);
  let result;
  if (prompt.name === 'login') {
    result = { login: { accountId: user.sub, amr: ['pwd'] } };
  } else if (prompt.name === 'consent') {
    const grant = grantId ? await provider.Grant.find(grantId) : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    const d = prompt.details;
    if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
    if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
    if (d.missingResourceScopes) for (const [indicator, scopes] of Object.entries(d.missingResourceScopes)) grant.addResourceScope(indicator, scopes.join(' '));
    result = { consent: { grantId: await grant.save() } };
  } else {
    ctx.status = 400;
    ctx.body = { error: `unexpected prompt ${prompt.name}` };
    return undefined;
  }
  const to = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
  ctx.status = 303;
  ctx.redirect(to);
  return undefined;
});

const server = provider.listen(cfg.port, '127.0.0.1', () => {
  process.stdout.write(`ready ${cfg.issuer}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
