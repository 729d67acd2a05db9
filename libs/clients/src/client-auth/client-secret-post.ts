import { Injectable } from '@nestjs/common';
import { IdpConfig, invalidClient, ProtocolRequest } from '@idp/core';
import type { Client } from '../client.entity';
import { ClientAuthMethod, ClientCredentials, formParam } from './client-auth-method';

/** RFC 6749 §2.3.1: client_id and client_secret in the form body. */
@ClientAuthMethod({ name: 'client_secret_post' })
@Injectable()
export class ClientSecretPost implements ClientAuthMethod {
  readonly name = 'client_secret_post';
  readonly usesSecret = true;

  constructor(private readonly config: IdpConfig) {}

  extract(req: ProtocolRequest): ClientCredentials | undefined {
    const secret = formParam(req, 'client_secret');
    if (secret === undefined) return undefined;
    return { clientId: formParam(req, 'client_id') ?? '', secret, method: this.name };
  }

  async verify(client: Client & { secret_hash?: string | null }, creds: ClientCredentials): Promise<void> {
    if (!creds.secret || !this.config.keyring.verifySecret(creds.secret, client.secret_hash)) {
      throw invalidClient('client authentication failed', 'wrong client secret');
    }
  }
}
