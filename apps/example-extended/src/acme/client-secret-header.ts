import { Injectable } from '@nestjs/common';
import { IdpConfig, invalidClient, ProtocolRequest } from '@idp/core';
import { Client, ClientAuthMethod, ClientCredentials } from '@idp/clients';
import { CLIENT_SECRET_HEADER } from './acme.constants';

/**
 * Seam: client authentication method. Acme's API gateway forwards machine credentials in two
 * headers, `X-Client-Id` and `X-Client-Secret`. `extract` only answers "is this request mine?"
 * (either header present); `verify` answers "is it valid?" and throws invalid_client (401) when
 * not. `usesSecret` makes client registration issue (and rotation replace) a secret, stored
 * hashed. Listed in `token_endpoint_auth_methods_supported`; a client registers with
 * `token_endpoint_auth_method: "client_secret_header"`.
 */
@ClientAuthMethod({ name: CLIENT_SECRET_HEADER })
@Injectable()
export class ClientSecretHeader implements ClientAuthMethod {
  readonly name = CLIENT_SECRET_HEADER;
  readonly usesSecret = true;

  constructor(private readonly config: IdpConfig) {}

  extract(req: ProtocolRequest): ClientCredentials | undefined {
    const id = header(req, 'x-client-id');
    const secret = header(req, 'x-client-secret');
    if (id === undefined && secret === undefined) return undefined;
    // One header without the other is still this method's (and fails: no id, or no secret).
    return { clientId: id ?? '', secret, method: this.name };
  }

  async verify(client: Client & { secret_hash?: string | null }, creds: ClientCredentials): Promise<void> {
    // Constant-time comparison of keyed hashes, as the built-in secret methods do.
    if (!creds.secret || !this.config.keyring.verifySecret(creds.secret, client.secret_hash)) {
      throw invalidClient('client authentication failed', 'wrong client secret');
    }
  }
}

/** A header's value, trimmed (Node joins a repeated X- header into one string, which then fails to match). */
function header(req: ProtocolRequest, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' ? v.trim() : undefined;
}
