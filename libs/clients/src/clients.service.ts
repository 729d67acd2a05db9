import { BadRequestException, Injectable, NotFoundException } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { MoreThan, Repository } from 'typeorm';
import { Clock, IdpConfig, IdpEvents, OutboundClient, Page, PageRequest, randomToken, toPage, RequestContext } from '@idp/core';
import { Client } from './client.entity';
import { ClientMetadataDto, ClientView } from './client-metadata.dto';
import { Metadata, metadataProblems } from './client-rules';
import { ClientAuthRegistry } from './client-auth/client-auth-registry';

export interface RegisterOptions {
  /** Grant types the server supports (from the token lib's registry); unchecked when omitted. */
  grantTypes?: string[];
  /** Use this client_id instead of a random one (bootstrap admin client). */
  clientId?: string;
  /** Use this secret instead of a generated one (bootstrap admin client). */
  secret?: string;
  actor?: string;
  /** The admin request's context (request id, address), for the event. */
  ctx?: RequestContext;
}

const CLIENT_CACHE_MS = 5_000;
const CLIENT_CACHE_MAX = 10_000;

/** Registers and manages clients (RFC 7591 semantics); the only writer of the clients table. */
@Injectable()
export class ClientsService {
  private origins?: { at: number; set: Set<string> };
  /**
   * Clients by id, read on every token request: kept 5 s per replica. A change made through this
   * service is seen at once here; on other replicas within 5 s (a rotated-out secret keeps working
   * there that long at most).
   */
  private readonly cache = new Map<string, { at: number; client: (Client & { secret_hash: string | null }) | null }>();

  constructor(
    @InjectRepository(Client) private readonly clients: Repository<Client>,
    private readonly methods: ClientAuthRegistry,
    private readonly config: IdpConfig,
    private readonly events: IdpEvents,
    private readonly outbound: OutboundClient,
    private readonly clock: Clock,
  ) {}

  /** Creates a client; returns it with its secret in clear (the only time, with rotation, it is seen). */
  async register(dto: ClientMetadataDto, opts: RegisterOptions = {}): Promise<{ client: Client; secret?: string }> {
    const m = this.withDefaults(dto);
    this.check(m, opts.grantTypes);
    const usesSecret = this.methods.get(m.token_endpoint_auth_method)!.usesSecret;
    // 256 bits from the CSPRNG: RFC 6749 §10.10 wants secrets that cannot be guessed.
    const secret = usesSecret ? (opts.secret ?? randomToken(32)) : undefined;
    const now = this.clock.date();
    const client = this.clients.create({
      ...this.columns(m),
      client_id: opts.clientId ?? randomToken(18),
      secret_hash: secret ? this.config.keyring.hashSecret(secret) : null,
      client_id_issued_at: Math.floor(now.getTime() / 1000),
      created_at: now,
      updated_at: now,
    });
    await this.clients.insert(client);
    this.changed(client.client_id);
    await this.events.emit('client.created', { clientId: client.client_id, actor: opts.actor }, opts.ctx);
    delete (client as Partial<Client>).secret_hash;
    return { client, secret };
  }

  /**
   * Applies a partial update (JSON merge of the metadata), re-checking the whole result. A client
   * moved to a secret-based method without a secret gets one, returned once.
   */
  async update(clientId: string, dto: ClientMetadataDto, opts: { grantTypes?: string[]; actor?: string; ctx?: RequestContext } = {}): Promise<{ client: Client; secret?: string }> {
    const current = await this.clients.createQueryBuilder('c').addSelect('c.secret_hash').where('c.client_id = :id', { id: clientId }).getOne();
    if (!current) throw new NotFoundException([`client ${clientId} not found`]);
    const merged = this.withDefaults({ ...ClientView.of(current), ...stripUndefined(dto) } as ClientMetadataDto);
    if (dto.jwks !== undefined && dto.jwks_uri === undefined) merged.jwks_uri = undefined;
    if (dto.jwks_uri !== undefined && dto.jwks === undefined) merged.jwks = undefined;
    this.check(merged, opts.grantTypes);
    const usesSecret = this.methods.get(merged.token_endpoint_auth_method)!.usesSecret;
    let secret: string | undefined;
    let secret_hash = current.secret_hash;
    if (usesSecret && !secret_hash) {
      secret = randomToken(32);
      secret_hash = this.config.keyring.hashSecret(secret);
    } else if (!usesSecret) {
      secret_hash = null;
    }
    const patch = { ...this.columns(merged), secret_hash, updated_at: this.clock.date() };
    await this.clients.update({ client_id: clientId }, patch);
    this.changed(clientId);
    await this.events.emit('client.updated', { clientId, actor: opts.actor }, opts.ctx);
    const { secret_hash: _, ...visible } = patch;
    return { client: Object.assign(current, visible, { secret_hash: undefined }), secret };
  }

  /** Issues a new secret (the old one stops working at once) and returns it in clear, once. */
  async rotateSecret(clientId: string, opts: { secret?: string; actor?: string; ctx?: RequestContext } = {}): Promise<{ client: Client; secret: string }> {
    const client = await this.get(clientId);
    if (!this.methods.get(client.token_endpoint_auth_method)?.usesSecret) {
      throw new BadRequestException([`token_endpoint_auth_method ${client.token_endpoint_auth_method} does not use a client secret`]);
    }
    const secret = opts.secret ?? randomToken(32);
    await this.clients.update({ client_id: clientId }, { secret_hash: this.config.keyring.hashSecret(secret), updated_at: this.clock.date() });
    this.changed(clientId);
    await this.events.emit('client.secret_rotated', { clientId, actor: opts.actor }, opts.ctx);
    return { client, secret };
  }

  async remove(clientId: string, actor?: string, ctx?: RequestContext): Promise<void> {
    const res = await this.clients.delete({ client_id: clientId });
    if (!res.affected) throw new NotFoundException([`client ${clientId} not found`]);
    this.changed(clientId);
    await this.events.emit('client.deleted', { clientId, actor }, ctx);
  }

  /**
   * Every origin some client allows (CORS preflights carry no client id): cached for 60 s and
   * dropped on any client change made here.
   */
  async allowedOrigins(): Promise<Set<string>> {
    if (this.origins && Date.now() - this.origins.at < 60_000) return this.origins.set;
    const rows = await this.clients.find({ select: { client_id: true, allowed_origins: true } });
    this.origins = { at: Date.now(), set: new Set(rows.flatMap((r) => r.allowed_origins)) };
    return this.origins.set;
  }

  /** The client (without its secret hash). */
  async find(clientId: string): Promise<Client | null> {
    const c = await this.findForAuthentication(clientId);
    if (c) delete (c as Partial<Client> & { secret_hash?: unknown }).secret_hash;
    return c;
  }

  async get(clientId: string): Promise<Client> {
    const c = await this.find(clientId);
    if (!c) throw new NotFoundException([`client ${clientId} not found`]);
    return c;
  }

  /** The client with its secret hash, for the authentication methods only. */
  async findForAuthentication(clientId: string): Promise<(Client & { secret_hash: string | null }) | null> {
    // Ids from a Basic header or an assertion's `sub`: PostgreSQL cannot compare U+0000 in text.
    if (clientId.length > 128 || clientId.includes('\0')) return null;
    const hit = this.cache.get(clientId);
    if (hit && Date.now() - hit.at < CLIENT_CACHE_MS) return hit.client ? this.clone(hit.client) : null;
    const client = await this.clients.createQueryBuilder('c').addSelect('c.secret_hash').where('c.client_id = :id', { id: clientId }).getOne();
    if (this.cache.size >= CLIENT_CACHE_MAX) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(clientId, { at: Date.now(), client });
    return client ? this.clone(client) : null;
  }

  /** A copy callers may change (the cached row stays as it was read). */
  private clone(c: Client & { secret_hash: string | null }): Client & { secret_hash: string | null } {
    return Object.assign(Object.create(Client.prototype), c, {
      redirect_uris: [...c.redirect_uris], post_logout_redirect_uris: [...c.post_logout_redirect_uris],
      grant_types: [...c.grant_types], allowed_origins: [...c.allowed_origins],
    });
  }

  /** Forgets what this replica cached about a client (after any change made here). */
  private changed(clientId?: string): void {
    this.origins = undefined;
    if (clientId) this.cache.delete(clientId);
  }

  async list(req: PageRequest): Promise<Page<ClientView>> {
    const rows = await this.clients.find({ where: req.after ? { client_id: MoreThan(req.after) } : {}, order: { client_id: 'ASC' }, take: req.limit + 1 });
    return toPage(rows, req, (c) => c.client_id, (c) => ClientView.of(c));
  }

  private withDefaults(dto: ClientMetadataDto): Metadata {
    return {
      ...dto,
      redirect_uris: dto.redirect_uris ?? [],
      post_logout_redirect_uris: dto.post_logout_redirect_uris ?? [],
      grant_types: dto.grant_types ?? ['authorization_code'],
      token_endpoint_auth_method: dto.token_endpoint_auth_method ?? 'client_secret_basic',
      allowed_origins: dto.allowed_origins ?? [],
    };
  }

  private check(m: Metadata, grantTypes?: string[]): void {
    const problems = metadataProblems(m, { methods: this.methods.names, grantTypes, fetchableUrlProblem: (url) => this.outbound.urlProblem(url) });
    if (problems.length) throw new BadRequestException(problems);
  }

  private columns(m: Metadata): Omit<Client, 'client_id' | 'secret_hash' | 'client_id_issued_at' | 'created_at' | 'updated_at' | 'isPublic'> {
    return {
      client_name: m.client_name ?? null,
      redirect_uris: m.redirect_uris,
      post_logout_redirect_uris: m.post_logout_redirect_uris,
      grant_types: m.grant_types,
      token_endpoint_auth_method: m.token_endpoint_auth_method,
      jwks: m.jwks ?? null,
      jwks_uri: m.jwks_uri ?? null,
      scope: m.scope ?? null,
      first_party: m.first_party ?? false,
      allowed_origins: m.allowed_origins,
      refresh_token_rotation: m.refresh_token_rotation ?? true,
    };
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
