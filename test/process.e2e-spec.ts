import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Browser, signIn } from './support/browser';
import { basic, freePort } from './support/server';
import { until } from './support/until';

const ROOT = join(__dirname, '..');
const MAIN = join(ROOT, 'dist/apps/idp/src/main.js');

interface Run {
  proc: ChildProcess;
  stdout: string[];
  stderr: string;
  exited: Promise<number | null>;
  /** Emits 'change' for each whole line on stdout, and when the process exits. */
  events: EventEmitter;
}

function run(env: Record<string, string>, nodeArgs: string[] = []): Run {
  const proc = spawn(process.execPath, [...nodeArgs, MAIN], { cwd: ROOT, env: { PATH: process.env.PATH!, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const events = new EventEmitter();
  const r: Run = { proc, stdout: [], stderr: '', exited: new Promise((res) => proc.on('exit', (code) => res(code))), events };
  proc.on('exit', () => events.emit('change'));
  let buf = '';
  proc.stdout!.on('data', (d) => {
    buf += d;
    const lines = buf.split('\n');
    buf = lines.pop()!;
    r.stdout.push(...lines);
    if (lines.length) events.emit('change');
  });
  proc.stderr!.on('data', (d) => (r.stderr += d));
  return r;
}

/** The first line on stdout from `from` on that `matches`, once the process has printed it. */
function line(r: Run, what: string, matches: (l: string) => boolean, from = 0): Promise<string> {
  return until(what, () => {
    const found = r.stdout.slice(from).find(matches);
    if (found) return found;
    if (r.proc.exitCode !== null) throw new Error(`exited with ${r.proc.exitCode} before ${what}: ${r.stderr}`);
    return undefined;
  }, { wakeOn: [r.events, 'change'], timeoutMs: 20_000 });
}

async function ready(r: Run): Promise<{ url: string }> {
  return JSON.parse(await line(r, 'the ready line', (l) => l.includes('"ready: listening')));
}

describe('the server process (npm start)', () => {
  let dir: string;
  beforeAll(() => {
    // `npm start`'s build: tsc, then tsc-alias (the @idp/<lib> aliases as relative paths in dist/).
    execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT });
    dir = mkdtempSync(join(tmpdir(), 'idp-proc-'));
  }, 60_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each([
    [{ PORT: 'abc' }, 'PORT'],
    [{ PORT: '70000' }, 'PORT'],
    [{ ISSUER: 'not a url' }, 'ISSUER'],
    [{ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL'],
    [{ NODE_ENV: 'production', DATABASE_URL: 'sqlite::memory:' }, 'IDP_SECRET_KEY'],
    [{ IDP_SECRET_KEY: 'short' }, 'IDP_SECRET_KEY'],
    [{ IDP_ADMIN_CLIENT_ID: 'admin' }, 'IDP_ADMIN_CLIENT_SECRET'],
    [{ IDP_RATE_LIMIT: 'maybe' }, 'IDP_RATE_LIMIT'],
    [{ IDP_POOL_NICE: '20' }, 'IDP_POOL_NICE'],
    [{ SQLITE_SYNCHRONOUS: 'off' }, 'SQLITE_SYNCHRONOUS'],
    [{ SQLITE_CHECKPOINT: 'never' }, 'SQLITE_CHECKPOINT'],
  ])('refuses to start with %j, in one line naming %s and no stack', async (env, variable) => {
    const r = run({ DATABASE_URL: 'sqlite::memory:', ...env });
    expect(await r.exited).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(variable);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('starts on a SQLite file, logs a JSON ready line, keeps its keys across a restart, and stops cleanly on SIGTERM', async () => {
    const port = await freePort();
    const env = { PORT: String(port), HOST: '127.0.0.1', DATABASE_URL: `sqlite:${join(dir, 'idp.sqlite')}` };
    const first = run(env);
    const line = await ready(first);
    expect(line.url).toBe(`http://127.0.0.1:${port}`);
    for (const l of first.stdout) expect(() => JSON.parse(l)).not.toThrow();
    expect(await (await fetch(`${line.url}/health/ready`)).json()).toEqual({ status: 'ok', database: 'up' });
    const jwks1 = await (await fetch(`${line.url}/.well-known/jwks.json`)).json();
    // The generated development secret key sits beside the database, readable by its owner only.
    expect(statSync(join(dir, 'secret.key')).mode & 0o077).toBe(0);
    first.proc.kill('SIGTERM');
    expect(await first.exited).toBe(0);

    const second = run(env);
    await ready(second);
    const jwks2 = await (await fetch(`${line.url}/.well-known/jwks.json`)).json();
    expect(jwks2.keys.map((k: { kid: string }) => k.kid)).toEqual(jwks1.keys.map((k: { kid: string }) => k.kid));
    second.proc.kill('SIGTERM');
    expect(await second.exited).toBe(0);

    const wrongKey = run({ ...env, IDP_SECRET_KEY: 'x'.repeat(40) });
    expect(await wrongKey.exited).toBe(1);
    expect(wrongKey.stderr).toContain('IDP_SECRET_KEY cannot decrypt');
    expect(wrongKey.stderr).not.toMatch(/\n\s+at /);
  }, 60_000);

  it('PORT=0 listens on a free port and the default issuer names it', async () => {
    const r = run({ PORT: '0', HOST: '127.0.0.1', DATABASE_URL: 'sqlite::memory:' });
    const line = await ready(r);
    const meta = await (await fetch(`${line.url}/.well-known/openid-configuration`)).json();
    expect(meta.issuer).toBe(line.url.replace('127.0.0.1', 'localhost'));
    r.proc.kill('SIGTERM');
    expect(await r.exited).toBe(0);
  }, 30_000);

  (process.platform === 'linux' ? it : it.skip)('runs the thread pool (signing, hashing) at a lower priority than the event loop, unless IDP_POOL_NICE=0', async () => {
    const nices = (pid: number) =>
      readdirSync(`/proc/${pid}/task`).map((tid) => {
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        return { tid: Number(tid), nice: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]) };
      });
    for (const [env, expected] of [[{}, 10], [{ IDP_POOL_NICE: '7' }, 7], [{ IDP_POOL_NICE: '0' }, 0]] as const) {
      const r = run({ PORT: '0', HOST: '127.0.0.1', DATABASE_URL: 'sqlite::memory:', ...env });
      const line = (await ready(r)) as { url: string; pool_threads_reniced: number };
      const threads = nices(r.proc.pid!);
      expect(line.pool_threads_reniced).toBe(expected ? 4 : 0);
      expect(threads.filter((t) => t.nice === expected && expected > 0)).toHaveLength(expected ? 4 : 0);
      // The event loop (the main thread, whose id is the pid) and every other thread keep nice 0.
      expect(threads.find((t) => t.tid === r.proc.pid)?.nice).toBe(0);
      expect(threads.filter((t) => t.nice !== 0)).toHaveLength(expected ? 4 : 0);
      // And it serves.
      expect((await fetch(`${line.url}/.well-known/jwks.json`)).status).toBe(200);
      r.proc.kill('SIGTERM');
      expect(await r.exited).toBe(0);
    }
  }, 60_000);

  it('keeps no async-context hook switched on once requests are served, and stops cleanly on SIGTERM right after them', async () => {
    // Node.js 20 runs a promise hook for every promise while any AsyncLocalStorage is on (docs/performance.md,
    // ninth round): the request context is passed by hand, and the boot context and SQLite's TypeORM
    // transactions switch theirs off when done. The probe (a --require script) reports on SIGUSR2.
    const admin = { id: 'probe-admin', secret: randomBytes(24).toString('base64url') };
    const r = run(
      { PORT: '0', HOST: '127.0.0.1', DATABASE_URL: `sqlite:${join(dir, 'probe.sqlite')}`, IDP_ADMIN_CLIENT_ID: admin.id, IDP_ADMIN_CLIENT_SECRET: admin.secret },
      ['--require', join(__dirname, 'support/async-probe.js')],
    );
    const { url } = await ready(r);
    const probe = async (): Promise<number> => {
      const before = r.stdout.length;
      r.proc.kill('SIGUSR2');
      return JSON.parse(await line(r, 'the probe\'s line', (l) => l.includes('"probe":"async-hooks"'), before)).execution_async_id;
    };
    expect(await probe()).toBe(0); // after the boot

    const form = (path: string, body: Record<string, string>, auth: string) =>
      fetch(`${url}${path}`, { method: 'POST', headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(body) });
    const token = await (await form('/oauth/token', { grant_type: 'client_credentials', audience: `${url.replace('127.0.0.1', 'localhost')}/admin` }, basic(admin.id, admin.secret))).json();
    expect(token.access_token).toEqual(expect.any(String));
    const call = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${token.access_token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
      return { status: res.status, body: await res.json().catch(() => undefined) };
    };
    const user = { email: 'probe@example.com', password: 'a long enough password' };
    expect((await call('POST', '/admin/users', user)).status).toBe(201);
    const client = (await call('POST', '/admin/clients', { redirect_uris: ['https://app.example.com/cb'], grant_types: ['authorization_code', 'refresh_token'] })).body;
    // A TypeORM transaction (the key rotation's) on SQLite switches the gate's storage on, then off.
    expect((await call('POST', '/admin/keys/rotate', {})).status).toBeLessThan(300);

    // A whole code flow through the pages: login, consent (a TypeORM transaction), the code's redemption.
    const verifier = randomBytes(32).toString('base64url');
    const page = await signIn(new Browser(url), `${url}/authorize?${new URLSearchParams({
      response_type: 'code', client_id: client.client_id, redirect_uri: 'https://app.example.com/cb', scope: 'openid offline_access',
      code_challenge: createHash('sha256').update(verifier).digest('base64url'), code_challenge_method: 'S256',
    })}`, user);
    const code = new URL(page.url).searchParams.get('code')!;
    const tokens = await (await form('/oauth/token', { grant_type: 'authorization_code', code, redirect_uri: 'https://app.example.com/cb', code_verifier: verifier }, basic(client.client_id, client.client_secret))).json();
    expect(tokens.id_token).toEqual(expect.any(String));
    const refreshed = await form('/oauth/token', { grant_type: 'refresh_token', refresh_token: tokens.refresh_token }, basic(client.client_id, client.client_secret));
    expect(refreshed.status).toBe(200);

    expect(await probe()).toBe(0);
    // SIGTERM straight after a request.
    const last = fetch(`${url}/userinfo`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
    expect((await last).status).toBe(200);
    r.proc.kill('SIGTERM');
    // 0: a clean shutdown (run.ts's watchdog would end a stuck one with 1).
    expect(await r.exited).toBe(0);
  }, 60_000);
});
