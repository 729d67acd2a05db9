import { CanActivate, ExecutionContext, Injectable, createParamDecorator } from '@nestjs/common';
import type { Request, Response } from 'express';
import type { Client } from '../client.entity';
import { ClientAuthenticator } from './client-authenticator';

/**
 * Authenticates the calling client on a Nest route of an extension's own (with the form body
 * parsed by Express); sets `request.client`. The built-in token, revocation and introspection
 * endpoints run the same ClientAuthenticator from ProtocolEndpoints (@idp/token).
 */
@Injectable()
export class ClientAuthGuard implements CanActivate {
  constructor(private readonly authenticator: ClientAuthenticator) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const req = ctx.switchToHttp().getRequest<Request & { client?: Client }>();
    req.client = await this.authenticator.authenticate(req);
    // CORS (CONTRACT §4 allowed_origins): a browser may read the answer only from an origin the client registered.
    const origin = req.headers.origin;
    if (origin && req.client.allowed_origins.includes(origin)) {
      const res = ctx.switchToHttp().getResponse<Response>();
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Vary', 'Origin');
    }
    return true;
  }
}

/** The client authenticated by ClientAuthGuard. */
export const CurrentClient = createParamDecorator((_: unknown, ctx: ExecutionContext): Client => {
  return ctx.switchToHttp().getRequest<Request & { client: Client }>().client;
});
