'use strict';

// getOrSet against real servers: single flight in one process and across
// processes, a holder killed mid-factory, writes that land during a factory,
// grace and fail-safe, timeouts, refreshAhead, adaptive options, failures
// (server down, paused) and a Redis Cluster. No timing is asserted: slow
// factories wait on gates the test opens; deadlines are hang guards only.

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const CacheModule = require('..');
const { startRedis, runNode, sleep, openCache, closeCache } = require('./harness');
const { startCluster } = require('./cluster');
const { startSentinels } = require('./sentinel');

const unhandled = [];
process.on('unhandledRejection', (reason) => unhandled.push(reason));
test.after(() => assert.deepEqual(unhandled, [], 'no unhandled rejection'));

let server;
let raw;
let cache;
const PREFIX = 'gs:';

test.before(async () => {
  ({ server, raw, cache } = await openCache(CacheModule, { keyPrefix: PREFIX }));
});
test.after(() => closeCache({ server, raw, cache }));

/** A promise and the function that resolves it. */
function gate() {
  let open;
  const opened = new Promise((r) => (open = r));
  return { opened, open };
}

/** Polls `fn` until it returns something truthy (a hang guard, not a timing assertion). */
async function eventually(fn, what, ms = 20000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`never happened: ${what}`);
    await sleep(10);
  }
}

const statsOf = async (c) => {
  const s = await c.getStats();
  return { factoryRuns: s.factoryRuns, staleServed: s.staleServed, coalesced: s.coalesced };
};

test('100 concurrent calls on a cold key in one process: one factory run, every caller gets the value', async () => {
  const before = await statsOf(cache);
  let runs = 0;
  const g = gate();
  const factory = async () => {
    runs++;
    await g.opened;
    return { id: 1, name: 'one' };
  };
  const calls = Array.from({ length: 100 }, () => cache.getOrSet('sf:1', factory, { ttl: 60 }));
  await eventually(() => runs === 1, 'the factory started');
  g.open();
  const values = await Promise.all(calls);
  assert.equal(runs, 1);
  for (const v of values) assert.deepEqual(v, { id: 1, name: 'one' });
  const after = await statsOf(cache);
  assert.equal(after.factoryRuns - before.factoryRuns, 1);
  assert.equal(after.coalesced - before.coalesced, 99);
  // A hit afterwards does not run it.
  assert.deepEqual(await cache.getOrSet('sf:1', factory), { id: 1, name: 'one' });
  assert.equal(runs, 1);
});

test('4 processes x 100 concurrent calls on one cold key: exactly one factory run in total, every caller gets the value', async () => {
  // Each child counts its factory runs; all start together on a signal key.
  const worker = `
    const C = require('.');
    (async () => {
      const cache = new C({ host: '127.0.0.1', port: ${server.port}, keyPrefix: '${PREFIX}' });
      await cache.initialize();
      await cache.set('herd:ready:' + process.pid, 1);
      while ((await cache.get('herd:go')) === null) await new Promise((r) => setTimeout(r, 2));
      let runs = 0;
      const factory = async () => { runs++; await new Promise((r) => setTimeout(r, 300)); return { herd: 42 }; };
      const values = await Promise.all(Array.from({ length: 100 }, () => cache.getOrSet('herd:key', factory, { ttl: 60, lockTimeout: 30000 })));
      const ok = values.every((v) => v && v.herd === 42);
      console.log(JSON.stringify({ runs, ok }));
      await cache.disconnect();
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const children = [1, 2, 3, 4].map(() => runNode(worker, { timeout: 60000 }));
  await eventually(async () => (await raw.cmd('KEYS', `${PREFIX}herd:ready:*`)).length === 4, 'the children are ready', 60000);
  await cache.set('herd:go', 1);
  const results = await Promise.all(children);
  const reports = results.map((r) => {
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split('\n').pop());
  });
  assert.equal(reports.reduce((n, r) => n + r.runs, 0), 1, JSON.stringify(reports));
  assert.ok(reports.every((r) => r.ok), 'every caller got the value');
  assert.equal(await raw.cmd('GET', `${PREFIX}herd:key`), '{"herd":42}');
});

test('a waiter is subscribed while it waits, and the holder publishes the key it stored', async (t) => {
  const listener = await server.raw();
  t.after(() => listener.close());
  const holder = new CacheModule({ host: '127.0.0.1', port: server.port, keyPrefix: PREFIX });
  await holder.initialize();
  t.after(() => holder.disconnect());
  const g = gate();
  const held = holder.getOrSet('wake:1', async () => {
    await g.opened;
    return 'stored';
  });
  await eventually(async () => (await raw.cmd('KEYS', `${PREFIX}__fluxor__:lease:*wake:1`)).length === 1, 'the lease is held');
  const waiting = cache.getOrSet('wake:1', () => 'never', { lockTimeout: 30000 });
  const channel = `${PREFIX}__fluxor__:filled`;
  await eventually(async () => (await raw.cmd('PUBSUB', 'NUMSUB', channel))[1] >= 1, 'the waiter subscribed');
  g.open();
  assert.equal(await held, 'stored');
  assert.equal(await waiting, 'stored', 'the waiter got the holder\'s value');
});

test('the holder publishes the stored key on the channel', async (t) => {
  const channel = `${PREFIX}__fluxor__:filled`;
  const { createClient } = require('redis');
  const sub = createClient({ socket: { host: '127.0.0.1', port: server.port } });
  await sub.connect();
  t.after(() => sub.quit());
  const message = new Promise((resolve) => sub.subscribe(channel, resolve));
  await eventually(async () => (await raw.cmd('PUBSUB', 'NUMSUB', channel))[1] >= 1, 'subscribed');
  await cache.getOrSet('pub:1', () => 1);
  assert.equal(await message, `${PREFIX}pub:1`);
});

test('a holder SIGKILLed mid-factory does not block the others past its lease: another caller takes over and stores', async () => {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `const C = require('.');
      (async () => {
        const cache = new C({ host: '127.0.0.1', port: ${server.port}, keyPrefix: '${PREFIX}' });
        await cache.initialize();
        await cache.getOrSet('dead:1', async () => { await cache.set('dead:started', 1); return new Promise(() => {}); }, { lockTimeout: 2000 });
      })();`,
    ],
    { cwd: path.join(__dirname, '..'), stdio: 'ignore' },
  );
  const exited = new Promise((r) => child.once('exit', r));
  await eventually(async () => (await raw.cmd('EXISTS', `${PREFIX}dead:started`)) === 1, 'the child runs its factory');
  assert.equal((await raw.cmd('KEYS', `${PREFIX}__fluxor__:lease:*dead:1`)).length, 1, 'the child holds the lease');
  child.kill('SIGKILL');
  await exited;
  let runs = 0;
  const value = await cache.getOrSet('dead:1', () => {
    runs++;
    return 'taken over';
  }, { lockTimeout: 60000 });
  assert.equal(value, 'taken over');
  assert.equal(runs, 1);
  // Stored: it ran under the expired holder's lease, not as a caller that gave up waiting.
  assert.equal(await raw.cmd('GET', `${PREFIX}dead:1`), '"taken over"');
});

test('a set, del or invalidate that lands while the factory runs wins over its result', async (t) => {
  const other = new CacheModule({ host: '127.0.0.1', port: server.port, keyPrefix: PREFIX });
  await other.initialize();
  t.after(() => other.disconnect());
  const written = '"written meanwhile"';
  const cases = {
    set: async (key) => other.set(key, 'written meanwhile'),
    mset: async (key) => other.mset({ [key]: 'written meanwhile' }),
    'set of the same value': async (key) => other.set(key, 'old'),
    'another client SET': async (key) => raw.cmd('SET', `${PREFIX}${key}`, written),
    expire: async (key) => other.expire(key, 500),
    del: async (key) => other.del(key),
    'invalidate pattern': async (key) => other.invalidate('pattern', `${key}*`),
    'invalidate cascade': async (key) => other.invalidate('cascade', key),
    'invalidate tag': async () => other.invalidate('tag', 'unrelated-tag'),
  };
  for (const [name, write] of Object.entries(cases)) {
    for (const cold of [true, false]) {
      const key = `race:${name.replace(/ /g, '-')}:${cold ? 'cold' : 'stale'}`;
      const opts = { ttl: 0.05, grace: 60 };
      if (!cold) {
        await cache.getOrSet(key, () => 'old', opts);
        await eventually(async () => (await raw.cmd('PTTL', `${PREFIX}${key}`)) < 60000, 'the value is stale');
      }
      const value = await cache.getOrSet(key, async () => {
        await write(key);
        return 'factory result';
      }, opts);
      assert.equal(value, 'factory result', `${name}: the caller still gets the factory's value`);
      const stored = await raw.cmd('GET', `${PREFIX}${key}`);
      const expected = {
        set: written,
        mset: written,
        'set of the same value': '"old"',
        'another client SET': written,
        // An expire of a missing key changes nothing; of the stale value, it is a write.
        expire: cold ? '"factory result"' : '"old"',
        // An invalidation of other keys leaves this one as it was.
        'invalidate tag': cold ? null : '"old"',
      }[name] ?? null;
      assert.equal(stored, expected, `${name} (${cold ? 'cold key' : 'stale key'}): the write won`);
    }
  }
  // Without a write in between, the result is stored: also over a stale
  // value that merely expired while the factory ran.
  await cache.getOrSet('race:none', () => 'factory result');
  assert.equal(await raw.cmd('GET', `${PREFIX}race:none`), '"factory result"');
  const opts = { ttl: 0.05, grace: 0.2 };
  await cache.getOrSet('race:expired', () => 'old', opts);
  await eventually(async () => (await raw.cmd('PTTL', `${PREFIX}race:expired`)) < 200, 'the value is stale');
  assert.equal(await cache.getOrSet('race:expired', async (ctx) => {
    assert.equal(ctx.stale, 'old');
    await eventually(async () => (await raw.cmd('EXISTS', `${PREFIX}race:expired`)) === 0, 'the stale value expires');
    return 'new';
  }, opts), 'new');
  assert.equal(await raw.cmd('GET', `${PREFIX}race:expired`), '"new"');
});

test('interop: getOrSet stores exactly the JSON text set stores, readable by get and a raw client', async () => {
  const value = { name: 'Ünïcode ✓', list: [1, 2.5, null, true], nested: { a: 'b' } };
  await cache.getOrSet('interop:1', () => value, { ttl: 60, grace: 30 });
  assert.equal(await raw.cmd('GET', `${PREFIX}interop:1`), JSON.stringify(value));
  assert.deepEqual(await cache.get('interop:1'), value);
  const pttl = await raw.cmd('PTTL', `${PREFIX}interop:1`);
  assert.ok(pttl > 60000 && pttl <= 90000, `stored for ttl + grace: ${pttl}`);
  // And a value written by set is a hit for getOrSet.
  await cache.set('interop:2', [1, 2]);
  assert.deepEqual(await cache.getOrSet('interop:2', () => 'never'), [1, 2]);
});

test('grace and fail-safe: a failing factory answers with the stale value and extends its grace; without one the error rejects as is', async () => {
  await cache.getOrSet('fs:1', () => 'v1', { ttl: 0.1, grace: 60 });
  await eventually(async () => (await raw.cmd('PTTL', `${PREFIX}fs:1`)) < 60000, 'the value is stale');
  const before = await statsOf(cache);
  const boom = new Error('source down');
  let seen;
  const value = await cache.getOrSet('fs:1', (ctx) => {
    seen = ctx.stale;
    throw boom;
  }, { ttl: 5, grace: 60 });
  assert.equal(value, 'v1');
  assert.equal(seen, 'v1', 'ctx.stale is the graced value');
  assert.equal((await statsOf(cache)).staleServed - before.staleServed, 1);
  assert.ok((await raw.cmd('PTTL', `${PREFIX}fs:1`)) >= 60000, 'the stale value is fresh again for a short back-off');
  // No graced value: the factory's own error.
  await assert.rejects(cache.getOrSet('fs:none', () => Promise.reject(boom)), (err) => err === boom);
  await assert.rejects(cache.getOrSet('fs:none', () => {
    throw boom;
  }), (err) => err === boom);
  // The lease was given back: the next call runs the factory.
  assert.equal(await cache.getOrSet('fs:none', () => 'recovered'), 'recovered');
});

test('fail-safe when the factory rejects with a non-Error (undefined, null): the stale value answers; without one, the rejection as is', async () => {
  for (const reason of [undefined, null, 'text']) {
    const key = `fs:odd:${reason}`;
    await cache.getOrSet(key, () => 'v1', { ttl: 0.1, grace: 60 });
    await eventually(async () => (await raw.cmd('PTTL', `${PREFIX}${key}`)) < 60000, 'the value is stale');
    const answer = cache.getOrSet(key, () => Promise.reject(reason), { ttl: 5, grace: 60 });
    const hang = sleep(20000).then(() => 'hang');
    assert.equal(await Promise.race([answer, hang]), 'v1', String(reason));
    await assert.rejects(Promise.race([cache.getOrSet(`${key}:none`, () => Promise.reject(reason)), hang]), (err) => err === reason);
  }
});

test('soft timeout: a slow factory with a stale value answers stale at once, and its result is stored when it comes', async () => {
  await cache.getOrSet('soft:1', () => 'old', { ttl: 0.05, grace: 60 });
  await eventually(async () => (await raw.cmd('PTTL', `${PREFIX}soft:1`)) < 60000, 'the value is stale');
  const g = gate();
  const value = await cache.getOrSet('soft:1', async () => {
    await g.opened;
    return 'new';
  }, { ttl: 60, grace: 60, timeout: 10 });
  assert.equal(value, 'old');
  g.open();
  await eventually(async () => (await raw.cmd('GET', `${PREFIX}soft:1`)) === '"new"', 'the background result is stored');
  // Without a stale value the soft timeout does not apply.
  const g2 = gate();
  const cold = cache.getOrSet('soft:cold', async () => {
    await g2.opened;
    return 'fresh';
  }, { timeout: 1 });
  await sleep(20);
  g2.open();
  assert.equal(await cold, 'fresh');
});

test('hardTimeout: rejects with ERR_FACTORY_TIMEOUT and aborts ctx.signal; the factory still finishes and stores', async () => {
  const g = gate();
  let signal;
  await assert.rejects(
    cache.getOrSet('hard:1', async (ctx) => {
      signal = ctx.signal;
      await g.opened;
      return 'late';
    }, { hardTimeout: 20 }),
    (err) => err.code === 'ERR_FACTORY_TIMEOUT' && /hardTimeout/.test(err.message),
  );
  assert.equal(signal.aborted, true);
  assert.equal(signal.reason.code, 'ERR_FACTORY_TIMEOUT');
  g.open();
  await eventually(async () => (await raw.cmd('GET', `${PREFIX}hard:1`)) === '"late"', 'the late result is stored');
  // A caller waiting on another instance's run is bounded by hardTimeout too.
  const other = new CacheModule({ host: '127.0.0.1', port: server.port, keyPrefix: PREFIX });
  await other.initialize();
  const g3 = gate();
  let runs = 0;
  const holder = other.getOrSet('hard:3', async () => {
    runs++;
    await g3.opened;
    return 'held';
  });
  await eventually(() => runs === 1, 'the other instance runs the factory');
  await assert.rejects(cache.getOrSet('hard:3', () => {
    runs++;
    return 'never';
  }, { hardTimeout: 20, lockTimeout: 60000 }), { code: 'ERR_FACTORY_TIMEOUT' });
  assert.equal(runs, 1, 'the waiter did not run the factory');
  g3.open();
  assert.equal(await holder, 'held');
  await other.disconnect();
  // With a graced value, the hard timeout answers stale (fail-safe).
  await cache.getOrSet('hard:2', () => 'old', { ttl: 0.05, grace: 60 });
  await eventually(async () => (await raw.cmd('PTTL', `${PREFIX}hard:2`)) < 60000, 'the value is stale');
  const g2 = gate();
  assert.equal(await cache.getOrSet('hard:2', () => g2.opened.then(() => 'new'), { ttl: 0.05, grace: 60, hardTimeout: 20 }), 'old');
  g2.open();
});

test('refreshAhead: the first read past the threshold answers at once and starts one background refresh', async () => {
  let runs = 0;
  const g = gate();
  const factory = async () => {
    runs++;
    if (runs > 1) await g.opened;
    return `v${runs}`;
  };
  // Due after 1 % of the ttl: the value cannot expire under the test.
  const opts = { ttl: 10, refreshAhead: 0.01 };
  assert.equal(await cache.getOrSet('ra:1', factory, opts), 'v1');
  await eventually(async () => (await raw.cmd('PTTL', `${PREFIX}ra:1`)) < 9900, 'past the refresh threshold');
  // Its factory is held by the gate, so an answer proves the caller did not wait for it.
  assert.equal(await cache.getOrSet('ra:1', factory, opts), 'v1');
  await eventually(() => runs === 2, 'the background refresh runs');
  assert.equal(await cache.getOrSet('ra:1', factory, opts), 'v1');
  assert.equal(runs, 2, 'one background refresh at a time');
  g.open();
  await eventually(async () => (await raw.cmd('GET', `${PREFIX}ra:1`)) === '"v2"', 'the refresh is stored');
  assert.equal(await cache.getOrSet('ra:1', factory, opts), 'v2');
});

test('a refresh-ahead run that fails leaves the fresh value as long as it was (the fail-safe extension never shortens)', async () => {
  const opts = { ttl: 60, refreshAhead: 0.01 };
  assert.equal(await cache.getOrSet('ra:fail', () => 'v1', opts), 'v1');
  await eventually(async () => (await raw.cmd('PTTL', `${PREFIX}ra:fail`)) < 59400, 'past the refresh threshold');
  let failed = false;
  assert.equal(
    await cache.getOrSet('ra:fail', () => {
      failed = true;
      throw new Error('source down');
    }, opts),
    'v1',
  );
  await eventually(async () => failed && (await raw.cmd('KEYS', `${PREFIX}__fluxor__:lease:*ra:fail`)).length === 0, 'the refresh failed and gave its lease back');
  // About 59 s were left; the fail-safe back-off is min(ttl, 10 s).
  assert.ok((await raw.cmd('PTTL', `${PREFIX}ra:fail`)) > 30000, 'not shortened to the back-off');
});

test('skip() and undefined: the value is returned and not stored; undefined resolves to null', async () => {
  assert.equal(await cache.getOrSet('skip:1', (ctx) => {
    ctx.skip();
    return 'not stored';
  }), 'not stored');
  assert.equal(await raw.cmd('EXISTS', `${PREFIX}skip:1`), 0);
  assert.equal(await cache.getOrSet('undef:1', () => undefined), null);
  assert.equal(await cache.getOrSet('undef:1', async () => {}), null);
  assert.equal(await raw.cmd('EXISTS', `${PREFIX}undef:1`), 0);
  assert.deepEqual(await raw.cmd('KEYS', `${PREFIX}__fluxor__:lease:*`), [], 'no lease left behind');
});

test('ctx.setTtl and ctx.setTags: the factory decides how its result is stored', async () => {
  assert.equal(await cache.getOrSet('adapt:1', (ctx) => {
    assert.equal(ctx.key, 'adapt:1');
    ctx.setTtl(500);
    ctx.setTags(['adaptive']);
    return 'a';
  }, { ttl: 5, grace: 10 }), 'a');
  const pttl = await raw.cmd('PTTL', `${PREFIX}adapt:1`);
  assert.ok(pttl > 500000 && pttl <= 510000, `ttl from the factory plus grace: ${pttl}`);
  assert.equal(await cache.invalidate('tag', 'adaptive'), 1);
  assert.equal(await raw.cmd('EXISTS', `${PREFIX}adapt:1`), 0);
  // A bad argument from the factory rejects (nothing stored).
  await assert.rejects(cache.getOrSet('adapt:2', (ctx) => ctx.setTtl(-1)), (err) => err instanceof RangeError && /ctx\.setTtl/.test(err.message));
  await assert.rejects(cache.getOrSet('adapt:2', (ctx) => ctx.setTags('x')), (err) => err instanceof TypeError && /ctx\.setTags/.test(err.message));
});

test('forceFresh runs the factory over a fresh value', async () => {
  await cache.getOrSet('ff:1', () => 'a');
  assert.equal(await cache.getOrSet('ff:1', () => 'b'), 'a');
  assert.equal(await cache.getOrSet('ff:1', () => 'b', { forceFresh: true }), 'b');
  assert.equal(await cache.get('ff:1'), 'b');
});

test('bad arguments: TypeError / RangeError naming the option, own properties only', async () => {
  const f = () => 1;
  await assert.rejects(cache.getOrSet('', f), TypeError);
  await assert.rejects(cache.getOrSet('__fluxor__:x', f), TypeError);
  await assert.rejects(cache.getOrSet('k', 'not a function'), (e) => e instanceof TypeError && /factory/.test(e.message));
  await assert.rejects(cache.getOrSet('k', f, 'opts'), TypeError);
  const bad = [
    [{ ttl: '1h' }, TypeError, 'options.ttl'],
    [{ ttl: -1 }, RangeError, 'options.ttl'],
    [{ grace: NaN }, RangeError, 'options.grace'],
    [{ tags: 'x' }, TypeError, 'options.tags'],
    [{ timeout: -5 }, RangeError, 'options.timeout'],
    [{ timeout: '5' }, TypeError, 'options.timeout'],
    [{ hardTimeout: 0 }, RangeError, 'options.hardTimeout'],
    [{ refreshAhead: 1 }, RangeError, 'options.refreshAhead'],
    [{ refreshAhead: '0.5' }, TypeError, 'options.refreshAhead'],
    [{ lockTimeout: Infinity }, RangeError, 'options.lockTimeout'],
    [{ forceFresh: 1 }, TypeError, 'options.forceFresh'],
  ];
  for (const [options, Class, name] of bad) {
    await assert.rejects(cache.getOrSet('k', f, options), (e) => e instanceof Class && e.code === 'ERR_INVALID_ARG' && e.message.includes(name), JSON.stringify(options));
  }
  // Inherited properties are not options.
  const inherited = Object.create({ ttl: 'bad', forceFresh: 'bad' });
  assert.equal(await cache.getOrSet('own:1', () => 'ok', inherited), 'ok');
});

test('disconnect() while a factory runs gives its lease back: another instance need not wait for it to expire', async () => {
  const a = new CacheModule({ host: '127.0.0.1', port: server.port, keyPrefix: PREFIX });
  await a.initialize();
  const g = gate();
  const first = a.getOrSet('disc:1', async () => {
    await g.opened;
    return 'from a';
  }, { lockTimeout: 60000 });
  const lease = async () => (await raw.cmd('KEYS', `${PREFIX}__fluxor__:lease:*disc:1`)).length;
  await eventually(async () => (await lease()) === 1, 'a holds the lease');
  await a.disconnect();
  assert.equal(await lease(), 0, 'the lease was given back by disconnect()');
  assert.equal(await cache.getOrSet('disc:1', () => 'from cache', { lockTimeout: 60000 }), 'from cache');
  g.open();
  assert.equal(await first, 'from a', "a's caller still gets its factory's value");
  assert.equal(await cache.get('disc:1'), 'from cache', "a's result is not stored over it");
});

test('Redis unreachable: the factory runs and its value is returned', async (t) => {
  const s = await startRedis();
  const c = new CacheModule({ host: '127.0.0.1', port: s.port, keyPrefix: PREFIX, retryStrategy: () => 60000 });
  t.after(() => c.disconnect());
  // Not connected yet.
  assert.equal(await c.getOrSet('down:1', () => 'before init'), 'before init');
  await c.initialize();
  await s.stop('SIGKILL');
  assert.equal(await c.getOrSet('down:1', () => 'from the factory'), 'from the factory');
  assert.equal(await c.getOrSet('down:1', () => 'again'), 'again');
  await assert.rejects(c.getOrSet('down:2', () => {
    throw new Error('factory failed too');
  }), /factory failed too/);
  assert.equal((await c.getStats()).factoryRuns, 4);
});

test('a paused server (CLIENT PAUSE, SIGSTOP): no hang, the factory answers after commandTimeout', async (t) => {
  const s = await startRedis();
  t.after(() => s.stop());
  const c = new CacheModule({ host: '127.0.0.1', port: s.port, keyPrefix: PREFIX, commandTimeout: 300 });
  await c.initialize();
  t.after(() => c.disconnect());
  const r = await s.raw();
  t.after(() => r.close());
  await r.cmd('CLIENT', 'PAUSE', 3000, 'ALL');
  assert.equal(await c.getOrSet('paused:1', () => 'paused answer'), 'paused answer');
  process.kill(s.pid, 'SIGSTOP');
  try {
    assert.equal(await c.getOrSet('paused:2', () => 'stopped answer'), 'stopped answer');
  } finally {
    process.kill(s.pid, 'SIGCONT');
  }
});

test('password changed under the instance, or no permission for scripts: the factory still answers', async (t) => {
  const s = await startRedis({ args: ['--requirepass', 'pw1'] });
  t.after(() => s.stop());
  const c = new CacheModule({ host: '127.0.0.1', port: s.port, password: 'pw1', keyPrefix: PREFIX, retryStrategy: () => 50 });
  c.on('error', () => {});
  await c.initialize();
  assert.equal(await c.getOrSet('pw:1', () => 'stored'), 'stored');
  const r = await s.raw();
  t.after(() => r.close());
  await r.cmd('AUTH', 'pw1');
  await r.cmd('CONFIG', 'SET', 'requirepass', 'pw2');
  await r.cmd('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
  assert.equal(await c.getOrSet('pw:2', () => 'from the factory'), 'from the factory');
  await c.disconnect();
  // A user who may GET but not run scripts: the lease fails, the factory answers.
  await r.cmd('ACL', 'SETUSER', 'reader', 'on', '>readpw', '~*', '+get', '+ping', '+publish', '+subscribe');
  const reader = new CacheModule({ host: '127.0.0.1', port: s.port, username: 'reader', password: 'readpw', keyPrefix: PREFIX });
  await reader.initialize();
  t.after(() => reader.disconnect());
  assert.equal(await reader.getOrSet('pw:3', () => 'no scripts'), 'no scripts');
});

test('a user without channel permissions (Redis 7 ACL default): getOrSet still stores, and a waiter still gets the value', async (t) => {
  await raw.cmd('ACL', 'SETUSER', 'nochannels', 'on', '>ncpw', '~*', '+@all', 'resetchannels');
  t.after(() => raw.cmd('ACL', 'DELUSER', 'nochannels'));
  const options = { host: '127.0.0.1', port: server.port, username: 'nochannels', password: 'ncpw', keyPrefix: PREFIX };
  const a = new CacheModule(options);
  const b = new CacheModule(options);
  await a.initialize();
  await b.initialize();
  t.after(() => Promise.all([a.disconnect(), b.disconnect()]));
  let runs = 0;
  for (let i = 0; i < 3; i++) assert.equal(await a.getOrSet('nochan:1', () => ++runs, { ttl: 60 }), 1);
  assert.equal(runs, 1, 'one factory run: the first call stored its result');
  assert.equal(await raw.cmd('GET', `${PREFIX}nochan:1`), '1');
  // A waiter in another instance: no PUBLISH reaches it, it polls.
  const g = gate();
  const first = a.getOrSet('nochan:2', async () => {
    await g.opened;
    return 'made once';
  }, { lockTimeout: 60000 });
  await eventually(async () => (await raw.cmd('KEYS', `${PREFIX}__fluxor__:lease:*nochan:2`)).length > 0, 'the lease is taken');
  const second = b.getOrSet('nochan:2', () => 'made twice', { lockTimeout: 60000 });
  g.open();
  assert.deepEqual(await Promise.all([first, second]), ['made once', 'made once']);
});

test('cluster mode: single flight, braces in keys, writes during a factory win, invalidation cancels', async (t) => {
  const cluster = await startCluster({ masters: 3, replicasPerMaster: 0 });
  t.after(() => cluster.stop());
  const router = await cluster.router();
  t.after(() => router.close());
  const c = new CacheModule({ enableCluster: true, clusterNodes: cluster.seeds, keyPrefix: 'gc:' });
  await c.initialize();
  t.after(() => c.disconnect());
  for (const key of ['plain', 'user:{42}:profile', '}{', '{}x', 'a}b{c}']) {
    let runs = 0;
    const g = gate();
    const calls = Array.from({ length: 50 }, () => c.getOrSet(key, async () => {
      runs++;
      await g.opened;
      return { key };
    }, { ttl: 60, grace: 10 }));
    await eventually(() => runs === 1, 'the factory started');
    g.open();
    for (const v of await Promise.all(calls)) assert.deepEqual(v, { key });
    assert.equal(runs, 1, key);
    assert.equal(await router.cmd('GET', `gc:${key}`), JSON.stringify({ key }));
    // A set during a factory run wins.
    assert.equal(await c.getOrSet(key, async () => {
      await c.set(key, 'set meanwhile');
      return 'late';
    }, { forceFresh: true }), 'late');
    assert.equal(await router.cmd('GET', `gc:${key}`), '"set meanwhile"');
    // So does an invalidation.
    await c.del(key);
    assert.equal(await c.getOrSet(key, async () => {
      await c.invalidate('pattern', 'nothing-matches-*');
      return 'late';
    }), 'late');
    assert.equal(await router.cmd('GET', `gc:${key}`), null);
  }
  // Across instances: the second waits for the first's run (woken through any node's PUBLISH).
  const c2 = new CacheModule({ enableCluster: true, clusterNodes: cluster.seeds, keyPrefix: 'gc:' });
  await c2.initialize();
  t.after(() => c2.disconnect());
  let runs = 0;
  const g = gate();
  const first = c.getOrSet('across', async () => {
    runs++;
    await g.opened;
    return 'one';
  });
  await eventually(() => runs === 1, 'the first instance runs the factory');
  const second = c2.getOrSet('across', () => {
    runs++;
    return 'two';
  }, { lockTimeout: 30000 });
  g.open();
  assert.deepEqual(await Promise.all([first, second]), ['one', 'one']);
  assert.equal(runs, 1);
});

test('behind Sentinel: a second instance is woken on the master found through the sentinels', async (t) => {
  const group = await startSentinels({ password: 'pw' });
  t.after(() => group.stop());
  const options = { sentinels: group.nodes, name: group.name, password: 'pw', keyPrefix: 'gsn:' };
  const a = new CacheModule(options);
  const b = new CacheModule(options);
  await a.initialize();
  await b.initialize();
  t.after(() => Promise.all([a.disconnect(), b.disconnect()]));
  const admin = await group.admin(group.master);
  t.after(() => admin.close());
  let runs = 0;
  const g = gate();
  const first = a.getOrSet('s:1', async () => {
    runs++;
    await g.opened;
    return 'one';
  });
  await eventually(() => runs === 1, 'the first instance runs the factory');
  const second = b.getOrSet('s:1', () => {
    runs++;
    return 'two';
  }, { lockTimeout: 30000 });
  await eventually(async () => (await admin.cmd('PUBSUB', 'NUMSUB', 'gsn:__fluxor__:filled'))[1] >= 1, 'the waiter subscribed on the master');
  g.open();
  assert.deepEqual(await Promise.all([first, second]), ['one', 'one']);
  assert.equal(runs, 1);
});

test('stats: factoryRuns, staleServed and coalesced start at 0 on a new instance', async (t) => {
  const c = new CacheModule({ host: '127.0.0.1', port: server.port, keyPrefix: PREFIX });
  await c.initialize();
  t.after(() => c.disconnect());
  assert.deepEqual(await statsOf(c), { factoryRuns: 0, staleServed: 0, coalesced: 0 });
  await Promise.all([c.getOrSet('st:1', () => 1), c.getOrSet('st:1', () => 2)]);
  assert.deepEqual(await statsOf(c), { factoryRuns: 1, staleServed: 0, coalesced: 1 });
});
