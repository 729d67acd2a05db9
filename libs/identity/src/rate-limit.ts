import type { NextFunction, Request, Response } from 'express';
import { BootClock, Clock, IdpConfig, SystemClock, renderPage } from '@idp/core';
import { routeFamily } from './http/route-family';

const WINDOW_MS = 10_000;

type Kind = 'protocol' | 'pages' | 'admin';

/** The bucket of a path, by the one route classification (so `/LOGIN` and `/login/` count as pages too). */
function kindOf(path: string): Kind {
  const family = routeFamily(path);
  return family === 'admin' ? 'admin' : family === 'pages' ? 'pages' : 'protocol';
}

/**
 * Per-address rate limits on every public endpoint (CONTRACT §5), in fixed 10-second windows held
 * in memory (per replica). Generous by default: 60,000 requests a minute to the protocol
 * endpoints from one address (an office behind one NAT must not notice), 3,000 to the pages,
 * 6,000 to the admin API. Attacks that need volume (password guessing, secret guessing) are
 * stopped much earlier by the lockouts. The client address honours TRUST_PROXY (Express `trust proxy`).
 * The windows are aligned on `clock` (by default the clock of the application being created,
 * BootClock, else the system's).
 */
export class RateLimiter {
  private readonly limits: Record<Kind, number>;
  private window = 0;
  private counts = new Map<string, number>();

  constructor(config: IdpConfig, private readonly clock: Clock = BootClock.current() ?? new SystemClock()) {
    this.limits = {
      protocol: Math.max(1, Math.round((config.rateLimitProtocol * WINDOW_MS) / 60_000)),
      pages: Math.max(1, Math.round((config.rateLimitPages * WINDOW_MS) / 60_000)),
      admin: Math.max(1, Math.round((config.rateLimitAdmin * WINDOW_MS) / 60_000)),
    };
  }

  /** Counts one request; undefined while within the limit, else the seconds until the window ends (Retry-After). */
  hit(path: string, ip: string | undefined): number | undefined {
    const now = this.clock.now();
    const current = Math.floor(now / WINDOW_MS);
    if (current !== this.window) {
      this.window = current;
      this.counts = new Map();
    }
    const kind = kindOf(path);
    const key = `${kind}|${ip}`;
    const n = (this.counts.get(key) ?? 0) + 1;
    this.counts.set(key, n);
    if (n <= this.limits[kind]) return undefined;
    return Math.ceil(((current + 1) * WINDOW_MS - now) / 1000);
  }
}

/** The limiter as Express middleware, answering 429 in the format of the route. */
export function rateLimit(limiter: RateLimiter) {
  return (req: Request, res: Response, next: NextFunction) => {
    const retryAfter = limiter.hit(req.path, req.ip);
    if (retryAfter === undefined) return next();
    res.setHeader('Retry-After', String(retryAfter));
    const kind = kindOf(req.path);
    if (kind === 'pages') {
      renderPage(res, 'error', { title: 'Too many requests', message: 'Too many requests from your network. Please wait a few seconds and try again.' }, 429);
    } else if (kind === 'admin' || routeFamily(req.path) === 'health') {
      res.status(429).json({ statusCode: 429, error: 'too_many_requests', message: 'rate limit exceeded; retry later' });
    } else {
      res.status(429).setHeader('Cache-Control', 'no-store');
      res.json(RATE_LIMITED);
    }
  };
}

/** The protocol endpoints' 429 body (RFC 6749 §5.2 format). */
export const RATE_LIMITED = { error: 'slow_down', error_description: 'rate limit exceeded; retry later' };
