'use strict';

// A real Sentinel group for the tests: a master, a replica and three
// `redis-server --sentinel` processes on free 127.0.0.1 ports, with short
// timeouts so a failover takes a few seconds. Stopped by pid when the test
// file ends (also when it fails). No mocks.

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startRedis, freePort, rawClient, sleep } = require('./harness');

const HOST = '127.0.0.1';
const running = new Set();
process.on('exit', () => {
  for (const child of running) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {}
  }
});

/** A flat `[k, v, k, v…]` reply as an object. */
const fields = (list) => Object.fromEntries(Array.from({ length: list.length / 2 }, (_, i) => [list[2 * i], list[2 * i + 1]]));

async function until(what, check, ms = 30000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if (await check()) return;
    } catch {}
    if (Date.now() > deadline) throw new Error(`sentinel harness: ${what} did not happen within ${ms} ms`);
    await sleep(100);
  }
}

/** One `redis-server --sentinel` process watching `name` at `masterPort`; `conf`: more lines for its config file. */
async function startSentinel({ name = 'mymaster', masterPort, password, sentinelPassword, downAfter = 1000, failoverTimeout = 2000, quorum = 2, conf: extra = [] }) {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fluxor-sentinel-'));
  const conf = [
    `port ${port}`,
    `bind ${HOST}`,
    'protected-mode no',
    `dir ${dir}`,
    ...extra,
    `sentinel monitor ${name} ${HOST} ${masterPort} ${quorum}`,
    `sentinel down-after-milliseconds ${name} ${downAfter}`,
    `sentinel failover-timeout ${name} ${failoverTimeout}`,
    `sentinel parallel-syncs ${name} 1`,
    ...(password ? [`sentinel auth-pass ${name} ${password}`] : []),
    ...(sentinelPassword ? [`requirepass ${sentinelPassword}`, `sentinel sentinel-pass ${sentinelPassword}`] : []),
  ];
  const file = path.join(dir, 'sentinel.conf');
  fs.writeFileSync(file, conf.join('\n') + '\n');
  const child = spawn('redis-server', [file, '--sentinel'], { stdio: 'ignore' });
  running.add(child);
  const exited = new Promise((r) => child.once('exit', r));
  const sentinel = {
    host: HOST,
    port,
    pid: child.pid,
    /** A raw client, authenticated when the sentinels have a password. */
    async raw() {
      const c = await rawClient(port);
      if (sentinelPassword) await c.cmd('AUTH', sentinelPassword);
      return c;
    },
    async stop(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(child.pid, signal);
        await exited;
      }
      running.delete(child);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  await until(`sentinel on ${port} to start`, async () => {
    if (child.exitCode !== null) throw new Error(`sentinel on ${port} exited with ${child.exitCode}`);
    const c = await sentinel.raw();
    try {
      return (await c.cmd('PING')) === 'PONG';
    } finally {
      c.close();
    }
  });
  return sentinel;
}

/**
 * A master, its replica and three sentinels. `password`: the data nodes'
 * requirepass; `sentinelPassword`: the sentinels'. Resolves once every
 * sentinel sees the replica and the other two sentinels (so that a failover
 * can be agreed on).
 */
async function startSentinels({ name = 'mymaster', password, sentinelPassword, downAfter = 1000, failoverTimeout = 2000 } = {}) {
  const auth = password ? ['--requirepass', password, '--masterauth', password] : [];
  const master = await startRedis({ args: auth });
  const replica = await startRedis({ args: [...auth, '--replicaof', HOST, String(master.port)] });
  const admin = async (server) => {
    const c = await server.raw();
    if (password) await c.cmd('AUTH', password);
    return c;
  };
  await until('the replica to sync', async () => {
    const c = await admin(replica);
    try {
      return /master_link_status:up/.test(await c.cmd('INFO', 'replication'));
    } finally {
      c.close();
    }
  });
  const sentinels = [];
  for (let i = 0; i < 3; i++) {
    sentinels.push(await startSentinel({ name, masterPort: master.port, password, sentinelPassword, downAfter, failoverTimeout }));
  }
  for (const s of sentinels) {
    await until(`sentinel ${s.port} to see the replica and the other sentinels`, async () => {
      const c = await s.raw();
      try {
        const m = fields(await c.cmd('SENTINEL', 'MASTER', name));
        return Number(m['num-slaves']) >= 1 && Number(m['num-other-sentinels']) >= 2;
      } finally {
        c.close();
      }
    });
  }
  return {
    name,
    master,
    replica,
    sentinels,
    /** The `sentinels` option. */
    nodes: sentinels.map(({ host, port }) => ({ host, port })),
    admin,
    /** The master's port as the sentinels name it (asks the first one that answers). */
    async masterPort() {
      for (const s of sentinels) {
        try {
          const c = await s.raw();
          try {
            return Number((await c.cmd('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name))[1]);
          } finally {
            c.close();
          }
        } catch {}
      }
      throw new Error('no sentinel answered');
    },
    async stop() {
      for (const s of sentinels) await s.stop();
      await master.stop('SIGKILL');
      await replica.stop('SIGKILL');
    },
  };
}

module.exports = { startSentinels, startSentinel, fields, until };
