'use strict';

// The memory store (#16) beside the in-process stores of cache-manager 7
// (Keyv's Map) and bentocache (its memory driver): get/set of 100 B values at
// 1 and 64 in flight, each client in its own process, interleaved over
// rounds; then this store alone: memory per entry at 1M keys, and
// invalidate('pattern') of 200k keys with the longest event-loop block
// (perf_hooks monitorEventLoopDelay) while it runs.
//
//   node bench/memory-store.js [--rounds 3] [--seconds 2]
//
// `npm run bench` runs it too (its section `memory store`).

const { spawn } = require('node:child_process');
const { monitorEventLoopDelay } = require('node:perf_hooks');
const path = require('node:path');

const TTL = 3600;
const KEYS = 10_000;
const CLIENTS = ['fluxor-memory', 'cache-manager', 'bentocache'];
const OURS = 'fluxor-memory';

const clients = {
  async 'fluxor-memory'() {
    const CacheModule = require('..');
    const cache = new CacheModule({ store: 'memory', keyPrefix: '', defaultTTL: TTL });
    await cache.initialize();
    return { get: (k) => cache.get(k), set: (k, v) => cache.set(k, v), close: () => cache.disconnect() };
  },
  async 'cache-manager'() {
    // Its default store: a Keyv over a Map, in process.
    const { createCache } = require('cache-manager');
    const cache = createCache({ ttl: TTL * 1000 });
    return { get: (k) => cache.get(k), set: (k, v) => cache.set(k, v), close: () => cache.disconnect() };
  },
  async bentocache() {
    const { BentoCache, bentostore } = require('bentocache');
    const { memoryDriver } = require('bentocache/drivers/memory');
    const bento = new BentoCache({ default: 'memory', stores: { memory: bentostore().useL1Layer(memoryDriver({ maxItems: 1_000_000 })) } });
    return { get: (k) => bento.get({ key: k }), set: (k, v) => bento.set({ key: k, value: v, ttl: TTL * 1000 }), close: () => bento.disconnectAll() };
  },
};

function objectOf(bytes) {
  const o = { id: 1, name: 'benchmark item', tags: ['a', 'b'], pad: '' };
  o.pad = 'x'.repeat(Math.max(0, bytes - JSON.stringify(o).length));
  return o;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const key = (i) => `bench:${i % KEYS}`;

/** In a child: one client, one workload ('get' | 'set', concurrency), for `seconds`. */
async function worker(client, op, concurrency, seconds) {
  const api = await clients[client]();
  const value = objectOf(100);
  for (let i = 0; i < KEYS; i++) await api.set(key(i), value);
  // Deadlines, not timers: a loop of awaits on an in-process store runs on
  // microtasks alone, so no timer fires until it stops.
  let ops = 0;
  const samples = [];
  const start = performance.now() + 300;
  const end = start + seconds * 1000;
  const runner = async (i) => {
    for (let t0 = performance.now(); t0 < end; i += concurrency) {
      await (op === 'get' ? api.get(key(i)) : api.set(key(i), value));
      const t1 = performance.now();
      if (t0 >= start) {
        ops++;
        if (samples.length < 1_000_000) samples.push(t1 - t0);
      }
      t0 = t1;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, i) => runner(i)));
  const elapsed = seconds;
  await api.close();
  samples.sort((a, b) => a - b);
  return { opsPerSec: ops / elapsed, p50: samples[Math.floor(samples.length / 2)] ?? 0, p99: samples[Math.floor(samples.length * 0.99)] ?? 0 };
}

/** In a child: 1M keys of 100 B values; bytes of RSS and of the store's own count per entry. */
async function perEntry(count = 1_000_000) {
  const CacheModule = require('..');
  const cache = new CacheModule({ store: 'memory', keyPrefix: '', defaultTTL: TTL });
  await cache.initialize();
  const value = JSON.stringify(objectOf(100));
  global.gc?.();
  const rss0 = process.memoryUsage().rss;
  for (let i = 0; i < count; i += 1000) {
    const pairs = {};
    for (let j = i; j < i + 1000; j++) pairs[`key:${j}`] = value;
    await cache.mset(pairs);
  }
  global.gc?.();
  const rss1 = process.memoryUsage().rss;
  const stats = await cache.getStats();
  await cache.disconnect();
  return { keys: stats.keys, rssPerEntry: (rss1 - rss0) / count, storePerEntry: stats.memory.used / stats.keys };
}

/** In a child: invalidate('pattern') of `count` keys among as many others; its time and the longest event-loop block. */
async function invalidation(count = 200_000) {
  const CacheModule = require('..');
  const cache = new CacheModule({ store: 'memory', keyPrefix: '', defaultTTL: TTL });
  await cache.initialize();
  for (const prefix of ['drop', 'keep']) {
    for (let i = 0; i < count; i += 1000) {
      const pairs = {};
      for (let j = i; j < i + 1000; j++) pairs[`${prefix}:${j}`] = j;
      await cache.mset(pairs);
    }
  }
  const h = monitorEventLoopDelay({ resolution: 1 });
  // Gets keep running meanwhile, as a service's requests would.
  let gets = 0;
  let stop = false;
  const reader = (async () => {
    while (!stop) {
      await cache.get(`keep:${gets % count}`);
      gets++;
      await new Promise(setImmediate);
    }
  })();
  await sleep(50);
  h.enable();
  const t0 = process.hrtime.bigint();
  const removed = await cache.invalidate('pattern', 'drop:*');
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  h.disable();
  stop = true;
  await reader;
  await cache.disconnect();
  return { removed, ms, maxBlockMs: h.max / 1e6, p99BlockMs: h.percentile(99) / 1e6, getsDuring: gets };
}

function child(args) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--expose-gc', __filename, '--child', ...args.map(String)], { cwd: path.join(__dirname, '..'), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop())) : reject(new Error(`${args.join(' ')}: ${err}`))));
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmt = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : n.toFixed(1));

/** The section: returns its Markdown lines and a summary for results JSON. */
async function section({ rounds = 3, seconds = 2, log = (s) => process.stderr.write(s) } = {}) {
  const workloads = [['get', 1], ['get', 64], ['set', 1], ['set', 64]];
  const results = {};
  for (let round = 1; round <= rounds; round++) {
    log(`memory store: round ${round}/${rounds}\n`);
    for (const [op, c] of workloads) {
      const name = `${op} 100B c${c}`;
      const order = CLIENTS.map((_, i) => CLIENTS[(i + round) % CLIENTS.length]);
      for (const client of order) {
        const r = await child(['worker', client, op, c, seconds]);
        ((results[name] ??= {})[client] ??= []).push(r);
        log(`  ${name.padEnd(14)} ${client.padEnd(14)} ${fmt(r.opsPerSec).padStart(8)}/s p50 ${r.p50.toFixed(4)} ms p99 ${r.p99.toFixed(4)} ms\n`);
      }
    }
  }
  const header = ['memory store', ...CLIENTS.map((c) => `${c} ops/s (min-max)`), `${OURS} ÷ best other`];
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  const summary = {};
  for (const name of Object.keys(results)) {
    const med = Object.fromEntries(CLIENTS.map((c) => [c, median(results[name][c].map((r) => r.opsPerSec))]));
    const ratio = med[OURS] / Math.max(...CLIENTS.filter((c) => c !== OURS).map((c) => med[c]));
    const cells = CLIENTS.map((c) => {
      const ops = results[name][c].map((r) => r.opsPerSec);
      return `${fmt(med[c])} (${fmt(Math.min(...ops))}-${fmt(Math.max(...ops))})`;
    });
    lines.push(`| ${name} | ${cells.join(' | ')} | ${ratio.toFixed(2)}x |`);
    summary[name] = { ratio, clients: results[name] };
  }
  log('memory store: 1M keys\n');
  const entry = await child(['perEntry']);
  log('memory store: pattern invalidation of 200k keys\n');
  const inv = await child(['invalidation']);
  lines.push(
    '',
    `Median of ${rounds} interleaved rounds, ${seconds} s each, ${KEYS} keys of 100 B JSON. 1M keys: ${entry.rssPerEntry.toFixed(0)} B of RSS per entry (the store counts ${entry.storePerEntry.toFixed(0)} B).`,
    `invalidate('pattern') of 200k keys among 400k: ${inv.ms.toFixed(0)} ms, longest event-loop block ${inv.maxBlockMs.toFixed(1)} ms (p99 ${inv.p99BlockMs.toFixed(1)} ms), ${inv.getsDuring} gets served meanwhile.`,
  );
  return { lines, summary: { ...summary, perEntry: entry, invalidation: inv } };
}

if (require.main === module) {
  const args = process.argv.slice(2);
  if (args[0] === '--child') {
    const [, what, ...rest] = args;
    const jobs = { worker: () => worker(rest[0], rest[1], Number(rest[2]), Number(rest[3])), perEntry: () => perEntry(), invalidation: () => invalidation() };
    jobs[what]().then((r) => process.stdout.write(JSON.stringify(r) + '\n'));
  } else {
    const flag = (name, def) => (args.includes(`--${name}`) ? Number(args[args.indexOf(`--${name}`) + 1]) : def);
    section({ rounds: flag('rounds', 3), seconds: flag('seconds', 2) }).then(({ lines }) => console.log(['', ...lines].join('\n')));
  }
}

module.exports = { section };
