// Type definitions for @fluxor/cache-module/keyv: a Keyv storage adapter.
// Self-contained (keyv's own types are not needed): it has the shape of
// keyv's KeyvStoreAdapter, so `new Keyv({ store: new KeyvFluxor(...) })`
// type-checks.

import CacheModule = require('./index.js');

declare namespace KeyvFluxorModule {
  /** Keyv's storage adapter over a CacheModule. */
  export class KeyvFluxor {
    /**
     * A CacheModule (you initialize and close it), or its options (the store
     * connects on first use and closes on `disconnect()`).
     */
    constructor(cacheOrOptions?: CacheModule | CacheModule.CacheOptions);
    /** The CacheModule underneath. */
    readonly cache: CacheModule;
    /** Set by Keyv: its keys start with `${namespace}:` (Keyv adds it, once). */
    namespace?: string;
    /** What Keyv reads to offer `keyv.iterator()`. */
    opts: { dialect: 'redis'; url: string };
    get(key: string): Promise<unknown>;
    getMany(keys: string[]): Promise<unknown[]>;
    /** `ttl` in MILLISECONDS, as Keyv gives it; none: no expiry. */
    set(key: string, value: unknown, ttl?: number): Promise<boolean>;
    setMany(entries: Array<{ key: string; value: unknown; ttl?: number }>): Promise<boolean[]>;
    delete(key: string): Promise<boolean>;
    /** Whether any of `keys` was there. */
    deleteMany(keys: string[]): Promise<boolean>;
    has(key: string): Promise<boolean>;
    hasMany(keys: string[]): Promise<boolean[]>;
    /** Removes the keys of this namespace (without one: every key under keyPrefix). */
    clear(): Promise<void>;
    /** `[key, stored]` for each key of `namespace`, by SCAN. */
    iterator(namespace?: string): AsyncGenerator<[string, unknown], void>;
    /** Closes the CacheModule if this store made it. */
    disconnect(): Promise<void>;
    on(event: 'error', listener: (err: CacheModule.CacheError) => void): this;
    on(event: string, listener: (...args: any[]) => void): this;
  }
  export { KeyvFluxor as default };
}

export = KeyvFluxorModule;
