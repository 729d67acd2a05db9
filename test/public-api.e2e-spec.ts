import { readFileSync, readdirSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';

/**
 * The stable public API (docs/extending.md): an extension imports `@idp/<lib>` (each lib's
 * src/index.ts) and nothing deeper. The example app is held to it, and every lib's index exports
 * what the guide documents. The documented interfaces are checked by the compiler, not here:
 * test/public-api.types.ts.
 */
const ROOT = resolve(__dirname, '..');
const EXAMPLE = join(ROOT, 'apps', 'example-extended');
const LIBS = readdirSync(join(ROOT, 'libs')).filter((l) => statSync(join(ROOT, 'libs', l)).isDirectory());
const PACKAGE = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.(ts|js)$/.test(name) ? [path] : [];
  });
}

interface Specifier {
  spec: string;
  /** `import type … from` / `export type … from`: gone from the compiled output. */
  typeOnly: boolean;
}

/** Every module specifier: static and type imports, re-exports, side-effect imports, require(), import(). */
export function importSpecifiers(source: string): Specifier[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
  return [
    ...[...code.matchAll(/\b(?:import|export)\s+(type\s+)?(?:[\w*\s{},$]*?\s+from\s+)?['"]([^'"]+)['"]/g)].map((m) => ({ spec: m[2], typeOnly: !!m[1] })),
    ...[...code.matchAll(/\b(?:require|import)\s*\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => ({ spec: m[1], typeOnly: false })),
  ];
}

/** Why a specifier breaks the public-API rule, or undefined when it is fine. */
function violation(file: string, spec: string, typeOnly = false): string | undefined {
  if (spec.startsWith('.')) {
    const target = resolve(dirname(file), spec);
    return target === EXAMPLE || target.startsWith(EXAMPLE + sep) ? undefined : `reaches outside the app: ${relative(ROOT, target)}`;
  }
  if (spec.startsWith('@idp/')) return /^@idp\/[a-z-]+$/.test(spec) && LIBS.includes(spec.slice(5)) ? undefined : 'deep or unknown @idp import';
  if (spec.startsWith('node:') || builtinModules.includes(spec)) return undefined;
  if (/^(libs|apps)\//.test(spec) || spec.startsWith('/')) return 'path into the repository';
  const pkg = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
  // Types alone may come from a package whose typings are a dev dependency (@types/<package>).
  const typed = typeOnly && `@types/${pkg.replace(/^@(.*)\//, '$1__')}` in PACKAGE.devDependencies;
  if (!(pkg in PACKAGE.dependencies) && !typed) return `not a runtime dependency of package.json: ${pkg}`;
  // A package's own internals are as private as ours.
  if (/\/(src|dist|lib)\//.test(`${spec}/`.slice(pkg.length))) return 'deep import into a package';
  return undefined;
}

describe('the public API', () => {
  describe('the import scanner', () => {
    it('finds every kind of specifier', () => {
      const src = [
        "import './paths';", "import { A, type B } from '@idp/core';", "import type { C } from '@idp/token/src/token-issuer';",
        "import * as x from 'typeorm';", "export { D } from '../../libs/users/src/claims';", "const y = require('@idp/keys');",
        "const z = await import('@idp/session');", "// import { no } from 'commented-out';", "/* import 'nor/this'; */",
        'import {\n  E,\n  F,\n} from "@nestjs/common";',
      ].join('\n');
      expect(importSpecifiers(src).map((x) => x.spec)).toEqual(['./paths', '@idp/core', '@idp/token/src/token-issuer', 'typeorm', '../../libs/users/src/claims', '@nestjs/common', '@idp/keys', '@idp/session']);
      expect(importSpecifiers(src).filter((x) => x.typeOnly).map((x) => x.spec)).toEqual(['@idp/token/src/token-issuer']);
    });

    it.each([
      ['@idp/token/src/token-issuer', 'deep or unknown @idp import'],
      ['@idp/nope', 'deep or unknown @idp import'],
      ['../../../libs/token/src/token-issuer', 'reaches outside the app: libs/token/src/token-issuer'],
      ['../../idp/src/paths', 'reaches outside the app: apps/idp/src/paths'],
      ['libs/token/src', 'path into the repository'],
      ['typeorm/driver/sqlite', undefined],
      ['@nestjs/common/dist/index', 'deep import into a package'],
      ['left-pad', 'not a runtime dependency of package.json: left-pad'],
      ['express', 'not a runtime dependency of package.json: express'],
      ['@idp/token', undefined],
      ['./acme/acme.module', undefined],
      ['node:path', undefined],
    ])('judges %s', (spec, expected) => {
      expect(violation(join(EXAMPLE, 'src', 'app.module.ts'), spec)).toBe(expected);
    });

    it('accepts types alone from a package whose typings are a dev dependency', () => {
      expect(violation(join(EXAMPLE, 'src', 'app.module.ts'), 'jest', true)).toBeUndefined();
      expect(violation(join(EXAMPLE, 'src', 'app.module.ts'), '@idp/token/src/token-issuer', true)).toBe('deep or unknown @idp import');
    });
  });

  it('the example app imports only @idp/<lib> index files, its own files and runtime packages', () => {
    const files = sourceFiles(join(EXAMPLE, 'src'));
    expect(files.length).toBeGreaterThan(5);
    const bad: string[] = [];
    let idp = 0;
    for (const file of files) {
      for (const { spec, typeOnly } of importSpecifiers(readFileSync(file, 'utf8'))) {
        if (spec.startsWith('@idp/')) idp++;
        const why = violation(file, spec, typeOnly);
        if (why) bad.push(`${relative(ROOT, file)}: '${spec}' (${why})`);
      }
    }
    expect(bad).toEqual([]);
    expect(idp).toBeGreaterThan(10);
  });

  it.each([
    ['@idp/identity', ['IdentityModule', 'createIdentityApp', 'AdminApi', 'PageQuery', 'dataSourceOptions']],
    ['@idp/clients', ['ClientAuthMethod', 'ClientsService', 'formParam']],
    ['@idp/token', ['GrantHandler', 'TokenCustomizer', 'TokenIssuer', 'RequireScopes', 'CurrentToken', 'BearerGuard', 'parseScope', 'requestedAudience', 'PROTECTED_CLAIMS']],
    ['@idp/users', ['ClaimsProvider', 'ClaimsService', 'UserStore', 'UsersService']],
    ['@idp/session', ['LoginPolicy']],
    ['@idp/core', ['OnIdpEvent', 'IdpEvents', 'IdpConfig', 'OAuthError', 'invalidClient', 'invalidRequest', 'invalidGrant', 'invalidScope', 'invalidTarget', 'unauthorizedClient']],
    ['@idp/resources', ['ResourcesService']],
  ])('%s exports %j', (lib, names) => {
    // The alias resolves to libs/<lib>/src, i.e. the lib's index.ts, and only that.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require(lib) as Record<string, unknown>;
    for (const name of names) expect([name, mod[name] !== undefined]).toEqual([name, true]);
  });

  it('the seam decorators are class decorators made by DiscoveryService.createDecorator (with a KEY to be found by)', () => {
    /* eslint-disable @typescript-eslint/no-require-imports */
    const decorators = {
      ClientAuthMethod: require('@idp/clients').ClientAuthMethod,
      GrantHandler: require('@idp/token').GrantHandler,
      TokenCustomizer: require('@idp/token').TokenCustomizer,
      ClaimsProvider: require('@idp/users').ClaimsProvider,
      LoginPolicy: require('@idp/session').LoginPolicy,
      OnIdpEvent: require('@idp/core').OnIdpEvent,
    };
    for (const [name, d] of Object.entries(decorators)) expect([name, typeof d, typeof d.KEY]).toEqual([name, 'function', 'string']);
    // UserStore is an abstract class: the interface to implement and the injection token in one.
    expect(typeof require('@idp/users').UserStore).toBe('function');
  });
});
