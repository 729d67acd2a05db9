import type { FastifyReply, FastifyRequest } from 'fastify';
import { JsonLogger, RequestContext } from '@idp/core';

/**
 * Starts one request: its id (`request.id`: the caller's `X-Request-Id` when well-formed, else a
 * new one, boot.ts's genReqId), echoed back, and one JSON log line when it finishes: id, method,
 * path (never the query string or body), status, duration, address. Returns the request's
 * context, bound to the request (RequestContext.of).
 */
export function beginRequest(logger: JsonLogger, request: FastifyRequest, reply: FastifyReply, path: string, ip: string | undefined): RequestContext {
  const start = process.hrtime.bigint();
  const id = request.id;
  reply.header('X-Request-Id', id);
  reply.raw.once('finish', () => {
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    logger.write(reply.raw.statusCode >= 500 ? 'error' : 'info', 'request', {
      request_id: id, method: request.method, path, status: reply.raw.statusCode, ms: Math.round(ms * 10) / 10, ip,
    });
  });
  const ua = request.headers['user-agent'];
  return RequestContext.bind(request, { requestId: id, ip, userAgent: typeof ua === 'string' ? ua.slice(0, 256) : undefined });
}
