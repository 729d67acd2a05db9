import { Injectable } from '@nestjs/common';
import { IdpConfig, IdpEvents, LockoutService, OAuthError, invalidClient, invalidRequest, ProtocolRequest, RequestContext, urlPath } from '@idp/core';
import type { Client } from '../client.entity';
import { ClientsService } from '../clients.service';
import { ClientCredentials } from './client-auth-method';
import { ClientAuthRegistry } from './client-auth-registry';

const BASIC_CHALLENGE = { 'WWW-Authenticate': 'Basic realm="idp", charset="UTF-8"' };

/** The client authentication algorithm (DESIGN.md "POST /oauth/token" step 1). */
@Injectable()
export class ClientAuthenticator {
  constructor(
    private readonly registry: ClientAuthRegistry,
    private readonly clients: ClientsService,
    private readonly events: IdpEvents,
    private readonly config: IdpConfig,
    private readonly lockout: LockoutService,
  ) {}

  async authenticate(req: ProtocolRequest): Promise<Client> {
    const found: ClientCredentials[] = [];
    // RFC 6749 §5.2: a client that tried the Authorization header (even `Basic` alone) gets the challenge.
    let basicTried = /^basic(\s|$)/i.test(req.headers.authorization ?? '');
    try {
      for (const method of this.registry.all()) {
        const creds = method.extract(req);
        if (creds) found.push(creds);
      }
    } catch (err) {
      await this.fail(undefined, undefined, (err as OAuthError).hint ?? (err as Error).message, req);
      throw basicTried && err instanceof OAuthError && err.status === 401 ? err.withHeaders(BASIC_CHALLENGE) : err;
    }
    if (found.length > 1) {
      // RFC 6749 §2.3: a client must not use more than one authentication method per request.
      throw invalidRequest(`more than one client authentication method was used: ${found.map((f) => f.method).join(', ')}`);
    }
    const creds = found[0];
    if (!creds || !creds.clientId) {
      await this.fail(undefined, undefined, 'no client credentials', req);
      const err = invalidClient('client authentication is required');
      throw basicTried ? err.withHeaders(BASIC_CHALLENGE) : err;
    }
    basicTried = creds.method === 'client_secret_basic';
    const challenge = (e: OAuthError) => (basicTried ? e.withHeaders(BASIC_CHALLENGE) : e);

    // Brute-force protection (CONTRACT §5): the attempt takes a slot of the client's and address's
    // budget, atomically, before anything is checked, and a locked client or address is refused
    // without a check.
    const attempt = await this.lockout.attempt(this.lockout.clientKeys(creds.clientId.slice(0, 256), req.ip));
    if (attempt.retryAfter) throw tooManyAttempts(attempt.retryAfter);
    const failed = async (clientId: string | undefined, method: string | undefined, reason: string, err: OAuthError): Promise<never> => {
      const locked = await this.lockout.failed(attempt);
      await this.fail(clientId, method, reason, req);
      if (locked) await this.events.emit('client.locked', { clientId, reason: 'client', retryAfter: locked, ip: req.ip }, RequestContext.of(req));
      throw challenge(err);
    };

    // An error that gave no verdict (the database, say) gives the attempt back before it surfaces.
    const giveBack = async (err: unknown): Promise<never> => {
      this.lockout.abandon(attempt);
      throw err;
    };
    const client = await this.clients.findForAuthentication(creds.clientId).catch(giveBack);
    if (!client) return failed(creds.clientId, creds.method, 'unknown client', invalidClient());
    // Spring's check: a client authenticates only with the method it registered.
    if (client.token_endpoint_auth_method !== creds.method) {
      return failed(client.client_id, creds.method, `registered for ${client.token_endpoint_auth_method}`, invalidClient());
    }
    try {
      await this.registry.get(creds.method)!.verify(client, creds, { endpointUrl: `${this.config.issuer}${endpointPath(req)}`, ip: req.ip });
    } catch (err) {
      if (err instanceof OAuthError && err.code === 'invalid_client') return failed(client.client_id, creds.method, err.hint ?? err.description, err);
      return giveBack(err);
    }
    await this.lockout.succeed(attempt);
    delete (client as Partial<Client> & { secret_hash?: unknown }).secret_hash;
    return client;
  }

  private fail(clientId: string | undefined, method: string | undefined, reason: string, req: ProtocolRequest): Promise<void> {
    return this.events.emit('client.auth_failed', { clientId, method, reason, ip: req.ip }, RequestContext.of(req));
  }
}

/** 429 with Retry-After (CONTRACT §5), in the endpoint's own JSON error format. */
function tooManyAttempts(retryAfter: number): OAuthError {
  return new OAuthError('slow_down', 'too many failed authentication attempts; retry later', 429, false, 'locked', { 'Retry-After': String(retryAfter) });
}

/** The path of the endpoint a request was sent to (without its query string). */
function endpointPath(req: ProtocolRequest): string {
  return req.path ?? urlPath(req.url ?? '/');
}
