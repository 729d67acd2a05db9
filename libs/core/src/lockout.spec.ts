import type { DataSource } from 'typeorm';
import { loadConfig } from './config';
import { sha256 } from './crypto';
import { LockoutService } from './lockout';

describe('LockoutService.clientKeys', () => {
  const config = loadConfig({ IDP_LOCKOUT_THRESHOLD: '4' });
  const service = () => new LockoutService({} as DataSource, config);

  it('names the client from this address, the client and the address, with hashed client ids', () => {
    const client = sha256('app-1');
    expect(service().clientKeys('app-1', '10.0.0.1')).toEqual([
      { key: `client:pair:${sha256(`${client}|10.0.0.1`)}`, threshold: 4 },
      { key: `client:id:${client}`, threshold: 20 },
      { key: 'client:ip:10.0.0.1', threshold: config.lockoutIpThreshold },
    ]);
  });

  it('gives the same frozen keys for the same client and address, and others for another address or client', () => {
    const s = service();
    const a = s.clientKeys('app-1', '10.0.0.1');
    expect(s.clientKeys('app-1', '10.0.0.1')).toBe(a);
    expect(Object.isFrozen(a) && a.every((k) => Object.isFrozen(k))).toBe(true);
    const b = s.clientKeys('app-1', '10.0.0.2');
    expect(b[0].key).not.toBe(a[0].key);
    expect(b[1].key).toBe(a[1].key);
    expect(b[2].key).toBe('client:ip:10.0.0.2');
    // no two (client, address) pairs share a cache entry, whatever characters they hold
    expect(s.clientKeys('x\u0000y', 'z')[1].key).not.toBe(s.clientKeys('x', 'y\u0000z')[1].key);
    expect(s.clientKeys('1:x', '1')[1].key).not.toBe(s.clientKeys('x', '1:1')[1].key);
    expect(s.clientKeys('app-2', '10.0.0.1')[1].key).toBe(`client:id:${sha256('app-2')}`);
  });
});
