import CacheModule from './index.js';

export { CacheModule };
export default CacheModule;
