/**
 * Resolves the `@idp/<lib>` aliases of tsconfig.json in the compiled output (dist/libs/<lib>/src).
 * Imported first by every entry point (main.ts, ormconfig.ts); jest maps them itself.
 */
import Module from 'node:module';
import { join } from 'node:path';

const libs = join(__dirname, '..', '..', '..', 'libs');
const mod = Module as unknown as { _resolveFilename: (request: string, ...rest: unknown[]) => string };
const resolve = mod._resolveFilename;
mod._resolveFilename = function (request: string, ...rest: unknown[]) {
  const m = /^@idp\/([a-z-]+)$/.exec(request);
  return resolve.call(this, m ? join(libs, m[1], 'src') : request, ...rest);
};
