import type { ServerResponse } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import type { IdpConfig } from '@idp/core';
import type { ClientsService } from '@idp/clients';

/** Headers every response carries: no MIME sniffing, no referrer, HSTS when the issuer is https. */
export function securityHeaders(config: IdpConfig) {
  const hsts = config.issuer.startsWith('https://');
  return (_req: Request, res: Response, next: NextFunction) => {
    setSecurityHeaders(res, hsts);
    next();
  };
}

export function setSecurityHeaders(res: ServerResponse, hsts: boolean): void {
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer');
  if (hsts) res.setHeader('Strict-Transport-Security', 'max-age=31536000; includeSubDomains');
}

const CORS_PATHS = /^\/(oauth\/(token|revoke)|userinfo|\.well-known\/(openid-configuration|oauth-authorization-server|jwks\.json))$/;
const PUBLIC_METADATA = /^\/\.well-known\//;

/**
 * CORS for browser clients (public SPAs): the discovery documents and JWKS are public; the token,
 * revocation and UserInfo endpoints answer preflights only for an origin some client registered in
 * `allowed_origins` (the token endpoint then allows the actual response only for that client's
 * own origins, in ProtocolEndpoints). Nothing else is reachable cross-origin.
 */
export function cors(clients: ClientsService) {
  return async (req: Request, res: Response, next: NextFunction) => {
    const origin = req.headers.origin;
    if (!origin || !CORS_PATHS.test(req.path)) return next();
    try {
      const allowed = await setActualCors(res, req.path, origin, clients);
      if (req.method !== 'OPTIONS') return next();
      if (allowed) {
        res.setHeader('Access-Control-Allow-Origin', PUBLIC_METADATA.test(req.path) ? '*' : origin);
        res.setHeader('Access-Control-Allow-Methods', PUBLIC_METADATA.test(req.path) ? 'GET' : 'GET, POST');
        res.setHeader('Access-Control-Allow-Headers', 'Authorization, Content-Type, DPoP');
        res.setHeader('Access-Control-Max-Age', '600');
        res.setHeader('Vary', 'Origin');
      }
      res.status(204).end();
    } catch (err) {
      next(err);
    }
  };
}

/**
 * Whether `origin` may call `path` cross-origin; and for the answers a browser may read as they
 * are (the public metadata, and UserInfo for an origin some client registered), the
 * Access-Control-Allow-Origin header. Used by the middleware above and by the lean protocol path.
 */
export async function setActualCors(res: ServerResponse, path: string, origin: string, clients: ClientsService): Promise<boolean> {
  const allowed = PUBLIC_METADATA.test(path) || (await clients.allowedOrigins()).has(origin);
  if (allowed && (path === '/userinfo' || PUBLIC_METADATA.test(path))) {
    res.setHeader('Access-Control-Allow-Origin', PUBLIC_METADATA.test(path) ? '*' : origin);
    res.setHeader('Vary', 'Origin');
  }
  return allowed;
}
