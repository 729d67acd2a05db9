import { Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { IdpConfig, isUniqueViolation } from '@idp/core';
import { ClientsService } from '@idp/clients';
import { ResourcesService } from '@idp/resources';

/**
 * CONTRACT §1: when IDP_ADMIN_CLIENT_ID and IDP_ADMIN_CLIENT_SECRET are set, this confidential
 * client exists (client_secret_basic, grant client_credentials) with every admin API scope, and
 * its secret is the given one.
 */
@Injectable()
export class AdminBootstrap implements OnApplicationBootstrap {
  private readonly logger = new Logger('AdminBootstrap');

  constructor(private readonly config: IdpConfig, private readonly clients: ClientsService, private readonly resources: ResourcesService) {}

  async onApplicationBootstrap(): Promise<void> {
    const { adminClientId: clientId, adminClientSecret: secret } = this.config;
    if (!clientId || !secret) return;
    const api = await this.resources.ensureAdminApi();
    const metadata = { client_name: 'Admin (bootstrap)', grant_types: ['client_credentials'], token_endpoint_auth_method: 'client_secret_basic', redirect_uris: [] };
    const converge = async () => {
      await this.clients.update(clientId, metadata);
      await this.clients.rotateSecret(clientId, { secret });
    };
    if (await this.clients.find(clientId)) await converge();
    else {
      try {
        await this.clients.register(metadata, { clientId, secret });
      } catch (err) {
        // Another instance booting at the same moment registered it first: make it this one's too.
        if (!isUniqueViolation(err)) throw err;
        await converge();
      }
    }
    await this.resources.ensureGrant(clientId, api);
    this.logger.log(`admin client ${clientId} is ready`);
  }
}
