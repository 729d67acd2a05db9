/**
 * Resolves the `@idp/<lib>` aliases of tsconfig.json in the compiled output (dist/libs/<lib>/src),
 * as apps/idp/src/paths.ts does for the shipped app. Imported first by main.ts; jest maps the
 * aliases itself. (A company whose app lives in its own repository installs the libs as packages
 * and needs none of this.)
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
