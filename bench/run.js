'use strict';

// `npm run bench`: this package against ioredis (with and without
// enableAutoPipelining) and node-redis on one redis-server, each client in
// its own process, interleaved over rounds; redis-benchmark on the same
// server gives the ceiling. `fluxor-traced` is this package with a
// subscriber on its TracingChannel: the cost of tracing every operation.
// Then the same on a 3-master Redis Cluster, and a failover
// (bench/cluster.js). The `tls …` workloads run against a TLS port of the
// standalone server (certificates made with openssl). Prints a table,
// writes bench/results/latest.json and bench/results/chart.svg. A second
// section compares getOrSet with bentocache and cache-manager (`--only
// getOrSet` runs it alone); a third the memory store with cache-manager's
// and bentocache's (`--only memory`); a fourth the near cache (localCache)
// with other in-process tiers, with its coherence delay, tracking cost and
// memory (`--only near`).
//
//   npm run bench -- [--rounds 3] [--seconds 2] [--only substring] [--clients a,b] [--no-wait]
//
// --no-wait skips waiting for a quiet machine (a quick check; numbers from a
// busy machine are indicative only).

const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startRedis, startTlsRedis } = require('../__test__/harness');
const { workloads } = require('./workloads');
const { nearExtras } = require('./nearcache');
const { chart } = require('./chart');
const { runHerd } = require('./herd');
const { clusterWorkloads, clusterAdapters, startBenchCluster, measureFailover } = require('./cluster');

const args = process.argv.slice(2);
const flag = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const ROUNDS = Number(flag('rounds', 3));
const SECONDS = Number(flag('seconds', 2));
const ONLY = flag('only', '');
// With FLUXOR_BASE=<another built checkout>, `fluxor-base` runs too (bench/adapters.js).
const BASE = process.env.FLUXOR_BASE ? ['fluxor-base'] : [];
const CLIENTS = flag('clients', ['fluxor', 'fluxor-traced', ...BASE, 'ioredis', 'ioredis-auto', 'node-redis'].join(',')).split(',');
const CHOSEN = flag('clients', null)?.split(',');
/** The clients a workload runs: its own list (the getOrSet section) or the usual ones. */
const clientsOf = (w) => (w.clients ? [...w.clients, ...BASE] : CLIENTS).filter((c) => !CHOSEN || CHOSEN.includes(c));
const QUIET_BUSY = 0.15; // a core's share other processes may use
const OURS = 'fluxor';

/** Busy and total jiffies of the whole machine. */
function cpuTimes() {
  const [, ...f] = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
  const idle = f[3] + f[4];
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}
const hz = 100;
function processCpuMs(pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return ((Number(f[11]) + Number(f[12])) / hz) * 1000;
  } catch {
    return 0;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Waits (up to 60 s) for a second in which the machine is nearly idle. */
async function waitQuiet() {
  if (args.includes('--no-wait')) return true;
  for (let i = 0; i < 60; i++) {
    const a = cpuTimes();
    await sleep(1000);
    const b = cpuTimes();
    const cores = os.cpus().length;
    const busyCores = ((b.busy - a.busy) / (b.total - a.total)) * cores;
    if (busyCores < QUIET_BUSY) return true;
  }
  return false;
}

function runWorker(client, name, server) {
  // A TLS workload: the TLS port, and the CA file to trust.
  const [target, ...ca] = workloads[name]?.tls ? [server.tlsPort, path.join(server.certs, 'ca.crt')] : [server.target ?? server.port];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(__dirname, 'worker.js'), client, name, String(target), String(SECONDS), ...ca], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop())) : reject(new Error(`${client} ${name}: ${err}`))));
  });
}

/** One measurement; repeated (twice at most) when other processes disturbed it. */
async function measure(server, client, name) {
  for (let attempt = 0; ; attempt++) {
    const w = workloads[name] ?? clusterWorkloads[name];
    if (w.populate) {
      const raw = await server.raw();
      await raw.cmd('FLUSHALL');
      await raw.cmd('DEBUG', 'POPULATE', w.populate.count, w.populate.prefix.replace(/:$/, ''), 20);
      raw.close();
    }
    await waitQuiet();
    // A cluster is several servers.
    const redisCpu = () => (server.pids ?? [server.pid]).reduce((sum, pid) => sum + processCpuMs(pid), 0);
    const redisCpu0 = redisCpu();
    const cpu0 = cpuTimes();
    const t0 = Date.now();
    const result = w.kind === 'herd' ? await runHerd(client, w, server.port) : await runWorker(client, name, server);
    const wallMs = Date.now() - t0;
    const cpu1 = cpuTimes();
    const machineMs = ((cpu1.busy - cpu0.busy) / hz) * 1000;
    const othersMs = machineMs - result.cpuMs - (redisCpu() - redisCpu0);
    result.disturbed = othersMs / wallMs > QUIET_BUSY;
    if (!result.disturbed || attempt >= 2 || args.includes('--no-wait')) return result;
    process.stderr.write(`  (${client} / ${name} was disturbed: others used ${Math.round((othersMs / wallMs) * 100)}% of a core; repeating)\n`);
  }
}

function redisBenchmark(port) {
  const out = execFileSync('redis-benchmark', ['-h', '127.0.0.1', '-p', String(port), '-c', '64', '-P', '16', '-d', '100', '-t', 'get,set', '-n', '2000000', '--csv'], {
    encoding: 'utf8',
  });
  const rows = {};
  for (const line of out.trim().split('\n').slice(1)) {
    const [test, rps] = line.split(',').map((s) => s.replace(/"/g, ''));
    rows[test] = Number(rps);
  }
  return rows;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmt = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : n.toFixed(1));

/** ROUNDS interleaved rounds of `names` on `server`, into `results`. */
async function rounds(server, names, clientsFor, results) {
  for (let round = 1; round <= ROUNDS; round++) {
    process.stderr.write(`round ${round}/${ROUNDS}\n`);
    for (const name of names) {
      // Interleave: the client order rotates every round.
      const clients = clientsFor(name);
      const order = clients.map((_, i) => clients[(i + round) % clients.length]);
      for (const client of order) {
        const r = await measure(server, client, name);
        ((results[name] ??= {})[client] ??= []).push(r);
        const what = r.factoryRuns === undefined ? `${fmt(r.opsPerSec).padStart(8)}/s p50 ${r.p50.toFixed(3)} ms p99 ${r.p99.toFixed(3)} ms` : `${r.factoryRuns} factory runs, last caller at ${r.lastMs.toFixed(1)} ms`;
        process.stderr.write(`  ${name.padEnd(30)} ${client.padEnd(13)} ${what}${r.disturbed ? ' (disturbed)' : ''}\n`);
      }
    }
  }
}

async function main() {
  process.stderr.write(`Node ${process.version} (${process.execPath}), ${os.cpus().length} CPUs\n`);
  const names = Object.keys(workloads).filter((n) => n.includes(ONLY));
  // A TLS port beside the plain one when a TLS workload runs.
  const start = names.some((n) => workloads[n].tls) ? startTlsRedis : startRedis;
  const server = await start({ args: ['--enable-debug-command', 'yes'] });
  const results = {}; // name -> client -> [runs]
  const main = names.filter((n) => !workloads[n].clients);
  const aside = names.filter((n) => workloads[n].clients && !workloads[n].near);
  const near = names.filter((n) => workloads[n].near);
  let ceiling = null;
  let extras = [];
  try {
    await rounds(server, names, (name) => clientsOf(workloads[name]), results);
    if (main.length > 0) {
      await waitQuiet();
      ceiling = redisBenchmark(server.port);
    }
    if (near.length > 0) extras = await nearExtras(server);
  } finally {
    await server.stop();
  }
  // The Cluster section: the chosen clients that have a cluster adapter.
  const clusterNames = Object.keys(clusterWorkloads).filter((n) => n.includes(ONLY));
  const clusterClients = CLIENTS.filter((c) => c in clusterAdapters && (!CHOSEN || CHOSEN.includes(c)));
  if (clusterNames.length > 0) {
    const cluster = await startBenchCluster();
    try {
      await rounds(cluster, clusterNames, () => clusterClients, results);
    } finally {
      await cluster.stop();
    }
  }
  const failover = {};
  if ('cluster failover'.includes(ONLY)) {
    for (const client of ['fluxor', 'ioredis'].filter((c) => clusterClients.includes(c))) {
      await waitQuiet();
      failover[client] = await measureFailover(client);
      process.stderr.write(`  cluster failover ${client.padEnd(12)} ${JSON.stringify(failover[client])}\n`);
    }
  }
  if (main.length + clusterNames.length + Object.keys(failover).length > 0) report([...main, ...clusterNames], results, ceiling, failover);
  if (aside.length > 0) reportCacheAside(aside, results, main.length > 0);
  if (near.length > 0) reportNear(near, results, extras, main.length > 0);
  // The memory store beside other in-process stores (bench/memory-store.js).
  if ('memory store'.includes(ONLY)) {
    const { lines } = await require('./memory-store').section({ rounds: ROUNDS, seconds: SECONDS });
    console.log(['', ...lines].join('\n'));
  }
}

/** The getOrSet section: hits as ops/s, herds as factory runs and the last caller's time. */
function reportCacheAside(names, results, appendToResults) {
  const clients = [...new Set(names.flatMap((n) => Object.keys(results[n])))];
  const header = ['getOrSet workload', ...clients, `${OURS} ÷ best other`];
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  const summary = {};
  for (const name of names) {
    const row = [name];
    const med = {};
    for (const client of clients) {
      const runs = results[name][client] ?? [];
      if (workloads[name].kind === 'herd') {
        med[client] = median(runs.map((r) => r.lastMs));
        row.push(`${median(runs.map((r) => r.factoryRuns))} runs, last ${med[client].toFixed(1)} ms (${Math.min(...runs.map((r) => r.lastMs)).toFixed(1)}-${Math.max(...runs.map((r) => r.lastMs)).toFixed(1)})`);
      } else {
        med[client] = median(runs.map((r) => r.opsPerSec));
        row.push(`${fmt(med[client])}/s (${fmt(Math.min(...runs.map((r) => r.opsPerSec)))}-${fmt(Math.max(...runs.map((r) => r.opsPerSec)))})`);
      }
    }
    const others = clients.filter((c) => !c.startsWith(OURS) && med[c] !== undefined);
    const herd = workloads[name].kind === 'herd';
    const best = herd ? Math.min(...others.map((c) => med[c])) : Math.max(...others.map((c) => med[c]));
    const ratio = herd ? best / med[OURS] : med[OURS] / best;
    row.push(Number.isFinite(ratio) ? `${ratio.toFixed(2)}x${herd ? ' (time)' : ''}` : '-');
    lines.push(`| ${row.join(' | ')} |`);
    summary[name] = { ratio, clients: Object.fromEntries(clients.map((c) => [c, results[name][c]])) };
  }
  lines.push('', `Median of ${ROUNDS} interleaved rounds; hits over 1000 stored keys (${SECONDS} s each), herd: ${workloads['getOrSet herd 4x100'].processes} processes x ${workloads['getOrSet herd 4x100'].calls} calls, 50 ms factory.`);
  console.log(['', ...lines].join('\n'));
  if (!appendToResults || ONLY || CHOSEN || process.env.FLUXOR_BASE) return;
  const dir = path.join(__dirname, 'results');
  fs.appendFileSync(path.join(dir, 'latest.md'), ['', ...lines, ''].join('\n'));
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'latest.json'), 'utf8'));
  json.getOrSet = summary;
  fs.writeFileSync(path.join(dir, 'latest.json'), JSON.stringify(json, null, 2));
}

/** The near-cache section: local hits against other in-process tiers, the mix, and the extra measurements. */
function reportNear(names, results, extras, appendToResults) {
  const clients = [...new Set(names.flatMap((n) => clientsOf(workloads[n])))];
  const ours = 'fluxor-local';
  const header = ['near-cache workload', ...clients.map((c) => `${c} ops/s (min-max)`), 'p50/p99 ms (ours)', `${ours} ÷ best other`];
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  const summary = {};
  const ms = (x) => x.toFixed(x < 0.01 ? 4 : 3);
  for (const name of names) {
    const row = [name];
    const med = {};
    for (const client of clients) {
      const ops = (results[name][client] ?? []).map((r) => r.opsPerSec);
      if (ops.length === 0) {
        row.push('-');
        continue;
      }
      med[client] = median(ops);
      row.push(`${fmt(med[client])} (${fmt(Math.min(...ops))}-${fmt(Math.max(...ops))})`);
    }
    const mine = results[name][ours];
    const others = Object.keys(med).filter((c) => c !== ours);
    const ratio = mine && others.length ? med[ours] / Math.max(...others.map((c) => med[c])) : NaN;
    row.push(mine ? `${ms(median(mine.map((r) => r.p50)))} / ${ms(median(mine.map((r) => r.p99)))}` : '-');
    row.push(Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : '-');
    lines.push(`| ${row.join(' | ')} |`);
    summary[name] = { ratio, clients: Object.fromEntries(Object.keys(med).map((c) => [c, { median: med[c], runs: results[name][c] }])) };
  }
  lines.push('', ...extras, '', `Median of ${ROUNDS} interleaved rounds of ${SECONDS} s; hits over 10k stored keys; the mix is 95 % get / 5 % set, zipfian.`);
  console.log(['', ...lines].join('\n'));
  if (!appendToResults || ONLY || CHOSEN || process.env.FLUXOR_BASE) return;
  const dir = path.join(__dirname, 'results');
  fs.appendFileSync(path.join(dir, 'latest.md'), ['', ...lines, ''].join('\n'));
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'latest.json'), 'utf8'));
  json.near = { summary, extras };
  fs.writeFileSync(path.join(dir, 'latest.json'), JSON.stringify(json, null, 2));
}

function report(names, results, ceiling, failover) {
  const summary = {};
  const lines = [];
  const TRACED = `${OURS}-traced`;
  const traced = CLIENTS.includes(OURS) && CLIENTS.includes(TRACED);
  const header = ['workload', ...CLIENTS.map((c) => `${c} ops/s (min-max)`), 'p50/p99 ms (ours)', `${OURS} ÷ best JS`, ...(traced ? ['traced ÷ untraced'] : [])];
  lines.push(`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`);
  for (const name of names) {
    const row = [name];
    const med = {};
    for (const client of CLIENTS) {
      const runs = results[name][client];
      if (!runs) {
        row.push('-');
        continue;
      }
      const ops = runs.map((r) => r.opsPerSec);
      med[client] = median(ops);
      row.push(`${fmt(med[client])} (${fmt(Math.min(...ops))}-${fmt(Math.max(...ops))})`);
    }
    const ours = results[name][OURS];
    const others = CLIENTS.filter((c) => !c.startsWith(OURS) && results[name][c]);
    const best = Math.max(...others.map((c) => med[c]));
    const ratio = ours && others.length ? med[OURS] / best : NaN;
    row.push(ours ? `${median(ours.map((r) => r.p50)).toFixed(3)} / ${median(ours.map((r) => r.p99)).toFixed(3)}` : '-');
    row.push(Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : '-');
    // What tracing every operation costs (a subscriber with no-op handlers).
    const tracedRatio = traced ? med[TRACED] / med[OURS] : undefined;
    if (traced) row.push(Number.isFinite(tracedRatio) ? `${tracedRatio.toFixed(2)}x` : '-');
    lines.push(`| ${row.join(' | ')} |`);
    summary[name] = {
      ratio,
      tracedRatio,
      clients: Object.fromEntries(
        CLIENTS.filter((c) => results[name][c]).map((c) => [
          c,
          {
            median: med[c],
            min: Math.min(...results[name][c].map((r) => r.opsPerSec)),
            max: Math.max(...results[name][c].map((r) => r.opsPerSec)),
            p50: median(results[name][c].map((r) => r.p50)),
            p99: median(results[name][c].map((r) => r.p99)),
          },
        ]),
      ),
    };
  }
  const get64 = summary['get 100B c64']?.clients[OURS]?.median;
  const machine = `${os.cpus().length} × ${os.cpus()[0].model}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).split(' ')[2]}`;
  if (ceiling) lines.push('', `Ceiling, redis-benchmark -c 64 -P 16 -d 100 on the same server: GET ${fmt(ceiling.GET)}/s, SET ${fmt(ceiling.SET)}/s.`);
  if (get64 && ceiling) lines.push(`${OURS} GET 100 B at 64 in flight reaches ${((get64 / ceiling.GET) * 100).toFixed(0)} % of it.`);
  for (const [client, f] of Object.entries(failover)) {
    lines.push(`Cluster failover (SIGKILL of a master with a replica, gets and sets 16 in flight), ${client}: every command served promptly again ${f.recoveredMs} ms after the kill; ${f.rejected} of ${f.ops} commands rejected meanwhile.`);
  }
  lines.push(`Machine: ${machine}. Median of ${ROUNDS} interleaved rounds of ${SECONDS} s; mget/mset count keys per second.`);
  console.log(lines.join('\n'));
  // Only a full run of the usual clients replaces the published results.
  if (ONLY || CHOSEN || process.env.FLUXOR_BASE) return;
  const dir = path.join(__dirname, 'results');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'latest.json'), JSON.stringify({ date: new Date().toISOString(), machine, rounds: ROUNDS, seconds: SECONDS, ceiling, summary, failover }, null, 2));
  fs.writeFileSync(path.join(dir, 'chart.svg'), chart(summary, CLIENTS));
  fs.writeFileSync(path.join(dir, 'latest.md'), lines.join('\n') + '\n');
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
