import { BadRequestException, Injectable, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { FindOptionsWhere, LessThan, MoreThanOrEqual, Repository } from 'typeorm';
import { Clock, IdpEventName, IdpEvents, JsonLogger, Page, PageRequest, RequestContext, toPage, uuidv7 } from '@idp/core';
import { AuditEvent } from './audit-event.entity';

/** Every event that is a security record. */
export const AUDITED_EVENTS: IdpEventName[] = [
  'user.login', 'user.login_failed', 'user.login_denied', 'user.locked', 'user.logout', 'user.created', 'user.updated', 'user.deleted',
  'consent.granted', 'consent.denied', 'consent.revoked',
  'token.issued', 'token.revoked', 'token.refresh_reused', 'code.replayed',
  'client.auth_failed', 'client.locked', 'client.created', 'client.updated', 'client.deleted', 'client.secret_rotated',
  'api.created', 'api.updated', 'api.deleted', 'client_grant.created', 'client_grant.deleted', 'key.rotated',
];

export interface AuditView {
  id: string;
  type: string;
  time: string;
  user_id: string | null;
  client_id: string | null;
  ip: string | null;
  actor: string | null;
  request_id: string | null;
  data: Record<string, unknown>;
}

/** Rows per INSERT of the audit log. */
const INSERT_BATCH = 50;

/** Writes security events to the audit_events table and to the log; reads them for the admin API. */
@Injectable()
export class AuditService implements OnModuleInit, OnModuleDestroy {
  private buffer: AuditEvent[] = [];
  private timer?: NodeJS.Timeout;
  private writing: Promise<void> = Promise.resolve();
  /** The INSERT of a batch, by its number of rows (at most INSERT_BATCH of them). */
  private readonly insertSql = new Map<number, string>();

  constructor(
    @InjectRepository(AuditEvent) private readonly events: Repository<AuditEvent>,
    private readonly bus: IdpEvents,
    private readonly logger: JsonLogger,
    private readonly clock: Clock,
  ) {}

  onModuleInit(): void {
    for (const type of AUDITED_EVENTS) this.bus.on(type, (payload, ctx) => this.record(type, payload as unknown as Record<string, unknown>, ctx));
  }

  /** Records one event; `ctx` is the request that caused it (its id and address go in the row), when one did. */
  async record(type: string, payload: Record<string, unknown>, ctx?: RequestContext): Promise<void> {
    const { userId, clientId, actor, ip, ...rest } = payload as { userId?: string; clientId?: string; actor?: string; ip?: string };
    const row: AuditEvent = {
      id: uuidv7(), type, created_at: this.clock.date(),
      user_id: userId ?? null, client_id: clientId?.slice(0, 128) ?? null, actor: actor ?? null,
      ip: (ip ?? ctx?.ip ?? null)?.slice(0, 64) ?? null, request_id: ctx?.requestId ?? null, data: rest,
    };
    this.logger.write('info', 'audit', { event: type, user_id: row.user_id, client_id: row.client_id, actor: row.actor, ip: row.ip, request_id: row.request_id, data: rest });
    // Written in batches (one INSERT of up to 50 rows, every 50 ms or 200 events), not one write per token issued.
    this.buffer.push(row);
    if (this.buffer.length >= 200) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), 50);
  }

  /** Writes the buffered events; a failed write is logged and its events kept for the next try. */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.buffer.length) return this.writing;
    const rows = this.buffer.splice(0);
    const previous = this.writing;
    this.writing = (async () => {
      await previous;
      // At most INSERT_BATCH rows a statement (a buffer kept through failed writes may hold thousands).
      let at = 0;
      try {
        for (; at < rows.length; at += INSERT_BATCH) await this.insertBatch(rows.slice(at, at + INSERT_BATCH));
      } catch (err) {
        // The statements before the failed one are written: only the rest is kept.
        const unwritten = rows.slice(at);
        this.logger.write('error', `audit write failed: ${(err as Error).message}`, { events: unwritten.length });
        if (this.buffer.length < 10_000) this.buffer.unshift(...unwritten);
      }
    })();
    return this.writing;
  }

  /**
   * One multi-row INSERT, hand-written: the log gets a row per token issued, and a profile of
   * refresh put TypeORM's insert builder at twice the statement. Every column, each value
   * converted by TypeORM's driver as insert() converts it.
   */
  private async insertBatch(rows: AuditEvent[]): Promise<void> {
    const { driver } = this.events.manager.connection;
    const { columns, tablePath } = this.events.metadata;
    let sql = this.insertSql.get(rows.length);
    if (!sql) {
      let n = 0;
      const tuple = () => `(${columns.map((c) => driver.createParameter(c.propertyName, n++)).join(', ')})`;
      sql = `INSERT INTO ${tablePath} (${columns.map((c) => `"${c.databaseName}"`).join(', ')}) VALUES ${rows.map(tuple).join(', ')}`;
      this.insertSql.set(rows.length, sql);
    }
    await this.events.query(sql, rows.flatMap((r) => columns.map((c) => driver.preparePersistentValue(c.getEntityValue(r), c))));
  }

  async onModuleDestroy(): Promise<void> {
    await this.flush();
  }

  async list(req: PageRequest, filter: { type?: string; userId?: string; clientId?: string; since?: Date }): Promise<Page<AuditView>> {
    await this.flush();
    const where: FindOptionsWhere<AuditEvent> = {};
    if (req.after) where.id = LessThan(req.after);
    if (filter.type) where.type = filter.type;
    if (filter.userId) where.user_id = filter.userId;
    if (filter.clientId) where.client_id = filter.clientId;
    if (filter.since) where.created_at = MoreThanOrEqual(filter.since);
    const rows = await this.events.find({ where, order: { id: 'DESC' }, take: req.limit + 1 });
    return toPage(rows, req, (e) => e.id, (e) => ({
      id: e.id, type: e.type, time: e.created_at.toISOString(), user_id: e.user_id, client_id: e.client_id, ip: e.ip, actor: e.actor, request_id: e.request_id, data: e.data,
    }));
  }
}

export function parseSince(since: unknown): Date | undefined {
  if (since === undefined) return undefined;
  const d = typeof since === 'string' && since.length <= 40 ? new Date(since) : new Date(NaN);
  // Years 0000 to 9999 (ISO 8601 without expanded years): PostgreSQL cannot compare a date before 4713 BC.
  if (Number.isNaN(d.getTime()) || d.getUTCFullYear() < 0 || d.getUTCFullYear() > 9999) throw new BadRequestException(['since must be an ISO 8601 date-time']);
  return d;
}
