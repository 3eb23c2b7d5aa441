// Type definitions for @fluxor/cache-module.
//
// Self-contained: nothing here needs @types/node (the EventEmitter methods the
// class inherits at run time are declared below, and binary data is typed as
// Uint8Array, which a Node.js Buffer is). The compiler's lib must include
// ES2018 or later (for AsyncIterable).
//
// Units: every `ttl` and `defaultTTL` is in SECONDS (fractions allowed, ms
// precision); `connectTimeout`, `commandTimeout`, `retryDelay` and the
// retryStrategy's return value are in MILLISECONDS.
//
// Loading: `const CacheModule = require('@fluxor/cache-module')`,
// `import CacheModule = require('@fluxor/cache-module')`,
// `import CacheModule from '@fluxor/cache-module'` and
// `import { CacheModule } from '@fluxor/cache-module'` all give the class
// (ES modules get these typings through index.d.mts).
//
// Values: the `T` of `get<T>`/`mget<T>` is trusted, not checked. With the
// default JSON serializer a value comes back as
// `JSON.parse(JSON.stringify(value))`: a Date as a string, a Map or Set as
// `{}`, NaN and Infinity as null, a Buffer as `{ type, data }`; ask for
// `get<CacheModule.Jsonified<T>>` to have that typed. `serializer: 'v8'`
// keeps them.

declare namespace CacheModule {
  /** A key: a non-empty string of well-formed Unicode (no lone surrogates), or a finite number (turned into its decimal string). */
  export type Key = string | number;

  /** The `code` of every error the module raises. */
  export type ErrorCode =
    /** Before `initialize()` or after `disconnect()`. */
    | 'ERR_NOT_CONNECTED'
    /** Connection refused or lost; the message names `host:port`. */
    | 'ERR_CONNECTION'
    /** `connectTimeout` or `commandTimeout` ran out. */
    | 'ERR_TIMEOUT'
    /** The server refused the password or user, or wants one (`WRONGPASS`, `NOAUTH`). */
    | 'ERR_AUTH'
    /** The user's ACL forbids the command or key (`NOPERM`). */
    | 'ERR_NOPERM'
    /** The server reached `maxmemory` and refuses writes (`OOM`). */
    | 'ERR_OOM'
    /** A write reached a replica (`READONLY`); behind Sentinel the module then looks the master up again. */
    | 'ERR_READONLY'
    /** The server cannot serve now, try later: `LOADING`, `BUSY`, `MASTERDOWN`, `CLUSTERDOWN`, `TRYAGAIN`, an unresolved `MOVED`/`ASK`. */
    | 'ERR_UNAVAILABLE'
    /** `lock()` ran out of retries. */
    | 'ERR_LOCK_NOT_ACQUIRED'
    /** A held lock was lost (its key deleted, taken, or not extended within its ttl): `lost` event, `lock.signal`'s reason, `withLock`. */
    | 'ERR_LOCK_LOST'
    /** `generateKey()` with a pattern that is not registered. */
    | 'ERR_UNKNOWN_PATTERN'
    /** `invalidate()` with a strategy that is not registered. */
    | 'ERR_UNKNOWN_STRATEGY'
    /** A reply too large to become one JavaScript string (a value, or an mget's values together, past V8's 2^29 - 24 characters). */
    | 'ERR_REPLY_TOO_LARGE'
    /** `getOrSet()`: the factory ran past `hardTimeout` (and no stale value could answer). */
    | 'ERR_FACTORY_TIMEOUT'
    /** A bad argument or option (the error is a TypeError or RangeError). */
    | 'ERR_INVALID_ARG'
    /** Any other error reply from the server (`WRONGTYPE`, `ERR …`); its text is the message. */
    | 'ERR_REDIS';

  /**
   * Every error the module raises: every rejection, and every throw from the
   * constructor, `generateKey` and the `register*` methods. Bad arguments
   * stay a TypeError or RangeError (code `ERR_INVALID_ARG`), for which
   * `instanceof CacheError` and `isCacheError` are true as well.
   */
  export class CacheError extends Error {
    constructor(code: ErrorCode, message: string, options?: { cause?: unknown; redisCode?: string });
    readonly code: ErrorCode;
    /** The server's own error code (`WRONGTYPE`, `NOPERM`, `READONLY`…) when the error is a server's reply; the message is then the server's text. */
    readonly redisCode?: string;
    /** The error this one stems from, where there is one. */
    readonly cause?: unknown;
  }

  /** Whether `value` is an error the module raised (a CacheError, or one of its TypeErrors/RangeErrors). */
  export function isCacheError(value: unknown): value is CacheError;

  /** A seed node of a Redis Cluster. */
  export interface ClusterNode {
    host: string;
    port: number;
  }

  /** A Redis Sentinel process. */
  export interface SentinelNode {
    host: string;
    /** Default `26379`. */
    port?: number;
  }

  /** PEM text or bytes (a Node.js Buffer is a Uint8Array). */
  export type PemData = string | Uint8Array;

  /** TLS settings; `tls: true` uses the system's trusted CAs. */
  export interface TlsOptions {
    /** Trusted CA certificate(s), PEM. Default: the system's trusted CAs. */
    ca?: PemData | PemData[];
    /** Client certificate (PEM), for mutual TLS; needs `key`. */
    cert?: PemData;
    /** Client private key (PEM), for mutual TLS; needs `cert`. */
    key?: PemData;
    /** Verify the server's certificate and host name. Default true. */
    rejectUnauthorized?: boolean;
    /** Server name for SNI and certificate verification. Default: the host. */
    servername?: string;
  }

  /** Options of `new CacheModule(options)`; every one is optional. */
  export interface CacheOptions {
    /** Standalone server host. Default: env `REDIS_HOST`, else `'localhost'`. */
    host?: string;
    /** Standalone server port. Default: env `REDIS_PORT`, else `6379`. */
    port?: number;
    /** AUTH password. Default: env `REDIS_PASSWORD`, else none. */
    password?: string;
    /** ACL user name for AUTH. Default: none (the `default` user). */
    username?: string;
    /** Database number (SELECT), standalone only. Default: env `REDIS_DB`, else `0`. */
    db?: number;
    /**
     * `redis://[[user]:password@]host[:port][/db][?db=N]`, `rediss://…` for
     * TLS, `unix:///path/to/redis.sock[?db=N]`, or
     * `redis+sentinel://[[user]:password@]host[:port][,host[:port]…]/name[/db]`
     * (the user and password are the master's); overrides host, port, db and
     * every `REDIS_*` variable. Default: env `REDIS_URL` when no host, port,
     * path, url or sentinels are given. A `#insecure` fragment is refused:
     * say `tls: { rejectUnauthorized: false }` instead.
     */
    url?: string;
    /** CLIENT SETNAME on every connection (not sent to cluster nodes): printable ASCII, no spaces. */
    connectionName?: string;
    /** Redis Sentinel: the sentinels to ask for the master of `name` (port default `26379`). */
    sentinels?: SentinelNode[];
    /** Redis Sentinel: the master group's name (`sentinel monitor <name> …`); required with `sentinels`. */
    name?: string;
    /** Redis Sentinel: ACL user for the sentinels (not the master: that is `username`). */
    sentinelUsername?: string;
    /** Redis Sentinel: password of the sentinels (not the master: that is `password`). */
    sentinelPassword?: string;
    /** A unix socket to connect to instead of host and port. */
    path?: string;
    /**
     * TCP keepalive, so that a silently dead peer is noticed: `true`, `false`,
     * or the MILLISECONDS of idle before the first probe (and between probes,
     * rounded up to whole seconds). Default `true` (5000 ms).
     */
    keepAlive?: boolean | number;
    /** TLS to the server(s): `true`, or the certificates to use. Default false. */
    tls?: boolean | TlsOptions;
    /** Connect to a Redis Cluster through `clusterNodes`. Default false. */
    enableCluster?: boolean;
    /** Cluster seed nodes; required (non-empty) when `enableCluster` is true. */
    clusterNodes?: ClusterNode[];
    /**
     * `'memory'`: no server at all, an in-process store with the same
     * semantics (README "Memory store"); server options are refused with it.
     * Default `'redis'`. `url: 'memory://'` or `'memory://<name>'` (also in
     * `REDIS_URL`) selects it too.
     */
    store?: 'redis' | 'memory';
    /** The memory store (with `store: 'memory'` or a `memory://` url). */
    memory?: MemoryStoreOptions;
    /** Prepended to every key the module touches. Default `'fluxor:'`. */
    keyPrefix?: string;
    /** Default ttl of `set`/`mset`/`warmCache`, in SECONDS (fractions allowed), at most 9e12; `0` = no expiry. Default `3600`. */
    defaultTTL?: number;
    /** MILLISECONDS to establish a connection (TCP, handshake and PING). Default `5000`. */
    connectTimeout?: number;
    /** MILLISECONDS before a command's promise rejects with `ERR_TIMEOUT`. Default `5000`. */
    commandTimeout?: number;
    /**
     * MILLISECONDS to wait before reconnect attempt `times` (1, 2, …) after the
     * connection is lost; returning anything but a number stops reconnecting.
     * Default `(times) => Math.min(times * 50, 2000)`.
     */
    retryStrategy?: (times: number) => number | null | undefined | void;
    /**
     * How values are stored. `'json'` (default): JSON text, as the original
     * module wrote it. `'v8'`: node:v8's serialization (Date, Map, Set,
     * BigInt, Buffer, typed arrays, NaN, undefined come back as they were;
     * values written as JSON still read). Or your own `{ encode, decode }`.
     */
    serializer?: 'json' | 'v8' | Serializer;
    /**
     * LZ4 compression of stored values of at least `threshold` BYTES (default
     * 1024 when `true` or `{}`). Default off. Compressed values are
     * recognised on read by every instance, compressing or not.
     */
    compression?: boolean | { threshold?: number };
    /**
     * A near cache in this thread's memory, kept coherent by the server
     * (README "Near cache"); off when absent. `true` takes the defaults.
     * With it on, `get`/`mget` values are deep-frozen.
     */
    localCache?: boolean | LocalCacheOptions;
  }

  /** The `localCache` option; every field is optional. */
  export interface LocalCacheOptions {
    /** Most local copies (least recently used out first). Default `10000`. */
    maxEntries?: number;
    /** Most BYTES held, counted as key plus JSON text length. Default 64 MiB. */
    maxBytes?: number;
    /** SECONDS a local copy lives at most (the key's server TTL, if shorter, wins). Default `60`. */
    ttl?: number;
    /** MILLISECONDS of silence from the server after which no local copy is served (10 or more). Default `300`. */
    maxSilenceMs?: number;
  }

  /** `getStats().local`: the near cache's figures. */
  export interface LocalStats {
    /** Look-ups answered from a local copy. */
    hits: number;
    /** Look-ups that went to the server. */
    misses: number;
    /** Local copies held. */
    entries: number;
    /** Their size: key plus JSON text length. */
    bytes: number;
    /** Local copies dropped because their key changed (by anyone). */
    invalidations: number;
    /** Times every local copy was dropped at once (a lost invalidation connection, a server flush, `invalidate()`). */
    flushes: number;
  }

  /**
   * A serializer of your own: `decode` gets a string when `encode` returned
   * one, and a Buffer (a Uint8Array) when it returned bytes.
   */
  export interface Serializer {
    encode(value: unknown): string | Uint8Array;
    decode(stored: string | Uint8Array): unknown;
  }

  /** Options of `scan`. */
  export interface ScanOptions {
    /** SCAN's COUNT hint: keys each server looks at per page. Default `1000`. */
    count?: number;
  }

  /**
   * What a value of type `T` comes back as under the default JSON
   * serializer: `get<Jsonified<T>>` types the round trip honestly.
   */
  export type Jsonified<T> = T extends { toJSON(): infer R }
    ? Jsonified<R>
    : T extends string | boolean | null
      ? T
      : T extends number
        ? number | null
        : T extends undefined | symbol | ((...args: never[]) => unknown) | bigint
          ? never
          : T extends ReadonlyMap<unknown, unknown> | ReadonlySet<unknown>
            ? Record<string, never>
            : T extends ReadonlyArray<infer E>
              ? Array<Jsonified<E> | ([E] extends [undefined | symbol | ((...args: never[]) => unknown)] ? null : never)>
              : T extends object
                ? { [K in keyof T as T[K] extends undefined | symbol | ((...args: never[]) => unknown) ? never : K]: Jsonified<T[K]> }
                : never;

  /** Options of `get(key, { fallback })`. */
  export interface GetOptions<F = unknown> {
    /**
     * Returned on a miss OR a cache error (including `ERR_NOT_CONNECTED`):
     * a value, or a function (called at most once, awaited). The fallback is
     * not written to the cache.
     */
    fallback?: F | (() => F | PromiseLike<F>);
  }

  /** Options of `set` and `mset`. */
  export interface SetOptions {
    /** SECONDS (fractions allowed, ms precision), at most 9e12; `0` = no expiry. Default: `defaultTTL`. */
    ttl?: number;
    /** Tags for `invalidate('tag', tag)`: non-empty strings of well-formed Unicode (no lone surrogates). */
    tags?: string[];
  }

  /** What a `warmCache` warmer may return (or resolve to). */
  export type WarmSource<T> =
    | T[]
    | Record<string, T>
    | Map<string | number, T>
    | Iterable<T>
    | AsyncIterable<T>;

  /** Options of `warmCache`. */
  export interface WarmOptions<T = unknown> {
    /** The key of an item of an array or (async) iterable (`index`: its position). Default: `item.id`. */
    keyExtractor?: (item: T, index: number) => string | number;
    /** SECONDS (fractions allowed), at most 9e12; `0` = no expiry. Default: `defaultTTL`. */
    ttl?: number;
    /** Tags of every warmed key, for `invalidate('tag', tag)`. */
    tags?: string[];
    /** Keys written per pipelined batch. */
    batchSize?: number;
  }

  /** What `warmCache` resolves to. */
  export interface WarmResult {
    /** The number of keys written. */
    loaded: number;
  }

  /** Options of `lock` and `withLock`. */
  export interface LockOptions {
    /** SECONDS before the lock expires unless extended. Default `30`. */
    ttl?: number;
    /** Attempts after the first before rejecting with `ERR_LOCK_NOT_ACQUIRED`. Default `10`. */
    retries?: number;
    /** MILLISECONDS between attempts (with jitter). Default `100`. */
    retryDelay?: number;
    /** Keep extending the lock by its ttl while it is held. Default false. */
    autoExtend?: boolean;
  }

  /**
   * A held distributed lock. At run time an EventEmitter: `lost` fires (with
   * an `ERR_LOCK_LOST` error) when an extension finds the lock gone or taken,
   * or when `autoExtend` cannot extend it within its ttl.
   */
  export interface Lock {
    /** The key as given to `lock()` (without the keyPrefix). */
    readonly key: string;
    /** This holder's random token. */
    readonly token: string;
    /** Strictly increasing per key, across every holder: pass it to the resource you protect. */
    readonly fencingToken: number;
    /** Aborts when the lock is lost; its `reason` is the `ERR_LOCK_LOST` error. */
    readonly signal: AbortSignalLike;
    /** Releases the lock; false when it had expired or belongs to someone else (never removes another holder's lock). */
    release(): Promise<boolean>;
    /** Resets the expiry to `ttl` SECONDS (default: the lock's ttl); false when the lock is no longer held (it is then lost). */
    extend(ttl?: number): Promise<boolean>;
    on(event: 'lost', listener: (err: CacheError) => void): this;
    once(event: 'lost', listener: (err: CacheError) => void): this;
    off(event: 'lost', listener: (err: CacheError) => void): this;
    addListener(event: 'lost', listener: (err: CacheError) => void): this;
    removeListener(event: 'lost', listener: (err: CacheError) => void): this;
    listenerCount(event: 'lost'): number;
  }

  /** The built-in invalidation strategies. */
  export type InvalidationStrategy = 'cascade' | 'tag' | 'pattern';

  /** The built-in key patterns of `generateKey` (more may be registered). */
  export type KeyPattern = 'user' | 'inventory' | 'order' | 'session' | 'analytics' | 'forecast' | 'channel';

  /** The operations `getStats().byOperation`, `metrics()` and tracing name (`lock`, `unlock`, `extend`: the lock steps; `gos_*`: the steps of `getOrSet`). */
  export type OperationName =
    | 'get' | 'set' | 'del' | 'exists' | 'expire' | 'ttl' | 'mget' | 'mset' | 'lock' | 'unlock' | 'extend' | 'ping'
    | 'gos_read' | 'gos_lease' | 'gos_store' | 'gos_release' | 'gos_extend';

  /**
   * One operation kind in `getStats().byOperation`. Latency in MILLISECONDS:
   * the round trip of each operation's batch, from its write to its replies,
   * over the operations that reached the server.
   */
  export interface OperationStats {
    /** Operations of this kind. */
    count: number;
    /** Those that failed (also those that failed before reaching the server). */
    errors: number;
    p50: number;
    p90: number;
    p99: number;
    max: number;
  }

  /** Options of `getStats()`. */
  export interface GetStatsOptions {
    /** Start a new window after this one: this instance's counters (getOrSet's and `local`'s too), latency and `byOperation` start again from zero (`metrics()` is not reset). */
    reset?: boolean;
  }

  /**
   * The context of an operation published on the `fluxor:command`
   * TracingChannel (`node:diagnostics_channel`) while anyone subscribes;
   * the channel adds `result` (what it resolved to) or `error` (what it
   * rejected with) when it settles.
   */
  export type CommandContext = OperationContext | InvalidateContext;

  /** A batch-path operation (every method but `invalidate`, `getStats`, `metrics`). */
  export interface OperationContext {
    operation: OperationName;
    /** The key as given (without the keyPrefix); undefined for `mget`, `mset` and `ping`. */
    key: string | undefined;
    /** Keys it names: 1; an `mget`'s or `mset`'s count; 0 for `ping`. */
    keyCount: number;
    keyPrefix: string;
    /** `host:port` (behind sentinels, the master's since the last connect), or `'cluster'`. */
    server: string;
    result?: unknown;
    error?: CacheError;
  }

  /** A built-in invalidation strategy. */
  export interface InvalidateContext {
    operation: 'invalidate';
    strategy: InvalidationStrategy;
    /** The key, tag or glob. */
    argument: string;
    keyPrefix: string;
    server: string;
    /** The number of keys removed. */
    result?: number;
    error?: CacheError;
  }

  /** The platform's AbortSignal where its types are loaded (DOM or @types/node), else its core. */
  export type AbortSignalLike = typeof globalThis extends { AbortSignal: { prototype: infer S } }
    ? S
    : { readonly aborted: boolean; readonly reason: unknown; addEventListener(type: 'abort', listener: () => void): void };

  /** What a `getOrSet` factory receives. */
  export interface GetOrSetContext<T> {
    /** The key as given (a number becomes its decimal string). */
    readonly key: string;
    /** The stale (graced) value when one exists, else undefined. */
    readonly stale: T | undefined;
    /** Aborts at `hardTimeout` (its reason an ERR_FACTORY_TIMEOUT error). */
    readonly signal: AbortSignalLike;
    /** The ttl (SECONDS) to store this result with, instead of `options.ttl`. */
    setTtl(seconds: number): void;
    /** The tags to store this result with, instead of `options.tags`. */
    setTags(tags: string[]): void;
    /** Return the result without storing it. */
    skip(): void;
  }

  /** Options of `getOrSet`. */
  export interface GetOrSetOptions {
    /** SECONDS the value is fresh; default `defaultTTL`; `0` = no expiry. */
    ttl?: number;
    /** Tags the value is stored with (as `set`). */
    tags?: string[];
    /** SECONDS a value is kept past `ttl` and may be served stale; default 0. */
    grace?: number;
    /** Soft timeout, MILLISECONDS: with a stale value, a slower factory is not waited for (it finishes and stores in the background). */
    timeout?: number;
    /** MILLISECONDS from Redis's first reply (a Redis that does not answer adds up to `commandTimeout`): past it, the call rejects with `ERR_FACTORY_TIMEOUT` (or serves the stale value); the factory still finishes and stores. */
    hardTimeout?: number;
    /** A fraction of `ttl` in (0, 1): the first read after it starts one background refresh. */
    refreshAhead?: number;
    /** MILLISECONDS to wait for another process's factory run before running the factory here; default `commandTimeout`. */
    lockTimeout?: number;
    /** Run the factory even when a fresh value is stored. */
    forceFresh?: boolean;
  }

  /** What `getStats()` resolves to. */
  export interface Stats {
    /** Key look-ups of this instance (`get`, each key of `mget`) that found a value. */
    hits: number;
    /** Key look-ups of this instance that found nothing. */
    misses: number;
    /** hits / (hits + misses), from 0 to 1; 0 before any look-up. */
    hitRate: number;
    /** Keys written by this instance. */
    sets: number;
    /** Keys deleted by this instance. */
    deletes: number;
    /** Commands of this instance that failed. */
    errors: number;
    /** Commands of this instance. */
    operations: number;
    /** Latency of this instance's commands, in MILLISECONDS. */
    latency: { p50: number; p99: number };
    /** Per operation kind that ran in the window. */
    byOperation: Partial<Record<OperationName, OperationStats>>;
    /**
     * Server memory in BYTES (summed over masters in cluster mode). The memory
     * store reports its own count (`rss` = `used`) with its bounds, the keys
     * it evicted to keep them and the expired keys it dropped.
     */
    memory: { used: number; peak: number; rss: number; maxEntries?: number; maxBytes?: number; evictions?: number; expired?: number };
    /** Keys in the database (summed over masters in cluster mode). */
    keys: number;
    /** Whether the instance is connected. */
    connected: boolean;
    /** getOrSet factory runs of this instance. */
    factoryRuns: number;
    /** getOrSet calls of this instance answered with a stale (graced) value. */
    staleServed: number;
    /** getOrSet calls of this instance answered by another call's factory run (here or in another process). */
    coalesced: number;
    server: {
      /** The server's `redis_version` (the memory store: this package's version). */
      version: string;
      mode: 'standalone' | 'cluster' | 'memory';
      /** The masters, as `host:port` (the memory store: `memory://<name>`). */
      nodes: string[];
      /** The server's `maxmemory-policy` (`'noeviction'`, `'allkeys-lru'`, …); see README "Distributed locks". The memory store: `'allkeys-lru'` when bounded (never evicting locks), else `'noeviction'`. */
      evictionPolicy: string;
    };
    /** The near cache's figures; present only with the `localCache` option. */
    local?: LocalStats;
  }

  /** Options of the in-process memory store (`store: 'memory'`). */
  export interface MemoryStoreOptions {
    /** Instances in one process naming the same store share it. Default `'default'` (or the url's name). */
    name?: string;
    /** Most keys held (locks, fencing counters and tag indexes count); least recently used cache values are evicted. `0` = no bound (default). */
    maxEntries?: number;
    /** Most BYTES held, by the store's own count (key, value and about 80 bytes of overhead per entry). `0` = no bound (default). */
    maxBytes?: number;
  }

  /** The arguments of each event's listeners. */
  export interface CacheEvents {
    /** Connected (also after a reconnect). */
    connect: [];
    /** Ready for commands (also after a reconnect). */
    ready: [];
    /** Closed by `disconnect()`, or the retryStrategy gave up. */
    end: [];
    /** A connection error. Without a listener it is dropped, never thrown. */
    error: [err: CacheError];
    /** A reconnect is scheduled in `delayMs` MILLISECONDS. */
    reconnecting: [delayMs: number];
    /**
     * Said once per policy, on connecting: the server may evict lock keys
     * (`maxmemory` set, an `allkeys-*` or `volatile-*` policy), so locks and
     * fencing tokens are not safe there. Without a listener it is dropped.
     */
    warning: [warning: EvictionWarning];
  }

  /** The `warning` event's argument. */
  export interface EvictionWarning extends Error {
    code: 'WARN_EVICTION_POLICY';
    /** The server's `maxmemory-policy`. */
    policy: string;
  }

  /** The events of `on`/`once`/`off`. */
  export type CacheEvent = keyof CacheEvents;

  // The class under its own name and as `default`, as index.js and
  // index.mjs export it: `import { CacheModule } from …`, `require(…).default`.
  export { CacheModule, CacheModule as default };
}

/**
 * A distributed cache on Redis or Redis Cluster. At run time the class
 * extends Node.js's EventEmitter.
 */
declare class CacheModule {
  /** Throws a TypeError/RangeError (code `ERR_INVALID_ARG`) naming a bad option; an unknown option name is a TypeError too. */
  constructor(options?: CacheModule.CacheOptions);

  /** The prefix of every stored key. */
  readonly keyPrefix: string;

  // ---- connection ----------------------------------------------------------

  /** Connects and PINGs; resolves the instance. Calling it again is harmless. */
  initialize(): Promise<this>;
  /**
   * Answers what was already asked, then closes. Later calls reject with `ERR_NOT_CONNECTED`; calling it twice is harmless.
   * An instance nobody holds is garbage-collected, and its connection closed, once nothing is in flight (connected or reconnecting), without `disconnect()`.
   */
  disconnect(): Promise<void>;

  // ---- core ----------------------------------------------------------------

  /** The value stored under `key`, or null on a miss. */
  get<T = unknown>(key: CacheModule.Key, options?: { fallback?: undefined }): Promise<T | null>;
  /** The value, or on a miss or a cache error the awaited result of `fallback()` (called at most once). */
  get<T = unknown, F = T>(key: CacheModule.Key, options: { fallback: () => F | PromiseLike<F> }): Promise<T | F>;
  /** The value, or on a miss or a cache error `fallback`. */
  get<T = unknown, F = T>(key: CacheModule.Key, options: { fallback: F }): Promise<T | F>;
  /** The value; on a miss or a cache error the fallback when one is given, else null (a miss) or a rejection (an error). */
  get<T = unknown, F = T>(key: CacheModule.Key, options?: CacheModule.GetOptions<F>): Promise<T | F | null>;
  /** Stores `JSON.stringify(value)` (or what the `serializer` makes of it); `ttl` in SECONDS (default `defaultTTL`). */
  set(key: CacheModule.Key, value: unknown, options?: CacheModule.SetOptions): Promise<true>;
  /** Whether a key was removed. */
  del(key: CacheModule.Key): Promise<boolean>;
  /** Whether the key exists. */
  exists(key: CacheModule.Key): Promise<boolean>;
  /** Sets the key's expiry to `ttl` SECONDS (`0` removes it); false when the key is missing. */
  expire(key: CacheModule.Key, ttl: number): Promise<boolean>;
  /** SECONDS left; `-1` without expiry; `-2` when missing. */
  ttl(key: CacheModule.Key): Promise<number>;

  // ---- batches -------------------------------------------------------------

  /** Values in the keys' order, null for misses; `[]` for `[]`. */
  mget<T = unknown>(keys: ReadonlyArray<CacheModule.Key>): Promise<Array<T | null>>;
  /** Stores every pair (plain object or Map) with the same ttl and tags; every value is checked before any is written. */
  mset(
    pairs: Record<string, unknown> | ReadonlyMap<string | number, unknown>,
    options?: CacheModule.SetOptions,
  ): Promise<true>;

  /**
   * The value of `key`; on a miss (or a stale value) `factory(ctx)` runs once
   * across every caller in every process sharing the Redis and keyPrefix, and
   * its result is stored as `set` would. A result of `undefined` is not
   * stored and resolves to `null`.
   */
  getOrSet<T>(
    key: CacheModule.Key,
    factory: (ctx: CacheModule.GetOrSetContext<T>) => T | PromiseLike<T>,
    options?: CacheModule.GetOrSetOptions,
  ): Promise<T>;

  // ---- keys ----------------------------------------------------------------

  /**
   * The keys under keyPrefix whose unprefixed name matches the Redis glob
   * `pattern` (default `'*'`), unprefixed, a SCAN page at a time (never
   * KEYS); in a cluster every master is scanned, so each key comes once.
   * Never the module's own keys (locks, tag indexes). A key written or
   * removed during the scan may or may not be seen (SCAN's guarantee).
   */
  scan(pattern?: string, options?: CacheModule.ScanOptions): AsyncIterableIterator<string>;

  // ---- key patterns --------------------------------------------------------

  /** The key of `pattern` for `args` (without the keyPrefix). Throws `ERR_UNKNOWN_PATTERN` for an unknown pattern. */
  generateKey(pattern: CacheModule.KeyPattern | (string & {}), ...args: Array<string | number>): string;
  /** Registers (or replaces) a pattern for `generateKey`: `fn(...args)` returns the key. */
  registerKeyPattern(name: string, fn: (...args: any[]) => string): void;

  // ---- invalidation --------------------------------------------------------

  /**
   * `cascade`: `arg` and every key under `arg:`; `tag`: every key set with tag
   * `arg`; `pattern`: every key whose unprefixed name matches the glob `arg`.
   * Resolves the number of cache keys removed.
   */
  invalidate(strategy: CacheModule.InvalidationStrategy, arg: string): Promise<number>;
  /** A registered strategy: resolves what its function returns. Rejects with `ERR_UNKNOWN_STRATEGY` for an unknown one. */
  invalidate(strategy: string, ...args: any[]): Promise<unknown>;
  /** Registers (or replaces) a strategy: `invalidate(name, ...args)` awaits `fn(...args)`. */
  registerInvalidationStrategy(name: string, fn: (...args: any[]) => unknown): void;

  // ---- warming -------------------------------------------------------------

  /** Writes what `warmer()` returns (or resolves to) in pipelined batches. */
  warmCache<T>(
    warmer: () => CacheModule.WarmSource<T> | PromiseLike<CacheModule.WarmSource<T>>,
    options?: CacheModule.WarmOptions<T>,
  ): Promise<CacheModule.WarmResult>;

  // ---- locks ---------------------------------------------------------------

  /** Acquires the lock on `key`; rejects with `ERR_LOCK_NOT_ACQUIRED` when the retries run out. */
  lock(key: CacheModule.Key, options?: CacheModule.LockOptions): Promise<CacheModule.Lock>;
  /**
   * Runs `fn` holding the lock on `key`, releasing it afterwards (also when `fn` throws); resolves what `fn` returns.
   * Rejects with `ERR_LOCK_LOST` when the lock was lost before `fn` finished (`signal`, the lock's, aborts then), even if `fn` resolved.
   */
  withLock<R>(
    key: CacheModule.Key,
    fn: (lock: CacheModule.Lock, signal: CacheModule.AbortSignalLike) => R | PromiseLike<R>,
    options?: CacheModule.LockOptions,
  ): Promise<Awaited<R>>;

  // ---- monitoring ----------------------------------------------------------

  /** This instance's counters (since the last `{ reset: true }`) and the server's memory, keys and topology. */
  getStats(options?: CacheModule.GetStatsOptions): Promise<CacheModule.Stats>;
  /** This instance's counters and per-operation latency histograms as Prometheus text exposition (names `fluxor_cache_*`). */
  metrics(): string;
  /** The round trip of a PING, in MILLISECONDS (in cluster mode: every master answered). */
  ping(): Promise<number>;

  // ---- events (inherited from Node.js's EventEmitter at run time) ----------

  on<E extends CacheModule.CacheEvent>(event: E, listener: (...args: CacheModule.CacheEvents[E]) => void): this;
  addListener<E extends CacheModule.CacheEvent>(event: E, listener: (...args: CacheModule.CacheEvents[E]) => void): this;
  prependListener<E extends CacheModule.CacheEvent>(event: E, listener: (...args: CacheModule.CacheEvents[E]) => void): this;
  once<E extends CacheModule.CacheEvent>(event: E, listener: (...args: CacheModule.CacheEvents[E]) => void): this;
  prependOnceListener<E extends CacheModule.CacheEvent>(event: E, listener: (...args: CacheModule.CacheEvents[E]) => void): this;
  off<E extends CacheModule.CacheEvent>(event: E, listener: (...args: CacheModule.CacheEvents[E]) => void): this;
  removeListener<E extends CacheModule.CacheEvent>(event: E, listener: (...args: CacheModule.CacheEvents[E]) => void): this;
  removeAllListeners(event?: CacheModule.CacheEvent): this;
  emit<E extends CacheModule.CacheEvent>(event: E, ...args: CacheModule.CacheEvents[E]): boolean;
  listenerCount(event: CacheModule.CacheEvent, listener?: (...args: any[]) => void): number;
  listeners<E extends CacheModule.CacheEvent>(event: E): Array<(...args: CacheModule.CacheEvents[E]) => void>;
  rawListeners<E extends CacheModule.CacheEvent>(event: E): Array<(...args: CacheModule.CacheEvents[E]) => void>;
  eventNames(): CacheModule.CacheEvent[];
  setMaxListeners(n: number): this;
  getMaxListeners(): number;
}

export = CacheModule;
