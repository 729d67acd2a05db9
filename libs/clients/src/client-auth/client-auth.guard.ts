import { CanActivate, ExecutionContext, Injectable, createParamDecorator } from '@nestjs/common';
import type { ProtocolRequest } from '@idp/core';
import type { Client } from '../client.entity';
import { ClientAuthenticator } from './client-authenticator';

/**
 * Authenticates the calling client (CONTRACT §2.4) from the parsed form body and headers, and sets
 * `request.client`: on the token, revocation and introspection endpoints, and on any route of an
 * extension's own that clients call.
 */
@Injectable()
export class ClientAuthGuard implements CanActivate {
  constructor(private readonly authenticator: ClientAuthenticator) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const req = ctx.switchToHttp().getRequest<ProtocolRequest & { client?: Client }>();
    req.client = await this.authenticator.authenticate(req);
    return true;
  }
}

/** The client authenticated by ClientAuthGuard. */
export const CurrentClient = createParamDecorator((_: unknown, ctx: ExecutionContext): Client => {
  return ctx.switchToHttp().getRequest<{ client: Client }>().client;
});
