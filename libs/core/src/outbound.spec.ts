import { closeLocalServers, serveLocal } from '../../../test/support/local-http';
import type { ServerResponse } from 'node:http';
import { FetchImplementation, createRemoteJWKSet, exportJWK, generateKeyPair, SignJWT, jwtVerify, customFetch } from 'jose';
import { OUTBOUND_MAX_BYTES, OUTBOUND_USER_AGENT, OutboundClient, OutboundError, OutboundMode, OutboundResolver } from './outbound';

/**
 * The outbound HTTP client (CONTRACT §1 IDP_OUTBOUND): the address policy at registration and on
 * the resolved address at fetch time, and the limits of every fetch, against real HTTP servers on
 * 127.0.0.1.
 */

const serve = serveLocal;
afterAll(closeLocalServers);

/** The reason of the OutboundError a fetch rejects with. */
async function reason(p: Promise<unknown>): Promise<string> {
  const err = await p.then(() => undefined, (e) => e);
  expect(err).toBeInstanceOf(OutboundError);
  return (err as OutboundError).reason;
}

const local = new OutboundClient({ mode: 'local' });
const pub = new OutboundClient({ mode: 'public' });

describe('OutboundClient.urlProblem (registration: the literal host, no DNS)', () => {
  const client = (mode: OutboundMode) => (mode === 'public' ? pub : local);

  it.each<[string, boolean, boolean]>([
    // [url, allowed with IDP_OUTBOUND=public, allowed with IDP_OUTBOUND=local]
    ['http://169.254.169.254/latest/meta-data/', false, false],
    ['https://169.254.169.254/', false, false],
    ['http://metadata.google.internal/computeMetadata/v1/', false, false],
    ['https://METADATA.google.internal./', false, false],
    ['http://[fe80::1]/', false, false],
    ['https://[fd00:ec2::254]/', false, false],
    ['http://[fd00:ec2::254]/latest/meta-data/', false, false],
    ['https://100.100.100.200/', false, false],
    ['http://10.0.0.1/jwks', false, true],
    ['https://10.0.0.1/jwks', false, true],
    ['http://192.168.1.1/jwks', false, true],
    ['http://172.16.0.1/jwks', false, true],
    ['http://100.64.0.1/jwks', false, true],
    ['https://[fd12:3456::1]/jwks', false, true],
    ['http://0.0.0.0:6379/', false, false],
    ['http://[::]/', false, false],
    ['http://224.0.0.1/', false, false],
    ['http://255.255.255.255/', false, false],
    ['https://192.0.2.1/jwks', false, false],
    ['https://[2001:db8::1]/jwks', false, false],
    ['https://[::7f00:1]/jwks', false, false],
    ['http://127.0.0.1:6379/', false, true],
    ['http://0x7f.1:6379/', false, true],
    ['http://2130706433:6379/', false, true],
    ['http://localhost:6379/', false, true],
    ['http://redis.localhost:6379/', false, true],
    ['http://[::1]/', false, true],
    ['http://[::ffff:127.0.0.1]:6379/', false, true],
    ['http://[::ffff:169.254.169.254]/', false, false],
    ['http://[::ffff:0.0.0.0]/', false, false],
    ['http://public.example.com/jwks', false, true],
    ['http://93.184.215.14/jwks', false, false],
    ['https://93.184.215.14/jwks', true, true],
    ['https://[2606:4700::1111]/jwks', true, true],
    ['https://keys.example.com/jwks', true, true],
    ['https://user:pw@keys.example.com/jwks', false, false],
    ['ftp://keys.example.com/jwks', false, false],
    ['file:///etc/passwd', false, false],
    ['not a url', false, false],
  ])('%s: public %s, local %s', (url, inPublic, inLocal) => {
    expect(client('public').urlProblem(url) === undefined).toBe(inPublic);
    expect(client('local').urlProblem(url) === undefined).toBe(inLocal);
  });

  it('says what is wrong, for an admin to act on', () => {
    expect(pub.urlProblem('http://keys.example.com/jwks')).toBe('must be an https URL');
    expect(pub.urlProblem('https://10.0.0.1/jwks')).toMatch(/loopback or private.*IDP_OUTBOUND=public/);
    expect(local.urlProblem('http://169.254.169.254/')).toMatch(/link-local, cloud metadata/);
  });
});

describe('OutboundClient.fetch', () => {
  it('answers a 200 under the limit with its body and headers, sending a fixed User-Agent and no cookie', async () => {
    const s = await serve((req, res) => res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': 'a=b' }).end('{"keys":[]}'));
    const res = await local.fetch(`${s.url}/jwks.json?x=1`, { headers: { 'user-agent': 'spoofed', cookie: 'session=secret', accept: 'application/json' } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ keys: [] });
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.headers.get('set-cookie')).toBeNull();
    const [req] = s.requests;
    expect(req.url).toBe('/jwks.json?x=1');
    expect(req.headers).toMatchObject({ 'user-agent': OUTBOUND_USER_AGENT, accept: 'application/json' });
    expect(req.headers.cookie).toBeUndefined();
  });

  it('POSTs a form (for back-channel calls), and refuses a header fetch would refuse', async () => {
    let received = '';
    const s = await serve((req, res) => {
      req.setEncoding('utf8');
      req.on('data', (d) => (received += d));
      req.on('end', () => res.writeHead(204).end());
    });
    const res = await local.fetch(s.url, { method: 'POST', body: new URLSearchParams({ logout_token: 'x' }) });
    expect(res.status).toBe(204);
    expect(s.requests[0]).toMatchObject({ method: 'POST', headers: expect.objectContaining({ 'content-type': 'application/x-www-form-urlencoded' }) });
    expect(received).toBe('logout_token=x');
    expect(await reason(local.fetch(s.url, { headers: { 'x-bad': 'a\nb' } }))).toBe('invalid request');
  });

  it('accepts a body of exactly the limit', async () => {
    const s = await serve((_, res) => res.writeHead(200).end(Buffer.alloc(OUTBOUND_MAX_BYTES, 'a')));
    expect((await (await local.fetch(s.url)).arrayBuffer()).byteLength).toBe(OUTBOUND_MAX_BYTES);
  });

  it('refuses a body that streams 128 MiB as too large, closing the socket long before the server is done', async () => {
    let written = 0;
    let closed!: () => void;
    const serverClosed = new Promise<void>((resolve) => (closed = resolve));
    const s = await serve((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }); // chunked: no length to refuse up front
      const chunk = Buffer.alloc(64 * 1024, 'a');
      res.on('close', closed);
      const pump = () => {
        while (written < 128 * 1024 * 1024 && !res.destroyed) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    });
    expect(await reason(local.fetch(s.url))).toBe('too large');
    await serverClosed;
    expect(written).toBeLessThan(8 * 1024 * 1024);
  });

  it('refuses a declared Content-Length over the limit before reading the body', async () => {
    const s = await serve((_, res) => {
      res.writeHead(200, { 'content-length': String(128 * 1024 * 1024) });
      res.write(Buffer.alloc(1024));
    });
    expect(await reason(local.fetch(s.url))).toBe('too large');
  });

  it('refuses a redirect and never follows it', async () => {
    const target = await serve((_, res) => res.writeHead(200).end('{"keys":[]}'));
    const s = await serve((_, res) => res.writeHead(302, { location: `${target.url}/jwks.json` }).end());
    expect(await reason(local.fetch(s.url, { redirect: 'follow' }))).toBe('redirect refused');
    expect(target.connections).toBe(0);
  });

  it.each([404, 500, 503])('refuses an HTTP %s', async (status) => {
    const s = await serve((_, res) => res.writeHead(status).end('{"keys":[]}'));
    expect(await reason(local.fetch(s.url))).toBe(`http status ${status}`);
  });

  describe('with a fake clock', () => {
    beforeEach(() => jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] }));
    afterEach(() => jest.useRealTimers());

    it.each<[string, (res: ServerResponse) => void]>([
      ['never answers', () => undefined],
      ['sends its headers and then part of the body only', (res) => res.writeHead(200).write('{"keys":[')],
    ])('gives up after 5 s on a server that %s', async (_, answer) => {
      let seen!: () => void;
      const requested = new Promise<void>((resolve) => (seen = resolve));
      const s = await serve((_, res) => {
        answer(res);
        seen();
      });
      let settled = false;
      const fetched = local.fetch(s.url).finally(() => (settled = true));
      const outcome = reason(fetched);
      await requested;
      await jest.advanceTimersByTimeAsync(4_999);
      expect(settled).toBe(false);
      await jest.advanceTimersByTimeAsync(1);
      expect(await outcome).toBe('timeout');
    });
  });

  it('stops when the caller aborts', async () => {
    const s = await serve(() => undefined);
    const ac = new AbortController();
    const fetched = local.fetch(s.url, { signal: ac.signal });
    ac.abort();
    expect(await reason(fetched)).toBe('aborted');
  });

  describe('the address policy at fetch time', () => {
    it('with IDP_OUTBOUND=public, refuses http, and https to loopback without connecting', async () => {
      const s = await serve((_, res) => res.writeHead(200).end('{}'));
      expect(await reason(pub.fetch(s.url))).toBe('scheme not allowed');
      expect(await reason(pub.fetch(`https://127.0.0.1:${s.port}/`))).toBe('address not allowed');
      expect(await reason(pub.fetch(`https://localhost:${s.port}/`))).toBe('address not allowed');
      expect(s.connections).toBe(0);
    });

    it('with IDP_OUTBOUND=local, refuses link-local and metadata literals without connecting', async () => {
      for (const url of ['http://169.254.169.254/latest/meta-data/', 'http://[::ffff:169.254.169.254]/', 'http://[fd00:ec2::254]/', 'http://0.0.0.0/']) {
        expect(await reason(local.fetch(url))).toBe('address not allowed');
      }
    });

    /** A client whose DNS answers `name` with `addresses` (and records what was asked). */
    function resolving(mode: OutboundMode, addresses: string[]): { client: OutboundClient; asked: string[] } {
      const asked: string[] = [];
      const resolve: OutboundResolver = async (hostname) => {
        asked.push(hostname);
        return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
      };
      return { client: new OutboundClient({ mode, resolve }), asked };
    }

    it.each<[OutboundMode, string, string[]]>([
      ['local', 'http', ['169.254.169.254']],
      ['local', 'https', ['169.254.169.254']],
      ['local', 'https', ['fd00:ec2::254']],
      ['local', 'http', ['::ffff:169.254.169.254']],
      ['local', 'http', ['127.0.0.1', '169.254.169.254']],
      ['local', 'http', ['93.184.215.14']],
      ['public', 'https', ['10.0.0.1']],
      ['public', 'https', ['127.0.0.1']],
      ['public', 'https', ['::1']],
      ['public', 'https', ['100.64.0.1']],
      ['public', 'https', ['93.184.215.14', '192.168.1.1']],
    ])('with IDP_OUTBOUND=%s, refuses %s to a name that resolves to %j', async (mode, scheme, addresses) => {
      const { client, asked } = resolving(mode, addresses);
      expect(client.urlProblem(`${scheme}://keys.example.com/jwks`)).toBeUndefined(); // fine at registration
      expect(await reason(client.fetch(`${scheme}://keys.example.com/jwks`))).toBe('address not allowed');
      expect(asked).toEqual(['keys.example.com']);
    });

    it('connects to the address the name resolved to, once allowed', async () => {
      const s = await serve((_, res) => res.writeHead(200).end('{"keys":[]}'));
      const { client, asked } = resolving('local', ['127.0.0.1']);
      const res = await client.fetch(`http://keys.example.com:${s.port}/jwks`);
      expect(await res.json()).toEqual({ keys: [] });
      expect(asked).toEqual(['keys.example.com']);
      expect(s.requests[0].headers.host).toBe(`keys.example.com:${s.port}`);
    });

    it('refuses metadata.google.internal by name, without asking DNS', async () => {
      const { client, asked } = resolving('local', ['127.0.0.1']);
      expect(await reason(client.fetch('http://metadata.google.internal/computeMetadata/v1/'))).toBe('address not allowed');
      expect(asked).toEqual([]);
    });

    it('fails a name that does not resolve', async () => {
      const client = new OutboundClient({ mode: 'local', resolve: async () => Promise.reject(Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' })) });
      expect(await reason(client.fetch('http://nowhere.example.com/'))).toBe('dns lookup failed');
    });
  });

  it("serves as jose's customFetch for a remote JWK Set", async () => {
    const pair = await generateKeyPair('ES256');
    const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256' }] });
    const s = await serve((_, res) => res.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(jwks));
    const fetchImpl: FetchImplementation = (url, init) => local.fetch(url, init);
    const keys = createRemoteJWKSet(new URL(`${s.url}/jwks`), { [customFetch]: fetchImpl });
    const jwt = await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(pair.privateKey);
    await expect(jwtVerify(jwt, keys)).resolves.toMatchObject({ payload: { sub: 'x' } });
    expect(s.requests[0].headers['user-agent']).toBe(OUTBOUND_USER_AGENT);
  });
});
