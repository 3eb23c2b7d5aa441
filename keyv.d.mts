// ES module typings of @fluxor/cache-module/keyv (keyv.mjs).

export { KeyvFluxor, KeyvFluxor as default } from './keyv.js';
