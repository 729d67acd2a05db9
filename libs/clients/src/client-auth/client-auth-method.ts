import { DiscoveryService } from '@nestjs/core';
import { RegistryOptions, ProtocolRequest } from '@idp/core';
import type { Client } from '../client.entity';

/** What a method found in a request: who claims to be calling, and the proof it brought. */
export interface ClientCredentials {
  clientId: string;
  /** The name of the method that found these credentials. */
  method: string;
  secret?: string;
  assertion?: string;
}

export interface ClientAuthContext {
  /** The absolute URL of the endpoint being called (accepted as an assertion `aud`). */
  endpointUrl: string;
  ip?: string;
}

/**
 * One client authentication method (Spring Authorization Server's shape): `extract` answers
 * "is this request mine?" without judging it; `verify` answers "is it valid?" for the client the
 * credentials name, and throws an OAuthError (invalid_client) when it is not.
 */
export interface ClientAuthMethod {
  readonly name: string;
  /** Whether a client registered with this method holds a shared secret issued by us. */
  readonly usesSecret: boolean;
  extract(req: ProtocolRequest): ClientCredentials | undefined;
  verify(client: Client, credentials: ClientCredentials, context: ClientAuthContext): Promise<void>;
}

/** Registers a provider as a client authentication method under a `token_endpoint_auth_method` name. */
export const ClientAuthMethod = DiscoveryService.createDecorator<{ name: string } & RegistryOptions>();

/** Reads one form parameter, refusing repeats (RFC 6749 §3.2: parameters must not be included more than once). */
export function formParam(req: ProtocolRequest, name: string): string | undefined {
  const body = req.body as Record<string, unknown> | undefined;
  const v = body && typeof body === 'object' ? body[name] : undefined;
  if (v === undefined || v === '') return undefined;
  if (typeof v !== 'string') return undefined;
  return v;
}
