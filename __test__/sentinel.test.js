'use strict';

// Redis Sentinel against real processes (./sentinel.js: a master, a replica
// and three sentinels per test): the master is found through the sentinels,
// followed across a failover and a demotion without a new initialize(), and
// bad sentinel settings fail clearly and promptly.

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const CacheModule = require('..');
const { CacheError } = CacheModule;
const { startRedis, freePort, sleep } = require('./harness');
const { startSentinels, startSentinel, until } = require('./sentinel');

const unhandled = [];
process.on('unhandledRejection', (reason) => unhandled.push(reason));
test.after(() => assert.deepEqual(unhandled, []));

/** Settles within `ms` or fails the test: nothing may hang. */
function settles(promise, ms = 30000, what = 'the call') {
  let timer;
  const guard = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, guard]).finally(() => clearTimeout(timer));
}

test('the master is found through the sentinels (options and redis+sentinel:// URL), with passwords for both', async (t) => {
  const group = await startSentinels({ password: 'datapw', sentinelPassword: 'sentpw' });
  t.after(() => group.stop());
  const cache = new CacheModule({ sentinels: group.nodes, name: group.name, password: 'datapw', sentinelPassword: 'sentpw', keyPrefix: 's:' });
  await cache.initialize();
  await cache.set('k', 'v');
  assert.equal(await cache.get('k'), 'v');
  const raw = await group.admin(group.master);
  assert.equal(await raw.cmd('GET', 's:k'), '"v"');
  raw.close();
  assert.deepEqual((await cache.getStats()).server.nodes, [`127.0.0.1:${group.master.port}`]);
  await cache.disconnect();

  const hosts = group.nodes.map((n) => `${n.host}:${n.port}`).join(',');
  const viaUrl = new CacheModule({ url: `redis+sentinel://:datapw@${hosts}/${group.name}/2`, sentinelPassword: 'sentpw', keyPrefix: 's:' });
  await viaUrl.initialize();
  await viaUrl.set('u', 1);
  await viaUrl.disconnect();
  const raw2 = await group.admin(group.master);
  await raw2.cmd('SELECT', 2);
  assert.equal(await raw2.cmd('GET', 's:u'), '1');
  raw2.close();

  // A wrong sentinel password: ERR_AUTH, naming the sentinels.
  const wrong = new CacheModule({ sentinels: group.nodes, name: group.name, password: 'datapw', sentinelPassword: 'nope' });
  await settles(
    assert.rejects(wrong.initialize(), (err) => err instanceof CacheError && err.code === 'ERR_AUTH' && err.message.includes(`127.0.0.1:${group.nodes[0].port}`)),
  );
});

test('the master is killed under traffic: commands fail only during the failover, then work without a new initialize()', async (t) => {
  const group = await startSentinels();
  t.after(() => group.stop());
  const cache = new CacheModule({ sentinels: group.nodes, name: group.name, keyPrefix: 'f:', commandTimeout: 1000, connectTimeout: 1000 });
  const events = [];
  for (const e of ['error', 'reconnecting', 'ready']) cache.on(e, () => events.push(e));
  await cache.initialize();

  const codes = new Set();
  let stop = false;
  let n = 0;
  let lastOk = -1;
  const traffic = (async () => {
    while (!stop) {
      const i = n++;
      try {
        await settles(cache.set(`k${i}`, i), 10000, `set k${i}`);
        assert.equal(await settles(cache.get(`k${i}`), 10000, `get k${i}`), i);
        lastOk = i;
      } catch (err) {
        assert.ok(err instanceof CacheError, err.stack);
        codes.add(err.code);
        await sleep(20);
      }
    }
  })();
  await until('traffic to flow', () => lastOk >= 5);
  await group.master.stop('SIGKILL');
  const killedAt = n;
  await until('the sentinels to promote the replica', async () => (await group.masterPort()) === group.replica.port, 60000);
  await until('commands to work again', () => lastOk > killedAt, 60000);
  stop = true;
  await settles(traffic);

  // Every later command works, on the promoted replica.
  for (let i = 0; i < 20; i++) await cache.set(`after${i}`, i);
  const raw = await group.replica.raw();
  assert.equal(await raw.cmd('GET', 'f:after19'), '19');
  raw.close();
  assert.ok(codes.size > 0, 'commands failed while the master was gone');
  for (const code of codes) assert.ok(['ERR_CONNECTION', 'ERR_TIMEOUT', 'ERR_READONLY', 'ERR_UNAVAILABLE'].includes(code), code);
  assert.ok(events.includes('reconnecting') && events.at(-1) === 'ready', events.join(','));
  assert.deepEqual((await cache.getStats()).server.nodes, [`127.0.0.1:${group.replica.port}`]);
  // Traces name the master of the moment.
  const servers = [];
  const handlers = { start: (ctx) => servers.push(ctx.server) };
  const channel = require('node:diagnostics_channel').tracingChannel('fluxor:command');
  channel.subscribe(handlers);
  await cache.get('after0').finally(() => channel.unsubscribe(handlers));
  assert.deepEqual(servers, [`127.0.0.1:${group.replica.port}`]);
  await cache.disconnect();
});

test('a master demoted without dropping the connection (READONLY) sends the module back to the sentinels', async (t) => {
  const group = await startSentinels();
  t.after(() => group.stop());
  const cache = new CacheModule({ sentinels: group.nodes, name: group.name, keyPrefix: 'd:' });
  const reconnecting = [];
  cache.on('reconnecting', (ms) => reconnecting.push(ms));
  cache.on('error', () => {});
  await cache.initialize();
  await cache.set('before', 1);

  // Swap the roles by hand (no sentinel failover, so nobody kills the
  // module's connection) and point the sentinels at the new master.
  const replica = await group.replica.raw();
  await replica.cmd('REPLICAOF', 'NO', 'ONE');
  const master = await group.master.raw();
  await master.cmd('REPLICAOF', '127.0.0.1', String(group.replica.port));
  master.close();
  for (const s of group.sentinels) {
    const c = await s.raw();
    await c.cmd('SENTINEL', 'REMOVE', group.name);
    await c.cmd('SENTINEL', 'MONITOR', group.name, '127.0.0.1', String(group.replica.port), '2');
    c.close();
  }

  // The first write meets the demoted master...
  await assert.rejects(cache.set('after', 2), (err) => err instanceof CacheError && err.code === 'ERR_READONLY' && err.redisCode === 'READONLY');
  // ...and the module looks the master up again.
  await until('a write to succeed', async () => (await cache.set('after', 2)) === true, 20000);
  assert.ok(reconnecting.length > 0);
  assert.equal(await replica.cmd('GET', 'd:after'), '2');
  replica.close();
  await cache.disconnect();
});

test('bad sentinel settings: unreachable, unknown name, not a sentinel, a silent one first; nothing hangs', async (t) => {
  // Synchronous checks first.
  assert.throws(() => new CacheModule({ sentinels: [], name: 'm' }), (err) => err instanceof RangeError && err instanceof CacheError && /options\.sentinels/.test(err.message));
  assert.throws(() => new CacheModule({ sentinels: [{ host: 'h' }] }), (err) => err instanceof TypeError && /options\.name/.test(err.message));
  assert.throws(() => new CacheModule({ name: 'm' }), (err) => err instanceof TypeError && /options\.name is a Sentinel option/.test(err.message));

  // Nothing listens: ERR_CONNECTION naming every sentinel, at once.
  const ports = [await freePort(), await freePort()];
  const nobody = new CacheModule({ sentinels: ports.map((port) => ({ host: '127.0.0.1', port })), name: 'm' });
  await settles(
    assert.rejects(nobody.initialize(), (err) => err.code === 'ERR_CONNECTION' && ports.every((p) => err.message.includes(`127.0.0.1:${p}`))),
  );

  const group = await startSentinels();
  t.after(() => group.stop());
  // A name no sentinel knows.
  const unknown = new CacheModule({ sentinels: group.nodes, name: 'nosuchmaster' });
  await settles(assert.rejects(unknown.initialize(), (err) => err.code === 'ERR_CONNECTION' && /knows no master named "nosuchmaster"/.test(err.message)));
  // A plain Redis server given as a sentinel.
  const plain = new CacheModule({ sentinels: [{ host: '127.0.0.1', port: group.master.port }], name: group.name });
  await settles(assert.rejects(plain.initialize(), (err) => err instanceof CacheError && /unknown command/i.test(err.message)));

  // A sentinel that accepts and never answers, listed first: the next one
  // answers within connectTimeout.
  const accepted = new Set();
  const silent = net.createServer((sock) => accepted.add(sock));
  await new Promise((r) => silent.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const sock of accepted) sock.destroy();
    silent.close();
  });
  const nodes = [{ host: '127.0.0.1', port: silent.address().port }, ...group.nodes];
  const cache = new CacheModule({ sentinels: nodes, name: group.name, connectTimeout: 4000 });
  await settles(cache.initialize());
  await cache.set('k', 1);
  await cache.disconnect();
  // Only silent sentinels: ERR_TIMEOUT within connectTimeout.
  const mute = new CacheModule({ sentinels: [nodes[0]], name: group.name, connectTimeout: 500 });
  await settles(assert.rejects(mute.initialize(), { code: 'ERR_TIMEOUT' }));
});

test('TLS applies to the master: the sentinels name a TLS port, and the module connects to it with tls.ca', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fluxor-sentinel-tls-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const ssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=ca', '-keyout', 'ca.key', '-out', 'ca.crt');
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', 'server.key', '-out', 'server.csr');
  fs.writeFileSync(path.join(dir, 'san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  ssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'san.ext', '-out', 'server.crt');
  const certs = { cert: path.join(dir, 'server.crt'), key: path.join(dir, 'server.key'), ca: path.join(dir, 'ca.crt') };

  // The master serves TLS on tlsPort (and plain TCP on its port, for the test's own reads).
  const tlsPort = await freePort();
  const master = await startRedis({
    args: ['--tls-port', String(tlsPort), '--tls-cert-file', certs.cert, '--tls-key-file', certs.key, '--tls-ca-cert-file', certs.ca, '--tls-auth-clients', 'no'],
  });
  t.after(() => master.stop());
  // The sentinel watches the TLS port (over TLS itself).
  const sentinel = await startSentinel({
    masterPort: tlsPort,
    quorum: 1,
    conf: ['tls-replication yes', `tls-cert-file ${certs.cert}`, `tls-key-file ${certs.key}`, `tls-ca-cert-file ${certs.ca}`],
  });
  t.after(() => sentinel.stop());
  await until('the sentinel to reach the TLS master', async () => {
    const c = await sentinel.raw();
    try {
      const [, port] = await c.cmd('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'mymaster');
      const flags = (await c.cmd('SENTINEL', 'MASTER', 'mymaster')).join(' ');
      return Number(port) === tlsPort && !/disconnected|s_down/.test(flags);
    } finally {
      c.close();
    }
  });

  const cache = new CacheModule({ sentinels: [{ host: '127.0.0.1', port: sentinel.port }], name: 'mymaster', tls: { ca: fs.readFileSync(certs.ca) }, keyPrefix: 'st:' });
  await settles(cache.initialize());
  await cache.set('k', 'over tls');
  assert.deepEqual((await cache.getStats()).server.nodes, [`127.0.0.1:${tlsPort}`]);
  await cache.disconnect();
  const raw = await master.raw();
  assert.equal(await raw.cmd('GET', 'st:k'), '"over tls"');
  raw.close();
  // Without tls, the plain handshake to a TLS port fails, and says where.
  const plain = new CacheModule({ sentinels: [{ host: '127.0.0.1', port: sentinel.port }], name: 'mymaster', connectTimeout: 1000 });
  await settles(assert.rejects(plain.initialize(), (err) => err instanceof CacheError && err.message.includes(`127.0.0.1:${tlsPort}`)));
});
