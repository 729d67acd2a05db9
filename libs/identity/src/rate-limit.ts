import type { NextFunction, Request, Response } from 'express';
import { IdpConfig, renderPage } from '@idp/core';

const WINDOW_MS = 10_000;

type Kind = 'protocol' | 'pages' | 'admin';

function kindOf(path: string): Kind {
  if (path.startsWith('/admin')) return 'admin';
  if (/^\/(authorize|login|consent|oidc\/logout)(\/|$)/.test(path)) return 'pages';
  return 'protocol';
}

/**
 * Per-address rate limits on every public endpoint (CONTRACT §5), in fixed 10-second windows held
 * in memory (per replica). Generous by default: 60,000 requests a minute to the protocol
 * endpoints from one address (an office behind one NAT must not notice), 3,000 to the pages,
 * 6,000 to the admin API. Attacks that need volume (password guessing, secret guessing) are
 * stopped much earlier by the lockouts. The client address honours TRUST_PROXY (Express `trust proxy`).
 */
export function rateLimit(config: IdpConfig) {
  const limits: Record<Kind, number> = {
    protocol: Math.max(1, Math.round((config.rateLimitProtocol * WINDOW_MS) / 60_000)),
    pages: Math.max(1, Math.round((config.rateLimitPages * WINDOW_MS) / 60_000)),
    admin: Math.max(1, Math.round((config.rateLimitAdmin * WINDOW_MS) / 60_000)),
  };
  let window = 0;
  let counts = new Map<string, number>();
  return (req: Request, res: Response, next: NextFunction) => {
    const now = Date.now();
    const current = Math.floor(now / WINDOW_MS);
    if (current !== window) {
      window = current;
      counts = new Map();
    }
    const kind = kindOf(req.path);
    const key = `${kind}|${req.ip}`;
    const n = (counts.get(key) ?? 0) + 1;
    counts.set(key, n);
    if (n <= limits[kind]) return next();
    const retryAfter = String(Math.ceil(((current + 1) * WINDOW_MS - now) / 1000));
    res.setHeader('Retry-After', retryAfter);
    if (kind === 'pages') {
      renderPage(res, 'error', { title: 'Too many requests', message: 'Too many requests from your network. Please wait a few seconds and try again.' }, 429);
    } else if (kind === 'admin' || req.path.startsWith('/health')) {
      res.status(429).json({ statusCode: 429, error: 'too_many_requests', message: 'rate limit exceeded; retry later' });
    } else {
      res.status(429).setHeader('Cache-Control', 'no-store');
      res.json({ error: 'slow_down', error_description: 'rate limit exceeded; retry later' });
    }
  };
}
