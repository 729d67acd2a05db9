import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { IsBoolean, IsIn, IsInt, IsOptional, IsString, Matches, Max, MaxLength, Min, MinLength, validateSync } from 'class-validator';
import { SecretKeyring } from './crypto';

/** A configuration error: its message is one line naming the variable, printed without a stack. */
export class ConfigError extends Error {
  constructor(public readonly variable: string, problem: string) {
    super(`invalid configuration: ${variable} ${problem}`);
    this.name = 'ConfigError';
  }
}

/** The validated configuration, injected by class (see CONTRACT.md §1 and §5). */
export class IdpConfig {
  @IsInt() @Min(0) @Max(65535) port: number;
  @IsString() host: string;
  /** Without a trailing slash. */
  @Matches(/^https?:\/\/[^\s?#]+$/) issuer: string;
  @Matches(/^(sqlite:.+|postgres(ql)?:\/\/.+)$/) databaseUrl: string;
  @IsOptional() @Matches(/^[A-Za-z0-9._~-]{1,128}$/) adminClientId?: string;
  @IsOptional() @IsString() @MinLength(32) @MaxLength(512) adminClientSecret?: string;
  @IsString() @MinLength(32) secretKey: string;
  @IsIn(['development', 'production', 'test']) nodeEnv: string;
  @IsIn(['RS256', 'ES256', 'EdDSA']) signingAlg: 'RS256' | 'ES256' | 'EdDSA';
  @IsInt() @Min(1) lockoutThreshold: number;
  @IsInt() @Min(1) lockoutIpThreshold: number;
  @IsInt() @Min(1) lockoutSeconds: number;
  @IsInt() @Min(1) lockoutMaxSeconds: number;
  @IsBoolean() rateLimit: boolean;
  /** Requests per minute from one address, by kind of endpoint (CONTRACT §5: generous). */
  @IsInt() @Min(1) rateLimitProtocol: number;
  @IsInt() @Min(1) rateLimitPages: number;
  @IsInt() @Min(1) rateLimitAdmin: number;
  @IsOptional() @IsString() trustProxy?: string;
  /** When set, lockout counters live in Redis (shared by every replica) instead of the database. */
  @IsOptional() @Matches(/^rediss?:\/\/.+/) redisUrl?: string;
  @Matches(/^[A-Za-z0-9:_.-]{1,64}$/) redisPrefix: string;
  @IsIn(['debug', 'info', 'warn', 'error', 'silent']) logLevel: string;
  /**
   * SQLite's `synchronous` in WAL mode: `normal` (default) survives a crash of the process but may
   * lose the last commits on a power loss or OS crash; `full` fsyncs every commit, on the event loop.
   */
  @IsIn(['normal', 'full']) sqliteSynchronous: 'normal' | 'full';
  /**
   * Where SQLite's WAL checkpoints run: `background` (default), on a worker thread with its own
   * connection, so that copying the WAL into the database file and its fsyncs never stall the
   * event loop; `inline`, SQLite's own way, on the committing thread every 4,000 WAL pages.
   */
  @IsIn(['background', 'inline']) sqliteCheckpoint: 'background' | 'inline';
  /**
   * The nice value given to the libuv thread pool (signing, hashing) on Linux when the server runs
   * as a process, so that it never takes the CPU from the event loop; 0 leaves it alone.
   */
  @IsInt() @Min(0) @Max(19) poolNice: number;
  /**
   * Where URLs that clients or administrators give us may be fetched (CONTRACT §1 IDP_OUTBOUND):
   * `public`, https to public addresses only; `local`, also http(s) to loopback and private ones.
   */
  @IsIn(['public', 'local']) outbound: 'public' | 'local';
  /** Where IDP_SECRET_KEY came from: given, or generated and kept in a file (development only). */
  secretKeySource: 'env' | 'file' | 'ephemeral';
  /** When the SQLite database lives in a file, the folder it lives in. */
  dataDir?: string;

  get keyring(): SecretKeyring {
    return (this._keyring ??= new SecretKeyring(this.secretKey));
  }
  private _keyring?: SecretKeyring;

  get isProduction(): boolean {
    return this.nodeEnv === 'production';
  }
  get adminAudience(): string {
    return `${this.issuer}/admin`;
  }
  get tokenEndpoint(): string {
    return `${this.issuer}/oauth/token`;
  }
  get isSqlite(): boolean {
    return this.databaseUrl.startsWith('sqlite:');
  }
}

const VARIABLES: Record<string, keyof IdpConfig> = {
  PORT: 'port', HOST: 'host', ISSUER: 'issuer', DATABASE_URL: 'databaseUrl',
  IDP_ADMIN_CLIENT_ID: 'adminClientId', IDP_ADMIN_CLIENT_SECRET: 'adminClientSecret', IDP_SECRET_KEY: 'secretKey',
  NODE_ENV: 'nodeEnv', IDP_SIGNING_ALG: 'signingAlg', IDP_LOCKOUT_THRESHOLD: 'lockoutThreshold',
  IDP_LOCKOUT_IP_THRESHOLD: 'lockoutIpThreshold', IDP_LOCKOUT_SECONDS: 'lockoutSeconds',
  IDP_LOCKOUT_MAX_SECONDS: 'lockoutMaxSeconds', IDP_RATE_LIMIT: 'rateLimit', IDP_RATE_LIMIT_PROTOCOL: 'rateLimitProtocol',
  IDP_RATE_LIMIT_PAGES: 'rateLimitPages', IDP_RATE_LIMIT_ADMIN: 'rateLimitAdmin', TRUST_PROXY: 'trustProxy', LOG_LEVEL: 'logLevel', SQLITE_SYNCHRONOUS: 'sqliteSynchronous', SQLITE_CHECKPOINT: 'sqliteCheckpoint', IDP_POOL_NICE: 'poolNice', IDP_OUTBOUND: 'outbound', REDIS_URL: 'redisUrl', IDP_REDIS_PREFIX: 'redisPrefix',
};

function int(env: Record<string, string | undefined>, name: string, dflt: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return dflt;
  if (!/^\d+$/.test(raw.trim())) throw new ConfigError(name, 'must be a whole number');
  return Number(raw.trim());
}

/**
 * Reads and validates the environment. Throws ConfigError (one line, naming the variable) on the
 * first bad value. In development, a missing IDP_SECRET_KEY is generated once and kept beside the
 * SQLite file (mode 0600); in production it is required.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): IdpConfig {
  const c = new IdpConfig();
  c.nodeEnv = env.NODE_ENV || 'development';
  c.port = int(env, 'PORT', 3000);
  c.host = env.HOST || '0.0.0.0';
  c.issuer = (env.ISSUER || `http://localhost:${c.port}`).replace(/\/+$/, '');
  c.databaseUrl = env.DATABASE_URL || 'sqlite:./data/idp.sqlite';
  c.adminClientId = env.IDP_ADMIN_CLIENT_ID || undefined;
  c.adminClientSecret = env.IDP_ADMIN_CLIENT_SECRET || undefined;
  c.signingAlg = (env.IDP_SIGNING_ALG || 'RS256') as IdpConfig['signingAlg'];
  c.lockoutThreshold = int(env, 'IDP_LOCKOUT_THRESHOLD', 10);
  c.lockoutIpThreshold = int(env, 'IDP_LOCKOUT_IP_THRESHOLD', 100);
  c.lockoutSeconds = int(env, 'IDP_LOCKOUT_SECONDS', 60);
  c.lockoutMaxSeconds = int(env, 'IDP_LOCKOUT_MAX_SECONDS', 900);
  const rl = (env.IDP_RATE_LIMIT || 'on').toLowerCase();
  if (!['on', 'off'].includes(rl)) throw new ConfigError('IDP_RATE_LIMIT', 'must be "on" or "off"');
  c.rateLimit = rl === 'on';
  c.rateLimitProtocol = int(env, 'IDP_RATE_LIMIT_PROTOCOL', 60000);
  c.rateLimitPages = int(env, 'IDP_RATE_LIMIT_PAGES', 3000);
  c.rateLimitAdmin = int(env, 'IDP_RATE_LIMIT_ADMIN', 6000);
  c.trustProxy = env.TRUST_PROXY || undefined;
  c.redisUrl = env.REDIS_URL || undefined;
  c.redisPrefix = env.IDP_REDIS_PREFIX || 'idp:';
  c.logLevel = env.LOG_LEVEL || (c.nodeEnv === 'test' ? 'warn' : 'info');
  c.sqliteSynchronous = (env.SQLITE_SYNCHRONOUS?.toLowerCase() || 'normal') as IdpConfig['sqliteSynchronous'];
  c.sqliteCheckpoint = (env.SQLITE_CHECKPOINT?.toLowerCase() || 'background') as IdpConfig['sqliteCheckpoint'];
  c.poolNice = int(env, 'IDP_POOL_NICE', 10);
  c.outbound = (env.IDP_OUTBOUND?.toLowerCase() || (c.nodeEnv === 'production' ? 'public' : 'local')) as IdpConfig['outbound'];

  if (c.isSqlite && c.databaseUrl !== 'sqlite::memory:') {
    c.dataDir = dirname(resolve(c.databaseUrl.slice('sqlite:'.length)));
  }
  if ((c.adminClientId === undefined) !== (c.adminClientSecret === undefined)) {
    throw new ConfigError(c.adminClientId ? 'IDP_ADMIN_CLIENT_SECRET' : 'IDP_ADMIN_CLIENT_ID', 'must be set together with the other admin client variable');
  }

  if (env.IDP_SECRET_KEY) {
    c.secretKey = env.IDP_SECRET_KEY;
    c.secretKeySource = 'env';
  } else if (c.nodeEnv === 'production') {
    throw new ConfigError('IDP_SECRET_KEY', 'is required when NODE_ENV=production');
  } else if (c.dataDir || c.databaseUrl.startsWith('postgres')) {
    const file = join(c.dataDir ?? resolve('./data'), 'secret.key');
    if (!existsSync(file)) {
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, randomBytes(32).toString('base64url') + '\n', { mode: 0o600, flag: 'wx' });
    }
    c.secretKey = readFileSync(file, 'utf8').trim();
    c.secretKeySource = 'file';
  } else {
    c.secretKey = randomBytes(32).toString('base64url');
    c.secretKeySource = 'ephemeral';
  }

  const errors = validateSync(c, { forbidUnknownValues: false });
  if (errors.length) {
    const prop = errors[0].property as keyof IdpConfig;
    const variable = Object.keys(VARIABLES).find((k) => VARIABLES[k] === prop) ?? String(prop);
    throw new ConfigError(variable, describe(variable));
  }
  try {
    new URL(c.issuer);
  } catch {
    throw new ConfigError('ISSUER', 'must be an absolute http(s) URL');
  }
  return c;
}

function describe(variable: string): string {
  switch (variable) {
    case 'PORT': return 'must be a port number from 0 to 65535';
    case 'ISSUER': return 'must be an absolute http(s) URL without query or fragment';
    case 'DATABASE_URL': return 'must be sqlite:PATH, sqlite::memory: or postgres://USER:PASS@HOST:PORT/DB';
    case 'IDP_SECRET_KEY': return 'must be at least 32 characters';
    case 'IDP_ADMIN_CLIENT_ID': return 'must be 1 to 128 characters of A-Z a-z 0-9 . _ ~ -';
    case 'IDP_ADMIN_CLIENT_SECRET': return 'must be 32 to 512 characters';
    case 'NODE_ENV': return 'must be development, production or test';
    case 'IDP_SIGNING_ALG': return 'must be RS256, ES256 or EdDSA';
    case 'LOG_LEVEL': return 'must be debug, info, warn, error or silent';
    case 'SQLITE_SYNCHRONOUS': return 'must be normal or full';
    case 'SQLITE_CHECKPOINT': return 'must be background or inline';
    case 'REDIS_URL': return 'must be a redis:// or rediss:// URL';
    case 'IDP_OUTBOUND': return 'must be public or local';
    case 'IDP_REDIS_PREFIX': return 'must be 1 to 64 characters of A-Z a-z 0-9 : _ . -';
    default: return 'has an invalid value';
  }
}
