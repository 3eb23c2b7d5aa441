'use strict';

// The cost of invalidate('pattern', '*') over 200k keys to everyone else:
// the time it takes, and the worst GET latency another client (its own
// connection, its own process) sees while it runs.
// `node bench/invalidate-latency.js [keys]`

const { spawn } = require('node:child_process');
const CacheModule = require('..');
const { startRedis } = require('../__test__/harness');

const PROBE = `
  const net = require('node:net');
  const sock = net.connect(Number(process.argv[1]), '127.0.0.1');
  let worst = 0, count = 0, t0 = 0, stop = false;
  const send = () => { t0 = process.hrtime.bigint(); sock.write('*2\\r\\n$3\\r\\nGET\\r\\n$5\\r\\nprobe\\r\\n'); };
  sock.on('data', () => {
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    worst = Math.max(worst, ms); count++;
    if (stop) { process.stdout.write(JSON.stringify({ worst, count })); process.exit(0); }
    send();
  });
  sock.on('connect', () => { process.stdout.write('ready\\n'); send(); });
  process.on('message', () => { stop = true; });
  process.stdin.on('data', () => { stop = true; });`;

async function main() {
  const keys = Number(process.argv[2] ?? 200_000);
  const server = await startRedis({ args: ['--enable-debug-command', 'yes'] });
  const raw = await server.raw();
  const measure = async (label, run) => {
    await raw.cmd('FLUSHALL');
    await raw.cmd('DEBUG', 'POPULATE', keys, 'lat:k', 20);
    const probe = spawn(process.execPath, ['-e', PROBE, String(server.port)], { stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    await new Promise((r) => probe.stdout.once('data', r));
    probe.stdout.on('data', (d) => (out += d));
    // The probe's baseline for a moment, then the invalidation.
    await new Promise((r) => setTimeout(r, 300));
    const t0 = process.hrtime.bigint();
    const removed = await run();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    probe.stdin.write('stop\n');
    await new Promise((r) => probe.on('exit', r));
    const { worst, count } = JSON.parse(out);
    console.log(`${label}: removed ${removed} keys in ${ms.toFixed(0)} ms; another client's worst GET meanwhile ${worst.toFixed(2)} ms (${count} GETs)`);
  };
  const cache = new CacheModule({ host: '127.0.0.1', port: server.port, keyPrefix: 'lat:' });
  await cache.initialize();
  await measure(`invalidate('pattern', '*') of ${keys} keys`, () => cache.invalidate('pattern', '*'));
  await measure(`for contrast, KEYS + DEL in chunks of 10k (what invalidation must never do)`, async () => {
    const all = await raw.cmd('KEYS', 'lat:*');
    let removed = 0;
    for (let i = 0; i < all.length; i += 10000) removed += await raw.cmd('DEL', ...all.slice(i, i + 10000));
    return removed;
  });
  await cache.disconnect();
  raw.close();
  await server.stop();
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
