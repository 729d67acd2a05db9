import { Controller, Get, Post, Req, Res, UseFilters, UseGuards } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { FastifyReply as Response, FastifyRequest as Request } from 'fastify';
import { IdpConfig } from '@idp/core';
import { SessionGuard, currentSessionUser } from '@idp/session';
import { AuthorizeRequest, AuthorizeRequestGuard, CurrentAuthorizeRequest } from './authorize-request';
import { AuthorizeErrorFilter } from './authorize-error.filter';
import { AuthorizationService } from './authorization.service';
import { sendAuthorizationResponse } from './authorize-response';

/**
 * GET/POST /authorize (RFC 6749 §4.1.1, OIDC Core §3.1.2.1), and /authorize/resume after the
 * login or consent page. Validation, then the login guard, then the decision.
 */
@ApiExcludeController()
@Controller('authorize')
@UseFilters(AuthorizeErrorFilter)
@UseGuards(AuthorizeRequestGuard, SessionGuard)
export class AuthorizeController {
  constructor(private readonly authorization: AuthorizationService, private readonly config: IdpConfig) {}

  @Get()
  get(@CurrentAuthorizeRequest() ar: AuthorizeRequest, @Req() req: Request, @Res() res: Response) {
    return this.authorize(ar, req, res);
  }

  @Post()
  post(@CurrentAuthorizeRequest() ar: AuthorizeRequest, @Req() req: Request, @Res() res: Response) {
    return this.authorize(ar, req, res);
  }

  @Get('resume')
  resume(@CurrentAuthorizeRequest() ar: AuthorizeRequest, @Req() req: Request, @Res() res: Response) {
    return this.authorize(ar, req, res);
  }

  private async authorize(ar: AuthorizeRequest, req: Request, res: Response): Promise<void> {
    const { code } = await this.authorization.decide(req, ar, currentSessionUser(req)!);
    sendAuthorizationResponse(res, req.method, ar, { code, state: ar.state, iss: this.config.issuer });
  }
}
