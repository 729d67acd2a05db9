'use strict';
// Registers the bench's API, clients, client grant and user on our server through the admin API,
// and describes the same set-up for oidc-provider (same client ids and secrets).
const { HttpClient, FORM, basic, form, json, discover } = require('./http');

const API = { identifier: 'https://api.bench.example/', name: 'Bench API', scopes: ['read:data', 'write:data'], lifetime: 3600 };
const REDIRECT_URI = 'http://127.0.0.1:8080/callback';
const USER = { email: 'bench@example.com', password: 'correct horse battery staple', name: 'Bench User', email_verified: true };
const SCOPE_USER = 'openid profile email offline_access';
const SCOPE_API = `${SCOPE_USER} read:data`;

async function setupOurs(issuer, admin) {
  const http = new HttpClient(issuer, 2);
  try {
    const tok = json(await http.request('POST', '/oauth/token', {
      headers: { authorization: basic(admin.id, admin.secret), 'content-type': FORM },
      body: form({ grant_type: 'client_credentials', audience: `${issuer}/admin` }),
    }), 200, 'admin token');
    const call = async (path, body) => json(await http.request('POST', path, {
      headers: { authorization: `Bearer ${tok.access_token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    }), 201, `POST ${path}`);
    await call('/admin/apis', {
      identifier: API.identifier, name: API.name, token_lifetime: API.lifetime, allow_offline_access: true,
      scopes: API.scopes.map((value) => ({ value, description: `Bench ${value}` })),
    });
    const m2m = await call('/admin/clients', { client_name: 'Bench job', grant_types: ['client_credentials'] });
    await call('/admin/client-grants', { client_id: m2m.client_id, audience: API.identifier, scope: API.scopes });
    const web = await call('/admin/clients', {
      client_name: 'Bench web app', redirect_uris: [REDIRECT_URI], grant_types: ['authorization_code', 'refresh_token'],
    });
    const user = await call('/admin/users', USER);
    return describe(issuer, await discover(http, issuer), {
      web: { id: web.client_id, secret: web.client_secret },
      m2m: { id: m2m.client_id, secret: m2m.client_secret },
      user: { ...USER, sub: user.user_id ?? user.id },
    });
  } finally {
    await http.close();
  }
}

/** The target description the load generator works from. */
function describe(issuer, endpoints, { web, m2m, user }) {
  return { issuer, endpoints, api: API, web, m2m, user, redirectUri: REDIRECT_URI, scopeUser: SCOPE_USER, scopeApi: SCOPE_API };
}

/** oidc-provider's configuration mirroring ours (`t` from setupOurs). */
function oidcConfig(t, adapter = 'map') {
  return {
    adapter,
    api: API,
    user: { sub: t.user.sub, email: t.user.email, name: t.user.name, email_verified: true, updated_at: Math.floor(Date.now() / 1000) },
    clients: [
      {
        client_id: t.web.id, client_secret: t.web.secret, redirect_uris: [REDIRECT_URI], response_types: ['code'],
        grant_types: ['authorization_code', 'refresh_token'], token_endpoint_auth_method: 'client_secret_basic',
        id_token_signed_response_alg: 'RS256',
      },
      {
        client_id: t.m2m.id, client_secret: t.m2m.secret, redirect_uris: [], response_types: [],
        grant_types: ['client_credentials'], token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
  };
}

async function describeRemote(issuer, copyFrom) {
  const http = new HttpClient(issuer, 1);
  try {
    return describe(issuer, await discover(http, issuer), copyFrom);
  } finally {
    await http.close();
  }
}

module.exports = { API, REDIRECT_URI, USER, SCOPE_API, SCOPE_USER, setupOurs, oidcConfig, describe, describeRemote };
