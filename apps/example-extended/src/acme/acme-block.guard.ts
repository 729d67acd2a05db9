import { CanActivate, ExecutionContext, ForbiddenException, Injectable } from '@nestjs/common';

/** The request header Acme's gateway sets on traffic it wants refused. */
export const ACME_BLOCK_HEADER = 'x-acme-block';

/**
 * A global guard (registered as APP_GUARD in AcmeModule): a request carrying `X-Acme-Block: 1` is
 * refused with 403 on every route. The refusal is an ordinary exception, so each route answers it
 * in its own error format: RFC 6749 §5.2 JSON on the protocol endpoints, the error page on the
 * pages, the admin API's JSON elsewhere.
 */
@Injectable()
export class AcmeBlockGuard implements CanActivate {
  canActivate(ctx: ExecutionContext): boolean {
    const req = ctx.switchToHttp().getRequest<{ headers: Record<string, string | string[] | undefined> }>();
    if (req.headers[ACME_BLOCK_HEADER] === '1') throw new ForbiddenException('this request was refused by the Acme gateway policy');
    return true;
  }
}
