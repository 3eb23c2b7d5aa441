// Type definitions for @fluxor/cache-module.
import { EventEmitter } from 'node:events';

declare namespace CacheModule {
  /** The `code` of every error the module raises. */
  type ErrorCode =
    | 'ERR_NOT_CONNECTED'
    | 'ERR_CONNECTION'
    | 'ERR_TIMEOUT'
    | 'ERR_AUTH'
    | 'ERR_LOCK_NOT_ACQUIRED'
    | 'ERR_UNKNOWN_PATTERN'
    | 'ERR_UNKNOWN_STRATEGY'
    | 'ERR_INVALID_ARG'
    | 'ERR_REDIS';

  /** An error from the module. Bad arguments are TypeError/RangeError with code ERR_INVALID_ARG. */
  interface CacheError extends Error {
    code: ErrorCode;
  }

  interface ClusterNode {
    host: string;
    port: number;
  }

  interface CacheOptions {
    /** Standalone server host. Default: env REDIS_HOST, else 'localhost'. */
    host?: string;
    /** Standalone server port. Default: env REDIS_PORT, else 6379. */
    port?: number;
    /** AUTH password. Default: env REDIS_PASSWORD. */
    password?: string;
    /** ACL user name for AUTH. */
    username?: string;
    /** Database number (SELECT), standalone only. Default: env REDIS_DB, else 0. */
    db?: number;
    /** `redis://[[user]:password@]host[:port][/db]`; overrides host, port, password and db. */
    url?: string;
    /** Connect to a Redis Cluster through `clusterNodes`. Default false. */
    enableCluster?: boolean;
    /** Cluster seed nodes; required (non-empty) when enableCluster is true. */
    clusterNodes?: ClusterNode[];
    /** Prepended to every key the module touches. Default 'fluxor:'. */
    keyPrefix?: string;
    /** Seconds (fractions allowed); 0 = no expiry. Default 3600. */
    defaultTTL?: number;
    /** Milliseconds to establish a connection (TCP + handshake + PING). Default 5000. */
    connectTimeout?: number;
    /** Milliseconds before a command's promise rejects with ERR_TIMEOUT. Default 5000. */
    commandTimeout?: number;
    /**
     * Milliseconds to wait before reconnect attempt `times` (1, 2, ...) after the
     * connection is lost; a non-number return stops reconnecting.
     * Default `(times) => Math.min(times * 50, 2000)`.
     */
    retryStrategy?: (times: number) => number | null | undefined | void;
  }

  interface GetOptions<F = unknown> {
    /** Returned on a miss or on a cache error: a value, or a function whose (awaited) result is returned. */
    fallback?: F | (() => F | Promise<F>);
  }

  interface SetOptions {
    /** Seconds (fractions allowed, ms precision); 0 = no expiry. Default: defaultTTL. */
    ttl?: number;
    /** Tags for `invalidate('tag', tag)`. */
    tags?: string[];
  }

  type CacheEvent = 'connect' | 'ready' | 'error' | 'reconnecting' | 'end';
}

declare class CacheModule extends EventEmitter {
  constructor(options?: CacheModule.CacheOptions);

  /** The prefix of every stored key. */
  readonly keyPrefix: string;

  /** Connects and PINGs; resolves the instance. Harmless when already connected. */
  initialize(): Promise<this>;
  /** Answers what was already asked, then closes. Later calls reject with ERR_NOT_CONNECTED. */
  disconnect(): Promise<void>;

  /** The value, or null on a miss (or the fallback, on a miss or a cache error). */
  get<T = unknown>(key: string | number): Promise<T | null>;
  get<T = unknown, F = T>(key: string | number, options: CacheModule.GetOptions<F>): Promise<T | F>;
  /** Stores `JSON.stringify(value)`; resolves true. */
  set(key: string | number, value: unknown, options?: CacheModule.SetOptions): Promise<true>;
  /** Whether a key was removed. */
  del(key: string | number): Promise<boolean>;
  exists(key: string | number): Promise<boolean>;
  /** Sets the key's expiry in seconds (0 removes it); false when the key is missing. */
  expire(key: string | number, ttl: number): Promise<boolean>;
  /** Seconds left; -1 without expiry; -2 when missing. */
  ttl(key: string | number): Promise<number>;
  /** Values in the keys' order, null for misses. */
  mget<T = unknown>(keys: Array<string | number>): Promise<Array<T | null>>;
  /** Stores every pair (plain object or Map) with the same ttl and tags; all values are checked before any is written. */
  mset(pairs: Record<string, unknown> | Map<string | number, unknown>, options?: CacheModule.SetOptions): Promise<true>;

  on(event: 'connect' | 'ready' | 'end', listener: () => void): this;
  on(event: 'error', listener: (err: CacheModule.CacheError) => void): this;
  on(event: 'reconnecting', listener: (delayMs: number) => void): this;
  once(event: 'connect' | 'ready' | 'end', listener: () => void): this;
  once(event: 'error', listener: (err: CacheModule.CacheError) => void): this;
  once(event: 'reconnecting', listener: (delayMs: number) => void): this;
}

export = CacheModule;
