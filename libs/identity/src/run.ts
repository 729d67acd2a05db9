import { createServer } from 'node:net';
import type { DynamicModule, Type } from '@nestjs/common';
import { ConfigError, loadConfig } from '@idp/core';
import { lowerThreadPoolPriority } from './pool-priority';
import { createIdentityApp } from './boot';

function freePort(host = '0.0.0.0'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Runs an IdP application as a process (`npm start`, `npm run start:example`): validates the
 * configuration (one line naming a bad variable, no stack), applies pending migrations, listens,
 * logs the ready line, and stops cleanly on SIGTERM / SIGINT (exit 0). A configuration or start-up
 * error prints one line and exits 1.
 */
export function runIdentityApp(rootModule: Type<unknown> | DynamicModule): Promise<void> {
  return main(rootModule).catch((err) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
    } else {
      process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level: 'error', msg: `failed to start: ${err?.message ?? err}` })}\n`);
    }
    process.exit(1);
  });
}

async function main(rootModule: Type<unknown> | DynamicModule): Promise<void> {
  const started = Date.now();
  const env = { ...process.env };
  // First, before anything starts libuv's thread pool (pool-priority.ts).
  const reniced = await lowerThreadPoolPriority(loadConfig(env).poolNice);
  // PORT=0: pick a free port now, so that the default ISSUER (http://localhost:$PORT) names it.
  if (env.PORT?.trim() === '0') env.PORT = String(await freePort(env.HOST));
  const { app, config, logger } = await createIdentityApp(rootModule, env);
  if (config.secretKeySource === 'ephemeral') {
    logger.write('warn', 'IDP_SECRET_KEY is not set and the database is in memory: a throw-away key is used; set IDP_SECRET_KEY to keep keys across restarts');
  } else if (config.secretKeySource === 'file') {
    logger.write('warn', 'IDP_SECRET_KEY is not set: using the development key kept in the data folder; set IDP_SECRET_KEY in production');
  }
  if (config.isProduction && !config.issuer.startsWith('https://')) {
    logger.write('warn', 'ISSUER is not https in production: cookies will not be Secure and tokens may travel in clear');
  }
  await app.listen(config.port, config.host);
  const address = app.getHttpServer().address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  // SIGTERM / SIGINT: stop accepting, let in-flight requests finish, close the database, exit 0.
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.write('info', `${signal}: shutting down`);
    setTimeout(() => {
      logger.write('error', 'shutdown took over 10 s; exiting');
      process.exit(1);
    }, 10_000).unref();
    app.close().then(
      () => process.exit(0),
      (err) => {
        logger.write('error', `shutdown failed: ${err?.message ?? err}`);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  logger.write('info', `ready: listening on http://${host}:${port}`, {
    url: `http://${host}:${port}`, issuer: config.issuer, started_ms: Date.now() - started, pool_threads_reniced: reniced.length,
  });
}
