'use strict';

// index.d.mts re-exports by name what index.d.ts declares in the CacheModule
// namespace: a name added to one and not the other would be missing for ES
// module importers (the package test type-checks only the names it uses).

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const read = (f) => fs.readFileSync(path.join(__dirname, '..', f), 'utf8');

test('index.d.mts names every export of the CacheModule namespace in index.d.ts', () => {
  const ns = /^declare namespace CacheModule \{([\s\S]*?)^\}/m.exec(read('index.d.ts'))[1];
  const declared = [...ns.matchAll(/^  export (?:declare )?(?:type|interface|class|function) (\w+)/gm)].map((m) => m[1]).sort();
  const mts = read('index.d.mts');
  const reexported = [...mts.matchAll(/export (?:type )?\{([^}]*)\} from '\.\/index\.js'/g)]
    .flatMap((m) => m[1].split(','))
    .map((s) => s.trim())
    .filter(Boolean)
    .sort();
  assert.deepEqual(reexported, declared);
});
