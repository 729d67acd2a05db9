import { Injectable } from '@nestjs/common';
import { IdpConfig, invalidClient, invalidRequest, ProtocolRequest } from '@idp/core';
import type { Client } from '../client.entity';
import { ClientAuthMethod, ClientCredentials } from './client-auth-method';

/** RFC 6749 §2.3.1: HTTP Basic with the form-urlencoded client_id and client_secret. */
@ClientAuthMethod({ name: 'client_secret_basic' })
@Injectable()
export class ClientSecretBasic implements ClientAuthMethod {
  readonly name = 'client_secret_basic';
  readonly usesSecret = true;

  constructor(private readonly config: IdpConfig) {}

  extract(req: ProtocolRequest): ClientCredentials | undefined {
    const header = req.headers.authorization;
    if (!header || !/^basic /i.test(header)) return undefined;
    const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 1) throw invalidClient('malformed Basic credentials').withHeaders({ 'WWW-Authenticate': 'Basic realm="idp"' });
    try {
      const clientId = decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' '));
      const secret = decodeURIComponent(decoded.slice(colon + 1).replace(/\+/g, ' '));
      return { clientId, secret, method: this.name };
    } catch {
      throw invalidRequest('Basic credentials are not properly form-urlencoded');
    }
  }

  async verify(client: Client & { secret_hash?: string | null }, creds: ClientCredentials): Promise<void> {
    if (!creds.secret || !this.config.keyring.verifySecret(creds.secret, client.secret_hash)) {
      throw invalidClient('client authentication failed', 'wrong client secret');
    }
  }
}
