// Every public method and option of @fluxor/cache-module, written the way a
// user's strict TypeScript project would. It is only type-checked
// (`tsc --noEmit` in a project that installed the packed tarball), never run.
//
// Each `// @ts-expect-error` marks a deliberate misuse. tsc fails when such a
// line does NOT error, and package.test.js also compiles a copy without the
// markers and checks that every marked line errors: the types really bite.

import CacheModule = require('@fluxor/cache-module');

/** true when A and B are the same type (not merely assignable). */
type Equals<A, B> = (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false;
/** Compiles only when `ok` can be `true`, i.e. when A and B are the same type. */
function exact<A, B>(ok: Equals<A, B>): void {
  void ok;
}

interface User {
  id: number;
  name: string;
}

interface Product {
  id: number;
  name: string;
  price: number;
}

declare function fetchAllProducts(): Promise<Product[]>;
declare function fetchFromDatabase(): Promise<User>;

// ---- construction and options ---------------------------------------------

const everyOption: CacheModule.CacheOptions = {
  host: 'localhost',
  port: 6379,
  password: 'secret',
  username: 'app',
  db: 0,
  url: 'rediss://app:secret@127.0.0.1:6380/0',
  tls: {
    ca: ['-----BEGIN CERTIFICATE-----', new Uint8Array(0)],
    cert: new Uint8Array(0),
    key: '-----BEGIN PRIVATE KEY-----',
    rejectUnauthorized: true,
    servername: 'cache.internal',
  },
  enableCluster: false,
  clusterNodes: [
    { host: '127.0.0.1', port: 7000 },
    { host: '127.0.0.1', port: 7001 },
  ],
  keyPrefix: 'fluxor:',
  defaultTTL: 3600,
  connectTimeout: 5000,
  commandTimeout: 5000,
  retryStrategy: (times) => (times > 20 ? null : Math.min(times * 50, 2000)),
  connectionName: 'app-1',
};
const viaSentinel: CacheModule.CacheOptions = {
  sentinels: [{ host: '127.0.0.1', port: 26379 }, { host: 'sentinel-2' }],
  name: 'mymaster',
  sentinelUsername: 'sentinel-user',
  sentinelPassword: 'sentinel-secret',
  password: 'master-secret',
};
new CacheModule(viaSentinel);
new CacheModule({ url: 'redis+sentinel://:pw@127.0.0.1:26379,127.0.0.1:26380/mymaster/0' });
// @ts-expect-error the store is 'redis' or 'memory'
new CacheModule({ store: 'disk' });
// @ts-expect-error sentinels are objects, not "host:port" strings
new CacheModule({ sentinels: ['127.0.0.1:26379'], name: 'mymaster' });

new CacheModule();
new CacheModule({});
new CacheModule({ tls: true });
new CacheModule({ tls: { ca: 'pem' } });
new CacheModule({ retryStrategy: () => undefined });
new CacheModule({ retryStrategy: () => {} });
// @ts-expect-error the port is a number
new CacheModule({ port: '6379' });
// @ts-expect-error an unknown option
new CacheModule({ hots: 'localhost' });
// @ts-expect-error cluster nodes are objects, not "host:port" strings
new CacheModule({ enableCluster: true, clusterNodes: ['127.0.0.1:7000'] });

/** Subclasses keep the types (initialize resolves the subclass). */
class AppCache extends CacheModule {
  userKey(id: number): string {
    return this.generateKey('user', id);
  }
}

export async function everything(): Promise<void> {
  const cache = new CacheModule(everyOption);

  const prefix: string = cache.keyPrefix;
  void prefix;
  // @ts-expect-error keyPrefix is read-only
  cache.keyPrefix = 'other:';

  // ---- connection ---------------------------------------------------------
  const same = await cache.initialize();
  exact<typeof same, CacheModule>(true);
  const app = await new AppCache().initialize();
  exact<typeof app, AppCache>(true);
  app.userKey(1);

  // ---- core ---------------------------------------------------------------
  const unknownValue = await cache.get('user:123');
  exact<typeof unknownValue, unknown>(true);
  const user = await cache.get<User>('user:123');
  exact<typeof user, User | null>(true);
  const byNumber = await cache.get<number>(42);
  exact<typeof byNumber, number | null>(true);
  await cache.get('key', {});

  const withValue = await cache.get<string>('key', { fallback: 'default' });
  exact<typeof withValue, string>(true);
  const withAsync = await cache.get<User>('user:1', { fallback: async () => fetchFromDatabase() });
  exact<typeof withAsync, User>(true);
  const withSync = await cache.get<User>('user:1', { fallback: () => ({ id: 1, name: 'John' }) });
  exact<typeof withSync, User>(true);
  const withOther = await cache.get<User, 'none'>('user:1', { fallback: 'none' });
  exact<typeof withOther, User | 'none'>(true);
  const getOptions: CacheModule.GetOptions<string> = Math.random() > 0.5 ? { fallback: 'default' } : {};
  const maybe = await cache.get<string>('key', getOptions);
  exact<typeof maybe, string | null>(true);
  const inferred = await cache.get('key', { fallback: async () => 'default' });
  exact<typeof inferred, unknown>(true);
  // @ts-expect-error the fallback must be a User
  await cache.get<User>('user:1', { fallback: 42 });
  // @ts-expect-error the fallback function must give a User
  await cache.get<User>('user:1', { fallback: async () => 'nobody' });
  // @ts-expect-error keys are strings or numbers
  await cache.get({ id: 1 });

  const stored = await cache.set('user:123', { name: 'John', email: 'john@example.com' });
  exact<typeof stored, true>(true);
  await cache.set(123, 'plain string');
  await cache.set('session:abc', { userId: 123 }, { ttl: 1800 });
  await cache.set('short', 1, { ttl: 0.25, tags: ['users', 'tenant:7'] });
  await cache.set('forever', null, { ttl: 0 });
  // @ts-expect-error ttl is a number of seconds, not a string
  await cache.set('key', 1, { ttl: '60s' });
  // @ts-expect-error tags are an array of strings
  await cache.set('key', 1, { tags: 'users' });

  const removed = await cache.del('user:123');
  exact<typeof removed, boolean>(true);
  const found = await cache.exists('user:123');
  exact<typeof found, boolean>(true);
  const expired = await cache.expire('user:123', 60);
  exact<typeof expired, boolean>(true);
  await cache.expire(7, 0);
  // @ts-expect-error expire needs the ttl in seconds
  await cache.expire('user:123');
  const left = await cache.ttl('user:123');
  exact<typeof left, number>(true);

  // ---- batches ------------------------------------------------------------
  await cache.mset({
    'product:1': { name: 'Product 1', price: 99.99 },
    'product:2': { name: 'Product 2', price: 149.99 },
  });
  await cache.mset(new Map<string | number, unknown>([['a', 1], [2, 'two']]), { ttl: 60, tags: ['batch'] });
  const done = await cache.mset(new Map([['only', { ok: true }]]));
  exact<typeof done, true>(true);
  // @ts-expect-error pairs are a plain object or a Map, not an array of entries
  await cache.mset([['a', 1]]);

  const products = await cache.mget<Product>(['product:1', 'product:2', 3]);
  exact<typeof products, Array<Product | null>>(true);
  const keys = ['a', 'b'] as const;
  const values = await cache.mget(keys);
  exact<typeof values, unknown[]>(true);
  // @ts-expect-error mget takes an array of keys
  await cache.mget('product:1');

  // ---- key patterns -------------------------------------------------------
  const userKey = cache.generateKey('user', 123);
  exact<typeof userKey, string>(true);
  cache.generateKey('inventory', 'sku-1');
  cache.generateKey('order', 9);
  cache.generateKey('session', 'abc');
  cache.generateKey('analytics', 'pageviews', '2024-01-01');
  cache.generateKey('forecast', 'sku-1', '2024-01-01');
  cache.generateKey('channel', 'web', 'prices');
  cache.registerKeyPattern('custom', (type: string, id: number) => `custom:${type}:${id}`);
  cache.generateKey('custom', 'a', 1);
  // @ts-expect-error pattern arguments are strings or numbers
  cache.generateKey('user', { id: 1 });
  // @ts-expect-error a key pattern returns the key string
  cache.registerKeyPattern('broken', () => 42);

  // ---- invalidation -------------------------------------------------------
  const cascaded = await cache.invalidate('cascade', 'user:123');
  exact<typeof cascaded, number>(true);
  const tagged: number = await cache.invalidate('tag', 'users');
  const matched: number = await cache.invalidate('pattern', 'session:*');
  void tagged;
  void matched;
  cache.registerInvalidationStrategy('custom', async (param: string) => param.length);
  cache.registerInvalidationStrategy('noop', () => {});
  const custom = await cache.invalidate('custom', 'param', 2);
  exact<typeof custom, unknown>(true);

  // ---- warming ------------------------------------------------------------
  const warmed = await cache.warmCache(
    async () => {
      return await fetchAllProducts();
    },
    {
      keyExtractor: (product) => `product:${product.id}:${product.price.toFixed(2)}`,
      ttl: 7200,
      tags: ['products'],
      batchSize: 500,
    },
  );
  exact<typeof warmed, CacheModule.WarmResult>(true);
  const loaded: number = warmed.loaded;
  void loaded;
  await cache.warmCache(fetchAllProducts);
  await cache.warmCache(() => [{ id: 1 }, { id: 2 }], { keyExtractor: (item) => item.id });
  await cache.warmCache(() => ['a', 'b'], { keyExtractor: (item, index) => `${item}:${index}` });
  await cache.warmCache(() => ({ 'config:a': 1, 'config:b': 2 }));
  await cache.warmCache(() => new Map<string | number, string>([['a', 'x'], [2, 'y']]));
  await cache.warmCache(() => new Set([{ id: 1 }]));
  await cache.warmCache(async function* () {
    yield { id: 1, name: 'streamed' };
  });
  // @ts-expect-error keyExtractor returns a key (string or number)
  await cache.warmCache(fetchAllProducts, { keyExtractor: (product) => product });

  // ---- locks --------------------------------------------------------------
  const lock = await cache.lock('resource:critical', { ttl: 30, retries: 10, retryDelay: 100, autoExtend: false });
  exact<typeof lock, CacheModule.Lock>(true);
  const lockKey: string = lock.key;
  const token: string = lock.token;
  const fencing: number = lock.fencingToken;
  void [lockKey, token, fencing];
  try {
    const extended = await lock.extend();
    exact<typeof extended, boolean>(true);
    await lock.extend(60);
  } finally {
    const released = await lock.release();
    exact<typeof released, boolean>(true);
  }
  // @ts-expect-error the fencing token is read-only
  lock.fencingToken = 0;
  await cache.lock(99, { autoExtend: true });
  await cache.lock('bare');
  // @ts-expect-error the lock ttl is a number of seconds
  await cache.lock('resource', { ttl: '30s' });

  const doubled = await cache.withLock('job', async (held) => held.fencingToken * 2, { ttl: 5, retries: 0 });
  exact<typeof doubled, number>(true);
  const label = await cache.withLock(1, () => 'sync');
  exact<typeof label, string>(true);
  const signalled = await cache.withLock('job', async (held, signal) => {
    exact<typeof signal, CacheModule.AbortSignalLike>(true);
    return signal === held.signal && !signal.aborted;
  });
  exact<typeof signalled, boolean>(true);
  const lost = await cache.lock('watched', { autoExtend: true });
  lost.on('lost', (err) => {
    exact<typeof err, CacheModule.CacheError>(true);
    const reason: unknown = lost.signal.reason;
    void [err.code === 'ERR_LOCK_LOST', reason];
  });
  lost.once('lost', () => {}).off('lost', () => {});
  // @ts-expect-error a Lock emits only 'lost'
  lost.on('released', () => {});
  // @ts-expect-error the signal is read-only
  lost.signal = lost.signal;

  // ---- getOrSet -----------------------------------------------------------
  const profile = await cache.getOrSet<User>('user:1', async (ctx) => {
    exact<typeof ctx.key, string>(true);
    exact<typeof ctx.stale, User | undefined>(true);
    const aborted: boolean = ctx.signal.aborted;
    ctx.setTtl(60);
    ctx.setTags(['users']);
    if (aborted) ctx.skip();
    return fetchFromDatabase();
  }, { ttl: 60, grace: 600, timeout: 100, hardTimeout: 2000, refreshAhead: 0.8, lockTimeout: 1000, forceFresh: false, tags: ['users'] });
  exact<typeof profile, User>(true);
  const counted = await cache.getOrSet(7, () => 42);
  exact<typeof counted, number>(true);
  // @ts-expect-error grace is a number of seconds
  await cache.getOrSet('k', () => 1, { grace: '1h' });
  // @ts-expect-error the factory is required
  await cache.getOrSet('k');

  // ---- monitoring ---------------------------------------------------------
  const stats = await cache.getStats();
  exact<typeof stats, CacheModule.Stats>(true);
  const hitRatePct: number = (stats.hits / (stats.hits + stats.misses)) * 100;
  const usedMb: number = stats.memory.used / 1024 / 1024;
  const counters: number[] = [
    stats.hitRate,
    stats.sets,
    stats.deletes,
    stats.errors,
    stats.operations,
    stats.factoryRuns,
    stats.staleServed,
    stats.coalesced,
    stats.latency.p50,
    stats.latency.p99,
    stats.memory.peak,
    stats.memory.rss,
    stats.keys,
  ];
  const connected: boolean = stats.connected;
  const version: string = stats.server.version;
  exact<typeof stats.server.mode, 'standalone' | 'cluster' | 'memory'>(true);
  const evictions: number | undefined = stats.memory.evictions;
  void evictions;
  const memoryStore = new CacheModule({ store: 'memory', memory: { name: 'app', maxEntries: 1000, maxBytes: 1 << 20 } });
  const memoryUrl = new CacheModule({ url: 'memory://app' });
  void [memoryStore, memoryUrl];
  const nodes: string[] = stats.server.nodes;
  const evictionPolicy: string = stats.server.evictionPolicy;
  void [hitRatePct, usedMb, counters, connected, version, nodes, evictionPolicy];
  cache.on('warning', (w) => {
    exact<typeof w.code, 'WARN_EVICTION_POLICY'>(true);
    exact<typeof w.policy, string>(true);
  });
  const windowed = await cache.getStats({ reset: true });
  const gets: CacheModule.OperationStats | undefined = windowed.byOperation.get;
  const p99: number | undefined = windowed.byOperation.mget?.p99;
  void [gets?.count, gets?.errors, gets?.p50, gets?.p90, gets?.max, p99];
  // @ts-expect-error reset is a boolean
  await cache.getStats({ reset: 'yes' });
  // @ts-expect-error byOperation names operation kinds
  void windowed.byOperation.fetch;
  const exposition: string = cache.metrics();
  const roundTripMs: number = await cache.ping();
  void [exposition, roundTripMs];
  const onCommand = (ctx: CacheModule.CommandContext): string =>
    ctx.operation === 'invalidate' ? `${ctx.strategy} ${ctx.argument} on ${ctx.server}` : `${ctx.operation} ${ctx.key ?? ctx.keyCount} ${ctx.error?.code ?? ''}`;
  void onCommand;

  // ---- events -------------------------------------------------------------
  const onError = (err: CacheModule.CacheError): void => {
    exact<typeof err.code, CacheModule.ErrorCode>(true);
  };
  const onReconnecting = (delayMs: number): void => void delayMs;
  const chained: CacheModule = cache
    .on('connect', () => {})
    .on('ready', () => {})
    .on('end', () => {})
    .on('error', onError)
    .on('reconnecting', onReconnecting);
  void chained;
  cache.once('ready', () => {});
  cache.once('error', (err) => void err.code);
  cache.addListener('end', () => {});
  cache.prependListener('connect', () => {});
  cache.prependOnceListener('reconnecting', (ms) => void ms.toFixed());
  cache.off('error', onError);
  cache.removeListener('reconnecting', onReconnecting);
  cache.removeAllListeners('error');
  cache.removeAllListeners();
  const listening: number = cache.listenerCount('error');
  const emitted: boolean = cache.emit('reconnecting', 100);
  cache.emit('ready');
  cache.listeners('error');
  cache.rawListeners('end');
  cache.eventNames();
  cache.setMaxListeners(20);
  const max: number = cache.getMaxListeners();
  void [listening, emitted, max];
  // @ts-expect-error no such event
  cache.on('conect', () => {});
  // @ts-expect-error 'reconnecting' gives the delay in ms, a number
  cache.on('reconnecting', (delay: string) => void delay);
  // @ts-expect-error 'error' carries the error
  cache.emit('error');

  // ---- errors -------------------------------------------------------------
  exact<
    CacheModule.ErrorCode,
    | 'ERR_NOT_CONNECTED'
    | 'ERR_CONNECTION'
    | 'ERR_TIMEOUT'
    | 'ERR_AUTH'
    | 'ERR_NOPERM'
    | 'ERR_OOM'
    | 'ERR_READONLY'
    | 'ERR_UNAVAILABLE'
    | 'ERR_LOCK_NOT_ACQUIRED'
    | 'ERR_LOCK_LOST'
    | 'ERR_UNKNOWN_PATTERN'
    | 'ERR_UNKNOWN_STRATEGY'
    | 'ERR_REPLY_TOO_LARGE'
    | 'ERR_FACTORY_TIMEOUT'
    | 'ERR_INVALID_ARG'
    | 'ERR_REDIS'
  >(true);
  try {
    await cache.lock('busy', { retries: 0 });
  } catch (err) {
    const code = (err as CacheModule.CacheError).code;
    if (code === 'ERR_LOCK_NOT_ACQUIRED') void code;
    // @ts-expect-error not one of the module's codes
    if (code === 'ERR_LOCKED') void code;
    if (CacheModule.isCacheError(err)) {
      exact<typeof err.code, CacheModule.ErrorCode>(true);
      const redisCode: string | undefined = err.redisCode;
      const cause: unknown = err.cause;
      void [redisCode, cause];
    }
    if (err instanceof CacheModule.CacheError) void err.code;
  }
  const made = new CacheModule.CacheError('ERR_REDIS', 'text', { redisCode: 'WRONGTYPE' });
  const isError: Error = made;
  void isError;

  // ---- scan, serializers, compression ------------------------------------
  for await (const key of cache.scan('user:*', { count: 100 })) exact<typeof key, string>(true);
  const scanned = cache.scan();
  exact<typeof scanned, AsyncIterableIterator<string>>(true);
  // @ts-expect-error the pattern is a string
  cache.scan(5);
  new CacheModule({ serializer: 'v8', compression: { threshold: 512 } });
  new CacheModule({ serializer: { encode: (v) => JSON.stringify(v), decode: (s) => s }, compression: true });
  // @ts-expect-error no such serializer
  new CacheModule({ serializer: 'yaml' });
  // @ts-expect-error encode must give a string or bytes
  new CacheModule({ serializer: { encode: (v: unknown) => [v], decode: (s: unknown) => s } });
  interface Event {
    at: Date;
    seen: Map<string, number>;
    score: number;
    note?: string;
    run: () => void;
  }
  const ev = await cache.get<CacheModule.Jsonified<Event>>('event');
  if (ev) {
    exact<typeof ev.at, string>(true);
    exact<typeof ev.seen, Record<string, never>>(true);
    exact<typeof ev.score, number | null>(true);
    // @ts-expect-error functions do not survive JSON
    ev.run();
  }

  // ---- disconnect ---------------------------------------------------------
  const closed = await cache.disconnect();
  exact<typeof closed, void>(true);
}

// The class is also reachable as `.CacheModule` and `.default`.
exact<typeof CacheModule.CacheModule, typeof CacheModule>(true);
exact<typeof CacheModule.default, typeof CacheModule>(true);
