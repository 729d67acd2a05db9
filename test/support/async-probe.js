// Loaded with `node --require` into a server under test (test/process.e2e-spec.ts). On SIGUSR2 it
// prints one JSON line saying whether a promise hook runs: `execution_async_id` is 0 in a promise
// reaction unless some AsyncLocalStorage (or async hook) of the process is switched on.
const { executionAsyncId } = require('node:async_hooks');

process.on('SIGUSR2', () => {
  setImmediate(() =>
    Promise.resolve().then(() => process.stdout.write(`${JSON.stringify({ probe: 'async-hooks', execution_async_id: executionAsyncId() })}\n`)),
  );
});
