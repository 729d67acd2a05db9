import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

type Plugin<O> = (instance: FastifyInstance, options: O, done: (err?: Error) => void) => void;
type HookFn = (...args: unknown[]) => unknown;

/**
 * A Fastify plugin whose request hooks run only on the requests `applies` accepts. Fastify scopes
 * a plugin to the routes registered in its own encapsulated context; Nest registers every route
 * on the root one, so a plugin meant for some routes only (the browser session on the pages, CORS
 * on the requests that carry an Origin) would otherwise run its hooks on all of them. The plugin
 * is given the instance through a proxy that wraps the hooks it adds, as @nestjs/platform-fastify
 * itself does to place @fastify/cors's hook. Everything else (decorators, options) is the plugin's own.
 */
export function scopedPlugin<O>(plugin: Plugin<O>, applies: (request: FastifyRequest) => boolean, name: string) {
  const scoped = async (instance: FastifyInstance, options: O): Promise<void> => {
    const proxy = new Proxy(instance, {
      get(target, prop) {
        if (prop === 'addHook') {
          return (hook: string, fn: HookFn) => {
            target.addHook(hook as never, wrap(hook, fn, applies) as never);
            return proxy;
          };
        }
        const value = Reflect.get(target, prop, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    await new Promise<void>((resolve, reject) => plugin(proxy, options, (err) => (err ? reject(err) : resolve())));
  };
  // Like fastify-plugin: on the root context, not a child one.
  return Object.assign(scoped, { [Symbol.for('skip-override')]: true, [Symbol.for('fastify.display-name')]: name });
}

/** The hook, called only when the request applies; otherwise the request goes on as if it were not there. */
function wrap(hook: string, fn: HookFn, applies: (request: FastifyRequest) => boolean): HookFn {
  const withPayload = hook === 'onSend' || hook === 'preSerialization' || hook === 'preParsing';
  if (withPayload) {
    return function (this: unknown, request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: Error | null, value?: unknown) => void) {
      if (!applies(request)) return done(null, payload);
      return fn.call(this, request, reply, payload, done);
    } as HookFn;
  }
  if (fn.length < 3) {
    // An async hook: (request, reply) => Promise.
    return async function (this: unknown, request: FastifyRequest, reply: FastifyReply) {
      if (applies(request)) await fn.call(this, request, reply);
    } as HookFn;
  }
  return function (this: unknown, request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) {
    if (!applies(request)) return done();
    return fn.call(this, request, reply, done);
  } as HookFn;
}
