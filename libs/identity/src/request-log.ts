import type { ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { pinoHttp, type HttpLogger } from 'pino-http';
import { JsonLogger, RequestContext } from '@idp/core';

/** What a request's log line is made of, known when it begins (pino-http's `req`). */
interface RequestLine {
  id: string;
  method: string;
  path: string;
  ip: string | undefined;
  start: bigint;
}

/**
 * The request line of every request, through pino-http on the application's pino: one line when
 * the response has finished (or the connection closed first): `msg: 'request'`, the request id,
 * method, path (never the query string or body), status, duration in ms and address; `error` for
 * a 5xx. pino-http binds a request logger to each request (`{ req }`), which writes nothing here.
 */
function requestLogger(logger: JsonLogger): HttpLogger<RequestLine, ServerResponse> {
  const line = (req: RequestLine, res: ServerResponse) => ({
    request_id: req.id, method: req.method, path: req.path, status: res.statusCode,
    ms: Math.round(Number(process.hrtime.bigint() - req.start) / 1e5) / 10, ip: req.ip,
    ...(res.writableFinished ? {} : { aborted: true }),
  });
  return pinoHttp<RequestLine, ServerResponse>({
    logger: logger.pino,
    wrapSerializers: false,
    serializers: { req: () => undefined },
    customLogLevel: (_req, res, err) => (err || res.statusCode >= 500 ? 'error' : 'info'),
    customSuccessMessage: () => 'request',
    customErrorMessage: () => 'request',
    customSuccessObject: line,
    customErrorObject: line,
  });
}
const requestLoggers = new WeakMap<JsonLogger, HttpLogger<RequestLine, ServerResponse>>();

/**
 * Starts one request: its id (`request.id`: the caller's `X-Request-Id` when well-formed, else a
 * new one, boot.ts's genReqId), echoed back, and its log line (requestLogger). Returns the
 * request's context, bound to the request (RequestContext.of).
 */
export function beginRequest(logger: JsonLogger, request: FastifyRequest, reply: FastifyReply, path: string, ip: string | undefined): RequestContext {
  const id = request.id;
  reply.header('X-Request-Id', id);
  let log = requestLoggers.get(logger);
  if (!log) requestLoggers.set(logger, (log = requestLogger(logger)));
  log({ id, method: request.method, path, ip, start: process.hrtime.bigint() }, reply.raw);
  const ua = request.headers['user-agent'];
  return RequestContext.bind(request, { requestId: id, ip, userAgent: typeof ua === 'string' ? ua.slice(0, 256) : undefined });
}
