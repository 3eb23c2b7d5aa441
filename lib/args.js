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

/** A value as its JSON.stringify text; what JSON cannot hold is a TypeError. */
function encode(value, name = 'value') {
  let json;
  try {
    json = JSON.stringify(value);
  } catch (err) {
    throw typeError(`${name} cannot be stored as JSON: ${err.message}`);
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

function ttlMs(ttl, name = 'ttl') {
  if (typeof ttl !== 'number') throw typeError(`${name} must be a number of seconds, got ${describe(ttl)}`);
  if (!(ttl >= 0) || ttl === Infinity) throw rangeError(`${name} must be a finite number of seconds, 0 or more; got ${ttl}`);
  // A positive ttl never rounds down to 0, which would mean "no expiry".
  return ttl === 0 ? 0 : Math.max(1, Math.round(ttl * 1000));
}

function tagsArg(tags) {
  if (tags === undefined) return '';
  if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string' && t.length > 0)) {
    throw typeError(`options.tags must be an array of non-empty strings, got ${describe(tags)}`);
  }
  return tags.length === 0 ? '' : JSON.stringify(tags);
}

function optionsArg(options, name = 'options') {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object') throw typeError(`${name} must be an object, got ${describe(options)}`);
  return options;
}

/**
 * An mset's wire strings (src/ops.rs): the keys as one JSON array text, the
 * values' JSON texts joined by NUL, which JSON text never holds raw
 * (JSON.stringify escapes every control character). Two strings cross to
 * Rust instead of two per entry.
 */
function msetWire(ttl, tags, keys, values) {
  return ['mset', ttl, tags, JSON.stringify(keys), values.join('\0')];
}

/** The entries of a plain object or a Map. */
function entriesOf(pairs, name) {
  if (pairs instanceof Map) return pairs.entries();
  if (pairs !== null && typeof pairs === 'object' && !Array.isArray(pairs)) return Object.entries(pairs);
  throw typeError(`${name} must be a plain object or a Map, got ${describe(pairs)}`);
}

module.exports = { toKey, encode, decode, ttlArg, ttlMs, tagsArg, optionsArg, entriesOf, msetWire };
