import { JsonLogger, flushLogs } from './logger';

function logger(level?: string) {
  const lines: string[] = [];
  return { log: new JsonLogger(level, (line) => lines.push(line)), lines, parsed: () => lines.map((l) => JSON.parse(l)) };
}

describe('JsonLogger', () => {
  it('writes one JSON object per line: time, level by name, msg and the fields', () => {
    const { log, lines, parsed } = logger('info');
    log.write('info', 'audit', { event: 'user.login', user_id: 'u1', data: { n: 1 } });
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain('\n');
    const [line] = parsed();
    expect(line).toEqual({ time: expect.any(String), level: 'info', msg: 'audit', event: 'user.login', user_id: 'u1', data: { n: 1 } });
    expect(new Date(line.time).toISOString()).toBe(line.time);
  });

  it.each([
    ['debug', ['debug', 'info', 'warn', 'error']],
    ['info', ['info', 'warn', 'error']],
    ['warn', ['warn', 'error']],
    ['error', ['error']],
    ['silent', []],
    ['nonsense', ['info', 'warn', 'error']],
  ])('LOG_LEVEL=%s writes %j', (level, written) => {
    const { log, parsed } = logger(level);
    for (const l of ['debug', 'info', 'warn', 'error'] as const) log.write(l, l);
    expect(parsed().map((l) => l.level)).toEqual(written);
  });

  it("redacts a caller's fields whose keys look secret, at any depth, but not numbers or status_code", () => {
    const { log, lines, parsed } = logger('info');
    log.write('info', 'x', { password: 'pw-1', client_secret: 'cs-1', data: { refresh_token: 'rt-1', code: 'c-1', list: [{ jwt: 'j-1' }] }, status_code: 'invalid_grant', token_count: 3, client_id: 'kept' });
    expect(lines.join('')).not.toMatch(/pw-1|cs-1|rt-1|c-1|j-1/);
    expect(parsed()[0]).toMatchObject({ password: '[redacted]', data: { refresh_token: '[redacted]', list: [{ jwt: '[redacted]' }] }, status_code: 'invalid_grant', token_count: 3, client_id: 'kept' });
  });

  it('redacts credentials in headers by path, and logs a request as its method and path only', () => {
    const { log, lines, parsed } = logger('info');
    const headers = { authorization: 'Bearer at-1', 'proxy-authorization': 'Basic pa-1', cookie: 'idp_session=s-1', 'set-cookie': 'idp_session=s-2', accept: 'text/html' };
    log.pino.info({ req: { method: 'POST', url: '/oauth/token?code=q-1', headers, body: { client_secret: 'b-1' } }, res: { statusCode: 200, headers }, headers }, 'raw');
    expect(lines.join('')).not.toMatch(/at-1|pa-1|s-1|s-2|q-1|b-1/);
    const [line] = parsed();
    expect(line.req).toEqual({ method: 'POST', path: '/oauth/token' });
    expect(line.headers).toEqual({ authorization: '[redacted]', 'proxy-authorization': '[redacted]', cookie: '[redacted]', 'set-cookie': '[redacted]', accept: 'text/html' });
    expect(line.res.headers['set-cookie']).toBe('[redacted]');
  });

  it("takes Nest's messages: start-up chatter at debug, errors with their stack and context", () => {
    const { log, parsed } = logger('info');
    log.log('AppModule dependencies initialized', 'InstanceLoader');
    log.log('Nest application successfully started', 'NestApplication');
    log.warn('careful', 'KeysService');
    log.error('it failed', 'Error: it failed\n    at somewhere', 'ExceptionsHandler');
    log.error(new Error('thrown'));
    expect(parsed().map(({ time, ...l }) => l)).toEqual([
      { level: 'info', msg: 'Nest application successfully started', context: 'NestApplication' },
      { level: 'warn', msg: 'careful', context: 'KeysService' },
      { level: 'error', msg: 'it failed', context: 'ExceptionsHandler', stack: 'Error: it failed\n    at somewhere' },
      { level: 'error', msg: 'thrown', stack: expect.stringContaining('Error: thrown\n') },
    ]);
  });

  it('keeps each application its own destination', () => {
    const a = logger('info');
    const b = logger('warn');
    a.log.write('info', 'to a');
    b.log.write('info', 'not to b');
    b.log.write('warn', 'to b');
    expect([a.parsed().map((l) => l.msg), b.parsed().map((l) => l.msg)]).toEqual([['to a'], ['to b']]);
  });

  it('writes stdout once per turn of the event loop, each line whole', async () => {
    flushLogs();
    const writes: string[] = [];
    const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => (writes.push(String(chunk)), true));
    try {
      const log = new JsonLogger('info');
      log.write('info', 'one');
      log.write('warn', 'two');
      log.write('error', 'three');
      expect(writes).toEqual([]);
      await new Promise(setImmediate);
      expect(writes).toHaveLength(1);
      expect(writes[0].endsWith('\n')).toBe(true);
      expect(writes[0].trimEnd().split('\n').map((l) => JSON.parse(l).msg)).toEqual(['one', 'two', 'three']);
    } finally {
      spy.mockRestore();
    }
  });
});
