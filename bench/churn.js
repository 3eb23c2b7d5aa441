'use strict';

// Instances made and dropped: each round makes 300 CacheModules, uses each
// once and lets go of them, a third after disconnect() and the rest still
// connected; prints the open file descriptors, the server's connected
// clients and RSS after each round, so instances that are never collected
// (and their sockets) show as growth.
// `node --expose-gc bench/churn.js [rounds]`

const fs = require('node:fs');
const CacheModule = require('..');
const { startRedis, sleep } = require('../__test__/harness');

async function main() {
  if (typeof global.gc !== 'function') throw new Error('run with node --expose-gc');
  const rounds = Number(process.argv[2] ?? 6);
  const server = await startRedis();
  const raw = await server.raw();
  const clients = async () => Number(/connected_clients:(\d+)/.exec(await raw.cmd('INFO', 'clients'))[1]) - 1;
  const use = async (i) => {
    const cache = new CacheModule({ host: '127.0.0.1', port: server.port, keyPrefix: 'churn:' });
    await cache.initialize();
    await cache.set(`k${i}`, { i });
    const { i: got } = await cache.get(`k${i}`);
    if (got !== i) throw new Error(`read ${got} for ${i}`);
    if (i % 3 === 0) await cache.disconnect();
  };
  for (let round = 1; round <= rounds; round++) {
    await Promise.all(Array.from({ length: 300 }, (_, i) => use(i)));
    // Finalizers, which close the sockets, run after a turn of the loop.
    for (let i = 0; i < 2; i++) {
      global.gc();
      await sleep(100);
    }
    const rss = (process.memoryUsage().rss / 1024 / 1024).toFixed(1);
    console.log(`round ${round}: ${round * 300} instances made; open fds ${fs.readdirSync('/proc/self/fd').length}, server connections ${await clients()}, rss ${rss} MB`);
  }
  raw.close();
  await server.stop();
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
