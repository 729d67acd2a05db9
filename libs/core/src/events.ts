import { Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import type { RequestContext } from './request-context';

/**
 * Every event the IdP emits, with its payload. Payloads never carry a secret, code or token:
 * ids only. Extensions may add to the map by declaration merging.
 */
export interface IdpEventMap {
  'client.created': { clientId: string; actor?: string };
  'client.updated': { clientId: string; actor?: string };
  'client.deleted': { clientId: string; actor?: string };
  'client.secret_rotated': { clientId: string; actor?: string };
  'client.auth_failed': { clientId?: string; method?: string; reason: string; ip?: string };
  'user.created': { userId: string; actor?: string };
  'user.updated': { userId: string; actor?: string };
  'user.deleted': { userId: string; actor?: string };
  'api.created': { apiId: string; identifier: string; actor?: string };
  'api.updated': { apiId: string; identifier: string; actor?: string };
  'api.deleted': { apiId: string; identifier: string; actor?: string };
  'client_grant.created': { grantId: string; clientId: string; audience: string; actor?: string };
  'client_grant.deleted': { grantId: string; clientId: string; audience: string; actor?: string };
  /** `kid` signs from `activatesAt` (ISO 8601), after `previousKid`. */
  'key.rotated': { kid: string; previousKid?: string; activatesAt?: string; actor?: string };
  'token.issued': { clientId: string; grantType: string; userId?: string; audience: string[]; jti: string; scope: string };
  'token.revoked': { clientId: string; tokenType: 'access_token' | 'refresh_token'; userId?: string };
  'token.refresh_reused': { clientId: string; userId: string; familyId: string };
  'code.replayed': { clientId: string; userId: string };
  'authorization.code_issued': { clientId: string; userId: string; scope: string; audience?: string };
  'user.login': { userId: string; clientId?: string; ip?: string };
  /**
   * A failed sign-in: `identifier` is what was typed (normalised as emails are, at most 320
   * characters), `userId` the account it names when one exists; never the password.
   */
  'user.login_failed': { userId?: string; identifier: string; clientId?: string; ip?: string; reason: string };
  'user.logout': { userId: string; clientId?: string };
  'user.login_denied': { userId: string; clientId?: string; reason: string };
  /** The failure that reached a lock: the account tried (its user_id when it exists, and the identifier typed). */
  'user.locked': { reason: 'account' | 'address'; retryAfter: number; userId?: string; identifier?: string; ip?: string };
  'client.locked': { clientId?: string; reason: 'client' | 'address'; retryAfter: number; ip?: string };
  'consent.granted': { userId: string; clientId: string; scopes: string[]; audience?: string };
  'consent.denied': { userId: string; clientId: string };
  'consent.revoked': { userId: string; clientId: string; actor?: string };
}
export type IdpEventName = keyof IdpEventMap;

export const OnIdpEvent = DiscoveryService.createDecorator<IdpEventName>();

type Listener = (payload: unknown, ctx: RequestContext | undefined) => unknown;

/**
 * The event bus. Listeners are methods decorated with `@OnIdpEvent(name)` on singleton providers,
 * found once at bootstrap. `emit` is called after the data is committed; listeners run in order and
 * are awaited; a listener's error is logged and never fails the request that emitted the event.
 * A listener gets the payload and the context of the request that caused the event (request id,
 * address; undefined when no request did, e.g. at boot): `onLogin(e: IdpEventMap['user.login'], ctx?: RequestContext)`.
 */
@Injectable()
export class IdpEvents implements OnApplicationBootstrap {
  private readonly logger = new Logger('IdpEvents');
  private readonly listeners = new Map<string, Listener[]>();

  constructor(private readonly discovery: DiscoveryService, private readonly scanner: MetadataScanner) {}

  onApplicationBootstrap(): void {
    for (const wrapper of this.discovery.getProviders()) {
      const instance = wrapper.instance as Record<string, unknown> | undefined;
      if (!instance || !wrapper.isDependencyTreeStatic() || typeof instance !== 'object') continue;
      const proto = Object.getPrototypeOf(instance);
      for (const method of this.scanner.getAllMethodNames(proto)) {
        const name = this.discovery.getMetadataByDecorator(OnIdpEvent, wrapper, method);
        if (name) this.on(name, (instance[method] as Listener).bind(instance));
      }
    }
  }

  on<K extends IdpEventName>(name: K, listener: (payload: IdpEventMap[K], ctx: RequestContext | undefined) => unknown): void {
    const list = this.listeners.get(name) ?? [];
    list.push(listener as Listener);
    this.listeners.set(name, list);
  }

  /** Runs the listeners of `name`; `ctx` is the context of the request that caused the event, when one did. */
  async emit<K extends IdpEventName>(name: K, payload: IdpEventMap[K], ctx: RequestContext | undefined): Promise<void> {
    const list = this.listeners.get(name);
    if (!list) return;
    for (const listener of list) {
      try {
        await listener(payload, ctx);
      } catch (err) {
        this.logger.error(`listener for ${name} failed: ${(err as Error).message}`);
      }
    }
  }
}
