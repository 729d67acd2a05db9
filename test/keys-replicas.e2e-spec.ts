import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client as PgClient } from 'pg';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { ManualClock } from '@idp/core';
import { KeysService } from '@idp/keys';
import { ADMIN_CLIENT_ID, ADMIN_CLIENT_SECRET, TEST_DATABASE_URL, TestServer, basic, freshDatabase, onPostgres, startServer } from './support/server';
import { until } from './support/until';

/**
 * Two instances on one database (issue 19, items 3 and 4): booting at once they make one key set,
 * and a rotation on one is published by the other before either signs with the new key. Both
 * in-process servers run on one ManualClock, so they see the same time, and the test moves it past
 * the schedule's instants instead of waiting for them.
 */

/** Replicas of one IdP share its issuer (and the admin API's audience, ISSUER/admin, with it). */
const ISSUER = 'http://idp.replicas.test';

/** A new admin access token from `s` (never cached: the clock moves past a cached one's expiry). */
async function accessToken(s: TestServer): Promise<string> {
  const res = await fetch(`${s.url}/oauth/token`, {
    method: 'POST',
    headers: { authorization: basic(ADMIN_CLIENT_ID, ADMIN_CLIENT_SECRET), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', audience: `${ISSUER}/admin` }),
  });
  const body = await res.json();
  if (res.status !== 200) throw new Error(`token from ${s.url}: ${res.status} ${JSON.stringify(body)}`);
  return body.access_token;
}

async function jwks(s: TestServer): Promise<{ keys: { kid: string }[] }> {
  const res = await s.fetch('/.well-known/jwks.json');
  expect(res.status).toBe(200);
  return res.json();
}

const kids = async (s: TestServer) => (await jwks(s)).keys.map((k) => k.kid).sort();
const kidOf = (jwt: string) => decodeProtectedHeader(jwt).kid;

/** Verifies `token` as a relying party holding `holder`'s JWKS would. */
async function verifiesAgainst(token: string, holder: TestServer): Promise<void> {
  await expect(jwtVerify(token, createLocalJWKSet((await jwks(holder)) as never), { issuer: ISSUER, typ: 'at+jwt' })).resolves.toBeDefined();
}

const schemaOf = (databaseUrl: string) => new URL(databaseUrl).searchParams.get('schema')!;

async function storedKeys(databaseUrl: string): Promise<{ status: string; scheduled: boolean }[]> {
  const pg = new PgClient({ connectionString: TEST_DATABASE_URL });
  await pg.connect();
  try {
    const { rows } = await pg.query(`SELECT status, activates_at IS NOT NULL AS scheduled FROM "${schemaOf(databaseUrl)}".signing_keys ORDER BY status`);
    return rows;
  } finally {
    await pg.end();
  }
}

const describeOnPostgres = onPostgres ? describe : describe.skip;
if (!onPostgres) {
  console.warn('keys-replicas.e2e-spec: "two instances booting at once" needs PostgreSQL (TEST_DATABASE_URL=postgres://…): skipped on SQLite');
}

describeOnPostgres('two instances booting at once on a fresh PostgreSQL database', () => {
  it('make one key set, ten times out of ten: one signer and one next key, the same JWKS on both, A\'s token verifies against B\'s JWKS', async () => {
    for (let round = 0; round < 10; round++) {
      const db = await freshDatabase();
      const env = { ISSUER, DATABASE_URL: db.url, IDP_SECRET_KEY: randomBytes(32).toString('base64url') };
      const booted = await Promise.allSettled([startServer(env), startServer(env)]);
      const [a, b] = booted.map((r) => (r.status === 'fulfilled' ? r.value : undefined));
      try {
        for (const r of booted) if (r.status === 'rejected') throw new Error(`round ${round}: an instance failed to boot: ${r.reason}`);
        // Nor failed and was retried: @nestjs/typeorm retries a failed DataSource (e.g. both instances
        // running the migrations at once) 3 s later, and logs it as an error.
        expect([...a!.logs, ...b!.logs].filter((line) => /"level":"(error|fatal)"/.test(line))).toEqual([]);
        expect(await storedKeys(db.url)).toEqual([{ status: 'current', scheduled: true }, { status: 'next', scheduled: false }]);
        const published = await kids(a!);
        expect(published).toHaveLength(2);
        expect(await kids(b!)).toEqual(published);
        await verifiesAgainst(await accessToken(a!), b!);
        await verifiesAgainst(await accessToken(b!), a!);
      } finally {
        await Promise.all([a?.close(), b?.close()]);
        await db.drop();
      }
    }
  }, 180_000);
});

describe(`a rotation on one of two instances on one database (${onPostgres ? 'PostgreSQL' : 'SQLite file'})`, () => {
  let a: TestServer;
  let b: TestServer;
  let drop: () => Promise<void>;
  const clock = new ManualClock();

  beforeAll(async () => {
    let databaseUrl: string;
    if (onPostgres) {
      const db = await freshDatabase();
      databaseUrl = db.url;
      drop = db.drop;
    } else {
      const dir = mkdtempSync(join(tmpdir(), 'idp-replicas-'));
      databaseUrl = `sqlite:${join(dir, 'idp.sqlite')}`;
      drop = async () => rmSync(dir, { recursive: true, force: true });
    }
    const env = { ISSUER, DATABASE_URL: databaseUrl, IDP_SECRET_KEY: randomBytes(32).toString('base64url') };
    a = await startServer(env, undefined, { clock });
    b = await startServer(env, undefined, { clock });
  });
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await drop?.();
  });

  /**
   * How B learns of A's rotation: on PostgreSQL A's NOTIFY, at once (waited for here); on SQLite
   * its periodic reload (every 30 s of real time, so called here).
   */
  async function bLearns(what: string, check: (keys: KeysService) => boolean): Promise<void> {
    const keys = b.get(KeysService);
    // A change another instance announces (NOTIFY, then B's reload), not time passing.
    if (onPostgres) await until(`B sees ${what}`, () => check(keys));
    else await keys.reload();
    expect(check(keys)).toBe(true);
  }

  it('publishes the next key on B before A signs with it, switches both at activates_at, and unpublishes the previous key after publish_until', async () => {
    const first = await accessToken(a);
    const oldKid = kidOf(first);
    expect(kidOf(await accessToken(b))).toBe(oldKid);

    const rotated = await a.admin('POST', '/admin/keys/rotate', {}, await accessToken(a));
    expect(rotated.status).toBe(201);
    const newKid: string = rotated.body.kid;
    const activatesAt = new Date(rotated.body.activates_at).getTime();
    // The next key was created at boot, just now: it signs once it has been published for the lead.
    expect(rotated.body).toMatchObject({ status: 'next', alg: 'RS256' });
    expect(activatesAt).toBeGreaterThan(clock.now());
    expect(activatesAt).toBe(new Date(rotated.body.created_at).getTime() + 120_000);

    // At once: A still signs with the old key, and B already publishes the one that signs next.
    const beforeActivation = await accessToken(a);
    expect(kidOf(beforeActivation)).toBe(oldKid);
    await verifiesAgainst(beforeActivation, b);
    expect(await kids(b)).toContain(newKid);

    await bLearns('the schedule', (keys) => keys.list().some((k) => k.kid === newKid && k.activates_at === rotated.body.activates_at));

    // Past the activation, with no write and no reload: both sign with the new key.
    clock.set(activatesAt + 1_000);
    const afterActivation = await accessToken(a);
    expect(kidOf(afterActivation)).toBe(newKid);
    await verifiesAgainst(afterActivation, b);
    expect(kidOf(await accessToken(b))).toBe(newKid);

    const listed = (await a.admin('GET', '/admin/keys', undefined, await accessToken(a))).body.items as Record<string, string | null>[];
    const old = listed.find((k) => k.kid === oldKid)!;
    expect(listed.find((k) => k.kid === newKid)).toMatchObject({ status: 'current', activates_at: rotated.body.activates_at, publish_until: null });
    expect(old).toMatchObject({ status: 'previous', publish_until: expect.any(String) });
    // Until every token the old key signed has expired: its last one was signed just before activates_at.
    const publishUntil = new Date(old.publish_until!).getTime();
    expect(publishUntil).toBeGreaterThanOrEqual(activatesAt + 3600_000);
    expect(listed.filter((k) => k.status === 'next')).toHaveLength(1);
    expect(listed.filter((k) => k.status === 'current')).toHaveLength(1);

    clock.set(publishUntil - 1_000);
    expect(await kids(a)).toContain(oldKid);
    expect(await kids(b)).toContain(oldKid);
    clock.set(publishUntil + 1_000);
    expect(await kids(a)).not.toContain(oldKid);
    expect(await kids(b)).not.toContain(oldKid);

    // The next key (made by the rotation above) has now been published longer than the lead: the
    // next rotation makes it sign at once, and B published it long ago.
    const nextKid = listed.find((k) => k.status === 'next')!.kid!;
    expect(await kids(b)).toContain(nextKid);
    const again = await a.admin('POST', '/admin/keys/rotate', {}, await accessToken(a));
    expect(again.status).toBe(201);
    expect(again.body).toMatchObject({ kid: nextKid, status: 'current' });
    expect(new Date(again.body.activates_at).getTime()).toBeLessThanOrEqual(clock.now());
    const immediate = await accessToken(a);
    expect(kidOf(immediate)).toBe(nextKid);
    await verifiesAgainst(immediate, b);
    await bLearns('the second rotation', (keys) => keys.current().kid === nextKid);
    expect(kidOf(await accessToken(b))).toBe(nextKid);
    // Tokens the key before signed stay verifiable everywhere.
    expect(await kids(b)).toContain(newKid);
  });
});
