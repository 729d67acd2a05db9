import type { IncomingMessage, ServerResponse } from 'node:http';
import { JsonLogger, RequestContext, uuidv7 } from '@idp/core';

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * Starts one request: its id (the caller's `X-Request-Id` when well-formed, else a new one, echoed
 * back), and one JSON log line when it finishes: id, method, path (never the query string or body),
 * status, duration, address. Returns the request's context, bound to `req` (RequestContext.of).
 */
export function beginRequest(logger: JsonLogger, req: IncomingMessage, res: ServerResponse, path: string, ip: string | undefined): RequestContext {
  const start = process.hrtime.bigint();
  const incoming = req.headers['x-request-id'];
  const id = typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : uuidv7();
  res.setHeader('X-Request-Id', id);
  res.on('finish', () => {
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    logger.write(res.statusCode >= 500 ? 'error' : 'info', 'request', {
      request_id: id, method: req.method, path, status: res.statusCode, ms: Math.round(ms * 10) / 10, ip,
    });
  });
  const ua = req.headers['user-agent'];
  return RequestContext.bind(req, { requestId: id, ip, userAgent: typeof ua === 'string' ? ua.slice(0, 256) : undefined });
}
