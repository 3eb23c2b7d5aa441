'use strict';

// What keeping tags in step with expiry costs (issue #14): set with and
// without tags, mset of 100 tagged keys, expire of tagged and untagged keys,
// and del, at 64 in flight, on a throwaway server. Run it on two checkouts to
// compare. `node bench/tags.js [seconds per workload, default 2]`

const CacheModule = require('..');
const { startRedis } = require('../__test__/harness');

const KEYS = 10_000;
const IN_FLIGHT = 64;

async function rate(seconds, op, unit = 1) {
  let i = 0;
  let done = 0;
  const until = Date.now() + seconds * 1000;
  const worker = async () => {
    while (Date.now() < until) {
      await op(i++);
      done += unit;
    }
  };
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  return done / (Number(process.hrtime.bigint() - t0) / 1e9);
}

async function main() {
  const seconds = Number(process.argv[2] ?? 2);
  const server = await startRedis();
  const cache = await new CacheModule({ host: '127.0.0.1', port: server.port, keyPrefix: 'tb:' }).initialize();
  const value = { id: 1, name: 'bench', pad: 'x'.repeat(60) };
  const key = (i) => `k:${i % KEYS}`;
  const rows = [
    ['set, no tags', () => rate(seconds, (i) => cache.set(key(i), value))],
    ['set, 2 tags', () => rate(seconds, (i) => cache.set(key(i), value, { tags: ['a', `t${i % 10}`] }))],
    ['mset 100 keys, 2 tags (keys/s)', () => rate(seconds, (i) => cache.mset(Object.fromEntries(Array.from({ length: 100 }, (_, j) => [key(i * 100 + j), value])), { tags: ['a', 'b'] }), 100)],
    ['expire, tagged keys', () => rate(seconds, (i) => cache.expire(key(i), 600))],
    ['expire, untagged keys', async () => {
      await cache.mset(Object.fromEntries(Array.from({ length: KEYS }, (_, j) => [`u:${j}`, value])));
      return rate(seconds, (i) => cache.expire(`u:${i % KEYS}`, 600));
    }],
    ['del', () => rate(seconds, (i) => cache.del(key(i)))],
  ];
  console.log(`c${IN_FLIGHT}, ${seconds} s each (one run; a loaded machine moves these by 30 % or more)`);
  for (const [label, run] of rows) console.log(`${label.padEnd(34)} ${Math.round(await run()).toLocaleString('en')} ops/s`);
  await cache.disconnect();
  await server.stop();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
