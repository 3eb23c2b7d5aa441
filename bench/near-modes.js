'use strict';

// How a near-cache hit keeps a caller from changing what later reads return:
// the same deep-frozen object back (what lib/nearcache.js does), a
// structuredClone per hit (node-redis), or a JSON.parse of the stored text
// per hit. The same Map, clock check and promise in each; 10k keys; passes
// alternate, median of 5. `node bench/near-modes.js`

const { objectOf } = require('./workloads');
const { deepFreeze } = require('../lib/nearcache');

const KEYS = 10_000;
const keys = Array.from({ length: KEYS }, (_, i) => `bench:${i}`);

function store(bytes, mode) {
  const map = new Map();
  for (const k of keys) {
    const text = JSON.stringify(objectOf(bytes));
    map.set(k, { value: mode === 'freeze' ? deepFreeze(JSON.parse(text)) : JSON.parse(text), text, expires: Infinity });
  }
  const fresh = Infinity;
  const hit = {
    freeze: (e) => e.value,
    structuredClone: (e) => structuredClone(e.value),
    parse: (e) => JSON.parse(e.text),
  }[mode];
  return (k) => {
    const e = map.get(k);
    const now = performance.now();
    return now < e.expires && now < fresh ? Promise.resolve(hit(e)) : Promise.resolve(null);
  };
}

async function pass(get, ms = 300) {
  let ops = 0;
  const until = performance.now() + ms;
  while (performance.now() < until) {
    for (let i = 0; i < 1024; i++) await get(keys[(ops + i) % KEYS]);
    ops += 1024;
  }
  return (ops / ms) * 1000;
}

async function main() {
  const modes = ['freeze', 'structuredClone', 'parse'];
  for (const bytes of [100, 1024]) {
    const gets = Object.fromEntries(modes.map((m) => [m, store(bytes, m)]));
    const runs = Object.fromEntries(modes.map((m) => [m, []]));
    for (let p = 0; p < 5; p++) for (const m of modes) runs[m].push(await pass(gets[m]));
    const med = (xs) => xs.sort((a, b) => a - b)[2];
    console.log(`${bytes} B: ${modes.map((m) => `${m} ${(med(runs[m]) / 1e6).toFixed(2)}M/s`).join(', ')}`);
  }
}

main();
