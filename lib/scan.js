'use strict';

// cache.scan(): the keys under keyPrefix, a page at a time from the engine
// (src/scan.rs): one crossing per SCAN page, not per key. `call(start)`
// makes one engine call, answered like a batch (lib/batch.js `call`).

const { typeError, rangeError, describe } = require('./errors');
const { optionsArg } = require('./args');

/** Checks the arguments now (a bad one throws here), then scans lazily. */
function scan(call, pattern = '*', options) {
  if (typeof pattern !== 'string' || pattern.length === 0 || !pattern.isWellFormed()) {
    throw typeError(`pattern must be a non-empty glob string of well-formed Unicode, got ${describe(pattern)}`);
  }
  const { count = 0 } = optionsArg(options);
  if (!Number.isInteger(count) || count < 0 || count > 0xffffffff) {
    throw rangeError(`options.count must be a whole number of keys, got ${describe(count)}`);
  }
  return pages(call, pattern, count);
}

async function* pages(call, pattern, count) {
  // The masters as they are when the scan starts (the one server outside a cluster).
  for (const node of await call((id, engine) => engine.scanNodes(id))) {
    let cursor = '0';
    do {
      const page = JSON.parse(await call((id, engine) => engine.scan(id, node, cursor, pattern, count)));
      cursor = page[0];
      for (let i = 1; i < page.length; i++) yield page[i];
    } while (cursor !== '0');
  }
}

module.exports = { scan };
