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

/** The bucket of a path, by the one route classification (so `/LOGIN` and `/login/` count as pages too). */
function kindOf(path: string): Kind {
  const family = routeFamily(path);
  return family === 'admin' ? 'admin' : family === 'pages' ? 'pages' : 'protocol';
}

/** What a bucket says of one request: undefined to serve it, else the seconds to wait (Retry-After); at once when it knows. */
type Verdict = number | undefined;

/**
 * Per-address rate limits on every public endpoint (CONTRACT §5), by rate-limiter-flexible: one
 * limiter per bucket (the protocol endpoints, the pages, the admin API), counting each address's
 * requests in windows of 10 s. Generous by default: 60,000 requests a minute to the protocol
 * endpoints from one address (an office behind one NAT must not notice), 3,000 to the pages, 6,000
 * to the admin API. Attacks that need volume (password guessing, secret guessing) are stopped much
 * earlier by the lockouts. The client address honours TRUST_PROXY.
 *
 * Without REDIS_URL the counts are this replica's, on `clock` (by default the clock of the
 * application being created, BootClock, else the system's). With REDIS_URL they live in Redis
 * (RateLimiterRedis: one atomic script a call, keys `<IDP_REDIS_PREFIX>rl:<bucket>:<address>`
 * expiring with their window, on Redis's clock), so the limits hold across replicas; a replica
 * takes an address's requests from there in batches (Leases), so that most requests cost no call
 * to Redis. While Redis cannot be reached (not connected, or no answer within 500 ms), requests are
 * counted here instead, with the same limits per replica (the library's insuranceLimiter), never
 * refused for it; the outage is logged once when it begins and once when it ends.
 */
export class RateLimiter {
  private constructor(
    private readonly buckets: Record<Kind, { take(key: string): Verdict | Promise<Verdict> }>,
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
      const counted = (kind: Kind) => {
        const limiter = memory(kind);
        return { take: (key: string) => limiter.consume(key).then(() => undefined, (refusal: unknown) => verdictOf(refusal, outage)) };
      };
      return new RateLimiter({ protocol: counted('protocol'), pages: counted('pages'), admin: counted('admin') }, outage);
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
    const shared = (kind: Kind) => new Leases(new RateLimiterRedis({
      storeClient: redis,
      keyPrefix: `${config.redisPrefix}rl:${kind}`,
      points: points[kind],
      duration: WINDOW_S,
      // Not connected: counted here at once (the insurance), rather than after a timeout.
      rejectIfRedisNotReady: true,
      insuranceLimiter: memory(kind, () => outage.fellBack()),
    }), points[kind], clock, outage);
    await connected;
    return new RateLimiter({ protocol: shared('protocol'), pages: shared('pages'), admin: shared('admin') }, outage, redis);
  }

  /** Counts one request; undefined while within the limit, else the seconds until the address's window ends (Retry-After). Never rejects. */
  hit(path: string, ip: string | undefined): Verdict | Promise<Verdict> {
    return this.buckets[kindOf(path)].take(ip ?? 'unknown');
  }

  /** `hit`, for a Fastify hook: `done()` to go on, or `done(rateLimited(…))`; at once when the answer is known here. */
  check(path: string, ip: string | undefined, done: (refusal?: HttpException) => void): void {
    const verdict = this.hit(path, ip);
    if (typeof verdict === 'object') void verdict.then((retryAfter) => done(retryAfter === undefined ? undefined : rateLimited(retryAfter)));
    else done(verdict === undefined ? undefined : rateLimited(verdict));
  }

  async close(): Promise<void> {
    if (!this.redis) return;
    if (this.redis.status === 'ready') await this.redis.quit().catch(() => this.redis!.disconnect());
    else this.redis.disconnect();
  }
}

/** A limiter's refusal as Retry-After; a failure (which no insurance took) serves the request. */
function verdictOf(refusal: unknown, outage: Outage): Verdict {
  if (refusal instanceof RateLimiterRes) return retryAfter(refusal.msBeforeNext);
  outage.begin(refusal instanceof Error ? refusal.message : String(refusal));
  return undefined;
}

function retryAfter(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

/**
 * An address's requests taken from Redis in batches of 1 % of the limit (at least 1): a call to
 * Redis counts a whole batch against the address at once, and this replica serves that many of the
 * address's requests before it asks again (one call at a time per address; the requests that
 * arrive meanwhile wait for it). When Redis finds the limit reached, the replica gets what was left
 * of it, then refuses the address itself until the window ends. So the limit holds across replicas
 * give or take the batches that replicas took and did not use before the window ended (each
 * replica one at most, an address); with the default limits, 100 of 10,000 requests a window to
 * the protocol endpoints. A batch lasts as long as the window it was taken from (`clock`).
 */
class Leases {
  private readonly leases = new Map<string, { left: number; until: number; last: boolean }>();
  private readonly asking = new Map<string, Promise<boolean>>();
  private readonly batch: number;
  private sweepAt = 0;

  constructor(private readonly limiter: RateLimiterAbstract, private readonly points: number, private readonly clock: Clock, private readonly outage: Outage) {
    this.batch = Math.max(1, Math.floor(points / 100));
  }

  take(key: string): Verdict | Promise<Verdict> {
    const now = this.clock.now();
    if (now >= this.sweepAt) this.sweep(now);
    const lease = this.leases.get(key);
    if (lease && now < lease.until) {
      if (lease.left > 0) {
        lease.left--;
        return undefined;
      }
      if (lease.last) return retryAfter(lease.until - now);
    }
    return (this.asking.get(key) ?? this.ask(key, now)).then((counted) => (counted ? this.take(key) : undefined));
  }

  /** Takes a batch for `key`; false when the limiter failed (the request is served uncounted). */
  private ask(key: string, now: number): Promise<boolean> {
    const fallbacks = this.outage.fallbacks;
    const asked = this.limiter.consume(key, this.batch).then(
      (res) => {
        this.outage.answered(fallbacks);
        this.leases.set(key, { left: this.batch, until: now + Math.max(1, res.msBeforeNext), last: false });
        return true;
      },
      (refusal: unknown) => {
        if (!(refusal instanceof RateLimiterRes)) {
          verdictOf(refusal, this.outage);
          return false;
        }
        // The whole batch was counted: what the limit had left before it is this replica's, the last of the window.
        const left = Math.min(this.batch, Math.max(0, this.points - (refusal.consumedPoints - this.batch)));
        this.leases.set(key, { left, until: now + Math.max(1, refusal.msBeforeNext), last: true });
        return true;
      },
    ).finally(() => this.asking.delete(key));
    this.asking.set(key, asked);
    return asked;
  }

  private sweep(now: number): void {
    for (const [key, lease] of this.leases) if (lease.until <= now) this.leases.delete(key);
    this.sweepAt = now + WINDOW_S * 1000;
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
