'use strict';

// 1,000,000 mixed operations (get, set, mget, mset, del, exists, misses and
// rejected bad input) in one process; prints RSS and heap every 100k operations so a
// leak in the binding layer shows as growth.
// `node --expose-gc bench/memory.js [ops]` (with --expose-gc each reading
// follows a full GC, so it shows what is retained, not garbage not yet
// collected).

const CacheModule = require('..');
const { startRedis } = require('../__test__/harness');

async function main() {
  const total = Number(process.argv[2] ?? 1_000_000);
  const server = await startRedis();
  const cache = new CacheModule({ host: '127.0.0.1', port: server.port, keyPrefix: 'mem:', defaultTTL: 60 });
  await cache.initialize();
  const value = { id: 1, name: 'memory check', tags: ['a', 'b'], pad: 'x'.repeat(60) };
  const mb = (n) => (n / 1024 / 1024).toFixed(1);
  const rows = [];
  let done = 0;
  let report = 100_000;
  const step = async (i) => {
    switch (i % 10) {
      case 0: return cache.set(`k:${i % 5000}`, value);
      case 1: return cache.mset({ [`m:${i % 5000}`]: value, [`n:${i % 5000}`]: i });
      case 2: return cache.mget([`k:${i % 5000}`, `m:${i % 5000}`, 'missing']);
      case 3: return cache.del(`n:${i % 5000}`);
      case 4: return cache.exists(`k:${i % 5000}`);
      case 5: return cache.set('', 1).catch(() => {});
      case 6: return cache.get('missing', { fallback: 0 });
      default: return cache.get(`k:${i % 5000}`);
    }
  };
  const t0 = Date.now();
  while (done < total) {
    const batch = [];
    for (let j = 0; j < 64 && done < total; j++, done++) batch.push(step(done));
    await Promise.all(batch);
    if (done >= report) {
      report += 100_000;
      global.gc?.();
      const m = process.memoryUsage();
      rows.push({ ops: done, rss: m.rss, heap: m.heapUsed });
      console.log(`${String(done).padStart(8)} ops  rss ${mb(m.rss).padStart(6)} MB  heap ${mb(m.heapUsed).padStart(6)} MB`);
    }
  }
  const first = rows[1] ?? rows[0];
  const last = rows.at(-1);
  console.log(`\n${total} operations in ${((Date.now() - t0) / 1000).toFixed(1)} s; RSS from ${mb(first.rss)} MB (after ${first.ops}) to ${mb(last.rss)} MB: ${last.rss - first.rss >= 0 ? '+' : ''}${mb(last.rss - first.rss)} MB`);
  await cache.disconnect();
  await server.stop();
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
