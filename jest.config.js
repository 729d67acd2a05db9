// Jest runs the TypeScript sources through SWC (CommonJS, legacy decorators with metadata),
// the same shape tsc emits for the server. ESM-only packages (jose, openid-client) are transformed too.
const swc = ['@swc/jest', {
  jsc: {
    parser: { syntax: 'typescript', decorators: true },
    transform: { legacyDecorator: true, decoratorMetadata: true },
    target: 'es2022',
  },
  module: { type: 'commonjs' },
}];
const libs = ['core', 'keys', 'users', 'clients', 'resources', 'session', 'consent', 'authorization', 'token', 'identity'];
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/apps', '<rootDir>/libs', '<rootDir>/test'],
  testMatch: ['**/*.spec.ts', '**/*.e2e-spec.ts'],
  transform: { '^.+\\.(t|j|mj)s$': swc },
  transformIgnorePatterns: ['/node_modules/(?!(jose|openid-client|oauth4webapi|content-disposition|@fastify/static/node_modules/content-disposition)/)'],
  moduleNameMapper: Object.fromEntries(libs.map((l) => [`^@idp/${l}$`, `<rootDir>/libs/${l}/src`])),
  testTimeout: 30000,
};
