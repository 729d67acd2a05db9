'use strict';
// Microbenchmark: what handing a job to libuv's thread pool costs the event loop on this machine.
// `node bench/thread-wake.js [jobs]`. For each kind of job, the time the call takes on the event
// loop (queueing it, and waking a pool thread when one sleeps) and the time until its callback,
// one job at a time (every call finds the pool asleep) and 8 at a time (most find a thread awake).
// A signature (RS256, 2048-bit, the bench's algorithm) is also timed synchronously, for its cost.
const crypto = require('node:crypto');

const jobs = Number(process.argv[2] ?? 2000);
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const input = Buffer.alloc(700, 'a');
const kinds = {
  'RS256 signature': (cb) => crypto.sign('sha256', input, privateKey, cb),
  'pbkdf2, 1 iteration': (cb) => crypto.pbkdf2('x', 'y', 1, 32, 'sha256', cb),
};

function run(start, concurrency) {
  return new Promise((resolve) => {
    let callNs = 0n;
    let started = 0;
    let done = 0;
    const t0 = process.hrtime.bigint();
    const next = () => {
      while (started < jobs && started - done < concurrency) {
        started++;
        const t = process.hrtime.bigint();
        start(() => {
          done++;
          if (done === jobs) resolve({ callUs: Number(callNs) / jobs / 1000, totalUs: Number(process.hrtime.bigint() - t0) / jobs / 1000 });
          else next();
        });
        callNs += process.hrtime.bigint() - t;
      }
    };
    next();
  });
}

(async () => {
  let t = process.hrtime.bigint();
  for (let i = 0; i < 300; i++) crypto.sign('sha256', input, privateKey);
  console.log(`RS256 signature on the event loop: ${(Number(process.hrtime.bigint() - t) / 300 / 1000).toFixed(0)} µs`);
  for (const [name, start] of Object.entries(kinds)) {
    for (const concurrency of [1, 8]) {
      await run(start, concurrency); // warm-up
      const r = await run(start, concurrency);
      console.log(`${name}, ${concurrency} at a time: the call ${r.callUs.toFixed(1)} µs on the event loop; one job every ${r.totalUs.toFixed(1)} µs`);
    }
  }
})();
