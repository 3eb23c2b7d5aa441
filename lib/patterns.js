'use strict';

// Key patterns for generateKey: the seven built-ins and registered ones.

const { cacheError, typeError, describe } = require('./errors');

/** name -> the pattern's parts: literals and argument names, in order. */
const BUILT_IN = {
  user: ['user', '{userId}'],
  inventory: ['inventory', '{productId}'],
  order: ['order', '{orderId}'],
  session: ['session', '{sessionId}'],
  analytics: ['analytics', '{metric}', '{date}'],
  forecast: ['forecast', '{productId}', '{date}'],
  channel: ['channel', '{channelId}', '{resource}'],
};

/** A built-in pattern as a function that checks its arguments. */
function builtIn(name, parts) {
  const params = parts.filter((p) => p.startsWith('{'));
  return (...args) => {
    let i = 0;
    return parts
      .map((part) => {
        if (!part.startsWith('{')) return part;
        const arg = args[i++];
        if (!((typeof arg === 'string' && arg.length > 0) || (typeof arg === 'number' && Number.isFinite(arg)))) {
          throw typeError(`generateKey('${name}') needs ${params.join(', ')}: argument ${i} (${part.slice(1, -1)}) is ${describe(arg)}`);
        }
        return String(arg);
      })
      .join(':');
  };
}

class KeyPatterns {
  #patterns = new Map(Object.entries(BUILT_IN).map(([name, parts]) => [name, builtIn(name, parts)]));

  register(name, fn) {
    if (typeof name !== 'string' || name.length === 0) throw typeError(`pattern name must be a non-empty string, got ${describe(name)}`);
    if (typeof fn !== 'function') throw typeError(`pattern ${JSON.stringify(name)} must be a function, got ${describe(fn)}`);
    this.#patterns.set(name, fn);
  }

  generate(name, args) {
    const fn = this.#patterns.get(name);
    if (fn === undefined) throw cacheError('ERR_UNKNOWN_PATTERN', `unknown key pattern ${JSON.stringify(name)}`);
    const key = fn(...args);
    if (typeof key !== 'string' || key.length === 0 || key.includes('undefined')) {
      throw typeError(`key pattern ${JSON.stringify(name)} gave ${describe(key)} for arguments ${JSON.stringify(args)}`);
    }
    return key;
  }
}

module.exports = { KeyPatterns };
