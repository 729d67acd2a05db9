'use strict';
// The load generator, forked by bench/run.js (its own process, so it never shares an event loop
// with a measured server). One message in: { mode, target, workload, concurrency, duration,
// warmup, sessions }. `concurrency` virtual users each run one unit after another for warmup +
// duration seconds; the parent hears { type: 'phase', phase: 'measure' | 'end' } at the edges of
// the measured window and gets { type: 'result', ... } at the end. Every response is checked
// (status and body); every failure is counted with its message; every issued JWT is kept and
// verified against the server's JWKS afterwards (signature, alg, kid, iss, aud, typ, nonce, at_hash).
const { performance } = require('node:perf_hooks');
const { createHash } = require('node:crypto');
const { HttpClient, Jar, FORM, basic, form, json, snippet, authorize, redeem } = require('./lib/http');

const MAX_KEPT_TOKENS = 100_000;

process.once('message', (msg) => {
  main(msg).then(
    (res) => process.send({ type: 'result', ...res }, () => process.exit(0)),
    (err) => process.send({ type: 'error', message: err?.stack ?? String(err) }, () => process.exit(1)),
  );
});

async function main(spec) {
  const t = spec.target;
  const http = new HttpClient(new URL(t.issuer).origin, spec.concurrency + 2);
  try {
    if (spec.mode === 'prepare') return { sessions: await prepare(http, t, spec.concurrency) };
    return await run(http, t, spec);
  } finally {
    await http.close();
  }
}

/** Logged-in browser sessions with consent given (for the API and for /userinfo), one per virtual user. */
async function prepare(http, t, n) {
  const sessions = [];
  for (let i = 0; i < n; i++) {
    const jar = new Jar();
    const logins = { n: 0 };
    await redeem(http, t, await authorize(http, t, jar, { resource: true, pages: true, loginCount: logins }));
    await redeem(http, t, await authorize(http, t, jar, { resource: false, pages: true }));
    // From now on no page may show up: the session and both consents are in place.
    await redeem(http, t, await authorize(http, t, jar, { resource: true }));
    if (t.kind === 'ours' && logins.n !== 1) throw new Error(`prepare: expected one login, saw ${logins.n}`);
    sessions.push(jar.toJSON());
  }
  return sessions;
}

function workloads(http, t, sink) {
  const tokenPath = new URL(t.endpoints.token).pathname;
  const webAuth = t.web && basic(t.web.id, t.web.secret);
  const ccHeaders = { authorization: basic(t.m2m.id, t.m2m.secret), 'content-type': FORM };
  const ccBody = form({ grant_type: 'client_credentials', resource: t.api.identifier, scope: 'read:data' });
  const bearer = (tok, what, text) => {
    if (typeof tok.access_token !== 'string' || !/^bearer$/i.test(tok.token_type ?? '') || typeof tok.expires_in !== 'number') {
      throw new Error(`${what}: no access_token, token_type or expires_in: ${snippet(text)}`);
    }
  };
  const userTokens = async (vu, resource) => redeem(http, t, await authorize(http, t, vu.jar, { resource }));

  return {
    client_credentials: {
      async unit() {
        const res = await http.request('POST', tokenPath, { headers: ccHeaders, body: ccBody });
        const tok = json(res, 200, 'token (client_credentials)');
        bearer(tok, 'token (client_credentials)', res.text);
        sink({ at: tok.access_token, aud: t.api.identifier, client: t.m2m.id, sub: t.m2m.id });
      },
    },
    code: {
      async unit(vu) {
        const a = await authorize(http, t, vu.jar, { resource: true });
        const tok = await redeem(http, t, a);
        if (typeof tok.refresh_token !== 'string') throw new Error('token (code): no refresh_token');
        sink({ at: tok.access_token, id: tok.id_token, nonce: a.nonce, aud: t.api.identifier, client: t.web.id, sub: t.user.sub });
      },
    },
    refresh: {
      async setup(vu) {
        vu.rt = (await userTokens(vu, true)).refresh_token;
        if (!vu.rt) throw new Error('refresh setup: no refresh_token');
      },
      async unit(vu) {
        const res = await http.request('POST', tokenPath, {
          headers: { authorization: webAuth, 'content-type': FORM },
          body: form({ grant_type: 'refresh_token', refresh_token: vu.rt }),
        });
        const tok = json(res, 200, 'token (refresh_token)');
        bearer(tok, 'token (refresh_token)', res.text);
        if (typeof tok.refresh_token !== 'string' || tok.refresh_token === vu.rt) throw new Error('token (refresh_token): refresh token not rotated');
        if (typeof tok.id_token !== 'string') throw new Error('token (refresh_token): no id_token');
        vu.rt = tok.refresh_token;
        sink({ at: tok.access_token, id: tok.id_token, aud: t.api.identifier, client: t.web.id, sub: t.user.sub });
      },
      recover(vu) {
        return this.setup(vu);
      },
    },
    userinfo: {
      async setup(vu) {
        vu.at = (await userTokens(vu, false)).access_token;
        vu.auth = `Bearer ${vu.at}`;
      },
      async unit(vu) {
        const res = await http.request('GET', t.endpoints.userinfo, { headers: { authorization: vu.auth } });
        const info = json(res, 200, 'userinfo');
        if (info.sub !== t.user.sub || info.email !== t.user.email || info.name !== t.user.name) throw new Error(`userinfo: wrong claims ${snippet(res.text)}`);
      },
    },
    introspection: {
      async setup(vu) {
        vu.at = (await userTokens(vu, false)).access_token;
        vu.body = form({ token: vu.at });
      },
      async unit(vu) {
        const res = await http.request('POST', t.endpoints.introspection, { headers: { authorization: webAuth, 'content-type': FORM }, body: vu.body });
        const info = json(res, 200, 'introspection');
        if (info.active !== true || info.client_id !== t.web.id || info.sub !== t.user.sub) throw new Error(`introspection: ${snippet(res.text)}`);
      },
    },
    login: {
      async unit() {
        // A new browser: /authorize → login page → POST /login (argon2id) → back to the client (consent remembered).
        const logins = { n: 0 };
        await authorize(http, t, new Jar(), { resource: true, pages: true, loginCount: logins });
        if (logins.n !== 1) throw new Error(`login: ${logins.n} login forms`);
      },
    },
  };
}

async function run(http, t, spec) {
  const kept = [];
  let issued = 0;
  const sink = (entry) => {
    issued++;
    if (kept.length < MAX_KEPT_TOKENS) kept.push(entry);
    else {
      const j = Math.floor(Math.random() * issued); // reservoir sample past the cap
      if (j < MAX_KEPT_TOKENS) kept[j] = entry;
    }
  };
  const wl = workloads(http, t, sink)[spec.workload];
  if (!wl) throw new Error(`unknown workload ${spec.workload}`);

  const failures = { measured: 0, warmup: 0, setup: 0, messages: {} };
  const fail = (err, where) => {
    failures[where]++;
    const m = String(err?.message ?? err).slice(0, 200);
    failures.messages[m] = (failures.messages[m] ?? 0) + 1;
  };

  const sessions = spec.sessions ?? [];
  const vus = Array.from({ length: spec.concurrency }, (_, i) => ({ i, jar: sessions.length ? new Jar(sessions[i % sessions.length]) : undefined }));
  if (wl.setup) {
    await Promise.all(vus.map(async (vu) => {
      try {
        await wl.setup(vu);
      } catch (err) {
        fail(err, 'setup');
        vu.dead = true;
      }
    }));
  }

  let lat = new Float64Array(1 << 16);
  let units = 0;
  let warmupUnits = 0;
  const start = performance.now();
  const warmEnd = start + spec.warmup * 1000;
  const end = warmEnd + spec.duration * 1000;
  let cpu0;
  let cpuWall0;
  const tMeasure = setTimeout(() => {
    cpu0 = process.cpuUsage();
    cpuWall0 = performance.now();
    process.send({ type: 'phase', phase: 'measure' });
  }, spec.warmup * 1000);
  let genCpu;
  const tEnd = setTimeout(() => {
    const c = process.cpuUsage(cpu0);
    genCpu = ((c.user + c.system) / 1000 / (performance.now() - cpuWall0)) * 100;
    process.send({ type: 'phase', phase: 'end' });
  }, (spec.warmup + spec.duration) * 1000);

  const loop = async (vu) => {
    if (vu.dead) return;
    for (;;) {
      const s = performance.now();
      if (s >= end) return;
      try {
        await wl.unit(vu);
        if (s >= warmEnd) {
          if (units === lat.length) {
            const bigger = new Float64Array(lat.length * 2);
            bigger.set(lat);
            lat = bigger;
          }
          lat[units++] = performance.now() - s;
        } else warmupUnits++;
      } catch (err) {
        fail(err, s >= warmEnd ? 'measured' : 'warmup');
        if (wl.recover) await wl.recover(vu).catch((e) => fail(e, 'setup'));
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  };
  await Promise.all(vus.map(loop));
  // The last units may finish a little after the end; wait for the end message to have gone out.
  await new Promise((r) => setTimeout(r, Math.max(0, end - performance.now()) + 5));
  clearTimeout(tMeasure);
  clearTimeout(tEnd);

  const verify = await verifyTokens(http, t, kept);
  verify.issued = issued;
  return {
    units, seconds: spec.duration, warmupUnits, latencies: lat.slice(0, units), failures, verify, genCpu,
    deadVus: vus.filter((v) => v.dead).length,
  };
}

/** Every kept JWT: signature against the published JWKS (RSA 2048, RS256), iss, aud, typ, claims. */
async function verifyTokens(http, t, kept) {
  const out = { checked: 0, failed: 0, messages: {}, keys: [], sample: {} };
  if (!kept.length) return out;
  const { createLocalJWKSet, jwtVerify, decodeProtectedHeader } = await import('jose');
  const jwks = json(await http.request('GET', t.endpoints.jwks), 200, 'jwks');
  for (const k of jwks.keys) out.keys.push({ kty: k.kty, alg: k.alg, bits: k.n ? Buffer.from(k.n, 'base64url').length * 8 : undefined });
  const keySet = createLocalJWKSet(jwks);
  const bad = (m) => {
    out.failed++;
    out.messages[m] = (out.messages[m] ?? 0) + 1;
  };
  for (const e of kept) {
    try {
      const checks = [];
      if (e.at) checks.push(['at', e.at]);
      if (e.id) checks.push(['id', e.id]);
      for (const [kind, jwt] of checks) {
        const h = decodeProtectedHeader(jwt);
        if (!out.sample[kind]) out.sample[kind] = { header: h, payload: JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString()) };
        if (h.alg !== 'RS256' || !h.kid) throw new Error(`${kind}: header ${JSON.stringify(h)}`);
        if (kind === 'at') {
          const { payload } = await jwtVerify(jwt, keySet, { issuer: t.issuer, audience: e.aud, typ: 'at+jwt', algorithms: ['RS256'] });
          if (payload.client_id !== e.client || payload.sub !== e.sub || typeof payload.jti !== 'string' || typeof payload.scope !== 'string' || !payload.scope.split(' ').includes('read:data')) {
            throw new Error(`at: claims ${JSON.stringify(payload)}`);
          }
        } else {
          const { payload } = await jwtVerify(jwt, keySet, { issuer: t.issuer, audience: e.client, algorithms: ['RS256'] });
          if (payload.sub !== e.sub) throw new Error('id: wrong sub');
          if (e.nonce && payload.nonce !== e.nonce) throw new Error('id: wrong nonce');
          if (payload.email !== t.user.email || payload.name !== t.user.name) throw new Error('id: no profile/email claims');
          // at_hash is optional at the token endpoint (OIDC Core §3.1.3.6): oidc-provider omits it; ours sends it.
          if (e.at && payload.at_hash !== undefined) {
            const d = createHash('sha256').update(e.at).digest();
            if (payload.at_hash !== d.subarray(0, 16).toString('base64url')) throw new Error('id: wrong at_hash');
          }
        }
      }
      out.checked++;
    } catch (err) {
      bad(String(err?.message ?? err).slice(0, 200));
    }
  }
  return out;
}
