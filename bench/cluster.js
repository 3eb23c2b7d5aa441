'use strict';

// The Cluster section of `npm run bench`: a 3-master cluster started by the
// bench itself (the test harness, __test__/cluster.js), this package beside
// ioredis's Cluster and node-redis's createCluster, each in its own process;
// and a failover measurement (bench/run.js runs both).
//
// The JS clients get an mget's keys with one GET each, sent together (a
// cross-slot MGET is refused); each client pipelines those its own way.

const { fork } = require('node:child_process');
const path = require('node:path');
const { startCluster } = require('../__test__/cluster');
const { workloads, objectOf } = require('./workloads');

const TTL = 3600;
const parse = (s) => (s === null ? null : JSON.parse(s));

/** The workloads of the section, named `cluster <standalone name>`. */
const clusterWorkloads = Object.fromEntries(
  ['get 100B c1', 'get 100B c64', 'set 100B c1', 'set 100B c64', 'mix 80/20 c64', 'mget 100 keys c8'].map((n) => [`cluster ${n}`, workloads[n]]),
);

/** A cluster target as the worker gets it: `cluster:port,port,...`. */
const isCluster = (target) => String(target).startsWith('cluster:');
const seedsOf = (target) =>
  String(target)
    .slice('cluster:'.length)
    .split(',')
    .map((port) => ({ host: '127.0.0.1', port: Number(port) }));

/** The common adapter of bench/adapters.js, over a cluster client. */
function keyed(c) {
  return {
    get: async (k) => parse(await c.get(k)),
    set: (k, v) => c.set(k, JSON.stringify(v), 'EX', TTL),
    mget: async (keys) => (await Promise.all(keys.map((k) => c.get(k)))).map(parse),
    mset: (pairs) => Promise.all(Object.entries(pairs).map(([k, v]) => c.set(k, JSON.stringify(v), 'EX', TTL))),
    close: () => c.quit(),
  };
}

async function ioredisCluster(seeds, enableAutoPipelining) {
  const Redis = require('ioredis');
  const c = new Redis.Cluster(seeds, { enableAutoPipelining, lazyConnect: true });
  await c.connect();
  return { ...keyed(c), raw: c };
}

const clusterAdapters = {
  async fluxor(seeds, options = {}) {
    const CacheModule = require('..');
    const cache = new CacheModule({ enableCluster: true, clusterNodes: seeds, keyPrefix: '', defaultTTL: TTL, ...options });
    await cache.initialize();
    return {
      get: (k) => cache.get(k),
      set: (k, v) => cache.set(k, v),
      mget: (keys) => cache.mget(keys),
      mset: (pairs) => cache.mset(pairs),
      close: () => cache.disconnect(),
    };
  },
  ioredis: (seeds) => ioredisCluster(seeds, false),
  'ioredis-auto': (seeds) => ioredisCluster(seeds, true),
  async 'node-redis'(seeds) {
    const { createCluster } = require('redis');
    const c = createCluster({ rootNodes: seeds.map(({ host, port }) => ({ url: `redis://${host}:${port}` })) });
    await c.connect();
    return {
      get: async (k) => parse(await c.get(k)),
      set: (k, v) => c.set(k, JSON.stringify(v), { EX: TTL }),
      mget: async (keys) => (await Promise.all(keys.map((k) => c.get(k)))).map(parse),
      mset: (pairs) => Promise.all(Object.entries(pairs).map(([k, v]) => c.set(k, JSON.stringify(v), { EX: TTL }))),
      close: () => c.quit(),
    };
  },
};

/** Starts the section's cluster: 3 masters, no replicas. */
async function startBenchCluster({ replicasPerMaster = 0 } = {}) {
  const cluster = await startCluster({ masters: 3, replicasPerMaster });
  return {
    cluster,
    target: `cluster:${cluster.seeds.map((s) => s.port).join(',')}`,
    pids: cluster.nodes.map((n) => n.pid),
    stop: () => cluster.stop(),
  };
}

// ---------------------------------------------------------------- failover

/** What one client sees of a failover: see `failoverWorker`. */
const FAILOVER_CONCURRENCY = 16;
const FAILOVER_AFTER_MS = 6000;
/** A command slower than this counts as not served yet. */
const PROMPT_MS = 250;

/**
 * Kills a master (with a replica) of a fresh 3+3 cluster while `client`
 * runs gets and sets (16 in flight) over keys in every slot, in its own
 * process. Resolves { recoveredMs, rejected, ops }: the time from the kill to
 * the end of the last command that failed or took over 250 ms (from then on
 * every command succeeds promptly), and how many commands rejected.
 */
async function measureFailover(client) {
  const { cluster, target, stop } = await startBenchCluster({ replicasPerMaster: 1 });
  try {
    const child = fork(__filename, ['failover-worker', client, target], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const result = new Promise((resolve, reject) => {
      child.on('message', (m) => m.result && resolve(m.result));
      child.on('exit', (code) => reject(new Error(`failover worker ${client} exited with ${code}: ${stderr}`)));
    });
    await new Promise((resolve) => child.on('message', (m) => m.ready && resolve()));
    await new Promise((r) => setTimeout(r, 1000));
    const victim = (await cluster.masterPorts())[0];
    const killedAt = Date.now();
    await cluster.killNode(victim);
    child.send({ killedAt });
    const r = await result;
    child.kill();
    return r;
  } finally {
    await stop();
  }
}

async function failoverWorker(client, target) {
  const api = await clusterAdapters[client](seedsOf(target));
  const value = objectOf(100);
  let killedAt = null;
  let stop = false;
  process.on('message', (m) => {
    if (m.killedAt) {
      killedAt = m.killedAt;
      setTimeout(() => (stop = true), FAILOVER_AFTER_MS);
    }
  });
  let lastBad = null;
  let rejected = 0;
  let ops = 0;
  // Failures of the client's own background (reconnects) are not commands.
  process.on('unhandledRejection', () => {});
  const runner = async (id) => {
    for (let i = id; !stop; i += FAILOVER_CONCURRENCY) {
      const started = Date.now();
      const key = `fo:${i % 3000}`;
      let ok = true;
      try {
        if (i % 2) await api.set(key, value);
        else await api.get(key);
      } catch {
        ok = false;
      }
      const ended = Date.now();
      if (killedAt !== null && ended >= killedAt) {
        ops++;
        if (!ok) rejected++;
        if (!ok || ended - started > PROMPT_MS) lastBad = Math.max(lastBad ?? 0, ended);
      }
    }
  };
  const runners = Array.from({ length: FAILOVER_CONCURRENCY }, (_, id) => runner(id));
  process.send({ ready: true });
  await Promise.all(runners);
  process.send({ result: { recoveredMs: lastBad === null ? 0 : lastBad - killedAt, rejected, ops } });
  await Promise.race([api.close(), new Promise((r) => setTimeout(r, 1000))]).catch(() => {});
  process.exit(0);
}

if (require.main === module && process.argv[2] === 'failover-worker') {
  failoverWorker(process.argv[3], process.argv[4]).catch((err) => {
    process.stderr.write(`${err.stack}\n`);
    process.exit(1);
  });
}

module.exports = { clusterWorkloads, clusterAdapters, isCluster, seedsOf, startBenchCluster, measureFailover };
