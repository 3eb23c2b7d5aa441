'use strict';

// The near cache's extra measurements for `npm run bench` (issue #15):
// coherence delay (another process's SET until the reader returns the new
// value; ours beside node-redis's client-side cache) and memory per cached
// 100 B entry. Each runs in its own process.
//   node bench/nearcache.js coherence <port> <client> [writes]
//   node --expose-gc bench/nearcache.js memory <port> [entries]
//   node bench/nearcache.js threads <port> <workers> [seconds]
//   node bench/nearcache.js modes <port> <client>

const { spawn } = require('node:child_process');

const KEY = 'coherence:k';

/** Spawns this file with `args`; resolves its last JSON line. */
function child(args, flags = []) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [...flags, __filename, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop())) : reject(new Error(`${args.join(' ')}: ${err}`))));
  });
}

/** Markdown lines for run.js. */
async function nearExtras(server) {
  const lines = [];
  const ms = (x) => `${x.toFixed(2)} ms`;
  for (const client of ['fluxor-local', 'node-redis-csc']) {
    const r = await child(['coherence', String(server.port), client]);
    lines.push(`Coherence delay, ${client}: p50 ${ms(r.p50)}, p99 ${ms(r.p99)}, max ${ms(r.max)} over ${r.writes} writes by another process.`);
  }
  for (const client of ['fluxor-local', 'node-redis-csc']) {
    const r = await child(['modes', String(server.port), client]);
    lines.push(
      `Tracking cost, ${client} (${client === 'fluxor-local' ? 'BCAST' : 'default mode'}): ${r.cpuMs.toFixed(0)} ms of the reader's CPU while another client wrote ${r.writes} keys it never read; the server's memory for tracking 100k keys it read: ${Math.max(0, r.serverBytes / 1e6).toFixed(1)} MB.`,
    );
  }
  const t1 = await child(['threads', String(server.port), '1']);
  const t2 = await child(['threads', String(server.port), '2']);
  lines.push(`Local hits (100 B, c64 each) in 1 worker thread: ${(t1.opsPerSec / 1e6).toFixed(2)}M/s; in 2: ${(t2.opsPerSec / 1e6).toFixed(2)}M/s (${(t2.opsPerSec / t1.opsPerSec).toFixed(2)}x).`);
  const m = await child(['memory', String(server.port)], ['--expose-gc']);
  lines.push(`Memory per cached 100 B entry (fluxor-local): ${m.perEntry.toFixed(0)} B of RSS (${(m.rss / 2 ** 20).toFixed(1)} MiB over ${m.entries} entries; heap ${m.heapPerEntry.toFixed(0)} B each).`);
  return lines;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const tick = () => new Promise(setImmediate);
const now = () => Number(process.hrtime.bigint()) / 1e6; // CLOCK_MONOTONIC: the same in both processes

/** The writer process: SETs `i` on request, answering with when it sent it. */
const WRITER = `
  const net = require('node:net');
  const sock = net.connect(Number(process.argv[1]), '127.0.0.1');
  let sent = 0;
  sock.on('data', () => process.send({ sent }));
  process.on('message', (i) => {
    const v = JSON.stringify(i);
    sent = Number(process.hrtime.bigint()) / 1e6;
    sock.write('*3\\r\\n$3\\r\\nSET\\r\\n$${KEY.length}\\r\\n${KEY}\\r\\n$' + v.length + '\\r\\n' + v + '\\r\\n');
  });
  sock.on('connect', () => process.send('ready'));`;

async function coherence(port, client, writes = 1000) {
  const { adapters } = require('./adapters');
  const api = await adapters[client](port);
  await api.set(KEY, -1);
  const writer = spawn(process.execPath, ['-e', WRITER, String(port)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const next = () => new Promise((r) => writer.once('message', r));
  await next();
  const delays = [];
  for (let i = 0; i < writes; i++) {
    // The reader holds the current value locally before each write.
    for (let j = 0; j < 3; j++) await api.get(KEY);
    const acked = next();
    writer.send(i);
    let seenAt = 0;
    const guard = now() + 5000;
    for (;;) {
      if ((await api.get(KEY)) === i) {
        seenAt = now();
        break;
      }
      if (now() > guard) throw new Error(`${client} never saw write ${i}`);
      await tick();
    }
    const { sent } = await acked;
    delays.push(seenAt - sent);
    await sleep(1);
  }
  writer.kill();
  await api.close();
  delays.sort((a, b) => a - b);
  const q = (p) => delays[Math.min(delays.length - 1, Math.floor(p * delays.length))];
  return { writes, p50: q(0.5), p99: q(0.99), max: delays.at(-1) };
}

async function memory(port, entries = 100_000) {
  const CacheModule = require('..');
  const cache = new CacheModule({ host: '127.0.0.1', port, keyPrefix: 'mem:', localCache: { maxEntries: entries * 2 } });
  await cache.initialize();
  const value = { id: 1, name: 'memory check', tags: ['a', 'b'], pad: 'x'.repeat(50) };
  for (let i = 0; i < entries; i += 1000) {
    const pairs = {};
    for (let j = i; j < i + 1000; j++) pairs[`e:${j}`] = value;
    await cache.mset(pairs);
  }
  await sleep(200);
  const measure = () => {
    global.gc();
    return process.memoryUsage();
  };
  // Reads once to warm the code paths, then flushes and measures.
  for (let i = 0; i < 1000; i++) await cache.get(`e:${i}`);
  await cache.invalidate('pattern', 'nothing:*');
  const before = measure();
  for (let i = 0; i < entries; i += 500) await cache.mget(Array.from({ length: 500 }, (_, j) => `e:${i + j}`));
  const after = measure();
  const { local } = await cache.getStats();
  await cache.invalidate('pattern', 'e:*');
  await cache.disconnect();
  if (local.entries !== entries) throw new Error(`expected ${entries} local entries, got ${local.entries}`);
  const rss = after.rss - before.rss;
  return { entries, rss, perEntry: rss / entries, heapPerEntry: (after.heapUsed - before.heapUsed) / entries };
}

/** Local hits in `workers` worker threads at once, each with its own CacheModule. */
async function threads(port, workers, seconds = 2) {
  const { Worker } = require('node:worker_threads');
  const body = `
    const { workerData, parentPort } = require('node:worker_threads');
    const { adapters } = require(${JSON.stringify(require.resolve('./adapters'))});
    const { workloads } = require(${JSON.stringify(require.resolve('./workloads'))});
    (async () => {
      const w = workloads['near hit 100B c64'];
      const api = await adapters['fluxor-local'](workerData.port);
      const ctx = await w.setup(api);
      parentPort.postMessage('ready');
      await new Promise((r) => parentPort.once('message', r));
      let ops = 0;
      let stop = false;
      setTimeout(() => (stop = true), workerData.seconds * 1000);
      const t0 = performance.now();
      await Promise.all(Array.from({ length: w.concurrency }, async (_, id) => {
        for (let i = id, n = 0; !stop; i += w.concurrency) {
          await w.op(api, ctx, i);
          ops++;
          if ((++n & 1023) === 0) await new Promise(setImmediate);
        }
      }));
      parentPort.postMessage(ops / ((performance.now() - t0) / 1000));
      await api.close();
    })();`;
  const ws = Array.from({ length: workers }, () => new Worker(body, { eval: true, workerData: { port, seconds } }));
  await Promise.all(ws.map((w) => new Promise((r) => w.once('message', r))));
  const results = ws.map((w) => new Promise((r) => w.once('message', r)));
  for (const w of ws) w.postMessage('go');
  const rates = await Promise.all(results);
  return { workers, opsPerSec: rates.reduce((a, b) => a + b, 0) };
}

/**
 * BCAST against the default mode (node-redis's client-side cache): the idle
 * reader's CPU while redis-benchmark writes keys it never read, and the
 * server memory that tracking 100k keys it read takes.
 */
async function modes(port, client, writes = 300_000) {
  const { adapters } = require('./adapters');
  const { rawClient } = require('../__test__/harness');
  const raw = await rawClient(port);
  const mem = async () => Number(/used_memory:(\d+)/.exec(await raw.cmd('INFO', 'memory'))[1]);
  await raw.cmd('FLUSHALL');
  const api = await adapters[client](port);
  await api.set('modes:marker', 0);
  for (let i = 0; i < 3; i++) await api.get('modes:marker');
  const cpu0 = process.cpuUsage();
  const storm = spawn('redis-benchmark', ['-p', String(port), '-t', 'set', '-r', '100000', '-n', String(writes), '-P', '16', '-q'], { stdio: 'ignore' });
  await new Promise((r) => storm.on('exit', r));
  await raw.cmd('SET', 'modes:marker', '1');
  while ((await api.get('modes:marker')) !== 1) await tick();
  const cpu = process.cpuUsage(cpu0);
  await raw.cmd('FLUSHALL');
  for (let i = 0; i < 100_000; i += 1000) {
    const pairs = {};
    for (let j = i; j < i + 1000; j++) pairs[`modes:${j}`] = 1;
    await api.mset(pairs);
  }
  const before = await mem();
  for (let i = 0; i < 100_000; i += 500) await Promise.all(Array.from({ length: 500 }, (_, j) => api.get(`modes:${i + j}`)));
  const after = await mem();
  await raw.cmd('FLUSHALL');
  await api.close();
  raw.close();
  return { writes, cpuMs: (cpu.user + cpu.system) / 1000, serverBytes: after - before };
}

if (require.main === module) {
  const [what, port, arg] = process.argv.slice(2);
  const run =
    what === 'coherence' ? coherence(Number(port), arg)
    : what === 'threads' ? threads(Number(port), Number(arg), Number(process.argv[5] ?? 2))
    : what === 'modes' ? modes(Number(port), arg)
    : memory(Number(port), arg ? Number(arg) : undefined);
  run.then(
    (r) => process.stdout.write(JSON.stringify(r) + '\n'),
    (err) => {
      process.stderr.write(`${err.stack}\n`);
      process.exit(1);
    },
  );
}

module.exports = { nearExtras };
