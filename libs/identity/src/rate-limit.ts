import { HttpException, type LoggerService } from '@nestjs/common';
import Redis from 'ioredis';
import { RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract, type RateLimiterStoreAbstract as StoreAbstract } from 'rate-limiter-flexible';
import { BootClock, Clock, IdpConfig, SystemClock } from '@idp/core';
import { routeFamily } from './http/route-family';

// The base class of the library's stores: its README's way to add one ("Any new limiter with
// storage must be extended from RateLimiterStoreAbstract"). types.d.ts declares it, but the
// package's index does not export it at run time, hence its own file (the version is pinned).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const RateLimiterStoreAbstract: typeof StoreAbstract = require('rate-limiter-flexible/lib/RateLimiterStoreAbstract');

/** The length of a window, seconds: an address's count starts at its first request and lasts this long. */
const WINDOW_S = 10;
/** How long a request waits for Redis before it is counted here instead (Redis answers in well under 1 ms). */
const REDIS_TIMEOUT_MS = 500;
/** How long boot waits for the first connection to Redis (ioredis's connectTimeout, as the lockouts'). */
const REDIS_CONNECT_MS = 2000;

type Kind = 'protocol' | 'pages' | 'admin';
const KINDS: readonly Kind[] = ['protocol', 'pages', 'admin'];

/** The bucket of a path, by the one route classification (so `/LOGIN` and `/login/` count as pages too). */
function kindOf(path: string): Kind {
  const family = routeFamily(path);
  return family === 'admin' ? 'admin' : family === 'pages' ? 'pages' : 'protocol';
}

/**
 * Per-address rate limits on every public endpoint (CONTRACT §5), by rate-limiter-flexible: one
 * limiter per bucket (the protocol endpoints, the pages, the admin API), counting each address's
 * requests in windows of 10 s. Generous by default: 60,000 requests a minute to the protocol
 * endpoints from one address (an office behind one NAT must not notice), 3,000 to the pages, 6,000
 * to the admin API. Attacks that need volume (password guessing, secret guessing) are stopped much
 * earlier by the lockouts. The client address honours TRUST_PROXY.
 *
 * With REDIS_URL the counts live in Redis (RateLimiterRedis: one atomic script a request, keys
 * `<IDP_REDIS_PREFIX>rl:<bucket>:<address>` expiring with their window, on Redis's clock), so the
 * limits hold across replicas; an address over its limit is then refused by this replica without
 * asking Redis again until its window ends. While Redis cannot be reached (not connected, or no
 * answer within 500 ms) each request is counted here instead, with the same limits per replica
 * (the library's insuranceLimiter), never refused for it; the outage is logged once when it begins
 * and once when it ends. Without REDIS_URL, the counts are this replica's, on `clock` (by default
 * the clock of the application being created, BootClock, else the system's).
 */
export class RateLimiter {
  private constructor(
    private readonly limiters: Record<Kind, RateLimiterAbstract>,
    private readonly outage: Outage,
    private readonly redis?: Redis,
  ) {}

  /** The limiter of `config`; with REDIS_URL, once the first connection to Redis is made or has failed (2 s at most). */
  static async create(config: IdpConfig, clock: Clock = BootClock.current() ?? new SystemClock(), logger?: Pick<LoggerService, 'warn' | 'log'>): Promise<RateLimiter> {
    const outage = new Outage(logger);
    const points: Record<Kind, number> = {
      protocol: perWindow(config.rateLimitProtocol),
      pages: perWindow(config.rateLimitPages),
      admin: perWindow(config.rateLimitAdmin),
    };
    const memory = (kind: Kind, onUse?: () => void) => new ClockMemoryLimiter({ points: points[kind], duration: WINDOW_S, keyPrefix: `rl:${kind}`, storeClient: undefined }, clock, onUse);
    if (!config.redisUrl) {
      return new RateLimiter({ protocol: memory('protocol'), pages: memory('pages'), admin: memory('admin') }, outage);
    }
    const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 1, connectTimeout: REDIS_CONNECT_MS, commandTimeout: REDIS_TIMEOUT_MS, enableAutoPipelining: true });
    redis.on('error', (err: Error) => outage.begin(err.message));
    const connected = new Promise<void>((resolve) => {
      const settle = () => {
        clearTimeout(timer);
        redis.off('ready', settle).off('error', settle);
        resolve();
      };
      const timer = setTimeout(settle, REDIS_CONNECT_MS);
      redis.once('ready', settle).once('error', settle);
    });
    const shared = (kind: Kind) => new RateLimiterRedis({
      storeClient: redis,
      keyPrefix: `${config.redisPrefix}rl:${kind}`,
      points: points[kind],
      duration: WINDOW_S,
      // An address over its limit is refused here, without Redis, until its window ends.
      inMemoryBlockOnConsumed: points[kind] + 1,
      // Not connected: counted here at once (the insurance), rather than after a timeout.
      rejectIfRedisNotReady: true,
      insuranceLimiter: memory(kind, () => outage.fellBack()),
    });
    await connected;
    return new RateLimiter({ protocol: shared('protocol'), pages: shared('pages'), admin: shared('admin') }, outage, redis);
  }

  /** Counts one request; undefined while within the limit, else the seconds until the address's window ends (Retry-After). Never rejects. */
  hit(path: string, ip: string | undefined): Promise<number | undefined> {
    const fallbacks = this.outage.fallbacks;
    return this.limiters[kindOf(path)].consume(ip ?? 'unknown').then(
      () => {
        this.outage.answered(fallbacks);
        return undefined;
      },
      (refusal: unknown) => {
        if (refusal instanceof RateLimiterRes) return Math.max(1, Math.ceil(refusal.msBeforeNext / 1000));
        // Not a refusal but a failure the insurance did not take: the request is served.
        this.outage.begin(refusal instanceof Error ? refusal.message : String(refusal));
        return undefined;
      },
    );
  }

  async close(): Promise<void> {
    if (!this.redis) return;
    if (this.redis.status === 'ready') await this.redis.quit().catch(() => this.redis!.disconnect());
    else this.redis.disconnect();
  }
}

/** A limit a minute, as requests a window (at least 1). */
function perWindow(perMinute: number): number {
  return Math.max(1, Math.round((perMinute * WINDOW_S) / 60));
}

/** Whether Redis is away, logged once when it goes and once when it is back. */
class Outage {
  down = false;
  /** Requests counted here instead of in Redis, so far. */
  fallbacks = 0;
  constructor(private readonly logger?: Pick<LoggerService, 'warn' | 'log'>) {}

  /** A request was counted here: Redis was not connected, failed, or did not answer in time. */
  fellBack(): void {
    this.fallbacks++;
    this.begin(`not connected, or no answer within ${REDIS_TIMEOUT_MS} ms`);
  }

  /**
   * A request was let through, and `fallbacks` was the count when it began: while Redis is away,
   * none having fallen back since means that Redis counted it. (Not refusals: an address over its
   * limit is refused without Redis.)
   */
  answered(fallbacks: number): void {
    if (this.down && this.fallbacks === fallbacks) this.end();
  }

  begin(why: string): void {
    if (this.down) return;
    this.down = true;
    this.logger?.warn(`rate limits: Redis unreachable (${why}); requests are counted per replica until it is back`, 'RateLimiter');
  }

  end(): void {
    if (!this.down) return;
    this.down = false;
    this.logger?.log('rate limits: Redis reachable again; counts are shared by the replicas', 'RateLimiter');
  }
}

/**
 * The library's RateLimiterMemory on the injected Clock. RateLimiterMemory reads Date.now() and
 * expires each count with a timer of its own, so a test could not move its windows without faking
 * Date; this store, on the library's RateLimiterStoreAbstract, keeps the counts in a Map and reads
 * the time from `clock`, and the library does the rest (points, refusals, as for its own stores).
 * Counts whose window has ended are dropped by a sweep, at most once a window. `onUse` is told of
 * each request it counts (as an insurance: Redis was not asked).
 */
class ClockMemoryLimiter extends RateLimiterStoreAbstract {
  private readonly counts = new Map<string, { points: number; expiresAt: number }>();
  private sweepAt = 0;

  constructor(opts: ConstructorParameters<typeof StoreAbstract>[0], private readonly clock: Clock, private readonly onUse?: () => void) {
    super(opts);
  }

  /** The count of `rlKey` after adding `points` (or set to `points`: forceExpire), and the ms left in its window. */
  _upsert(rlKey: string, points: number, msDuration: number, forceExpire = false): Promise<[number, number]> {
    this.onUse?.();
    const now = this.clock.now();
    if (now >= this.sweepAt) this.sweep(now);
    let count = this.counts.get(rlKey);
    if (forceExpire || !count || count.expiresAt <= now) {
      count = { points, expiresAt: msDuration > 0 ? now + msDuration : Infinity };
      this.counts.set(rlKey, count);
    } else {
      count.points += points;
    }
    return Promise.resolve([count.points, count.expiresAt === Infinity ? -1 : count.expiresAt - now]);
  }

  _getRateLimiterRes(_rlKey: string, changedPoints: number, [consumed, msBeforeNext]: [number, number]): RateLimiterRes {
    return new RateLimiterRes(Math.max(this.points - consumed, 0), msBeforeNext, consumed, consumed === changedPoints);
  }

  _get(rlKey: string): Promise<[number, number] | null> {
    const count = this.counts.get(rlKey);
    const now = this.clock.now();
    if (!count || count.expiresAt <= now) return Promise.resolve(null);
    return Promise.resolve([count.points, count.expiresAt === Infinity ? -1 : count.expiresAt - now]);
  }

  _delete(rlKey: string): Promise<boolean> {
    return Promise.resolve(this.counts.delete(rlKey));
  }

  private sweep(now: number): void {
    for (const [key, count] of this.counts) if (count.expiresAt <= now) this.counts.delete(key);
    this.sweepAt = now + WINDOW_S * 1000;
  }
}

/**
 * The refusal of a request over its limit: 429 with Retry-After, answered in the route's format
 * (the HTML error page, RFC 6749 §5.2 `slow_down`, or the admin JSON).
 */
export function rateLimited(retryAfter: number): HttpException {
  return new HttpException({ statusCode: 429, error: 'too_many_requests', message: 'rate limit exceeded; retry later', headers: { 'Retry-After': String(retryAfter) } }, 429);
}
