import { HttpException } from '@nestjs/common';
import { BootClock, Clock, IdpConfig, SystemClock } from '@idp/core';
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
 * stopped much earlier by the lockouts. The client address honours TRUST_PROXY.
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

/**
 * The refusal of a request over its limit: 429 with Retry-After, answered in the route's format
 * (the HTML error page, RFC 6749 §5.2 `slow_down`, or the admin JSON).
 */
export function rateLimited(retryAfter: number): HttpException {
  return new HttpException({ statusCode: 429, error: 'too_many_requests', message: 'rate limit exceeded; retry later', headers: { 'Retry-After': String(retryAfter) } }, 429);
}
