import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { SecretKeyring } from './crypto';

/** A configuration error: its message is one line naming the variable, printed without a stack. */
export class ConfigError extends Error {
  constructor(public readonly variable: string, problem: string) {
    super(`invalid configuration: ${variable} ${problem}`);
    this.name = 'ConfigError';
  }
}

/**
 * The validated configuration, injected by class (see CONTRACT.md §1 and §5). Its fields are
 * read from the environment by CONFIG_SCHEMA (where each variable, its default and its
 * validation are declared), through ConfigModule (CoreModule): `ConfigService.get('idp')` is this object.
 */
export class IdpConfig {
  port: number;
  host: string;
  /** Without a trailing slash. */
  issuer: string;
  databaseUrl: string;
  adminClientId?: string;
  adminClientSecret?: string;
  secretKey: string;
  nodeEnv: string;
  signingAlg: 'RS256' | 'ES256' | 'EdDSA';
  lockoutThreshold: number;
  lockoutIpThreshold: number;
  lockoutSeconds: number;
  lockoutMaxSeconds: number;
  rateLimit: boolean;
  /** Requests per minute from one address, by kind of endpoint (CONTRACT §5: generous). */
  rateLimitProtocol: number;
  rateLimitPages: number;
  rateLimitAdmin: number;
  trustProxy?: string;
  /** When set, lockout counters live in Redis (shared by every replica) instead of the database. */
  redisUrl?: string;
  redisPrefix: string;
  logLevel: string;
  /**
   * SQLite's `synchronous` in WAL mode: `normal` (default) survives a crash of the process but may
   * lose the last commits on a power loss or OS crash; `full` fsyncs every commit, on the event loop.
   */
  sqliteSynchronous: 'normal' | 'full';
  /**
   * Where SQLite's WAL checkpoints run: `background` (default), on a worker thread with its own
   * connection, so that copying the WAL into the database file and its fsyncs never stall the
   * event loop; `inline`, SQLite's own way, on the committing thread every 4,000 WAL pages.
   */
  sqliteCheckpoint: 'background' | 'inline';
  /**
   * The nice value given to the libuv thread pool (signing, hashing) on Linux when the server runs
   * as a process, so that it never takes the CPU from the event loop; 0 leaves it alone.
   */
  poolNice: number;
  /**
   * Where URLs that clients or administrators give us may be fetched (CONTRACT §1 IDP_OUTBOUND):
   * `public`, https to public addresses only; `local`, also http(s) to loopback and private ones.
   */
  outbound: 'public' | 'local';
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

/** The fields of IdpConfig that are read from an environment variable. */
export type IdpSettings = Pick<IdpConfig,
  | 'nodeEnv' | 'port' | 'host' | 'issuer' | 'databaseUrl' | 'adminClientId' | 'adminClientSecret' | 'secretKey' | 'signingAlg'
  | 'lockoutThreshold' | 'lockoutIpThreshold' | 'lockoutSeconds' | 'lockoutMaxSeconds'
  | 'rateLimit' | 'rateLimitProtocol' | 'rateLimitPages' | 'rateLimitAdmin'
  | 'trustProxy' | 'redisUrl' | 'redisPrefix' | 'logLevel' | 'sqliteSynchronous' | 'sqliteCheckpoint' | 'poolNice' | 'outbound'>;

/** What a parser answers for text it does not accept. */
const INVALID: unique symbol = Symbol('invalid');

/** One environment variable: everything about it is said here, once. */
export interface ConfigVariable<T> {
  /** The environment variable's name. */
  env: string;
  /** Its text as a value, or INVALID. */
  parse(text: string): T | typeof INVALID;
  /**
   * The text used when the variable is unset or empty (parsed like a given one); a function is
   * given the values of the variables declared above it. `undefined`: the value stays unset.
   */
  default: string | undefined | ((read: Readonly<IdpSettings>) => string | undefined);
  /** What is wrong with a value parse refused: `invalid configuration: NAME problem`. */
  problem: string;
  /** When the variable must be set (checked once every variable is read), and what is said when it is not. */
  required?: { when(read: Readonly<IdpSettings>): boolean; problem: string };
}

const text = (s: string) => s;
const matching = (re: RegExp) => (s: string) => (re.test(s) ? s : INVALID);
const lengthFrom = (min: number, max = Infinity) => (s: string) => (s.length >= min && s.length <= max ? s : INVALID);
const wholeNumber = (min: number, max = Infinity) => (s: string) => {
  const t = s.trim();
  return /^\d+$/.test(t) && Number(t) >= min && Number(t) <= max ? Number(t) : INVALID;
};
/** One of `values`; `caseless` also takes them in any case. */
const oneOf = <V extends string>(values: readonly V[], caseless = false) => (s: string) => {
  const v = caseless ? s.toLowerCase() : s;
  return (values as readonly string[]).includes(v) ? (v as V) : INVALID;
};
const onOff = (s: string) => (s.toLowerCase() === 'on' ? true : s.toLowerCase() === 'off' ? false : INVALID);
const httpUrl = (s: string) => {
  const url = s.replace(/\/+$/, '');
  return /^https?:\/\/[^\s?#]+$/.test(url) && URL.canParse(url) ? url : INVALID;
};

/**
 * The configuration's one schema (README "Configuration", CONTRACT.md §1): each variable with its
 * parser, its default and its validation, in the order they are read (a default may depend on the
 * variables above it). `loadConfig` reads it, and CoreModule hands the result to ConfigModule.
 */
export const CONFIG_SCHEMA: { readonly [K in keyof IdpSettings]-?: ConfigVariable<IdpSettings[K]> } = {
  nodeEnv: { env: 'NODE_ENV', parse: oneOf(['development', 'production', 'test']), default: 'development', problem: 'must be development, production or test' },
  port: { env: 'PORT', parse: wholeNumber(0, 65535), default: '3000', problem: 'must be a port number from 0 to 65535' },
  host: { env: 'HOST', parse: text, default: '0.0.0.0', problem: 'has an invalid value' },
  issuer: { env: 'ISSUER', parse: httpUrl, default: (c) => `http://localhost:${c.port}`, problem: 'must be an absolute http(s) URL without query or fragment' },
  databaseUrl: {
    env: 'DATABASE_URL', parse: matching(/^(sqlite:.+|postgres(ql)?:\/\/.+)$/), default: 'sqlite:./data/idp.sqlite',
    problem: 'must be sqlite:PATH, sqlite::memory: or postgres://USER:PASS@HOST:PORT/DB',
  },
  adminClientId: {
    env: 'IDP_ADMIN_CLIENT_ID', parse: matching(/^[A-Za-z0-9._~-]{1,128}$/), default: undefined, problem: 'must be 1 to 128 characters of A-Z a-z 0-9 . _ ~ -',
    required: { when: (c) => c.adminClientSecret !== undefined, problem: 'must be set together with IDP_ADMIN_CLIENT_SECRET' },
  },
  adminClientSecret: {
    env: 'IDP_ADMIN_CLIENT_SECRET', parse: lengthFrom(32, 512), default: undefined, problem: 'must be 32 to 512 characters',
    required: { when: (c) => c.adminClientId !== undefined, problem: 'must be set together with IDP_ADMIN_CLIENT_ID' },
  },
  /** Unset outside production: generated once and kept in the data folder (or in memory), see loadConfig. */
  secretKey: {
    env: 'IDP_SECRET_KEY', parse: lengthFrom(32), default: undefined, problem: 'must be at least 32 characters',
    required: { when: (c) => c.nodeEnv === 'production', problem: 'is required when NODE_ENV=production' },
  },
  signingAlg: { env: 'IDP_SIGNING_ALG', parse: oneOf(['RS256', 'ES256', 'EdDSA']), default: 'RS256', problem: 'must be RS256, ES256 or EdDSA' },
  lockoutThreshold: { env: 'IDP_LOCKOUT_THRESHOLD', parse: wholeNumber(1), default: '10', problem: 'must be a whole number, at least 1' },
  lockoutIpThreshold: { env: 'IDP_LOCKOUT_IP_THRESHOLD', parse: wholeNumber(1), default: '100', problem: 'must be a whole number, at least 1' },
  lockoutSeconds: { env: 'IDP_LOCKOUT_SECONDS', parse: wholeNumber(1), default: '60', problem: 'must be a whole number of seconds, at least 1' },
  lockoutMaxSeconds: { env: 'IDP_LOCKOUT_MAX_SECONDS', parse: wholeNumber(1), default: '900', problem: 'must be a whole number of seconds, at least 1' },
  rateLimit: { env: 'IDP_RATE_LIMIT', parse: onOff, default: 'on', problem: 'must be "on" or "off"' },
  rateLimitProtocol: { env: 'IDP_RATE_LIMIT_PROTOCOL', parse: wholeNumber(1), default: '60000', problem: 'must be a whole number of requests a minute, at least 1' },
  rateLimitPages: { env: 'IDP_RATE_LIMIT_PAGES', parse: wholeNumber(1), default: '3000', problem: 'must be a whole number of requests a minute, at least 1' },
  rateLimitAdmin: { env: 'IDP_RATE_LIMIT_ADMIN', parse: wholeNumber(1), default: '6000', problem: 'must be a whole number of requests a minute, at least 1' },
  trustProxy: { env: 'TRUST_PROXY', parse: text, default: undefined, problem: 'has an invalid value' },
  redisUrl: { env: 'REDIS_URL', parse: matching(/^rediss?:\/\/.+/), default: undefined, problem: 'must be a redis:// or rediss:// URL' },
  redisPrefix: { env: 'IDP_REDIS_PREFIX', parse: matching(/^[A-Za-z0-9:_.-]{1,64}$/), default: 'idp:', problem: 'must be 1 to 64 characters of A-Z a-z 0-9 : _ . -' },
  logLevel: {
    env: 'LOG_LEVEL', parse: oneOf(['debug', 'info', 'warn', 'error', 'silent']), default: (c) => (c.nodeEnv === 'test' ? 'warn' : 'info'),
    problem: 'must be debug, info, warn, error or silent',
  },
  sqliteSynchronous: { env: 'SQLITE_SYNCHRONOUS', parse: oneOf(['normal', 'full'], true), default: 'normal', problem: 'must be normal or full' },
  sqliteCheckpoint: { env: 'SQLITE_CHECKPOINT', parse: oneOf(['background', 'inline'], true), default: 'background', problem: 'must be background or inline' },
  poolNice: { env: 'IDP_POOL_NICE', parse: wholeNumber(0, 19), default: '10', problem: 'must be a whole number from 0 to 19' },
  outbound: {
    env: 'IDP_OUTBOUND', parse: oneOf(['public', 'local'], true), default: (c) => (c.nodeEnv === 'production' ? 'public' : 'local'),
    problem: 'must be public or local',
  },
};

/**
 * Reads every variable of CONFIG_SCHEMA from `env`, without side effects. Throws ConfigError
 * (one line, naming the variable) on the first bad value, then on the first missing required one.
 */
export function readSettings(env: Record<string, string | undefined>): IdpSettings {
  const read: Record<string, unknown> = {};
  const settings = read as unknown as IdpSettings;
  const variables = Object.entries(CONFIG_SCHEMA) as [keyof IdpSettings, ConfigVariable<unknown>][];
  for (const [key, v] of variables) {
    const given = env[v.env];
    const source = given === undefined || given === '' ? (typeof v.default === 'function' ? v.default(settings) : v.default) : given;
    const value = source === undefined ? undefined : v.parse(source);
    if (value === INVALID) throw new ConfigError(v.env, v.problem);
    read[key] = value;
  }
  for (const [key, v] of variables) {
    if (read[key] === undefined && v.required?.when(settings)) throw new ConfigError(v.env, v.required.problem);
  }
  return settings;
}

/**
 * Reads and validates the environment (CONFIG_SCHEMA). Throws ConfigError (one line, naming the
 * variable) on the first bad value. In development, a missing IDP_SECRET_KEY is generated once and
 * kept beside the SQLite file (mode 0600); in production it is required.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): IdpConfig {
  const c = Object.assign(new IdpConfig(), readSettings(env));
  if (c.isSqlite && c.databaseUrl !== 'sqlite::memory:') {
    c.dataDir = dirname(resolve(c.databaseUrl.slice('sqlite:'.length)));
  }
  if (c.secretKey !== undefined) {
    c.secretKeySource = 'env';
  } else if (c.dataDir || c.databaseUrl.startsWith('postgres')) {
    const file = join(c.dataDir ?? resolve('./data'), 'secret.key');
    if (!existsSync(file)) {
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, randomBytes(32).toString('base64url') + '\n', { mode: 0o600, flag: 'wx' });
    }
    const kept = CONFIG_SCHEMA.secretKey.parse(readFileSync(file, 'utf8').trim());
    if (kept === INVALID) throw new ConfigError('IDP_SECRET_KEY', `${CONFIG_SCHEMA.secretKey.problem} (the key kept in ${file} is shorter)`);
    c.secretKey = kept;
    c.secretKeySource = 'file';
  } else {
    c.secretKey = randomBytes(32).toString('base64url');
    c.secretKeySource = 'ephemeral';
  }
  return c;
}
