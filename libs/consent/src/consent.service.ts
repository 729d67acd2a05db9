import { Injectable, NotFoundException } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { Clock, IdpEvents, inTransaction, isUniqueViolation, uuidv7, RequestContext } from '@idp/core';
import type { Client } from '@idp/clients';
import { Consent, ConsentScopes } from './consent.entity';

export interface ConsentRequest {
  userId: string;
  client: Client;
  scopes: string[];
  /** The API the API scopes belong to; the OIDC scopes are recorded under ''. */
  audience?: string;
}

const OIDC = new Set(['openid', 'profile', 'email', 'offline_access', 'address', 'phone']);

/** Remembered consents: a user's grant to a client, per audience. */
@Injectable()
export class ConsentService {
  private findSql?: string;

  constructor(@InjectDataSource() private readonly db: DataSource, private readonly events: IdpEvents, private readonly clock: Clock) {}

  /**
   * The requested scopes the user has not yet allowed this client (none for a first-party client).
   * `consent`: the user's consent for this client when the caller has read it already (null: none).
   */
  async missingScopes(req: ConsentRequest, consent?: Consent | null): Promise<string[]> {
    if (req.client.first_party) return [];
    const found = consent === undefined ? await this.find(req.userId, req.client.client_id) : consent;
    const granted = found?.scopes ?? {};
    return req.scopes.filter((s) => !(granted[bucket(s, req.audience)] ?? []).includes(s));
  }

  /**
   * Records that the user allowed these scopes (added to what was allowed before). Concurrent
   * grants for one user and client converge: the unique index makes one insert win, the other
   * retries as an update of the merged row inside a transaction. `ctx`: the consent request's
   * context, for the event.
   */
  async grant(req: ConsentRequest, ctx?: RequestContext): Promise<Consent> {
    for (let attempt = 0; ; attempt++) {
      try {
        const consent = await inTransaction(this.db, async (m) => {
          const repo = m.getRepository(Consent);
          const now = this.clock.date();
          // On PostgreSQL the row is locked (FOR UPDATE) so concurrent grants merge instead of one
          // overwriting the other; SQLite runs one write transaction at a time.
          const existing = await repo.findOne({
            where: { user_id: req.userId, client_id: req.client.client_id },
            ...(this.db.options.type === 'postgres' ? { lock: { mode: 'pessimistic_write' as const } } : {}),
          });
          const scopes: ConsentScopes = { ...(existing?.scopes ?? {}) };
          for (const s of req.scopes) {
            const b = bucket(s, req.audience);
            scopes[b] = [...new Set([...(scopes[b] ?? []), s])];
          }
          if (existing) {
            await repo.update({ id: existing.id }, { scopes, updated_at: now });
            return Object.assign(existing, { scopes, updated_at: now });
          }
          const row = repo.create({ id: uuidv7(), user_id: req.userId, client_id: req.client.client_id, scopes, granted_at: now, updated_at: now });
          await repo.insert(row);
          return row;
        });
        await this.events.emit('consent.granted', { userId: req.userId, clientId: req.client.client_id, scopes: req.scopes, audience: req.audience }, ctx);
        return consent;
      } catch (err) {
        if (isUniqueViolation(err) && attempt < 3) continue;
        throw err;
      }
    }
  }

  /**
   * The user's consent for the client, read on every /authorize: one hand-written SELECT by the
   * unique (user_id, client_id) index (a profile of the code flow put TypeORM's find, which builds
   * the query and maps the row anew each time, at several times the statement), each column
   * converted by TypeORM's driver as find() converts it.
   */
  async find(userId: string, clientId: string): Promise<Consent | null> {
    const { driver } = this.db;
    const meta = this.db.getMetadata(Consent);
    this.findSql ??= `SELECT ${meta.columns.map((c) => `"${c.databaseName}"`).join(', ')} FROM ${meta.tablePath} WHERE "user_id" = ${driver.createParameter('user_id', 0)} AND "client_id" = ${driver.createParameter('client_id', 1)}`;
    const [raw] = (await this.db.query(this.findSql, [userId, clientId])) as Record<string, unknown>[];
    if (!raw) return null;
    const consent = {} as Record<string, unknown>;
    for (const c of meta.columns) consent[c.propertyName] = driver.prepareHydratedValue(raw[c.databaseName], c);
    return consent as unknown as Consent;
  }

  listForUser(userId: string): Promise<Consent[]> {
    return this.db.getRepository(Consent).find({ where: { user_id: userId }, order: { id: 'ASC' } });
  }

  /** Deletes one of a user's consents; the caller revokes the tokens issued under it. */
  async revoke(userId: string, consentId: string, actor?: string, ctx?: RequestContext): Promise<Consent> {
    const repo = this.db.getRepository(Consent);
    const consent = consentId.length <= 36 ? await repo.findOne({ where: { id: consentId, user_id: userId } }) : null;
    if (!consent) throw new NotFoundException([`grant ${consentId} not found for user ${userId}`]);
    await repo.delete({ id: consent.id });
    await this.events.emit('consent.revoked', { userId, clientId: consent.client_id, actor }, ctx);
    return consent;
  }
}

function bucket(scope: string, audience?: string): string {
  return OIDC.has(scope) || !audience ? '' : audience;
}
