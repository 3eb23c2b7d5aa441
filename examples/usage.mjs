// The README's Usage block as a file you can run:
//   node examples/usage.mjs                              (localhost:6379)
//   REDIS_URL=redis://127.0.0.1:6380 node examples/usage.mjs
// From a clone, build the addon first (npm install builds nothing: npm run build).

import CacheModule from '@fluxor/cache-module';

// Stand-ins for what the README leaves to your application.
const userId = 123;
const productId = 'sku-42';
async function fetchAllProducts() {
  return [
    { id: 1, name: 'Product 1', price: 99.99 },
    { id: 2, name: 'Product 2', price: 149.99 },
  ];
}

// Initialize cache
const cache = new CacheModule({
  host: 'localhost',
  port: 6379,
  keyPrefix: 'fluxor:',
  defaultTTL: 3600,
  // REDIS_URL, when set, overrides host and port.
  ...(process.env.REDIS_URL ? { url: process.env.REDIS_URL } : {}),
});

await cache.initialize();

// Basic operations
await cache.set('user:123', { name: 'John', email: 'john@example.com' });
const user = await cache.get('user:123');
console.log('user:123 →', user);

// Using TTL
await cache.set('session:abc', { userId: 123 }, { ttl: 1800 });

// Batch operations
await cache.mset({
  'product:1': { name: 'Product 1', price: 99.99 },
  'product:2': { name: 'Product 2', price: 149.99 },
});

const products = await cache.mget(['product:1', 'product:2']);
console.log('products →', products);

// Using key patterns
const userKey = cache.generateKey('user', userId);
const inventoryKey = cache.generateKey('inventory', productId);
console.log('keys →', userKey, inventoryKey);

// Cache warming
const { loaded } = await cache.warmCache(
  async () => {
    return await fetchAllProducts();
  },
  {
    keyExtractor: (product) => `product:${product.id}`,
    ttl: 7200,
  },
);
console.log('warmed →', loaded);

// Distributed locking
const lock = await cache.lock('resource:critical', {
  ttl: 30,
  retries: 10,
});

try {
  // Perform critical operation
} finally {
  await lock.release();
}

// Key scanning
for await (const key of cache.scan('product:*')) console.log('scanned →', key);

// Cache invalidation
await cache.invalidate('cascade', 'user:123');
await cache.invalidate('pattern', 'session:*');

await cache.disconnect();
