// ES module typings of @fluxor/cache-module (index.mjs): the same class and
// types as index.d.ts, as default and named exports. A type added to the
// CacheModule namespace in index.d.ts is listed here too.

import CacheModule from './index.js';

export default CacheModule;
export { CacheModule };
export { CacheError, isCacheError } from './index.js';
export type {
  AbortSignalLike,
  CacheEvent,
  CacheEvents,
  CacheOptions,
  ClusterNode,
  CommandContext,
  ErrorCode,
  EvictionWarning,
  GetOptions,
  GetOrSetContext,
  GetOrSetOptions,
  GetStatsOptions,
  InvalidateContext,
  InvalidationStrategy,
  Jsonified,
  Key,
  KeyPattern,
  LocalCacheOptions,
  LocalStats,
  Lock,
  LockOptions,
  MemoryStoreOptions,
  OperationContext,
  OperationName,
  OperationStats,
  PemData,
  ScanOptions,
  SentinelNode,
  Serializer,
  SetOptions,
  Stats,
  TlsOptions,
  WarmOptions,
  WarmResult,
  WarmSource,
} from './index.js';
