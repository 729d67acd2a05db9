import { ArgumentsHost, BadRequestException, Catch, ExceptionFilter, INestApplication, UnsupportedMediaTypeException } from '@nestjs/common';
import { existsSync } from 'node:fs';
import { createGunzip, createInflate } from 'node:zlib';
import type { Readable } from 'node:stream';
import { extname, isAbsolute, join, relative } from 'node:path';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fastifyCookie from '@fastify/cookie';
import fastifyFormbody from '@fastify/formbody';
import helmet from 'helmet';
import fastifyCors from '@fastify/cors';
import fastifySession from '@fastify/session';
import fastifyStatic from '@fastify/static';
import fastifyView from '@fastify/view';
import * as ejs from 'ejs';
import { parse as parseQuery } from 'fast-querystring';
import type { Type, DynamicModule } from '@nestjs/common';
import { ApiErrorFilter, Clock, IdpBootContext, IdpConfig, JsonLogger, PAGE_CSP_DIRECTIVES, PageErrorFilter, TokenErrorFilter, loadConfig, renderPage, urlPath, uuidv7 } from '@idp/core';
import { SESSION_IDLE_MS, SessionStore } from '@idp/session';
import { IDENTITY_OPTIONS, IdentityModule, IdentityOptions } from './identity.module';
import { RateLimiter } from './rate-limit';
import { inputProblem } from './http-input';
import { beginRequest } from './request-log';
import { CorsPolicy } from './http/cors.policy';
import { isPage, routeFamily, speaksOAuth } from './http/route-family';
import { AdminOpenApi } from './admin/openapi.controller';
import { scopedPlugin } from './http/route-scope';

/** The body limit of every form endpoint (RFC 6749 §3.2 and the pages' forms). */
export const FORM_BODY_LIMIT = 64 * 1024;
/** Parameters of a form body at most. */
export const FORM_PARAMETER_LIMIT = 100;
/** The body limit of the admin API's JSON. */
export const JSON_BODY_LIMIT = 100 * 1024;

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

export interface CreatedApp {
  app: NestFastifyApplication;
  config: IdpConfig;
  logger: JsonLogger;
}

/**
 * Builds the whole server (without listening): Nest on Fastify (@nestjs/platform-fastify), with
 * each cross-cutting policy registered once, on every route, by the adapter's own plugins and
 * hooks: the request id and log line, the rate limit, security headers (helmet), CORS
 * (one decision, CorsPolicy), form and JSON bodies with size limits (@fastify/formbody), the
 * hostile-input check, cookies and the IdP's browser session (@fastify/cookie, @fastify/session),
 * views (@fastify/view, EJS) and assets (@fastify/static); then error rendering by route family,
 * and the OpenAPI document of the admin API (whose controllers validate their DTOs: AdminApi). Every request is answered by a Nest
 * controller, behind the application's guards, interceptors, pipes and filters, a company's own
 * included.
 */
export async function createIdentityApp(
  rootModule: Type<unknown> | DynamicModule = IdentityModule.forRoot(),
  env: Record<string, string | undefined> = process.env,
  opts: { logSink?: (line: string) => void } = {},
): Promise<CreatedApp> {
  const config = loadConfig(env);
  const logger = new JsonLogger(config.logLevel, opts.logSink);
  const adapter = new FastifyAdapter({
    // TRUST_PROXY: the proxies whose X-Forwarded-For / -Proto are believed (request.ip, request.protocol).
    trustProxy: config.trustProxy ? config.trustProxy.split(',').map((s) => s.trim()) : false,
    bodyLimit: JSON_BODY_LIMIT,
    // Paths match whatever their case or trailing slash, as route-family.ts classifies them.
    // (and an id in a path is answered 404 by its controller whatever its length, not 414 by the router).
    // A repeated query parameter is an array (the /authorize checks refuse it by name).
    routerOptions: { caseSensitive: false, ignoreTrailingSlash: true, maxParamLength: 16_384, querystringParser: (query: string) => parseQuery(query) },
    // A URL the router cannot decode (not UTF-8, a broken escape): 400 in the route's format.
    frameworkErrors: (error: Error, request: FastifyRequest, reply: FastifyReply) => badUrl(error, request, reply),
    genReqId: (req: { headers: Record<string, string | string[] | undefined> }) => {
      const incoming = req.headers['x-request-id'];
      return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : uuidv7();
    },
    logger: false,
  });
  const app = await IdpBootContext.run({ config, logger }, () =>
    NestFactory.create<NestFastifyApplication>(rootModule, adapter, { bodyParser: false, logger, abortOnError: false }),
  );
  const options = app.get<IdentityOptions>(IDENTITY_OPTIONS, { strict: false });
  const fastify = app.getHttpAdapter().getInstance() as unknown as FastifyInstance;

  // The request id and the log line of every request, then the rate limit (429 in the route's format).
  // (rate-limiter-flexible: in Redis with REDIS_URL, shared by the replicas, else per replica on the Clock).
  const limiter = config.rateLimit ? await RateLimiter.create(config, app.get(Clock, { strict: false }), logger) : undefined;
  if (limiter) fastify.addHook('onClose', (_instance, done) => void limiter.close().then(() => done()));
  fastify.addHook('onRequest', (request, reply, done) => {
    const path = urlPath(request.url);
    beginRequest(logger, request, reply, path, request.ip);
    if (limiter) limiter.check(path, request.ip, done);
    else done();
  });
  // Security headers: helmet, its middleware built once (@fastify/helmet 13.2.0 builds it again on
  // every request: 5 % of UserInfo's CPU, docs/performance.md).
  const https = config.issuer.startsWith('https://');
  const securityHeaders = helmet({
    // JSON answers and pages alike: nothing may load or frame them; pages add their own script hashes.
    contentSecurityPolicy: { useDefaults: false, directives: PAGE_CSP_DIRECTIVES },
    strictTransportSecurity: https ? { maxAge: 31_536_000, includeSubDomains: true } : false,
    referrerPolicy: { policy: 'no-referrer' },
    xFrameOptions: { action: 'deny' },
    crossOriginResourcePolicy: { policy: 'cross-origin' },
  });
  fastify.addHook('onRequest', (request, reply, done) => securityHeaders(request.raw, reply.raw, done as (err?: unknown) => void));

  // Bodies: compressed ones inflated (gzip, deflate), charsets other than UTF-8 refused; then forms
  // (flat: a repeated parameter is an array, which the form checks refuse by name), and JSON (the
  // admin API's DTOs), with `__proto__` and the like kept as keys so the input check names them.
  fastify.addHook('preParsing', (request, _reply, payload, done) => {
    try {
      done(null, decodedBody(request, payload as Readable));
    } catch (err) {
      done(err as Error);
    }
  });
  await app.register(fastifyFormbody as never, { bodyLimit: FORM_BODY_LIMIT, parser: parseForm });
  fastify.removeContentTypeParser('application/json');
  fastify.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: JSON_BODY_LIMIT }, (_request, text, done) => {
    if (text === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text as string));
    } catch {
      done(new BadRequestException('the request body is not valid JSON'), undefined);
    }
  });
  fastify.addHook('preValidation', (request, _reply, done) => done(refusedInput(request)));

  // The IdP's browser session: a signed cookie naming a session in the database (SessionStore).
  await app.register(fastifyCookie as never);
  // Its hooks run on the pages only (scopedPlugin): the protocol endpoints and the admin API never read or write a session.
  await app.register(scopedPlugin(fastifySession as never, (request) => isPage(routeFamily(urlPath(request.url))), 'idp-session') as never, {
    // __Host- prefix on https: the cookie is Secure, host-only, and for path / (RFC 6265bis §4.1.3.2).
    cookieName: https ? '__Host-idp_session' : 'idp_session',
    // express-session's signed format (`s:<id>.<HMAC>`), so that sessions signed in before the move to Fastify stay signed in.
    cookiePrefix: 's:',
    secret: config.keyring.derive('cookie').toString('base64url'),
    store: app.get(SessionStore, { strict: false }),
    saveUninitialized: false,
    rolling: true,
    cookie: { httpOnly: true, sameSite: 'lax', secure: https, path: '/', maxAge: SESSION_IDLE_MS },
  });

  // Views: a theme's templates and assets come first; anything it does not replace is the built-in one.
  const viewDirs = [...(options.theme?.views ? [options.theme.views] : []), assetDir('views')];
  await app.register(fastifyView as never, {
    engine: { ejs },
    root: viewDirs[viewDirs.length - 1],
    production: config.isProduction,
    // EJS resolves an include next to the including file first, so a built-in page would keep the
    // built-in partials/head.ejs even when the theme replaces it: look in the view folders first.
    options: { includer: (original: string, resolved: string) => ({ filename: themedInclude(viewDirs, original) ?? resolved }) },
  });
  const templates = new Map<string, string>();
  fastify.decorate('idpTemplate', (view: string) => templates.get(view) ?? templates.set(view, pageTemplate(viewDirs, view)).get(view)!);
  const assets = [...(options.theme?.assets ? [options.theme.assets] : []), assetDir('public')];
  await app.register(fastifyStatic as never, { root: assets, prefix: '/assets/', index: false, maxAge: '1h', wildcard: false });

  app.useGlobalFilters(new GlobalErrorFilter());

  app.get(AdminOpenApi, { strict: false }).document = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('Identity provider admin API')
      .setDescription('Manage clients, users, APIs, client grants and signing keys. Bearer access tokens with aud = ISSUER/admin.')
      .setVersion('1')
      .addBearerAuth()
      .addServer(config.issuer)
      .build(),
  );
  // Initialize now (registries, lifecycle hooks), so that a broken extension, such as two
  // providers claiming one name, fails here rather than at listen().
  try {
    await app.init();
    // After the bodies are parsed: the token endpoint's answer is readable only by the origins of
    // the client the form names. Registered after init, so that its preflight route answers its
    // errors through the application's filters too (a route takes the error handler of its time).
    // Only requests that carry an Origin can be cross-origin: the others skip @fastify/cors (scopedPlugin).
    await app.register(scopedPlugin(fastifyCors as never, (request) => request.headers.origin !== undefined, 'idp-cors') as never, { hook: 'preHandler', delegator: app.get(CorsPolicy).delegate() });
    await fastify.ready();
  } catch (err) {
    await app.close().catch(() => undefined);
    throw err;
  }
  return { app, config, logger };
}

/** Marks a form body with more than FORM_PARAMETER_LIMIT parameters (refused 400 by the input check: a parser must not throw). */
const TOO_MANY_PARAMETERS = Symbol('too many parameters');

/**
 * A form body as @fastify/formbody hands it over (UTF-8 text): name=value pairs, a repeated name
 * an array, at most FORM_PARAMETER_LIMIT of them.
 */
function parseForm(text: string): Record<string | symbol, unknown> {
  let count = 0;
  for (let at = text.indexOf('&'); at !== -1; at = text.indexOf('&', at + 1)) {
    if (++count >= FORM_PARAMETER_LIMIT) return { [TOO_MANY_PARAMETERS]: true };
  }
  return parseQuery(text) as Record<string, unknown>;
}

const CHARSET = /;\s*charset\s*=\s*"?([^";\s]+)"?/i;

/**
 * The body as the parsers read it: inflated when it is gzip or deflate (with the body limit
 * counted on what it inflates to); any other content encoding, or a charset other than UTF-8
 * (or its subset US-ASCII), is 415.
 */
function decodedBody(request: FastifyRequest, payload: Readable): Readable {
  const charset = CHARSET.exec(String(request.headers['content-type'] ?? ''))?.[1]?.toLowerCase();
  if (charset && charset !== 'utf-8' && charset !== 'utf8' && charset !== 'us-ascii') {
    throw new UnsupportedMediaTypeException({ statusCode: 415, error: 'unsupported_media_type', message: `the charset ${charset.slice(0, 32).replace(/[^a-z0-9._-]/g, '?')} is not supported: send UTF-8` });
  }
  const encoding = String(request.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  if (encoding === 'identity') return payload;
  if (encoding !== 'gzip' && encoding !== 'deflate') {
    throw new UnsupportedMediaTypeException({ statusCode: 415, error: 'unsupported_media_type', message: 'the content encoding is not supported: send gzip, deflate or none' });
  }
  const inflated = (encoding === 'gzip' ? createGunzip() : createInflate()) as unknown as Readable & { receivedEncodedLength: number };
  // Content-Length counts the encoded bytes: Fastify compares it with this.
  inflated.receivedEncodedLength = 0;
  payload.on('data', (chunk: Buffer) => (inflated.receivedEncodedLength += chunk.length));
  payload.on('error', (err) => inflated.destroy(err));
  // A body that is not what it claims to be is the client's error: 400, "could not be parsed".
  inflated.on('error', (err: Error & { statusCode?: number; expose?: boolean }) => Object.assign(err, { statusCode: 400, expose: true }));
  payload.pipe(inflated as unknown as NodeJS.WritableStream);
  return inflated;
}

/** A URL the router could not read: 400 in the format of its route family (nothing else was read yet). */
function badUrl(_error: Error, request: FastifyRequest, reply: FastifyReply): void {
  const family = routeFamily(urlPath(request.raw.url ?? '/'));
  reply.header('Cache-Control', 'no-store');
  if (isPage(family)) {
    void renderPage(reply, 'error', { title: 'We could not complete this request', message: 'The address of this page is not valid.' }, 400);
  } else if (speaksOAuth(family)) {
    void reply.status(400).send({ error: 'invalid_request', error_description: 'the URL is not valid' });
  } else {
    void reply.status(400).send({ statusCode: 400, error: 'invalid_request', message: 'the URL is not valid' });
  }
}

/**
 * Input that must never reach a handler, refused in the format of the route: U+0000 anywhere
 * (never part of a valid value, and PostgreSQL can neither store nor compare it in text); JSON
 * nested deeper than any DTO (class-transformer and class-validator recurse, and overflow the stack);
 * JSON keys named after Object.prototype members (`__proto__`, `constructor`, …), which
 * class-transformer drops silently, so the whitelist could not name them; and on the admin API, a
 * body that is not JSON.
 */
function refusedInput(request: FastifyRequest): Error | undefined {
  if (request.body && typeof request.body === 'object' && TOO_MANY_PARAMETERS in request.body) {
    return new BadRequestException([`the request body has more than ${FORM_PARAMETER_LIMIT} parameters`]);
  }
  if (request.url.includes('%00')) return new BadRequestException(['the URL must not contain the character U+0000']);
  const type = request.headers['content-type'];
  const json = typeof type === 'string' && /^application\/([a-z0-9.+-]*\+)?json\s*(;|$)/i.test(type);
  if (request.body !== undefined && !json && routeFamily(urlPath(request.url)) === 'admin') {
    return new UnsupportedMediaTypeException({ statusCode: 415, error: 'unsupported_media_type', message: 'the request body must be application/json' });
  }
  const problem = inputProblem(request.query, '', false) ?? inputProblem(request.body, '', json);
  return problem ? new BadRequestException([problem]) : undefined;
}

/** The template of a page: the first view folder that has it (the theme's, then the built-in one), relative to the built-in one; looked up once a view (the folders do not change while the server runs). */
function pageTemplate(viewDirs: string[], view: string): string {
  const file = `${view}.ejs`;
  const dir = viewDirs.find((d) => existsSync(join(d, file))) ?? viewDirs[viewDirs.length - 1];
  return relative(viewDirs[viewDirs.length - 1], join(dir, file));
}

/** A relative include (`partials/head`) from the first view folder that has it (the theme's, then the built-in one). */
function themedInclude(viewDirs: string[], include: string): string | undefined {
  if (isAbsolute(include)) return undefined;
  const file = extname(include) ? include : `${include}.ejs`;
  return viewDirs.map((dir) => join(dir, file)).find((candidate) => existsSync(candidate));
}

/**
 * Errors no controller filter caught, in the format of the route's family: the HTML error page on
 * the browser pages, RFC 6749 §5.2 JSON on the protocol endpoints, the admin JSON format
 * elsewhere. They come from the adapter's hooks and parsers (a body too large, malformed JSON,
 * the rate limit, the session store away) and from routes that do not exist.
 */
@Catch()
class GlobalErrorFilter implements ExceptionFilter {
  private readonly api = new ApiErrorFilter();
  private readonly page = new PageErrorFilter();
  private readonly oauth = new TokenErrorFilter();

  catch(exception: unknown, host: ArgumentsHost): void {
    const req = host.switchToHttp().getRequest<FastifyRequest>();
    const family = routeFamily(urlPath(req.url));
    (isPage(family) ? this.page : speaksOAuth(family) ? this.oauth : this.api).catch(exception, host);
  }
}

/** libs/identity/<name>, from the sources (tests) or from dist/ (npm start). */
function assetDir(name: string): string {
  const candidates = [join(__dirname, '..', name), join(__dirname, '..', '..', '..', '..', 'libs', 'identity', name)];
  return candidates.find((c) => existsSync(c)) ?? candidates[0];
}

export type { INestApplication, FastifyReply };
