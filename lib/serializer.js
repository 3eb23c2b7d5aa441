'use strict';

// The `serializer` option: how values become what is stored. JSON text by
// default, exactly as the original module wrote it (and read by it); 'v8'
// (node:v8's structured serialization) or your own { encode, decode } for
// values JSON cannot carry. The wire strings are lib/args.js's.

const v8 = require('node:v8');
const { encode: jsonEncode, decode: jsonDecode, mgetWire, msetWire, tagged, mgetvWire, msetvWire } = require('./args');
const { typeError, describe } = require('./errors');

// mget: one JSON array text (or, when a stored value is not JSON, one string each).
const jsonList = (replies) => (typeof replies === 'string' ? JSON.parse(replies) : replies.map(jsonDecode));

/** The default: JSON text, the hot path as it always was. */
const JSON_SERIALIZER = Object.freeze({
  setOp: 'set',
  encode: jsonEncode,
  decode: jsonDecode,
  decodeList: jsonList,
  mgetWire,
  msetWire,
});

/**
 * A serializer of tagged values over `encode(value) -> string | Buffer` and
 * `decode(stored)`, where `stored` is a string when encode gave one and a
 * Buffer when it gave bytes.
 */
function taggedSerializer(encode, decode) {
  const one = (reply) => (reply === null ? null : decode(reply));
  return Object.freeze({
    setOp: 'setv',
    encode(value, name = 'value') {
      let encoded;
      try {
        encoded = encode(value);
      } catch (err) {
        throw typeError(`${name} cannot be serialized: ${err.message}`, err);
      }
      return tagged(encoded, name);
    },
    decode: one,
    decodeList: (replies) => replies.map(one),
    mgetWire: mgetvWire,
    msetWire: msetvWire,
  });
}

// Values written by a JSON instance (text) still read, as JSON.
const V8_SERIALIZER = taggedSerializer(v8.serialize, (stored) => (typeof stored === 'string' ? jsonDecode(stored) : v8.deserialize(stored)));

/** The serializer for the `serializer` option. */
function serializerOf(option) {
  if (option === undefined || option === 'json') return JSON_SERIALIZER;
  if (option === 'v8') return V8_SERIALIZER;
  if (option !== null && typeof option === 'object' && typeof option.encode === 'function' && typeof option.decode === 'function') {
    return taggedSerializer(option.encode.bind(option), option.decode.bind(option));
  }
  throw typeError(`options.serializer must be 'json', 'v8' or an object { encode(value), decode(stored) }, got ${describe(option)}`);
}

module.exports = { serializerOf };
