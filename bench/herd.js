'use strict';

// The getOrSet herd: `processes` processes, each with `calls` concurrent
// getOrSet calls on one cold key whose factory takes `factoryMs`, all
// released at once. Measures the factory runs in total and the time from the
// release to the last caller having its value. Run by bench/run.js.
//
//   parent: runHerd(client, workload, port)  child: node bench/herd.js client port key calls factoryMs

const { spawn } = require('node:child_process');
const { performance } = require('node:perf_hooks');
const path = require('node:path');

const now = () => performance.timeOrigin + performance.now();

/** One herd of `w.processes` children; resolves { factoryRuns, lastMs, opsPerSec }. */
async function runHerd(client, w, port) {
  const key = `herd:${client}:${Date.now()}:${Math.random().toString(36).slice(2)}`;
  const children = Array.from({ length: w.processes }, () =>
    spawn(process.execPath, [__filename, client, String(port), key, String(w.calls), String(w.factoryMs)], { stdio: ['pipe', 'pipe', 'pipe'] }),
  );
  const reports = children.map(
    (child) =>
      new Promise((resolve, reject) => {
        let out = '';
        let err = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', (d) => (err += d));
        child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop())) : reject(new Error(`${client} herd: ${err}`))));
      }),
  );
  // Every child says "ready" once connected; then all are released together.
  await Promise.all(children.map((child) => new Promise((resolve) => child.stdout.once('data', resolve))));
  const released = now();
  for (const child of children) child.stdin.end('go\n');
  const results = await Promise.all(reports);
  const lastMs = Math.max(...results.map((r) => r.last)) - released;
  const factoryRuns = results.reduce((n, r) => n + r.runs, 0);
  const cpuMs = results.reduce((n, r) => n + r.cpuMs, 0);
  return { factoryRuns, lastMs, opsPerSec: (w.processes * w.calls) / (lastMs / 1000), p50: lastMs, p99: lastMs, cpuMs };
}

async function child() {
  const [client, port, key, calls, factoryMs] = process.argv.slice(2);
  const { adapters } = require('./adapters');
  const api = await adapters[client](Number(port));
  let runs = 0;
  const factory = async () => {
    runs++;
    await new Promise((r) => setTimeout(r, Number(factoryMs)));
    return { herd: true };
  };
  // Warmed up as a long-running server is: a miss and a hit on another key.
  for (let i = 0; i < 2; i++) await api.getOrSet(`${key}:warm:${process.pid}`, () => ({ herd: true }));
  process.stdout.write('ready\n');
  await new Promise((resolve) => process.stdin.once('data', resolve));
  let last = 0;
  await Promise.all(
    Array.from({ length: Number(calls) }, async () => {
      const v = await api.getOrSet(key, factory);
      if (!v || v.herd !== true) throw new Error(`a caller got ${JSON.stringify(v)}`);
      last = Math.max(last, now());
    }),
  );
  await api.close();
  const usage = process.resourceUsage();
  process.stdout.write(JSON.stringify({ runs, last, cpuMs: (usage.userCPUTime + usage.systemCPUTime) / 1000 }) + '\n');
}

if (require.main === module) {
  child().catch((err) => {
    process.stderr.write(`${err.stack}\n`);
    process.exit(1);
  });
}

module.exports = { runHerd };
