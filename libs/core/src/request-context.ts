import { ExecutionContext, createParamDecorator } from '@nestjs/common';

/**
 * Who is calling, known for the life of one HTTP request (request id, client IP). The request log
 * makes it as each request begins and binds it to the request object; code that needs it is
 * handed it by its caller (a controller's `@CurrentContext()`, a grant handler's third argument,
 * an event's second). It is not kept in async context: on Node.js 20 that costs every promise
 * of the process a hook (docs/performance.md, ninth round).
 */
export interface RequestContext {
  requestId: string;
  ip?: string;
  userAgent?: string;
}

const bound = new WeakMap<object, RequestContext>();

export const RequestContext = {
  /** Binds a request's context to a request object (Node's, Express's or a ProtocolRequest). */
  bind(req: object, ctx: RequestContext): RequestContext {
    bound.set(req, ctx);
    return ctx;
  },
  /** The context bound to a request object, if any. */
  of(req: object | null | undefined): RequestContext | undefined {
    return req ? bound.get(req) : undefined;
  },
};

/** The current HTTP request's context, as a controller parameter: `@CurrentContext() ctx: RequestContext | undefined`. */
export const CurrentContext = createParamDecorator((_: unknown, host: ExecutionContext): RequestContext | undefined =>
  RequestContext.of(host.switchToHttp().getRequest<object>()),
);
