'use strict';

// Argument checks and the JSON wire format of values. They run on the JS
// thread before anything is queued, so a bad argument rejects and nothing is
// sent.

const { typeError, rangeError, describe } = require('./errors');

function toKey(key, name = 'key') {
  if (typeof key === 'string') {
    // A lone surrogate has no UTF-8 form: two such keys would silently be one.
    if (key.length > 0 && key.isWellFormed()) return key;
    throw typeError(`${name} must be a non-empty string of well-formed Unicode (no lone surrogates)`);
  }
  if (typeof key === 'number' && Number.isFinite(key)) return String(key);
  throw typeError(`${name} must be a non-empty string or a finite number, got ${describe(key)}`);
}

/**
 * Throws a TypeError naming the first string in `value` (options: plain
 * data a few levels deep) with a lone surrogate, which has no UTF-8 form.
 */
function wellFormed(value, path, depth = 0) {
  if (typeof value === 'string') {
    if (!value.isWellFormed()) throw typeError(`${path} must be well-formed Unicode (it has a lone surrogate)`);
  } else if (value !== null && typeof value === 'object' && depth < 8 && !ArrayBuffer.isView(value)) {
    for (const key of Object.keys(value)) {
      if (!key.isWellFormed()) throw typeError(`${path} has a name with a lone surrogate`);
      wellFormed(value[key], Array.isArray(value) ? `${path}[${key}]` : `${path}.${key}`, depth + 1);
    }
  }
}

/** A value as its JSON.stringify text; what JSON cannot hold is a TypeError. */
function encode(value, name = 'value') {
  let json;
  try {
    json = JSON.stringify(value);
  } catch (err) {
    throw typeError(`${name} cannot be stored as JSON: ${err.message}`, err);
  }
  if (json === undefined) throw typeError(`${name} cannot be stored as JSON: got ${describe(value)}`);
  return json;
}

/** Stored text back to a value; text that is not JSON comes back as it is. */
function decode(text) {
  if (text === null) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** A ttl in seconds to the wire's whole milliseconds ('' = defaultTTL). */
function ttlArg(ttl, name = 'ttl') {
  if (ttl === undefined) return '';
  return String(ttlMs(ttl, name));
}

/**
 * The longest ttl, in seconds: the expiry time (now + ttl, in ms) stays an
 * exact integer in a double, as the tag scripts (Lua) and JS compute it;
 * far under what Redis takes (an expiry time up to 2^63 - 1 ms).
 */
const MAX_TTL_SECONDS = 9e12;

function ttlMs(ttl, name = 'ttl') {
  if (typeof ttl !== 'number') throw typeError(`${name} must be a number of seconds, got ${describe(ttl)}`);
  if (!(ttl >= 0) || ttl === Infinity) throw rangeError(`${name} must be a finite number of seconds, 0 or more; got ${ttl}`);
  if (ttl > MAX_TTL_SECONDS) throw rangeError(`${name} must be at most ${MAX_TTL_SECONDS} seconds (about 285,000 years), got ${ttl}`);
  // A positive ttl never rounds down to 0, which would mean "no expiry".
  return ttl === 0 ? 0 : Math.max(1, Math.round(ttl * 1000));
}

function tagsArg(tags, name = 'options.tags') {
  if (tags === undefined) return '';
  if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string' && t.length > 0 && t.isWellFormed())) {
    throw typeError(`${name} must be an array of non-empty strings of well-formed Unicode, got ${describe(tags)}`);
  }
  return tags.length === 0 ? '' : JSON.stringify(tags);
}

const NO_OPTIONS = Object.freeze({ __proto__: null });

/**
 * A call's options: their own properties only, in an object without a
 * prototype, so that a property added to Object.prototype is never an option.
 */
function optionsArg(options, name = 'options') {
  if (options === undefined || options === null) return NO_OPTIONS;
  if (typeof options !== 'object') throw typeError(`${name} must be an object, got ${describe(options)}`);
  return { __proto__: null, ...options };
}

/**
 * Most characters in one wire string made of many: V8 caps a string at
 * 2^29 - 24, and JSON escaping can take a key to six times its length.
 */
const PART_CHARS = 2 ** 26;

/**
 * `items` as wire strings `[count, ...parts]`, each part `join` of a run of
 * items (in order) under `budget` characters: nearly always one part, so a
 * hundred keys cross to Rust as one string, not a hundred (src/ops.rs).
 */
function inParts(items, join, budget = PART_CHARS) {
  const out = [''];
  let start = 0;
  let size = 0;
  for (let i = 0; i < items.length; i++) {
    if (size + items[i].length > budget && i > start) {
      out.push(join(items.slice(start, i)));
      start = i;
      size = 0;
    }
    size += items[i].length;
  }
  out.push(join(start === 0 ? items : items.slice(start)));
  out[0] = String(out.length - 1);
  return out;
}

const jsonArray = (items) => JSON.stringify(items);
// JSON text never holds a raw NUL (JSON.stringify escapes every control character).
const nulJoined = (items) => items.join('\0');

/** An mget's wire strings: its checked keys as JSON array texts. */
function mgetWire(keys) {
  return ['mget', ...inParts(keys, jsonArray)];
}

/** An mset's wire strings: checked keys as JSON array texts, values' JSON texts joined by NUL. */
function msetWire(ttl, tags, keys, values) {
  return ['mset', ttl, tags, ...inParts(keys, jsonArray), ...inParts(values, nulJoined)];
}

// ---- values of a serializer other than JSON (lib/serializer.js) ----------

/**
 * What a serializer's encode() gave as a tagged wire string: `t` + text, or
 * `b` + the base64 of bytes (stored as bytes, read back as a Buffer).
 */
function tagged(encoded, name = 'value') {
  if (typeof encoded === 'string') return 't' + encoded;
  if (encoded instanceof Uint8Array) return 'b' + Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength).toString('base64');
  throw typeError(`${name}: the serializer's encode() must return a string or a Buffer, got ${describe(encoded)}`);
}

/** mgetWire, for values answered one by one (never as one JSON array). */
function mgetvWire(keys) {
  return ['mgetv', ...inParts(keys, jsonArray)];
}

/** msetWire for tagged values: they go as JSON array texts (text may hold a NUL). */
function msetvWire(ttl, tags, keys, values) {
  return ['msetv', ttl, tags, ...inParts(keys, jsonArray), ...inParts(values, jsonArray)];
}

/** The entries of a plain object or a Map. */
function entriesOf(pairs, name) {
  if (pairs instanceof Map) return pairs.entries();
  if (pairs !== null && typeof pairs === 'object' && !Array.isArray(pairs)) return Object.entries(pairs);
  throw typeError(`${name} must be a plain object or a Map, got ${describe(pairs)}`);
}

module.exports = { wellFormed, toKey, encode, decode, ttlArg, ttlMs, tagsArg, optionsArg, entriesOf, mgetWire, msetWire, inParts, tagged, mgetvWire, msetvWire };
