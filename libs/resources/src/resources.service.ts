import { BadRequestException, ConflictException, Inject, Injectable, NotFoundException, OnModuleInit } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { MoreThan, Repository } from 'typeorm';
import { Clock, IDP_OVERRIDES, IdpConfig, IdpEvents, IdpOverrides, Page, PageRequest, isUniqueViolation, toPage, uuidv7, RequestContext } from '@idp/core';
import { ClientsService } from '@idp/clients';
import { Api, ApiScope } from './api.entity';
import { ClientGrant } from './client-grant.entity';
import { ApiView, ClientGrantView, CreateApiDto, CreateClientGrantDto, UpdateApiDto } from './resource.dto';

/** The scopes of the admin API (CONTRACT §4). */
export const ADMIN_SCOPES: ApiScope[] = [
  ['read:clients', 'Read clients'], ['write:clients', 'Create, update and delete clients'],
  ['read:users', 'Read users'], ['write:users', 'Create, update and delete users'],
  ['read:apis', 'Read APIs'], ['write:apis', 'Create, update and delete APIs'],
  ['read:client_grants', 'Read client grants'], ['write:client_grants', 'Create and delete client grants'],
  ['read:keys', 'Read signing keys'], ['write:keys', 'Rotate signing keys'],
  ['read:audit_events', 'Read audit events'],
].map(([value, description]) => ({ value, description }));

const CACHE_MS = 5_000;
const CACHE_MAX = 10_000;

/** APIs (resource servers) and client grants: who may get tokens for which audience. */
@Injectable()
export class ResourcesService implements OnModuleInit {
  /** Read on every token request; kept 5 s per replica, dropped on any change made here. */
  private readonly apiCache = new Map<string, { at: number; api: Api | null }>();
  private readonly grantCache = new Map<string, { at: number; grant: ClientGrant | null }>();

  constructor(
    @InjectRepository(Api) private readonly apis: Repository<Api>,
    @InjectRepository(ClientGrant) private readonly grants: Repository<ClientGrant>,
    private readonly clients: ClientsService,
    private readonly config: IdpConfig,
    private readonly events: IdpEvents,
    @Inject(IDP_OVERRIDES) private readonly overrides: IdpOverrides,
    private readonly clock: Clock,
  ) {}

  /** The admin API's scopes: the built-in ones and those an extension adds. */
  get adminScopes(): ApiScope[] {
    const extra = (this.overrides.adminScopes ?? []).filter((s) => !ADMIN_SCOPES.some((a) => a.value === s.value));
    return [...ADMIN_SCOPES, ...extra];
  }

  /** Makes sure the admin API exists with identifier $ISSUER/admin and every admin scope. */
  async onModuleInit(): Promise<void> {
    await this.ensureAdminApi();
  }

  async ensureAdminApi(): Promise<Api> {
    const now = this.clock.date();
    const existing = await this.apis.findOne({ where: { is_system: true } });
    if (existing) {
      const scopes = this.adminScopes;
      if (existing.identifier !== this.config.adminAudience || JSON.stringify(scopes) !== JSON.stringify(existing.scopes)) {
        await this.apis.update({ id: existing.id }, { identifier: this.config.adminAudience, scopes, updated_at: now });
        this.changed();
        Object.assign(existing, { identifier: this.config.adminAudience, scopes });
      }
      return existing;
    }
    const api = this.apis.create({
      id: uuidv7(), identifier: this.config.adminAudience, name: 'Admin API', scopes: this.adminScopes, token_lifetime: 3600,
      allow_offline_access: false, is_system: true, created_at: now, updated_at: now,
    });
    try {
      await this.apis.insert(api);
    } catch (err) {
      // Another replica created it at the same moment.
      if (!isUniqueViolation(err)) throw err;
    }
    return api;
  }

  // ---- APIs ----

  async createApi(dto: CreateApiDto, actor?: string, ctx?: RequestContext): Promise<Api> {
    const problem = identifierProblem(dto.identifier);
    if (problem) throw new BadRequestException([`identifier ${problem}`]);
    this.checkScopes(dto.scopes ?? []);
    const now = this.clock.date();
    const api = this.apis.create({
      id: uuidv7(), identifier: dto.identifier, name: dto.name, scopes: dto.scopes ?? [], token_lifetime: dto.token_lifetime ?? 86400,
      allow_offline_access: dto.allow_offline_access ?? false, is_system: false, created_at: now, updated_at: now,
    });
    try {
      await this.apis.insert(api);
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictException([`identifier ${dto.identifier} is already registered`]);
      throw err;
    }
    this.changed();
    await this.events.emit('api.created', { apiId: api.id, identifier: api.identifier, actor }, ctx);
    return api;
  }

  async updateApi(id: string, dto: UpdateApiDto, actor?: string, ctx?: RequestContext): Promise<Api> {
    const api = await this.getApi(id);
    if (api.is_system && (dto.scopes !== undefined || dto.token_lifetime !== undefined || dto.allow_offline_access !== undefined)) {
      throw new BadRequestException(['the admin API only allows its name to change']);
    }
    if (dto.scopes) this.checkScopes(dto.scopes);
    const patch: Partial<Api> = { updated_at: this.clock.date() };
    if (dto.name !== undefined) patch.name = dto.name;
    if (dto.scopes !== undefined) patch.scopes = dto.scopes;
    if (dto.token_lifetime !== undefined) patch.token_lifetime = dto.token_lifetime;
    if (dto.allow_offline_access !== undefined) patch.allow_offline_access = dto.allow_offline_access;
    await this.apis.update({ id }, patch);
    this.changed();
    await this.events.emit('api.updated', { apiId: id, identifier: api.identifier, actor }, ctx);
    return Object.assign(api, patch);
  }

  async removeApi(id: string, actor?: string, ctx?: RequestContext): Promise<void> {
    const api = await this.getApi(id);
    if (api.is_system) throw new ConflictException(['the admin API cannot be deleted']);
    await this.apis.delete({ id });
    this.changed();
    await this.events.emit('api.deleted', { apiId: id, identifier: api.identifier, actor }, ctx);
  }

  async getApi(id: string): Promise<Api> {
    const api = id.length <= 36 ? await this.apis.findOne({ where: { id } }) : null;
    if (!api) throw new NotFoundException([`API ${id} not found`]);
    return api;
  }

  /** The API with this identifier (cached 5 s per replica; changes made here are seen at once). */
  async findByIdentifier(identifier: string): Promise<Api | null> {
    if (identifier.length > 512 || identifier.includes('\0')) return null;
    const hit = this.apiCache.get(identifier);
    if (hit && Date.now() - hit.at < CACHE_MS) return hit.api;
    const api = await this.apis.findOne({ where: { identifier } });
    if (this.apiCache.size >= CACHE_MAX) this.apiCache.clear();
    this.apiCache.set(identifier, { at: Date.now(), api });
    return api;
  }

  private changed(): void {
    this.apiCache.clear();
    this.grantCache.clear();
  }

  async listApis(req: PageRequest): Promise<Page<ApiView>> {
    const rows = await this.apis.find({ where: req.after ? { id: MoreThan(req.after) } : {}, order: { id: 'ASC' }, take: req.limit + 1 });
    return toPage(rows, req, (a) => a.id, ApiView.of);
  }

  /** The longest access-token lifetime of any API: how long a retired signing key stays published. */
  async maxTokenLifetime(): Promise<number> {
    const row = await this.apis.createQueryBuilder('a').select('MAX(a.token_lifetime)', 'max').getRawOne<{ max: number | string | null }>();
    return Number(row?.max ?? 0);
  }

  // ---- client grants ----

  /**
   * A grant for any registered client, whatever its grant_types (as Auth0): the token endpoint is
   * what refuses client_credentials (unauthorized_client) to a client without that grant type, so a
   * PATCH of grant_types never leaves a grant that could not be created again.
   */
  async createGrant(dto: CreateClientGrantDto, actor?: string, ctx?: RequestContext): Promise<ClientGrantView> {
    const client = await this.clients.find(dto.client_id);
    if (!client) throw new NotFoundException([`client_id ${dto.client_id} not found`]);
    const api = await this.findByIdentifier(dto.audience);
    if (!api) throw new NotFoundException([`audience ${dto.audience} is not a registered API`]);
    const unknown = dto.scope.filter((s) => !api.scopes.some((a) => a.value === s));
    if (unknown.length) throw new BadRequestException([`scope: ${unknown.join(', ')} not defined by the API`]);
    const grant = this.grants.create({ id: uuidv7(), client_id: client.client_id, api_id: api.id, scope: [...new Set(dto.scope)], created_at: this.clock.date() });
    try {
      await this.grants.insert(grant);
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictException([`client ${dto.client_id} already has a grant for ${dto.audience}`]);
      throw err;
    }
    this.changed();
    await this.events.emit('client_grant.created', { grantId: grant.id, clientId: grant.client_id, audience: api.identifier, actor }, ctx);
    return ClientGrantView.of(grant, api.identifier);
  }

  async removeGrant(id: string, actor?: string, ctx?: RequestContext): Promise<void> {
    const grant = id.length <= 36 ? await this.grants.findOne({ where: { id }, relations: { api: true } }) : null;
    if (!grant) throw new NotFoundException([`client grant ${id} not found`]);
    await this.grants.delete({ id });
    this.changed();
    await this.events.emit('client_grant.deleted', { grantId: id, clientId: grant.client_id, audience: grant.api!.identifier, actor }, ctx);
  }

  async listGrants(req: PageRequest, filter: { clientId?: string } = {}): Promise<Page<ClientGrantView>> {
    const where = { ...(req.after ? { id: MoreThan(req.after) } : {}), ...(filter.clientId ? { client_id: filter.clientId } : {}) };
    const rows = await this.grants.find({ where, order: { id: 'ASC' }, take: req.limit + 1, relations: { api: true } });
    return toPage(rows, req, (g) => g.id, (g) => ClientGrantView.of(g, g.api!.identifier));
  }

  /** The grant of `clientId` for the API `audience`, with the API; scopes limited to those the API still defines. */
  async grantFor(clientId: string, audience: string): Promise<{ api: Api; scope: string[] } | null> {
    const api = await this.findByIdentifier(audience);
    if (!api) return null;
    const key = `${clientId}\n${api.id}`;
    let hit = this.grantCache.get(key);
    if (!hit || Date.now() - hit.at >= CACHE_MS) {
      hit = { at: Date.now(), grant: await this.grants.findOne({ where: { client_id: clientId, api_id: api.id } }) };
      if (this.grantCache.size >= CACHE_MAX) this.grantCache.clear();
      this.grantCache.set(key, hit);
    }
    const grant = hit.grant;
    if (!grant) return null;
    return { api, scope: grant.scope.filter((s) => api.scopes.some((a) => a.value === s)) };
  }

  /** Gives a client every scope of an API (used for the bootstrap admin client). */
  async ensureGrant(clientId: string, api: Api): Promise<void> {
    const scope = api.scopes.map((s) => s.value);
    const existing = await this.grants.findOne({ where: { client_id: clientId, api_id: api.id } });
    if (existing) {
      await this.grants.update({ id: existing.id }, { scope });
      this.changed();
      return;
    }
    try {
      await this.grants.insert({ id: uuidv7(), client_id: clientId, api_id: api.id, scope, created_at: this.clock.date() });
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
    }
    this.changed();
  }

  private checkScopes(scopes: ApiScope[]): void {
    const values = scopes.map((s) => s.value);
    if (new Set(values).size !== values.length) throw new BadRequestException(['scopes must not repeat a value']);
    const reserved = values.filter((v) => ['openid', 'profile', 'email', 'offline_access', 'address', 'phone'].includes(v));
    if (reserved.length) throw new BadRequestException([`scopes: ${reserved.join(', ')} are reserved OpenID Connect scopes`]);
  }
}

/** An API identifier is an absolute URI (RFC 8707 §2: no fragment). */
export function identifierProblem(identifier: string): string | undefined {
  if (/\s/.test(identifier)) return 'must not contain white space';
  try {
    const url = new URL(identifier);
    if (url.hash || identifier.includes('#')) return 'must not contain a fragment';
  } catch {
    return 'must be an absolute URI (for example https://api.example.com)';
  }
  return undefined;
}
