import { Injectable } from '@nestjs/common';
import type { ProtocolRequest } from '@idp/core';
import { ClientAuthMethod, ClientCredentials, formParam } from './client-auth-method';

/**
 * A public client (RFC 6749 §2.1): it identifies itself with client_id alone. Nothing is proven
 * here; PKCE binds its codes instead (checked at redemption).
 */
@ClientAuthMethod({ name: 'none' })
@Injectable()
export class NoneAuth implements ClientAuthMethod {
  readonly name = 'none';
  readonly usesSecret = false;

  extract(req: ProtocolRequest): ClientCredentials | undefined {
    const clientId = formParam(req, 'client_id');
    if (clientId === undefined) return undefined;
    // Any other mechanism present makes the request someone else's.
    if (req.headers.authorization || formParam(req, 'client_secret') !== undefined || formParam(req, 'client_assertion') !== undefined) return undefined;
    return { clientId, method: this.name };
  }

  async verify(): Promise<void> {}
}
