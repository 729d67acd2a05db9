import { ArgumentsHost, BadRequestException, Catch, ExceptionFilter, INestApplication, ValidationPipe } from '@nestjs/common';
import { existsSync } from 'node:fs';
import { extname, isAbsolute, join } from 'node:path';
import { NestFactory } from '@nestjs/core';
import { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { json, urlencoded, type NextFunction, type Request, type Response } from 'express';
import type { Type, DynamicModule } from '@nestjs/common';
import { ApiErrorFilter, IdpBootContext, IdpConfig, JsonLogger, PageErrorFilter, TokenErrorFilter, errorBody, loadConfig, pageError, renderPage, toOAuthError } from '@idp/core';
import { IDENTITY_OPTIONS, IdentityModule, IdentityOptions } from './identity.module';
import { RateLimiter, rateLimit } from './rate-limit';
import { inputProblem } from './http-input';
import { beginRequest } from './request-log';
import { securityHeaders } from './http-policy';
import { CorsPolicy } from './http/cors.policy';
import { isPage, routeFamily, speaksOAuth } from './http/route-family';

/** The body limit of every form endpoint (RFC 6749 §3.2 and the pages' forms). */
export const FORM_BODY_LIMIT = 64 * 1024;
/** Parameters of a form body at most. */
export const FORM_PARAMETER_LIMIT = 100;

export interface CreatedApp {
  app: NestExpressApplication;
  config: IdpConfig;
  logger: JsonLogger;
}

/**
 * Builds the whole server (without listening): body parsers with size limits, request logs with a
 * request id, validation, error rendering, and the OpenAPI document of the admin API.
 */
export async function createIdentityApp(
  rootModule: Type<unknown> | DynamicModule = IdentityModule.forRoot(),
  env: Record<string, string | undefined> = process.env,
  opts: { logSink?: (line: string) => void } = {},
): Promise<CreatedApp> {
  const config = loadConfig(env);
  const logger = new JsonLogger(config.logLevel, opts.logSink);
  const app = await IdpBootContext.run({ config, logger }, () =>
    NestFactory.create<NestExpressApplication>(rootModule, { bodyParser: false, logger, abortOnError: false }),
  );
  const options = app.get<IdentityOptions>(IDENTITY_OPTIONS, { strict: false });
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  if (config.trustProxy) app.set('trust proxy', config.trustProxy.split(',').map((s) => s.trim()));

  app.use(requestLog(logger));
  const limiter = config.rateLimit ? new RateLimiter(config) : undefined;
  if (limiter) app.use(rateLimit(limiter));
  app.use(securityHeaders(config));
  // A theme's templates and assets come first; anything it does not replace is the built-in one.
  const viewDirs = [...(options.theme?.views ? [options.theme.views] : []), assetDir('views')];
  app.setBaseViewsDir(viewDirs);
  app.setViewEngine('ejs');
  // EJS resolves an include next to the including file first, so a built-in page would keep the
  // built-in partials/head.ejs even when the theme replaces it: look in the view folders first.
  app.set('view options', { includer: (original: string, resolved: string) => ({ filename: themedInclude(viewDirs, original) ?? resolved }) });
  if (options.theme?.assets) app.useStaticAssets(options.theme.assets, { prefix: '/assets/', index: false, maxAge: '1h' });
  app.useStaticAssets(assetDir('public'), { prefix: '/assets/', index: false, maxAge: '1h' });
  // Form bodies for the protocol endpoints (flat: `extended: false` keeps values as strings, and a
  // repeated parameter becomes an array that FormBodyGuard refuses); JSON for the admin API only.
  app.use(urlencoded({ extended: false, limit: FORM_BODY_LIMIT, parameterLimit: FORM_PARAMETER_LIMIT }));
  app.use('/admin', json({ limit: '100kb', strict: true }));
  app.use('/admin', requireJsonBody);
  // After the body parsers: the token endpoint's answer is readable only by the origins of the client the form names.
  app.enableCors(app.get(CorsPolicy).delegate());
  app.use(refuseHostileInput);
  app.use(bodyErrors);

  app.useGlobalPipes(new ValidationPipe({ whitelist: true, forbidNonWhitelisted: true, transform: true, stopAtFirstError: false }));
  app.useGlobalFilters(new GlobalErrorFilter());

  const document = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('Identity provider admin API')
      .setDescription('Manage clients, users, APIs, client grants and signing keys. Bearer access tokens with aud = ISSUER/admin.')
      .setVersion('1')
      .addBearerAuth()
      .addServer(config.issuer)
      .build(),
  );
  app.use('/admin/openapi.json', (req: Request, res: Response, next: NextFunction) => (req.method === 'GET' ? res.json(document) : next()));
  // Initialize now (registries, lifecycle hooks), so that a broken extension, such as two
  // providers claiming one name, fails here rather than at listen().
  try {
    await app.init();
  } catch (err) {
    await app.close().catch(() => undefined);
    throw err;
  }
  return { app, config, logger };
}

/** A relative include (`partials/head`) from the first view folder that has it (the theme's, then the built-in one). */
function themedInclude(viewDirs: string[], include: string): string | undefined {
  if (isAbsolute(include)) return undefined;
  const file = extname(include) ? include : `${include}.ejs`;
  return viewDirs.map((dir) => join(dir, file)).find((candidate) => existsSync(candidate));
}

/**
 * Errors no controller filter caught: the admin JSON format, except on the browser pages, where
 * Nest-applied middleware (the session store, Passport) can fail before the controller's own
 * filter runs (the database is down): those get the HTML error page too.
 */
@Catch()
class GlobalErrorFilter implements ExceptionFilter {
  private readonly api = new ApiErrorFilter();
  private readonly page = new PageErrorFilter();
  private readonly oauth = new TokenErrorFilter();

  catch(exception: unknown, host: ArgumentsHost): void {
    const req = host.switchToHttp().getRequest<Request>();
    const family = routeFamily(req.path);
    (isPage(family) ? this.page : speaksOAuth(family) ? this.oauth : this.api).catch(exception, host);
  }
}

/** libs/identity/<name>, from the sources (tests) or from dist/ (npm start). */
function assetDir(name: string): string {
  const candidates = [join(__dirname, '..', name), join(__dirname, '..', '..', '..', '..', 'libs', 'identity', name)];
  return candidates.find((c) => existsSync(c)) ?? candidates[0];
}

/** The request log and request context (request-log.ts) as Express middleware. */
function requestLog(logger: JsonLogger) {
  return (req: Request, res: Response, next: NextFunction) => {
    beginRequest(logger, req, res, req.path, req.ip);
    next();
  };
}

/** The admin API takes JSON bodies only: anything else with a body is 415. */
function requireJsonBody(req: Request, res: Response, next: NextFunction) {
  const hasBody = req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0' || req.headers['transfer-encoding'] !== undefined;
  if (hasBody && ['POST', 'PATCH', 'PUT'].includes(req.method) && !req.is('application/json')) {
    res.status(415).json({ statusCode: 415, error: 'unsupported_media_type', message: 'the request body must be application/json' });
    return;
  }
  next();
}

/**
 * Input that must never reach a handler, refused in the format of the route: U+0000 anywhere
 * (never part of a valid value, and PostgreSQL can neither store nor compare it in text); JSON
 * nested deeper than any DTO (class-transformer and class-validator recurse, and overflow the stack);
 * and JSON keys named after Object.prototype members (`__proto__`, `constructor`, …), which
 * class-transformer drops silently, so the whitelist could not name them.
 */
function refuseHostileInput(req: Request, _res: Response, next: NextFunction) {
  const json = typeof req.is('application/json') === 'string';
  const problem = req.path.includes('%00') ? 'the URL must not contain the character U+0000' : (inputProblem(req.query, '', false) ?? inputProblem(req.body, '', json));
  next(problem ? new BadRequestException([problem]) : undefined);
}

/** Body parser failures (malformed JSON, too large, bad charset) in the format of the route. */
function bodyErrors(err: unknown, req: Request, res: Response, next: NextFunction) {
  if (!err) return next();
  const family = routeFamily(req.path);
  if (speaksOAuth(family)) {
    const e = toOAuthError(err);
    res.status(e.status).set('Cache-Control', 'no-store').json({ error: e.code, error_description: e.description });
    return;
  }
  if (isPage(family)) {
    const { status, message } = pageError(toOAuthError(err));
    renderPage(res, 'error', { title: 'We could not complete this request', message }, status);
    return;
  }
  const body = errorBody(err);
  const type = (err as { type?: string }).type;
  if (type === 'entity.parse.failed') body.message = 'the request body is not valid JSON';
  res.status(body.statusCode).json(body);
}

export type { INestApplication };
