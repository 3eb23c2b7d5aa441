import CacheModule from './index.js';

const { CacheError, isCacheError } = CacheModule;

export { CacheModule, CacheError, isCacheError };
export default CacheModule;
