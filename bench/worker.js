'use strict';

// One client, one workload, in its own process: prints a JSON line with
// ops/s and latency percentiles. Run by bench/run.js.

const { adapters } = require('./adapters');
const { workloads } = require('./workloads');
const { clusterAdapters, clusterWorkloads, isCluster, seedsOf } = require('./cluster');

async function main() {
  const [client, name, target, seconds] = process.argv.slice(2);
  const api = isCluster(target) ? await clusterAdapters[client](seedsOf(target)) : await adapters[client](Number(target));
  const w = workloads[name] ?? clusterWorkloads[name];
  const ctx = await (w.setup ? w.setup(api) : {});
  const result = w.kind === 'once' ? await once(api, w, ctx) : await loop(api, w, ctx, Number(seconds));
  await api.close();
  const usage = process.resourceUsage();
  result.cpuMs = (usage.userCPUTime + usage.systemCPUTime) / 1000;
  process.stdout.write(JSON.stringify(result) + '\n');
}

/** `w.concurrency` loops, each awaiting one operation at a time, for `seconds`. */
async function loop(api, w, ctx, seconds) {
  const samples = [];
  let ops = 0;
  let measuring = false;
  let stop = false;
  const runner = async (id) => {
    let i = id;
    while (!stop) {
      const t0 = process.hrtime.bigint();
      await w.op(api, ctx, i);
      if (measuring) {
        ops += w.unit ?? 1;
        if (samples.length < 2_000_000) samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      i += w.concurrency;
    }
  };
  const runners = Array.from({ length: w.concurrency }, (_, id) => runner(id));
  await sleep(400); // warm-up
  measuring = true;
  const t0 = process.hrtime.bigint();
  await sleep(seconds * 1000);
  measuring = false;
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  stop = true;
  await Promise.all(runners);
  samples.sort((a, b) => a - b);
  const q = (p) => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))] ?? 0;
  return { opsPerSec: ops / elapsed, p50: q(0.5), p99: q(0.99), elapsed };
}

/** A one-shot job (invalidate, warm): its duration and items per second. */
async function once(api, w, ctx) {
  const t0 = process.hrtime.bigint();
  await w.op(api, ctx);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  return { opsPerSec: (w.unit / ms) * 1000, p50: ms, p99: ms, elapsed: ms / 1000 };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

main().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
