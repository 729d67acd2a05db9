import { Logger } from '@nestjs/common';
import { Client, ClientConfig } from 'pg';
import type { DataSource } from 'typeorm';

/** The channel a change of the signing keys is announced on; the payload is the schema. */
export const KEYS_CHANNEL = 'idp_signing_keys';

/** In a transaction that changes the signing keys: the announcement, sent by PostgreSQL at commit. */
export const NOTIFY_KEYS_CHANGED = `SELECT pg_notify('${KEYS_CHANNEL}', current_schema())`;

const RETRY_MIN_MS = 1_000;
const RETRY_MAX_MS = 30_000;

/**
 * Hears, on PostgreSQL, the other instances' changes of the signing keys (LISTEN on a connection
 * of its own, outside the pool) and calls `changed`, so a rotation reaches every instance in
 * milliseconds rather than at the next periodic reload. When the connection drops, it reconnects
 * with a growing delay and calls `changed` once back, for what it may have missed; the periodic
 * reload still runs meanwhile, so nothing depends on this for correctness.
 */
export class KeyChangeListener {
  private readonly logger = new Logger('KeysService');
  private client?: Client;
  private schema?: string;
  private retryMs = RETRY_MIN_MS;
  private retry?: NodeJS.Timeout;
  private stopped = false;

  constructor(private readonly ds: DataSource, private readonly changed: () => void) {}

  /** Listens; if the first connection fails, keeps trying in the background (boot does not wait for it). */
  async start(): Promise<void> {
    await this.connect(false);
  }

  /** The PostgreSQL backend process of the listening connection, while there is one (pg_stat_activity.pid). */
  get backendPid(): number | undefined {
    return (this.client as (Client & { processID?: number }) | undefined)?.processID ?? undefined;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private async connect(missedSome: boolean): Promise<void> {
    const client = new Client(this.clientConfig());
    // A broken connection emits 'error' (and then 'end'): handled here, never thrown at the process.
    let dropped = false;
    const drop = (err?: Error) => {
      if (dropped) return;
      dropped = true;
      if (this.client === client) this.client = undefined;
      client.end().catch(() => undefined);
      if (this.stopped) return;
      this.logger.warn(`key change notifications lost${err ? ` (${err.message})` : ''}; reconnecting in ${this.retryMs / 1000} s`);
      this.scheduleRetry();
    };
    client.on('error', drop);
    client.on('end', () => drop());
    client.on('notification', (msg) => {
      if (msg.channel === KEYS_CHANNEL && msg.payload === this.schema) this.changed();
    });
    try {
      await client.connect();
      this.schema = (await client.query<{ s: string }>('SELECT current_schema() AS s')).rows[0].s;
      await client.query(`LISTEN ${KEYS_CHANNEL}`);
    } catch (err) {
      drop(err as Error);
      return;
    }
    if (this.stopped) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.retryMs = RETRY_MIN_MS;
    if (missedSome) this.changed();
  }

  private scheduleRetry(): void {
    if (this.retry) return;
    const wait = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
    this.retry = setTimeout(() => {
      this.retry = undefined;
      void this.connect(true);
    }, wait);
    this.retry.unref();
  }

  /** The DataSource's own connection settings (as TypeORM builds them for its pool), for one more connection. */
  private clientConfig(): ClientConfig {
    const o = this.ds.options as {
      url?: string; host?: string; port?: number; username?: string; password?: string | (() => string | Promise<string>); database?: string;
      ssl?: ClientConfig['ssl']; connectTimeoutMS?: number; applicationName?: string; extra?: Record<string, unknown>;
    };
    const { max: _max, idleTimeoutMillis: _idle, ...extra } = o.extra ?? {};
    return {
      connectionString: o.url, host: o.host, user: o.username, password: o.password, database: o.database, port: o.port, ssl: o.ssl,
      connectionTimeoutMillis: o.connectTimeoutMS, application_name: o.applicationName,
      ...extra,
      // Nothing but LISTEN runs on it, and it waits for good.
      statement_timeout: undefined, idle_in_transaction_session_timeout: undefined,
    } as ClientConfig;
  }
}
