'use strict';
// Spike (issue 20): the IdP with the token, revocation, introspection and UserInfo endpoints as
// plain Nest controller methods, without the lean path in front of Express. Run against the built
// dist/ (npm run build); started by bench/spikes/nest-controllers.js, one variant per process:
//
//   node bench/spikes/nest-controllers-server.js express         Nest on Express (createIdentityApp, lean path not installed)
//   node bench/spikes/nest-controllers-server.js express-seams   the same + one APP_GUARD and one APP_INTERCEPTOR
//   node bench/spikes/nest-controllers-server.js fastify         Nest on @nestjs/platform-fastify (+ @fastify/formbody)
//   node bench/spikes/nest-controllers-server.js fastify-seams   the same + one APP_GUARD and one APP_INTERCEPTOR
//
// Environment: the same as `npm start` (PORT, HOST, ISSUER, DATABASE_URL, IDP_SECRET_KEY, …).
// The real modules (IdentityModule.forRoot()), the real database and the real signing; only the
// four endpoints' HTTP binding is new. Nothing under apps/ or libs/ is changed: the lean path is
// switched off by replacing the export boot.js calls, in this process only.
const { join } = require('node:path');

const DIST = join(__dirname, '..', '..', 'dist');
require(join(DIST, 'apps', 'idp', 'src', 'paths.js'));

const variant = process.argv[2];
const VARIANTS = ['express', 'express-seams', 'fastify', 'fastify-seams'];
if (!VARIANTS.includes(variant)) {
  process.stderr.write(`usage: node bench/spikes/nest-controllers-server.js ${VARIANTS.join('|')}\n`);
  process.exit(2);
}
const onFastify = variant.startsWith('fastify');
const withSeams = variant.endsWith('-seams');

const lib = (name, file) => require(join(DIST, 'libs', name, 'src', file));
// Variant B: no request answered before Nest. boot.js reads this export when it calls it.
if (!onFastify) lib('identity', 'protocol-server.js').serveProtocolRoutes = () => undefined;

const { Module, Controller, Get, Post, Req, Res, HttpCode, UseFilters, Inject, Injectable, Catch, BadRequestException } = require('@nestjs/common');
const { NestFactory, HttpAdapterHost, APP_GUARD, APP_INTERCEPTOR } = require('@nestjs/core');
const { IdentityModule, createIdentityApp } = require('@idp/identity');
const { ProtocolEndpoints } = require('@idp/token');
const { IdpBootContext, JsonLogger, loadConfig, RequestContext, OAuthError, invalidRequest, protocolErrorResponse } = require('@idp/core');
const { beginRequest } = lib('identity', 'request-log.js');
const { setSecurityHeaders, setActualCors } = lib('identity', 'http-policy.js');
const { inputProblem } = lib('identity', 'http-input.js');
const { FORM_BODY_LIMIT, MAX_PARAM_LENGTH } = lib('identity', 'protocol-server.js');
const { lowerThreadPoolPriority } = lib('identity', 'pool-priority.js');
const { ClientsService } = require('@idp/clients');
const typeis = require('type-is');

const FORM = 'application/x-www-form-urlencoded';
const config = loadConfig(process.env);
const logger = new JsonLogger(config.logLevel);
const hsts = config.issuer.startsWith('https://');
let adapter; // the HTTP adapter (Express or Fastify), set at boot

/** The same checks the lean path makes on a form body (protocol-server.ts formBody). */
function formBody(req, body, unbounded = []) {
  if (!typeis.is(req.headers['content-type'] ?? '', [FORM])) throw invalidRequest(`the request body must be ${FORM}`);
  if (!body || typeof body !== 'object') throw invalidRequest('the request body is empty');
  for (const [name, value] of Object.entries(body)) {
    if (Array.isArray(value)) {
      if (name === 'resource') throw new OAuthError('invalid_target', 'only one resource may be requested per token', 400);
      throw invalidRequest('parameter is repeated');
    }
    if (typeof value !== 'string') throw invalidRequest('parameter is malformed');
    if (value.length > MAX_PARAM_LENGTH && !unbounded.includes(name)) throw invalidRequest('parameter is too long');
  }
  return body;
}

/** RFC 6749 §5.2 errors through the one rendering the lean path uses (protocolErrorResponse). */
class ProtocolErrorFilter {
  catch(exception, host) {
    const res = host.switchToHttp().getResponse();
    const { status, headers, body } = protocolErrorResponse(exception, { error: (m) => logger.write('error', String(m)), debug: () => undefined });
    for (const name in headers) adapter.setHeader(res, name, headers[name]);
    adapter.reply(res, body, status);
  }
}
Reflect.decorate([Catch()], ProtocolErrorFilter);

/** The four protocol endpoints as controller methods calling ProtocolEndpoints. */
class ProtocolController {
  constructor(endpoints, clients) {
    this.endpoints = endpoints;
    this.clients = clients;
  }

  token(req, res) {
    return this.serve(req, res, (r, h) => this.endpoints.token(r, h), true);
  }

  revoke(req, res) {
    return this.serve(req, res, (r, h) => this.endpoints.revoke(r, h), true, ['token']);
  }

  introspect(req, res) {
    return this.serve(req, res, (r, h) => this.endpoints.introspect(r, h), true, ['token']);
  }

  userinfoGet(req, res) {
    return this.serve(req, res, (r) => this.endpoints.userinfo(r), false);
  }

  userinfoPost(req, res) {
    return this.serve(req, res, (r) => this.endpoints.userinfo(r), false);
  }

  ready() {
    return { ready: true };
  }

  async serve(req, res, handle, form, unbounded) {
    let request;
    if (onFastify) {
      // No Express middleware here: the request log, security headers, CORS and the input checks
      // that boot.ts's middleware does on Express (in the redesign: Fastify hooks or Nest middleware).
      const raw = req.raw;
      const path = req.url.split('?', 1)[0];
      const ctx = beginRequest(logger, raw, res.raw, path, req.ip);
      setSecurityHeaders(res.raw, hsts);
      const origin = req.headers.origin;
      if (origin && path === '/userinfo') await setActualCors(res.raw, path, origin, this.clients);
      if (req.url.includes('%00')) throw invalidRequest('the URL must not contain the character U+0000');
      const problem = inputProblem(req.body, '', false);
      if (problem) throw new BadRequestException([problem]);
      request = { method: req.method, path, headers: req.headers, body: req.body, ip: req.ip };
      RequestContext.bind(request, ctx);
    } else {
      // Express: boot.ts's middleware began the request (log line, context), set the headers and
      // CORS, parsed the form and refused hostile input; Express's Request is a ProtocolRequest.
      request = req;
    }
    if (form) request.body = formBody(req, req.body, unbounded);
    const headers = {};
    const answer = await handle(request, headers);
    const all = { ...headers, ...answer.headers };
    for (const name in all) adapter.setHeader(res, name, all[name]);
    if (answer.status) adapter.status(res, answer.status);
    return answer.body;
  }
}
Reflect.decorate([Controller(), UseFilters(ProtocolErrorFilter)], ProtocolController);
Inject(ProtocolEndpoints)(ProtocolController, undefined, 0);
Inject(ClientsService)(ProtocolController, undefined, 1);
const routes = [
  ['token', Post('oauth/token')],
  ['revoke', Post('oauth/revoke')],
  ['introspect', Post('oauth/introspect')],
  ['userinfoGet', Get('userinfo')],
  ['userinfoPost', Post('userinfo')],
];
for (const [method, verb] of routes) {
  const proto = ProtocolController.prototype;
  Req()(proto, method, 0);
  Res({ passthrough: true })(proto, method, 1);
  Object.defineProperty(proto, method, Reflect.decorate([verb, HttpCode(200)], proto, method, Object.getOwnPropertyDescriptor(proto, method)));
}
{
  const proto = ProtocolController.prototype;
  Object.defineProperty(proto, 'ready', Reflect.decorate([Get('spike/ready')], proto, 'ready', Object.getOwnPropertyDescriptor(proto, 'ready')));
}

/** What a customer's module would add: a global guard and a global interceptor that do almost nothing (issue 20 item 1). */
class AcmeGuard {
  canActivate(ctx) {
    return ctx.switchToHttp().getRequest().headers['x-acme-block'] !== '1';
  }
}
class AcmeInterceptor {
  intercept(ctx, next) {
    adapter.setHeader(ctx.switchToHttp().getResponse(), 'X-Acme-Request', '1');
    return next.handle();
  }
}
Reflect.decorate([Injectable()], AcmeGuard);
Reflect.decorate([Injectable()], AcmeInterceptor);

class SpikeModule {}
Reflect.decorate([Module({
  controllers: [ProtocolController],
  providers: withSeams ? [{ provide: APP_GUARD, useClass: AcmeGuard }, { provide: APP_INTERCEPTOR, useClass: AcmeInterceptor }] : [],
})], SpikeModule);

class RootModule {}
Reflect.decorate([Module({ imports: [IdentityModule.forRoot(), SpikeModule] })], RootModule);

async function main() {
  await lowerThreadPoolPriority(config.poolNice);
  let app;
  if (onFastify) {
    const { FastifyAdapter } = require('@nestjs/platform-fastify');
    const fastifyOpts = { bodyLimit: FORM_BODY_LIMIT };
    if (config.trustProxy) fastifyOpts.trustProxy = config.trustProxy.split(',').map((s) => s.trim());
    app = await IdpBootContext.run({ config, logger }, () =>
      NestFactory.create(RootModule, new FastifyAdapter(fastifyOpts), { bodyParser: false, logger, abortOnError: false }),
    );
    await app.register(require('@fastify/formbody'), { bodyLimit: FORM_BODY_LIMIT });
    await app.init();
  } else {
    ({ app } = await createIdentityApp(RootModule, process.env));
  }
  adapter = app.get(HttpAdapterHost).httpAdapter;
  await app.listen(config.port, config.host);
  logger.write('warn', `spike ${variant}: listening on ${config.host}:${config.port}`);
  const stop = () => app.close().then(() => process.exit(0), () => process.exit(1));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err) => {
  process.stderr.write(`spike ${variant}: failed to start: ${err?.stack ?? err}\n`);
  process.exit(1);
});
