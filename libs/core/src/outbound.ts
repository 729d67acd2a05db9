import { lookup as dnsLookup } from 'node:dns/promises';
import { ClientRequest, IncomingMessage, OutgoingHttpHeaders, request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * The one HTTP client for URLs that clients or administrators give us (a client's `jwks_uri`; later
 * sector identifiers, back-channel logout, connections). CONTRACT §1 IDP_OUTBOUND:
 * - `public`: https only, to public addresses only;
 * - `local`: also http and https to loopback and private addresses;
 * - link-local and cloud-metadata addresses are never fetched, in either mode.
 * The literal host is checked when the URL is registered (`urlProblem`, no DNS) and again when it
 * is fetched, on every address the name resolves to, before connecting (so a name that is
 * re-pointed at an internal address after registration is refused too). Every fetch has a 5 s
 * overall timeout, a 256 KiB body limit enforced while the body streams in, follows no redirect,
 * sends no cookie and a fixed User-Agent.
 */

export type OutboundMode = 'public' | 'local';

/** Why an outbound request failed. Never contains a secret, the URL, or the peer's words. */
export type OutboundReason =
  | 'invalid url'
  | 'invalid request'
  | 'scheme not allowed'
  | 'address not allowed'
  | 'dns lookup failed'
  | 'connection failed'
  | 'timeout'
  | 'aborted'
  | 'too large'
  | 'redirect refused'
  | `http status ${number}`;

export class OutboundError extends Error {
  constructor(public readonly reason: OutboundReason) {
    super(`outbound request failed: ${reason}`);
    this.name = 'OutboundError';
  }
}

/** Resolves a host name to every address it has (dns.lookup with all: true by default). */
export type OutboundResolver = (hostname: string) => Promise<LookupAddress[]>;

export interface OutboundOptions {
  mode: OutboundMode;
  /** For tests: map names to addresses without DNS. */
  resolve?: OutboundResolver;
  timeoutMs?: number;
  maxBytes?: number;
}

/** What `fetch` takes: the subset of RequestInit that makes sense here (jose's customFetch passes this shape). */
export interface OutboundRequestInit {
  method?: string;
  headers?: HeadersInit;
  body?: string | Uint8Array | URLSearchParams;
  signal?: AbortSignal;
  /** Ignored: redirects are never followed (a 3xx is an error). */
  redirect?: string;
}

export const OUTBOUND_TIMEOUT_MS = 5_000;
export const OUTBOUND_MAX_BYTES = 256 * 1024;
export const OUTBOUND_USER_AGENT = 'idp-outbound/1';

/**
 * Where an address falls: `public` (global unicast), `local` (loopback and private: RFC 1918,
 * unique local fc00::/7, and the shared 100.64/10 used by private overlays), `never` (link-local,
 * cloud metadata, unspecified, multicast, broadcast), or `reserved` (every other special-purpose
 * range: documentation, benchmarking, IPv4-compatible and translated IPv6 forms, 6to4, Teredo,
 * NAT64…), which is refused in both modes.
 */
type AddressClass = 'public' | 'local' | 'never' | 'reserved';

/** Cloud metadata services that ipaddr.js's ranges do not already put in `never`. */
const METADATA = [
  'fd00:ec2::254/128', // AWS IMDS over IPv6 (inside fc00::/7)
  'fd20:ce::254/128', // Google Compute Engine metadata over IPv6
  '100.100.100.200/32', // Alibaba Cloud metadata (inside 100.64/10)
  '168.63.129.16/32', // Azure's host endpoint (a public address)
].map((cidr) => ipaddr.parseCIDR(cidr));
/** ::a.b.c.d, the deprecated IPv4-compatible form (ipaddr.js calls it unicast). */
const IPV4_COMPATIBLE = ipaddr.parseCIDR('::/96');
const METADATA_NAMES = new Set(['metadata.google.internal']);

function classify(ip: ipaddr.IPv4 | ipaddr.IPv6): AddressClass {
  if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress()) return classify((ip as ipaddr.IPv6).toIPv4Address());
  if (METADATA.some(([net, bits]) => net.kind() === ip.kind() && ip.match(net, bits))) return 'never';
  const range = ip.range();
  switch (range) {
    case 'linkLocal':
    case 'unspecified':
    case 'multicast':
    case 'broadcast':
      return 'never';
    case 'loopback':
    case 'private':
    case 'uniqueLocal':
    case 'carrierGradeNat':
      return 'local';
    case 'unicast':
      return ip.kind() === 'ipv6' && ip.match(IPV4_COMPATIBLE) ? 'reserved' : 'public';
    default:
      return 'reserved';
  }
}

/** The address of an IP-literal host (URL hostnames keep IPv6 in brackets), else undefined. */
function literalAddress(hostname: string): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  const h = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  return ipaddr.isValid(h) ? ipaddr.parse(h) : undefined;
}

function hostClass(hostname: string): AddressClass | undefined {
  const literal = literalAddress(hostname);
  if (literal) return classify(literal);
  const name = hostname.toLowerCase().replace(/\.$/, '');
  if (METADATA_NAMES.has(name)) return 'never';
  if (name === 'localhost' || name.endsWith('.localhost')) return 'local'; // RFC 6761 §6.3
  return undefined;
}

export class OutboundClient {
  readonly mode: OutboundMode;
  private readonly resolve: OutboundResolver;
  private readonly timeoutMs: number;
  private readonly maxBytes: number;

  constructor(options: OutboundOptions) {
    this.mode = options.mode;
    this.resolve = options.resolve ?? ((hostname) => dnsLookup(hostname, { all: true }));
    this.timeoutMs = options.timeoutMs ?? OUTBOUND_TIMEOUT_MS;
    this.maxBytes = options.maxBytes ?? OUTBOUND_MAX_BYTES;
  }

  /**
   * Checks a URL when it is registered, from its literal host only (IP literals and well-known
   * names; no DNS): the problem, worded to follow a field name, or undefined when it may be fetched.
   */
  urlProblem(uri: string): string | undefined {
    let url: URL;
    try {
      url = new URL(uri);
    } catch {
      return this.mode === 'public' ? 'must be an absolute https URL' : 'must be an absolute http or https URL';
    }
    return this.problemOf(url)?.problem;
  }

  /**
   * GET (or another method) `input` under the policy. Resolves with the response, its body already
   * read (at most 256 KiB) for a 2xx; rejects with an OutboundError for anything else. Usable as
   * jose's `[customFetch]`.
   */
  fetch(input: string | URL, init: OutboundRequestInit = {}): Promise<Response> {
    return new Promise<Response>((resolve, reject) => {
      let settled = false;
      let req: ClientRequest | undefined;
      const finish = (err: OutboundError | undefined, res?: Response) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        init.signal?.removeEventListener('abort', onAbort);
        if (err) {
          req?.destroy();
          reject(err);
        } else {
          resolve(res!);
        }
      };
      // Connect, headers and body: one deadline for the whole exchange.
      const timer = setTimeout(() => finish(new OutboundError('timeout')), this.timeoutMs);
      const onAbort = () => finish(new OutboundError((init.signal?.reason as Error | undefined)?.name === 'TimeoutError' ? 'timeout' : 'aborted'));
      if (init.signal?.aborted) return onAbort();
      init.signal?.addEventListener('abort', onAbort, { once: true });

      let url: URL;
      try {
        url = new URL(String(input));
      } catch {
        return finish(new OutboundError('invalid url'));
      }
      const refused = this.problemOf(url);
      if (refused) return finish(new OutboundError(refused.reason));

      let out: OutgoingHttpHeaders;
      let body: Buffer | undefined;
      try {
        const headers = new Headers(init.headers);
        for (const name of ['cookie', 'host', 'user-agent', 'accept-encoding', 'connection', 'content-length', 'transfer-encoding']) headers.delete(name);
        out = Object.fromEntries(headers);
        out['user-agent'] = OUTBOUND_USER_AGENT;
        out['accept-encoding'] = 'identity';
        out.connection = 'close';
        body = init.body === undefined ? undefined : init.body instanceof URLSearchParams ? Buffer.from(init.body.toString()) : Buffer.from(init.body);
        if (body) {
          out['content-length'] = body.length;
          if (init.body instanceof URLSearchParams && !headers.has('content-type')) out['content-type'] = 'application/x-www-form-urlencoded';
        }
      } catch {
        return finish(new OutboundError('invalid request'));
      }

      const https = url.protocol === 'https:';
      const literal = literalAddress(url.hostname);
      try {
        req = (https ? httpsRequest : httpRequest)({
          protocol: url.protocol,
          hostname: literal ? literal.toString() : url.hostname,
          port: url.port || undefined,
          path: `${url.pathname}${url.search}`,
          method: init.method ?? 'GET',
          headers: out,
          agent: false,
          // Node skips `lookup` for IP literals; those were checked above by problemOf.
          lookup: literal ? undefined : this.lookup(https),
        });
      } catch {
        return finish(new OutboundError('invalid url'));
      }
      req.on('error', (err) => finish(err instanceof OutboundError ? err : new OutboundError('connection failed')));
      req.on('response', (res: IncomingMessage) => {
        res.on('error', () => finish(new OutboundError('connection failed')));
        res.on('aborted', () => finish(new OutboundError('connection failed')));
        const status = res.statusCode ?? 0;
        if (status >= 300 && status < 400) return finish(new OutboundError('redirect refused'));
        if (status < 200 || status >= 300) return finish(new OutboundError(`http status ${status}`));
        if (Number(res.headers['content-length']) > this.maxBytes) return finish(new OutboundError('too large'));
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          // Stop reading, and close the socket, as soon as the limit is crossed.
          if (size > this.maxBytes) return finish(new OutboundError('too large'));
          chunks.push(chunk);
        });
        res.on('end', () => {
          if (settled) return;
          const responseHeaders = new Headers();
          for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
            if (res.rawHeaders[i].toLowerCase() === 'set-cookie') continue; // no cookies
            try {
              responseHeaders.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
            } catch {
              // a header WHATWG Headers refuses is dropped
            }
          }
          const nullBody = status === 204 || status === 205;
          finish(undefined, new Response(nullBody ? null : Buffer.concat(chunks), { status, headers: responseHeaders }));
        });
      });
      req.end(body);
    });
  }

  /** The policy on a parsed URL's scheme and literal host: the registration message and the fetch reason. */
  private problemOf(url: URL): { problem: string; reason: OutboundReason } | undefined {
    const https = url.protocol === 'https:';
    if (!https && !(url.protocol === 'http:' && this.mode === 'local')) {
      return { problem: this.mode === 'public' ? 'must be an https URL' : 'must be an http or https URL', reason: 'scheme not allowed' };
    }
    if (url.username || url.password) return { problem: 'must not contain user information', reason: 'invalid url' };
    const cls = hostClass(url.hostname);
    if (cls === undefined) return undefined; // a name: checked on what it resolves to, at fetch time
    const problem = this.addressProblem(cls, https);
    return problem ? { problem, reason: 'address not allowed' } : undefined;
  }

  private addressProblem(cls: AddressClass, https: boolean): string | undefined {
    switch (cls) {
      case 'never':
        return 'must not point at a link-local, cloud metadata, unspecified or multicast address';
      case 'reserved':
        return 'must not point at a reserved address';
      case 'local':
        return this.mode === 'local' ? undefined : 'must not point at a loopback or private address (IDP_OUTBOUND=public)';
      case 'public':
        return https ? undefined : 'must be an https URL (http only to loopback and private addresses)';
    }
  }

  /** A `lookup` for node:http(s) that resolves the name and refuses it if any address is not allowed. */
  private lookup(https: boolean): LookupFunction {
    return (hostname, options, callback) => {
      const name = hostname.toLowerCase().replace(/\.$/, '');
      const refuse = (reason: OutboundReason) => callback(new OutboundError(reason), '', 0);
      if (METADATA_NAMES.has(name)) return refuse('address not allowed');
      this.resolve(hostname).then(
        (all) => {
          const family = options.family === 4 || options.family === 6 ? options.family : undefined;
          const addresses = all.filter((a) => ipaddr.isValid(a.address));
          if (addresses.length === 0 || addresses.length !== all.length) return refuse('dns lookup failed');
          // Every address, not only the first: the socket may try any of them.
          if (addresses.some((a) => this.addressProblem(classify(ipaddr.parse(a.address)), https))) return refuse('address not allowed');
          const usable = family ? addresses.filter((a) => a.family === family) : addresses;
          if (usable.length === 0) return refuse('dns lookup failed');
          if (options.all) callback(null, usable.map((a) => ({ address: a.address, family: a.family })));
          else callback(null, usable[0].address, usable[0].family);
        },
        () => refuse('dns lookup failed'),
      );
    };
  }
}
