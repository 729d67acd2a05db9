import { CallHandler, ExecutionContext, Injectable, NestInterceptor } from '@nestjs/common';
import type { Observable } from 'rxjs';
import { RequestContext } from '@idp/core';

/** The response header Acme's gateway correlates its own logs with. */
export const ACME_REQUEST_HEADER = 'X-Acme-Request';

/**
 * A global interceptor (registered as APP_INTERCEPTOR in AcmeModule): every answer of a route
 * carries `X-Acme-Request`, the IdP's request id. It runs on every route of the application, the
 * token endpoint and /authorize as much as Acme's own admin routes: they are all Nest controllers.
 */
@Injectable()
export class AcmeRequestInterceptor implements NestInterceptor {
  intercept(ctx: ExecutionContext, next: CallHandler): Observable<unknown> {
    const http = ctx.switchToHttp();
    const id = RequestContext.of(http.getRequest())?.requestId ?? 'unknown';
    http.getResponse<{ header(name: string, value: string): unknown }>().header(ACME_REQUEST_HEADER, id);
    return next.handle();
  }
}
