'use strict';

// A real Redis Cluster for the tests: redis-server processes on free
// 127.0.0.1 ports (data port and cluster bus port both picked free), joined
// with `redis-cli --cluster create`, stopped by pid when the test file ends
// (also when it fails). No mocks.

const { spawn, execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { freePort, rawClient, sleep } = require('./harness');

const HOST = '127.0.0.1';
const SLOTS = 16384;

// Every process and temp dir a cluster made, for the exit hook.
const running = new Set();
const dirs = new Set();
process.on('exit', () => {
  for (const child of running) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {}
  }
  for (const dir of dirs) {
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch {}
  }
});

/**
 * A detached shell that outlives this process: when this process is gone
 * without its exit hook having run (SIGKILL, a native crash, an exception in
 * the test runner's own handler), it SIGKILLs the given redis-server pids
 * (each only while it is still that redis-server on its port) and removes
 * `dir`. `stop()` kills the watchdog itself first.
 */
function watchdog(nodes, dir) {
  // A pid counts only while it is still our redis-server on its port.
  const checks = nodes
    .map(({ pid, port }) => `tr '\\0' ' ' < /proc/${pid}/cmdline 2>/dev/null | grep -q 'redis-server ${HOST}:${port} ' && kill -9 ${pid}`)
    .join('\n');
  const script = `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done\n${checks}\nrm -rf '${dir.replace(/'/g, '')}'\n`;
  const child = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' });
  child.unref();
  return child;
}

/** `count` distinct free loopback ports. */
async function freePorts(count) {
  const ports = new Set();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

function run(cmd, args, { timeout = 30000 } = {}) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout }, (err, stdout, stderr) => {
      if (err) {
        err.message += `\n${stdout}\n${stderr}`;
        reject(err);
      } else resolve(stdout);
    });
  });
}

/** CRC16 (XMODEM), as Redis Cluster hashes keys. */
function crc16(buf) {
  let crc = 0;
  for (const byte of buf) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** The cluster slot of `key`, hash tags included. */
function keySlot(key) {
  const buf = Buffer.from(key);
  const open = buf.indexOf('{');
  if (open >= 0) {
    const close = buf.indexOf('}', open + 1);
    if (close > open + 1) return crc16(buf.subarray(open + 1, close)) % SLOTS;
  }
  return crc16(buf) % SLOTS;
}

/** Key-value pairs of an INFO / CLUSTER INFO text. */
function infoFields(text) {
  const out = {};
  for (const line of String(text).split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (at > 0) out[line.slice(0, at)] = line.slice(at + 1).trim();
  }
  return out;
}

/** A `CLUSTER NODES` reply as objects. */
function parseNodes(text) {
  return String(text)
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [id, addr, flags, masterId, , , , link, ...slots] = line.trim().split(' ');
      const hostPort = addr.split('@')[0];
      const port = Number(hostPort.slice(hostPort.lastIndexOf(':') + 1));
      const ranges = slots
        .filter((s) => !s.startsWith('['))
        .map((s) => {
          const [a, b = a] = s.split('-').map(Number);
          return [a, b];
        });
      return { id, port, flags: flags.split(','), master: masterId === '-' ? null : masterId, link, ranges };
    });
}

/** Queries `port` once with a fresh raw client. */
async function once(port, ...args) {
  const c = await rawClient(port);
  try {
    return await c.cmd(...args);
  } finally {
    c.close();
  }
}

/**
 * Starts `masters * (1 + replicasPerMaster)` redis-server processes and joins
 * them into a cluster; resolves when every node says cluster_state:ok, all
 * 16384 slots are covered and every replica is in sync with its master.
 */
async function startCluster({ masters = 3, replicasPerMaster = 1, args = [] } = {}) {
  const count = masters * (1 + replicasPerMaster);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'fluxor-cluster-'));
  dirs.add(root);
  const ports = await freePorts(count * 2);
  const nodes = [];
  const children = new Map(); // port -> { child, exited }

  let guard = null;
  const stop = async () => {
    if (guard) {
      try {
        process.kill(guard.pid, 'SIGKILL');
      } catch {}
      guard = null;
    }
    await Promise.all(
      [...children.values()].map(async ({ child, exited }) => {
        if (child.exitCode === null && child.signalCode === null) {
          try {
            process.kill(child.pid, 'SIGKILL');
          } catch {}
          await exited;
        }
        running.delete(child);
      }),
    );
    fs.rmSync(root, { recursive: true, force: true });
    dirs.delete(root);
  };

  try {
    for (let i = 0; i < count; i++) {
      const port = ports[i];
      const busPort = ports[count + i];
      const dir = path.join(root, String(port));
      fs.mkdirSync(dir);
      const child = spawn(
        'redis-server',
        [
          '--port', String(port),
          '--cluster-port', String(busPort),
          '--cluster-enabled', 'yes',
          '--cluster-config-file', path.join(root, `nodes-${port}.conf`),
          '--cluster-node-timeout', '1000',
          '--save', '',
          '--appendonly', 'no',
          '--bind', HOST,
          '--protected-mode', 'no',
          '--dir', dir,
          // Replicas sync at once (the default waits 5 s for more replicas).
          '--repl-diskless-sync-delay', '0',
          ...args,
        ],
        { stdio: 'ignore' },
      );
      running.add(child);
      const exited = new Promise((r) => child.once('exit', r));
      children.set(port, { child, exited });
      nodes.push({ host: HOST, port, busPort, pid: child.pid });
    }

    guard = watchdog(nodes, root);

    // Every node answers PING.
    for (const node of nodes) {
      const { child } = children.get(node.port);
      for (let i = 0; ; i++) {
        if (child.exitCode !== null) throw new Error(`redis-server on port ${node.port} exited with ${child.exitCode}`);
        if ((await once(node.port, 'PING').catch(() => null)) === 'PONG') break;
        if (i >= 100) throw new Error(`redis-server on port ${node.port} did not start`);
        await sleep(50);
      }
    }

    await run('redis-cli', [
      '--cluster', 'create',
      ...nodes.map((n) => `${HOST}:${n.port}`),
      '--cluster-replicas', String(replicasPerMaster),
      '--cluster-yes',
    ]);

    await waitHealthy(nodes.map((n) => n.port), { masters, replicas: masters * replicasPerMaster });
  } catch (err) {
    await stop();
    throw err;
  }

  const cluster = {
    nodes,
    seeds: nodes.map((n) => ({ host: HOST, port: n.port })),
    stop,
    /** A raw RESP client on one node. */
    raw: (port) => rawClient(port),
    /** SIGKILLs the node on `port` by pid and waits for it to exit. */
    async killNode(port) {
      const entry = children.get(port);
      if (!entry) throw new Error(`no node on port ${port}`);
      const { child, exited } = entry;
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(child.pid, 'SIGKILL');
        await exited;
      }
      running.delete(child);
    },
    /** Whether the node's process still runs. */
    alive(port) {
      const entry = children.get(port);
      return !!entry && entry.child.exitCode === null && entry.child.signalCode === null;
    },
    /** The live nodes' ports. */
    livePorts() {
      return nodes.map((n) => n.port).filter((p) => cluster.alive(p));
    },
    /** The current topology as seen by a live node: [{ id, port, flags, master, ranges }]. */
    async topology() {
      for (const port of cluster.livePorts()) {
        const text = await once(port, 'CLUSTER', 'NODES').catch(() => null);
        if (text) return parseNodes(text);
      }
      throw new Error('no live node answered CLUSTER NODES');
    },
    /** The ports of the masters that serve slots (and are not failed). */
    async masterPorts() {
      return (await cluster.topology())
        .filter((n) => n.flags.includes('master') && !n.flags.some((f) => f.startsWith('fail')) && n.ranges.length > 0)
        .map((n) => n.port)
        .sort((a, b) => a - b);
    },
    /** The port of the master serving `key`'s slot. */
    async ownerOf(key) {
      const slot = keySlot(key);
      const owner = (await cluster.topology()).find(
        (n) => n.flags.includes('master') && !n.flags.some((f) => f.startsWith('fail')) && n.ranges.some(([a, b]) => slot >= a && slot <= b),
      );
      if (!owner) throw new Error(`no master serves slot ${slot}`);
      return owner.port;
    },
    /**
     * Runs a single-key command (the key is args[1]) on the node that owns
     * the key, following MOVED / ASK redirections.
     */
    async cmd(...args) {
      const port = await cluster.ownerOf(String(args[1]));
      return redirected(port, args, async (p) => {
        const c = await rawClient(p);
        return { cmd: c.cmd, done: () => c.close() };
      });
    },
    /**
     * A raw client for many commands: one connection per master, routed by
     * the key (args[1]) with the slot map read once, following MOVED / ASK.
     * `onEach(...args)` runs a key-less command on every master.
     */
    async router() {
      const conns = new Map(); // port -> client promise
      const conn = (port) => {
        if (!conns.has(port)) conns.set(port, rawClient(port));
        return conns.get(port);
      };
      let slots = null;
      const load = async () => {
        const map = new Array(SLOTS);
        for (const n of await cluster.topology()) {
          if (!n.flags.includes('master') || n.flags.some((f) => f.startsWith('fail'))) continue;
          for (const [a, b] of n.ranges) for (let s = a; s <= b; s++) map[s] = n.port;
        }
        slots = map;
      };
      await load();
      return {
        cmd: (...args) => redirected(slots[keySlot(String(args[1]))], args, async (p) => ({ cmd: (await conn(p)).cmd, done() {} }), load),
        /** Runs a key-less command on every master; resolves { port: reply }. */
        async onEach(...args) {
          const out = {};
          for (const port of await cluster.masterPorts()) out[port] = await (await conn(port)).cmd(...args);
          return out;
        },
        close() {
          for (const p of conns.values()) p.then((c) => c.close(), () => {});
          conns.clear();
        },
      };
    },
    /** Waits until the live nodes agree that the cluster is healthy. */
    waitHealthy: (opts) => waitHealthy(cluster.livePorts(), opts),
  };
  return cluster;
}

/**
 * Resolves when every node in `ports` reports cluster_state:ok with all
 * slots ok, sees `masters` masters and `replicas` connected replicas, and
 * every replica's link to its master is up. `replicas` may be omitted.
 */
async function waitHealthy(ports, { masters, replicas, timeout = 20000 } = {}) {
  const deadline = Date.now() + timeout;
  let why = '';
  for (;;) {
    why = await unhealthy(ports, masters, replicas).catch((err) => err.message);
    if (!why) return;
    if (Date.now() > deadline) throw new Error(`the cluster did not become healthy: ${why}`);
    await sleep(100);
  }
}

async function unhealthy(ports, masters, replicas) {
  for (const port of ports) {
    const info = infoFields(await once(port, 'CLUSTER', 'INFO'));
    if (info.cluster_state !== 'ok') return `${port}: cluster_state:${info.cluster_state}`;
    if (Number(info.cluster_slots_ok) !== SLOTS) return `${port}: cluster_slots_ok:${info.cluster_slots_ok}`;
    const view = parseNodes(await once(port, 'CLUSTER', 'NODES'));
    const live = view.filter((n) => !n.flags.some((f) => f.startsWith('fail') || f === 'handshake' || f === 'noaddr'));
    const seenMasters = live.filter((n) => n.flags.includes('master') && n.ranges.length > 0);
    const covered = seenMasters.reduce((sum, n) => sum + n.ranges.reduce((s, [a, b]) => s + b - a + 1, 0), 0);
    if (covered !== SLOTS) return `${port} sees ${covered} slots served`;
    if (masters !== undefined && seenMasters.length !== masters) return `${port} sees ${seenMasters.length} masters`;
    const seenReplicas = live.filter((n) => n.flags.includes('slave'));
    if (replicas !== undefined && seenReplicas.length !== replicas) return `${port} sees ${seenReplicas.length} replicas`;
    const self = view.find((n) => n.flags.includes('myself'));
    if (self && self.flags.includes('slave')) {
      const repl = infoFields(await once(port, 'INFO', 'replication'));
      if (repl.master_link_status !== 'up') return `${port}: master_link_status:${repl.master_link_status}`;
    }
  }
  return '';
}

/**
 * Runs a single-key command (the key is args[1]) starting at `port` and
 * following MOVED / ASK redirections; `client(port)` gives `{ cmd, done }`,
 * `onMoved()` runs after a MOVED (the slot map changed).
 */
async function redirected(port, args, client, onMoved = async () => {}) {
  let asking = false;
  for (let hop = 0; hop < 5; hop++) {
    const c = await client(port);
    try {
      if (asking) await c.cmd('ASKING');
      return await c.cmd(...args);
    } catch (err) {
      const m = /^(MOVED|ASK) \d+ (.+):(\d+)$/.exec(err.message);
      if (!m) throw err;
      asking = m[1] === 'ASK';
      port = Number(m[3]);
      if (!asking) await onMoved();
    } finally {
      c.done();
    }
  }
  throw new Error(`too many redirections for ${args.join(' ')}`);
}

module.exports = { startCluster, keySlot, infoFields, parseNodes };
