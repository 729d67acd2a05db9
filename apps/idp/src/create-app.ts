import { INestApplication, ValidationPipe } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { json, urlencoded, type NextFunction, type Request, type Response } from 'express';
import { ApiErrorFilter, IdpConfig, JsonLogger, errorBody, loadConfig, toOAuthError, uuidv7 } from '@idp/core';
import { AppModule } from './app.module';

/** Paths whose errors use the OAuth JSON format (RFC 6749 §5.2) rather than the admin format. */
const PROTOCOL_JSON = /^\/(oauth\/(token|revoke|introspect)|userinfo)$/;

export interface CreatedApp {
  app: NestExpressApplication;
  config: IdpConfig;
  logger: JsonLogger;
}

/**
 * Builds the whole server (without listening): body parsers with size limits, request logs with a
 * request id, validation, error rendering, and the OpenAPI document of the admin API.
 */
export async function createApp(env: Record<string, string | undefined> = process.env, opts: { logSink?: (line: string) => void } = {}): Promise<CreatedApp> {
  const config = loadConfig(env);
  const logger = new JsonLogger(config.logLevel, opts.logSink);
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), { bodyParser: false, logger, abortOnError: false });
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  if (config.trustProxy) app.set('trust proxy', config.trustProxy.split(',').map((s) => s.trim()));

  app.use(requestLog(logger));
  // Form bodies for the protocol endpoints (flat: `extended: false` keeps values as strings, and a
  // repeated parameter becomes an array that FormBodyGuard refuses); JSON for the admin API only.
  app.use(urlencoded({ extended: false, limit: '64kb', parameterLimit: 100 }));
  app.use('/admin', json({ limit: '100kb', strict: true }));
  app.use('/admin', requireJsonBody);
  app.use(bodyErrors);

  app.useGlobalPipes(new ValidationPipe({ whitelist: true, forbidNonWhitelisted: true, transform: true, stopAtFirstError: false }));
  app.useGlobalFilters(new ApiErrorFilter());

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
  return { app, config, logger };
}

/** One JSON line per request: id, method, path (never the query string or body), status, duration. */
function requestLog(logger: JsonLogger) {
  return (req: Request, res: Response, next: NextFunction) => {
    const start = process.hrtime.bigint();
    const incoming = req.headers['x-request-id'];
    const id = typeof incoming === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(incoming) ? incoming : uuidv7();
    res.setHeader('X-Request-Id', id);
    res.on('finish', () => {
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      logger.write(res.statusCode >= 500 ? 'error' : 'info', 'request', {
        request_id: id, method: req.method, path: req.path, status: res.statusCode, ms: Math.round(ms * 10) / 10, ip: req.ip,
      });
    });
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

/** Body parser failures (malformed JSON, too large, bad charset) in the format of the route. */
function bodyErrors(err: unknown, req: Request, res: Response, next: NextFunction) {
  if (!err) return next();
  if (PROTOCOL_JSON.test(req.path)) {
    const e = toOAuthError(err);
    res.status(e.status).set('Cache-Control', 'no-store').json({ error: e.code, error_description: e.description });
    return;
  }
  const body = errorBody(err);
  const type = (err as { type?: string }).type;
  if (type === 'entity.parse.failed') body.message = 'the request body is not valid JSON';
  res.status(body.statusCode).json(body);
}

export type { INestApplication };
