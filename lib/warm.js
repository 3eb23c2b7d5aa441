'use strict';

// warmCache: items from the warmer written in pipelined batches. At most one
// batch is in flight while the next is built, so a large (or endless async)
// source is never held twice in memory.

const { typeError, rangeError, describe } = require('./errors');
const { toKey, encode: encodeJson } = require('./args');

const defaultKey = (item) => item?.id;

/** `options`: own properties only (args.js optionsArg). */
function warmOptions(options) {
  const { keyExtractor = defaultKey, batchSize = 1000 } = options;
  if (typeof keyExtractor !== 'function') throw typeError(`options.keyExtractor must be a function, got ${describe(keyExtractor)}`);
  if (typeof batchSize !== 'number') throw typeError(`options.batchSize must be a number, got ${describe(batchSize)}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw rangeError(`options.batchSize must be a whole number of 1 or more, got ${batchSize}`);
  return { keyExtractor, batchSize };
}

/** [key, value] pairs of whatever the warmer gave. */
async function* pairsOf(source, keyExtractor) {
  if (source instanceof Map) {
    yield* source;
  } else if (source !== null && typeof source === 'object' && (Symbol.iterator in source || Symbol.asyncIterator in source)) {
    // Arrays and (async) iterables hold items; the key comes from each item.
    let i = 0;
    for await (const item of source) {
      yield [keyExtractor(item, i++), item];
    }
  } else if (source !== null && typeof source === 'object') {
    yield* Object.entries(source);
  } else if (source !== undefined && source !== null) {
    throw typeError(`the warmer must give an array, a plain object, a Map or an (async) iterable, got ${describe(source)}`);
  }
}

/**
 * Writes the warmer's items; `write(keys, values)` sends one mset of checked
 * keys and their values as `encode` (the serializer's) gives them. Resolves
 * { loaded }.
 */
async function warm(source, { keyExtractor, batchSize }, write, encode = encodeJson) {
  let loaded = 0;
  let inFlight = null;
  let keys = [];
  let values = [];
  const settle = async () => {
    if (inFlight === null) return;
    const { done, size } = inFlight;
    inFlight = null;
    await done;
    loaded += size;
  };
  const send = async () => {
    const batch = { done: write(keys, values), size: keys.length };
    // Awaited by settle(); meanwhile a failure is not an unhandled rejection.
    batch.done.catch(() => {});
    keys = [];
    values = [];
    await settle();
    inFlight = batch;
  };
  for await (const [key, value] of pairsOf(source, keyExtractor)) {
    let k;
    try {
      k = toKey(key, 'the key of a warmed item');
    } catch (err) {
      err.message += ' (see options.keyExtractor)';
      throw err;
    }
    keys.push(k);
    values.push(encode(value, `the value of ${JSON.stringify(k)}`));
    if (keys.length === batchSize) await send();
  }
  if (keys.length > 0) await send();
  await settle();
  return { loaded };
}

module.exports = { warm, warmOptions };
