'use strict';

// Worker threads that end while calls are in flight (issue #14, item 1): no
// completion may touch the ended worker's environment, nothing is printed,
// and the process goes on.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startRedis, runNode } = require('./harness');

let server;
test.before(async () => {
  server = await startRedis();
  const raw = await server.raw();
  // Enough keys that invalidate() takes several round trips.
  for (let i = 0; i < 20; i++) {
    const args = [];
    for (let j = 0; j < 1000; j++) args.push(`wt:many:${i}:${j}`, '1');
    await raw.cmd('MSET', ...args);
  }
  raw.close();
});
test.after(() => server.stop());

/** Runs 30 workers in a row, each ending by `how` with every kind of call in flight. */
function workers(how) {
  return `
    const { Worker } = require('node:worker_threads');
    // The parent uses the module too, so its runtime outlives each worker
    // (as in an application): completions come after the worker ended.
    const C = require('.');
    const main = new C({ host: '127.0.0.1', port: ${server.port}, keyPrefix: 'main:' });
    const body = \`
      const C = require(\${JSON.stringify(process.cwd())});
      const { parentPort } = require('node:worker_threads');
      (async () => {
        const c = new C({ host: '127.0.0.1', port: ${server.port}, keyPrefix: 'wt:', commandTimeout: 300 });
        await c.initialize();
        const calls = () => [
          c.get('k'), c.set('k', { n: 1 }, { tags: ['t'] }), c.mget(['k', 'j']), c.mset({ a: 1, b: 2 }, { tags: ['t'] }),
          c.invalidate('pattern', 'many:*'), c.invalidate('cascade', 'many'), c.invalidate('tag', 't'),
          c.getStats(), c.warmCache(() => [{ id: 'w1' }, { id: 'w2' }]), c.expire('k', 100), c.del('k'),
          c.lock('L' + Math.random(), { ttl: 5 }),
          new C({ host: '127.0.0.1', port: ${server.port} }).initialize(),
        ];
        for (let i = 0; i < 3; i++) for (const p of calls()) p.catch(() => {});
        ${how === 'exit' ? "setImmediate(() => process.exit(0));" : "parentPort.postMessage('busy');"}
      })();\`;
    const one = () => new Promise((resolve, reject) => {
      const w = new Worker(body, { eval: true });
      w.on('message', () => w.terminate());
      w.on('error', reject);
      w.on('exit', resolve);
    });
    (async () => {
      await main.initialize();
      for (let i = 0; i < 30; i++) await one();
      // Long enough for what the ended workers left in flight to complete.
      await new Promise((r) => setTimeout(r, 1000));
      await main.disconnect();
      process.stdout.write('done');
    })();`;
}

for (const how of ['terminate', 'exit']) {
  test(`30 workers in a row end by ${how}() with every async method in flight`, async () => {
    const out = await runNode(workers(how), { timeout: 120000 });
    assert.equal(out.signal, null, `killed by ${out.signal}: ${out.stderr}`);
    assert.equal(out.stderr, '');
    assert.equal(out.code, 0);
    assert.equal(out.stdout, 'done');
  });
}
