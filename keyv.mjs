import keyv from './lib/keyv.js';

export const { KeyvFluxor } = keyv;
export default KeyvFluxor;
