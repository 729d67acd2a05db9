// The ceiling: a bare node:http server that answers every POST to its token endpoint with one
// RS256 JWT (2048-bit key, signed with jose as our server does, the claims of a client_credentials
// access token). No authentication, no database: the physical limit of a token endpoint here.
// Discovery and JWKS are served so that the load generator drives it the same way.
// Configuration: BENCH_CEILING (JSON) = { port, issuer, audience }. Prints `ready <url>` when listening.
import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { SignJWT, exportJWK } from 'jose';

const cfg = JSON.parse(process.env.BENCH_CEILING);
const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
const kid = randomBytes(8).toString('base64url');
const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' }] });
const discovery = JSON.stringify({
  issuer: cfg.issuer,
  token_endpoint: `${cfg.issuer}/oauth/token`,
  jwks_uri: `${cfg.issuer}/jwks`,
  grant_types_supported: ['client_credentials'],
});

const server = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/.well-known/openid-configuration') return send(res, 200, discovery);
  if (req.method === 'GET' && req.url === '/jwks') return send(res, 200, jwks);
  if (req.method !== 'POST' || req.url !== '/oauth/token') return send(res, 404, '{"error":"not_found"}');
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const form = new URLSearchParams(Buffer.concat(chunks).toString());
    const basic = Buffer.from((req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64').toString();
    const clientId = decodeURIComponent(basic.slice(0, basic.indexOf(':')));
    const iat = Math.floor(Date.now() / 1000);
    const scope = form.get('scope') ?? '';
    const token = await new SignJWT({
      iss: cfg.issuer, sub: clientId, aud: form.get('resource') ?? form.get('audience') ?? cfg.audience, client_id: clientId,
      scope, jti: randomBytes(16).toString('base64url'), iat, exp: iat + 3600,
    }).setProtectedHeader({ alg: 'RS256', kid, typ: 'at+jwt' }).sign(privateKey);
    send(res, 200, JSON.stringify({ access_token: token, token_type: 'Bearer', expires_in: 3600, scope }), true);
  });
});

function send(res, status, body, noStore = false) {
  res.writeHead(status, { 'content-type': 'application/json', ...(noStore ? { 'cache-control': 'no-store' } : {}) });
  res.end(body);
}

server.listen(cfg.port, '127.0.0.1', () => process.stdout.write(`ready ${cfg.issuer}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
