import { Injectable } from '@nestjs/common';
import type { CorsOptions, CorsOptionsDelegate } from '@nestjs/common/interfaces/external/cors-options.interface';
import { decodeJwt } from 'jose';
import { ClientsService } from '@idp/clients';
import { urlPath } from '@idp/core';
import { routeFamily } from './route-family';

interface CorsRequest {
  method: string;
  path?: string;
  url?: string;
  headers: Record<string, string | string[] | undefined>;
  body?: unknown;
}

const REFUSED: CorsOptions = { origin: false };
const PUBLIC: CorsOptions = { origin: '*', methods: 'GET', maxAge: 600 };
const CLIENT_HEADERS = 'Authorization, Content-Type, DPoP';

/**
 * CORS, decided once for every route (CONTRACT §4 `allowed_origins`), and applied by the `cors`
 * package (Nest's `enableCors`):
 * - the discovery documents and the JWKS are public (`*`, GET);
 * - the token and revocation endpoints answer a browser only from an origin that the client
 *   named in the request registered; a preflight (which names no client) from an origin some
 *   client registered;
 * - UserInfo from an origin some client registered;
 * - nothing else: never introspection (resource servers call it, not browsers), the admin API or
 *   the pages.
 */
@Injectable()
export class CorsPolicy {
  constructor(private readonly clients: ClientsService) {}

  /** The delegate `enableCors` takes: this policy's options for each request. */
  delegate(): CorsOptionsDelegate<CorsRequest> {
    return (req, callback) => {
      this.decide(req).then((options) => callback(null, options), (err) => callback(err, REFUSED));
    };
  }

  async decide(req: CorsRequest): Promise<CorsOptions> {
    const origin = req.headers.origin;
    if (typeof origin !== 'string' || !origin) return REFUSED;
    const family = routeFamily(req.path ?? urlPath(req.url ?? '/'));
    if (family === 'metadata') return PUBLIC;
    if (family !== 'token' && family !== 'revocation' && family !== 'userinfo') return REFUSED;
    const preflight = req.method === 'OPTIONS';
    let allowed: boolean;
    if (preflight || family === 'userinfo') {
      allowed = (await this.clients.allowedOrigins()).has(origin);
    } else {
      const clientId = claimedClientId(req);
      const client = clientId && clientId.length <= 128 ? await this.clients.find(clientId) : null;
      allowed = !!client?.allowed_origins.includes(origin);
    }
    return allowed ? { origin, methods: 'GET, POST', allowedHeaders: CLIENT_HEADERS, maxAge: 600 } : REFUSED;
  }
}

/**
 * The client a token or revocation request names (not yet authenticated: the answer is only
 * readable by that client's own origins, and authentication still decides the answer itself).
 */
function claimedClientId(req: CorsRequest): string | undefined {
  const auth = req.headers.authorization;
  if (typeof auth === 'string' && /^basic /i.test(auth)) {
    const decoded = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 1) return undefined;
    try {
      return decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, ' '));
    } catch {
      return undefined;
    }
  }
  const body = req.body as Record<string, unknown> | undefined;
  if (typeof body?.client_id === 'string') return body.client_id;
  if (typeof body?.client_assertion === 'string') {
    try {
      const iss = decodeJwt(body.client_assertion).iss;
      return typeof iss === 'string' ? iss : undefined;
    } catch {
      return undefined;
    }
  }
  return undefined;
}
