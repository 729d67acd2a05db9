import { request } from 'node:http';
import { gzipSync } from 'node:zlib';
import { TestServer, basic, startServer } from './support/server';

/**
 * The token, revocation, introspection and UserInfo endpoints as Nest controllers: the plumbing
 * the framework and its middleware give them (request ids and log lines, headers, body reading and
 * its unusual forms, path matching).
 */
describe('the protocol endpoints', () => {
  let s: TestServer;
  let client: { client_id: string; client_secret: string };
  const API = 'https://api.example.com/protocol';
  const FORM = 'application/x-www-form-urlencoded';
  const body = () => new URLSearchParams({ grant_type: 'client_credentials', resource: API }).toString();
  const auth = () => basic(client.client_id, client.client_secret);

  beforeAll(async () => {
    s = await startServer();
    expect((await s.admin('POST', '/admin/apis', { identifier: API, name: 'Protocol', scopes: [{ value: 'read:x', description: 'Read' }] })).status).toBe(201);
    client = (await s.admin('POST', '/admin/clients', { client_name: 'Protocol worker', grant_types: ['client_credentials'] })).body;
    expect((await s.admin('POST', '/admin/client-grants', { client_id: client.client_id, audience: API, scope: ['read:x'] })).status).toBe(201);
  });
  afterAll(() => s.close());

  /** A raw HTTP/1.1 request (fetch cannot send a chunked or compressed body as it is). */
  function raw(path: string, headers: Record<string, string | number>, chunks: Buffer[]): Promise<{ status: number; headers: Record<string, unknown>; body: any }> {
    return new Promise((resolve, reject) => {
      const u = new URL(s.url);
      const req = request({ host: u.hostname, port: u.port, path, method: 'POST', headers }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: JSON.parse(text) }));
      });
      req.on('error', reject);
      for (const c of chunks) req.write(c);
      req.end();
    });
  }

  it('answers with the headers of every route: request id, no-store, nosniff, no-referrer, JSON', async () => {
    const res = await s.fetch('/oauth/token', { method: 'POST', headers: { 'content-type': FORM, authorization: auth() }, body: body() });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.headers.get('pragma')).toBe('no-cache');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(Number(res.headers.get('content-length'))).toBe(Buffer.byteLength(await res.text()));
  });

  it('echoes a well-formed X-Request-Id, replaces a malformed one, and logs one line per request without the query string', async () => {
    const mine = await s.fetch('/oauth/token?secret-looking=1', { method: 'POST', headers: { 'content-type': FORM, authorization: auth(), 'x-request-id': 'req-proto.1' }, body: body() });
    expect(mine.headers.get('x-request-id')).toBe('req-proto.1');
    const bad = await s.fetch('/oauth/token', { method: 'POST', headers: { 'content-type': FORM, authorization: auth(), 'x-request-id': 'no spaces <allowed>' }, body: body() });
    expect(bad.headers.get('x-request-id')).not.toBe('no spaces <allowed>');
    const line = s.logs.map((l) => JSON.parse(l)).find((l) => l.msg === 'request' && l.request_id === 'req-proto.1');
    expect(line).toMatchObject({ method: 'POST', path: '/oauth/token', status: 200, ip: expect.any(String) });
    expect(JSON.stringify(line)).not.toContain('secret-looking');
  });

  it('matches the path as routing does: a trailing slash or another case is the same endpoint', async () => {
    for (const path of ['/oauth/token/', '/OAuth/Token']) {
      const res = await s.fetch(path, { method: 'POST', headers: { 'content-type': FORM, authorization: auth() }, body: body() });
      expect([path, res.status]).toEqual([path, 200]);
    }
  });

  it("answers other methods with 404 in the endpoint's format, and allows no preflight from an origin no client registered", async () => {
    const get = await s.fetch('/oauth/token');
    expect(get.status).toBe(404);
    expect(await get.json()).toMatchObject({ error: 'invalid_request' });
    const preflight = await s.fetch('/oauth/token', { method: 'OPTIONS', headers: { origin: 'https://nobody.example.com', 'access-control-request-method': 'POST' } });
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('reads a chunked body, a gzip body and a US-ASCII one, and refuses another charset', async () => {
    const chunked = await raw('/oauth/token', { 'content-type': FORM, authorization: auth(), 'transfer-encoding': 'chunked' }, [Buffer.from(body().slice(0, 10)), Buffer.from(body().slice(10))]);
    expect(chunked.status).toBe(200);
    expect(chunked.body.token_type).toBe('Bearer');
    const gz = gzipSync(body());
    const gzipped = await raw('/oauth/token', { 'content-type': FORM, authorization: auth(), 'content-encoding': 'gzip', 'content-length': gz.length }, [gz]);
    expect(gzipped.status).toBe(200);
    const ascii = await raw('/oauth/token', { 'content-type': `${FORM}; charset=US-ASCII`, authorization: auth(), 'content-length': body().length }, [Buffer.from(body())]);
    expect(ascii.status).toBe(200);
    // Anything but UTF-8 (and its subset US-ASCII) is refused rather than misread.
    const latin1 = await raw('/oauth/token', { 'content-type': `${FORM}; charset=iso-8859-1`, authorization: auth(), 'content-length': body().length }, [Buffer.from(body())]);
    expect(latin1.status).toBe(400);
    expect(latin1.body).toMatchObject({ error: 'invalid_request' });
  });

  it('answers a body over 64 kB with 413 in the token endpoint format, and an empty one with invalid_request', async () => {
    const big = `${body()}&junk=${'x'.repeat(70_000)}`;
    const res = await raw('/oauth/token', { 'content-type': FORM, authorization: auth(), 'content-length': big.length }, [Buffer.from(big)]);
    expect(res.status).toBe(413);
    expect(res.body).toEqual({ error: 'invalid_request', error_description: 'the request body is too large' });
    expect(res.headers['cache-control']).toBe('no-store');
    const empty = await raw('/oauth/token', { 'content-type': FORM, authorization: auth(), 'content-length': 0 }, []);
    expect(empty.status).toBe(400);
    expect(empty.body).toMatchObject({ error: 'invalid_request', error_description: 'grant_type is required' });
  });
});
