import { IncomingMessage, Server, ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A real HTTP server on 127.0.0.1 (any free port) standing in for something the IdP fetches: a jwks_uri, say. */
export interface LocalHttp {
  url: string;
  port: number;
  /** TCP connections the server accepted. */
  connections: number;
  requests: IncomingMessage[];
  close(): Promise<void>;
}

const servers: Server[] = [];

export async function serveLocal(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<LocalHttp> {
  const server = createServer();
  const local: LocalHttp = {
    url: '', port: 0, connections: 0, requests: [],
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  server.on('connection', () => local.connections++);
  server.on('request', (req, res) => {
    local.requests.push(req);
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  local.port = (server.address() as AddressInfo).port;
  local.url = `http://127.0.0.1:${local.port}`;
  servers.push(server);
  return local;
}

/** Closes every server serveLocal started (an afterAll of the suites that use it). */
export async function closeLocalServers(): Promise<void> {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((resolve) => s.close(resolve));
  }
}
