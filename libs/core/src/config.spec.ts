import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { CONFIG_SCHEMA, ConfigError, IdpConfig, loadConfig, readSettings } from './config';
import { CoreModule, IDP_CONFIG_NAMESPACE } from './core.module';
import { IdpBootContext } from './boot-context';
import { JsonLogger } from './logger';

/**
 * The configuration's one schema (CONFIG_SCHEMA): what loadConfig reads from an environment, its
 * defaults, the one line that names a bad variable, and ConfigModule handing the result to the
 * application (IdpConfig by class, ConfigService's `idp` namespace).
 */

const KEY = 'k'.repeat(32);
const base = { DATABASE_URL: 'sqlite::memory:' };
const problem = (env: Record<string, string>): string => {
  try {
    loadConfig({ ...base, ...env });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error(`accepted ${JSON.stringify(env)}`);
};

describe('the configuration schema and loadConfig', () => {
  it('gives the documented defaults', () => {
    const c = readSettings({});
    expect(c).toMatchObject({
      nodeEnv: 'development', port: 3000, host: '0.0.0.0', issuer: 'http://localhost:3000', databaseUrl: 'sqlite:./data/idp.sqlite',
      adminClientId: undefined, adminClientSecret: undefined, secretKey: undefined, signingAlg: 'RS256',
      lockoutThreshold: 10, lockoutIpThreshold: 100, lockoutSeconds: 60, lockoutMaxSeconds: 900,
      rateLimit: true, rateLimitProtocol: 60000, rateLimitPages: 3000, rateLimitAdmin: 6000,
      trustProxy: undefined, redisUrl: undefined, redisPrefix: 'idp:', logLevel: 'info',
      sqliteSynchronous: 'normal', sqliteCheckpoint: 'background', poolNice: 10, outbound: 'local',
    });
  });

  it('reads each variable, trimming whole numbers and taking the case-free ones in any case; an empty one is unset', () => {
    const c = loadConfig({
      NODE_ENV: 'production', PORT: ' 8080 ', HOST: '127.0.0.1', ISSUER: 'https://id.example.com//', DATABASE_URL: 'postgres://u:p@db:5432/idp',
      IDP_ADMIN_CLIENT_ID: 'admin', IDP_ADMIN_CLIENT_SECRET: 's'.repeat(32), IDP_SECRET_KEY: KEY, IDP_SIGNING_ALG: 'EdDSA',
      IDP_LOCKOUT_THRESHOLD: '3', IDP_LOCKOUT_IP_THRESHOLD: '30', IDP_LOCKOUT_SECONDS: '5', IDP_LOCKOUT_MAX_SECONDS: '50',
      IDP_RATE_LIMIT: 'OFF', IDP_RATE_LIMIT_PROTOCOL: '1', IDP_RATE_LIMIT_PAGES: '2', IDP_RATE_LIMIT_ADMIN: '3',
      TRUST_PROXY: '10.0.0.0/8', REDIS_URL: 'redis://cache:6379', IDP_REDIS_PREFIX: 'a:', LOG_LEVEL: 'debug',
      SQLITE_SYNCHRONOUS: 'FULL', SQLITE_CHECKPOINT: 'Inline', IDP_POOL_NICE: '0', IDP_OUTBOUND: '',
    });
    expect(c).toMatchObject({
      nodeEnv: 'production', port: 8080, host: '127.0.0.1', issuer: 'https://id.example.com', databaseUrl: 'postgres://u:p@db:5432/idp',
      adminClientId: 'admin', adminClientSecret: 's'.repeat(32), secretKey: KEY, secretKeySource: 'env', signingAlg: 'EdDSA',
      lockoutThreshold: 3, lockoutIpThreshold: 30, lockoutSeconds: 5, lockoutMaxSeconds: 50,
      rateLimit: false, rateLimitProtocol: 1, rateLimitPages: 2, rateLimitAdmin: 3,
      trustProxy: '10.0.0.0/8', redisUrl: 'redis://cache:6379', redisPrefix: 'a:', logLevel: 'debug',
      sqliteSynchronous: 'full', sqliteCheckpoint: 'inline', poolNice: 0, outbound: 'public',
    });
    expect(c.isProduction).toBe(true);
    expect(c.adminAudience).toBe('https://id.example.com/admin');
  });

  it('derives the defaults that depend on other variables from them', () => {
    expect(loadConfig({ ...base, PORT: '4000' }).issuer).toBe('http://localhost:4000');
    expect(loadConfig({ ...base, NODE_ENV: 'test' }).logLevel).toBe('warn');
    expect(loadConfig({ ...base, NODE_ENV: 'production', IDP_SECRET_KEY: KEY }).outbound).toBe('public');
    expect(loadConfig({ ...base, NODE_ENV: 'production', IDP_SECRET_KEY: KEY, IDP_OUTBOUND: 'local' }).outbound).toBe('local');
  });

  it.each([
    [{ PORT: 'abc' }, 'PORT must be a port number from 0 to 65535'],
    [{ PORT: '70000' }, 'PORT must be a port number from 0 to 65535'],
    [{ PORT: '-1' }, 'PORT must be a port number from 0 to 65535'],
    [{ ISSUER: 'not a url' }, 'ISSUER must be an absolute http(s) URL without query or fragment'],
    [{ ISSUER: 'https://id.example.com/?x=1' }, 'ISSUER must be an absolute http(s) URL without query or fragment'],
    [{ ISSUER: 'http://[::1' }, 'ISSUER must be an absolute http(s) URL without query or fragment'],
    [{ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL must be sqlite:PATH, sqlite::memory: or postgres://USER:PASS@HOST:PORT/DB'],
    [{ NODE_ENV: 'staging' }, 'NODE_ENV must be development, production or test'],
    [{ NODE_ENV: 'production' }, 'IDP_SECRET_KEY is required when NODE_ENV=production'],
    [{ IDP_SECRET_KEY: 'short' }, 'IDP_SECRET_KEY must be at least 32 characters'],
    [{ IDP_ADMIN_CLIENT_ID: 'admin' }, 'IDP_ADMIN_CLIENT_SECRET must be set together with IDP_ADMIN_CLIENT_ID'],
    [{ IDP_ADMIN_CLIENT_SECRET: 's'.repeat(32) }, 'IDP_ADMIN_CLIENT_ID must be set together with IDP_ADMIN_CLIENT_SECRET'],
    [{ IDP_ADMIN_CLIENT_ID: 'a b', IDP_ADMIN_CLIENT_SECRET: 's'.repeat(32) }, 'IDP_ADMIN_CLIENT_ID must be 1 to 128 characters of A-Z a-z 0-9 . _ ~ -'],
    [{ IDP_ADMIN_CLIENT_ID: 'admin', IDP_ADMIN_CLIENT_SECRET: 'short' }, 'IDP_ADMIN_CLIENT_SECRET must be 32 to 512 characters'],
    [{ IDP_SIGNING_ALG: 'HS256' }, 'IDP_SIGNING_ALG must be RS256, ES256 or EdDSA'],
    [{ IDP_LOCKOUT_THRESHOLD: '0' }, 'IDP_LOCKOUT_THRESHOLD must be a whole number, at least 1'],
    [{ IDP_LOCKOUT_IP_THRESHOLD: '1.5' }, 'IDP_LOCKOUT_IP_THRESHOLD must be a whole number, at least 1'],
    [{ IDP_LOCKOUT_SECONDS: 'x' }, 'IDP_LOCKOUT_SECONDS must be a whole number of seconds, at least 1'],
    [{ IDP_LOCKOUT_MAX_SECONDS: '0' }, 'IDP_LOCKOUT_MAX_SECONDS must be a whole number of seconds, at least 1'],
    [{ IDP_RATE_LIMIT: 'maybe' }, 'IDP_RATE_LIMIT must be "on" or "off"'],
    [{ IDP_RATE_LIMIT: 'constructor' }, 'IDP_RATE_LIMIT must be "on" or "off"'],
    [{ IDP_RATE_LIMIT_PROTOCOL: '0' }, 'IDP_RATE_LIMIT_PROTOCOL must be a whole number of requests a minute, at least 1'],
    [{ IDP_RATE_LIMIT_PAGES: 'many' }, 'IDP_RATE_LIMIT_PAGES must be a whole number of requests a minute, at least 1'],
    [{ IDP_RATE_LIMIT_ADMIN: '1e3' }, 'IDP_RATE_LIMIT_ADMIN must be a whole number of requests a minute, at least 1'],
    [{ REDIS_URL: 'http://cache' }, 'REDIS_URL must be a redis:// or rediss:// URL'],
    [{ IDP_REDIS_PREFIX: 'a b' }, 'IDP_REDIS_PREFIX must be 1 to 64 characters of A-Z a-z 0-9 : _ . -'],
    [{ LOG_LEVEL: 'verbose' }, 'LOG_LEVEL must be debug, info, warn, error or silent'],
    [{ SQLITE_SYNCHRONOUS: 'off' }, 'SQLITE_SYNCHRONOUS must be normal or full'],
    [{ SQLITE_CHECKPOINT: 'never' }, 'SQLITE_CHECKPOINT must be background or inline'],
    [{ IDP_POOL_NICE: '20' }, 'IDP_POOL_NICE must be a whole number from 0 to 19'],
    [{ IDP_OUTBOUND: 'anywhere' }, 'IDP_OUTBOUND must be public or local'],
  ])('refuses %j in one line: "invalid configuration: %s"', (env, message) => {
    expect(problem(env)).toBe(`invalid configuration: ${message}`);
  });

  it('names the first bad variable in the order of the schema, before writing a development key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'idp-config-'));
    try {
      expect(problem({ DATABASE_URL: `sqlite:${join(dir, 'idp.sqlite')}`, LOG_LEVEL: 'loud', PORT: 'x' })).toContain('PORT');
      expect(() => statSync(join(dir, 'secret.key'))).toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps a development secret key beside the SQLite file (mode 0600) and reads it back; a short kept key is refused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'idp-config-'));
    try {
      const env = { DATABASE_URL: `sqlite:${join(dir, 'idp.sqlite')}` };
      const first = loadConfig(env);
      expect(first).toMatchObject({ secretKeySource: 'file', dataDir: dir });
      expect(statSync(join(dir, 'secret.key')).mode & 0o077).toBe(0);
      expect(readFileSync(join(dir, 'secret.key'), 'utf8').trim()).toBe(first.secretKey);
      expect(loadConfig(env).secretKey).toBe(first.secretKey);
      writeFileSync(join(dir, 'secret.key'), 'short\n');
      expect(problem(env)).toMatch(/^invalid configuration: IDP_SECRET_KEY must be at least 32 characters \(the key kept in .*secret\.key is shorter\)$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('uses a throw-away secret key when the database is in memory', () => {
    const a = loadConfig(base);
    expect(a.secretKeySource).toBe('ephemeral');
    expect(a.secretKey.length).toBeGreaterThanOrEqual(32);
    expect(loadConfig(base).secretKey).not.toBe(a.secretKey);
  });

  it('declares each variable once, and the README documents every one of them', () => {
    const names = Object.values(CONFIG_SCHEMA).map((v) => v.env);
    expect(new Set(names).size).toBe(names.length);
    const readme = readFileSync(join(__dirname, '..', '..', '..', 'README.md'), 'utf8');
    const table = readme.slice(readme.indexOf('## Configuration'), readme.indexOf('\n## ', readme.indexOf('## Configuration') + 1));
    // A row's first cell names one or more variables: `IDP_RATE_LIMIT_PROTOCOL` / `_PAGES` / `_ADMIN`.
    const documented = [...table.matchAll(/^\| (`[A-Z_]+`(?: \/ `[A-Z_]+`)*) \|/gm)].flatMap((m) => {
      const [first, ...more] = [...m[1].matchAll(/`([A-Z_]+)`/g)].map((n) => n[1]);
      return [first, ...more.map((n) => (n.startsWith('_') ? first.slice(0, first.lastIndexOf('_')) + n : n))];
    });
    expect([...names].sort()).toEqual([...documented].sort());
  });
});

/** CoreModule as an application has it (beside a database: LockoutService keeps its counters there). */
const withCore = (core: ReturnType<typeof CoreModule.forRoot>) =>
  Test.createTestingModule({ imports: [core, TypeOrmModule.forRoot({ type: 'better-sqlite3', database: ':memory:' })], providers: [NeedsConfig] }).compile();

@Injectable()
class NeedsConfig {
  constructor(readonly config: IdpConfig, readonly configService: ConfigService) {}
}

describe('CoreModule and ConfigModule', () => {
  it('provides the given configuration as IdpConfig and as ConfigService\'s idp namespace', async () => {
    const config = loadConfig({ ...base, ISSUER: 'http://given.test' });
    const moduleRef = await withCore(CoreModule.forRoot(config));
    const needs = moduleRef.get(NeedsConfig);
    expect(needs.config).toBe(config);
    expect(needs.configService.get(IDP_CONFIG_NAMESPACE)).toBe(config);
    expect(needs.configService.get('idp.issuer')).toBe('http://given.test');
    await moduleRef.close();
  });

  it('without one, uses the configuration of the application being created, each its own', async () => {
    const create = async (issuer: string) => {
      const config = loadConfig({ ...base, ISSUER: issuer });
      const moduleRef = await IdpBootContext.run({ config, logger: new JsonLogger('silent') }, () =>
        withCore(CoreModule.forRoot()),
      );
      return { config, moduleRef };
    };
    const [a, b] = [await create('http://a.test'), await create('http://b.test')];
    expect(a.moduleRef.get(IdpConfig)).toBe(a.config);
    expect(b.moduleRef.get(IdpConfig)).toBe(b.config);
    expect(b.moduleRef.get(NeedsConfig).configService.get('idp.issuer')).toBe('http://b.test');
    await a.moduleRef.close();
    await b.moduleRef.close();
  });

  it('else reads the environment, and a bad variable stops the creation with its one line', async () => {
    const saved = process.env.IDP_SIGNING_ALG;
    process.env.IDP_SIGNING_ALG = 'none';
    try {
      await expect(withCore(CoreModule.forRoot())).rejects.toThrow(
        new ConfigError('IDP_SIGNING_ALG', 'must be RS256, ES256 or EdDSA'),
      );
    } finally {
      if (saved === undefined) delete process.env.IDP_SIGNING_ALG;
      else process.env.IDP_SIGNING_ALG = saved;
    }
  });
});
