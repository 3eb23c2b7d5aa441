// An ES module (.mts): default and named imports give the same class, and
// the option, result and error types are importable by name.

import CacheModule, { CacheModule as Named, CacheError, isCacheError } from '@fluxor/cache-module';
import type { CacheOptions, ErrorCode, Jsonified, Lock, Stats } from '@fluxor/cache-module';
import { KeyvFluxor } from '@fluxor/cache-module/keyv';

const options: CacheOptions = { host: '127.0.0.1', port: 6379, defaultTTL: 60 };
const cache: CacheModule = new Named(options);
const same: Named = new CacheModule();

export async function run(): Promise<[Stats, Lock, ErrorCode]> {
  await cache.initialize();
  const value = await cache.get<{ n: number }>('k', { fallback: { n: 0 } });
  const n: number = value.n;
  void n;
  const lock = await same.withLock('job', (held) => held, { ttl: 1 });
  try {
    await cache.get('k');
  } catch (err) {
    if (isCacheError(err) && err instanceof CacheError) return Promise.reject(err.code);
  }
  return [await cache.getStats(), lock, 'ERR_AUTH'];
}

// The Keyv store, from an ES module: its own options or a CacheModule.
export const store: KeyvFluxor = new KeyvFluxor({ keyPrefix: 'k:' });
export const mine = new KeyvFluxor(cache);
export const roundTrip: Jsonified<{ at: Date }> = { at: '1970-01-01T00:00:00.000Z' };
