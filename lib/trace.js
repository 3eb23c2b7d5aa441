'use strict';

// Tracing: every operation is published on the diagnostics_channel
// TracingChannel `fluxor:command` (as ioredis publishes `ioredis:command` and
// node-redis `node-redis:command`) while anyone subscribes; otherwise an
// operation costs one `hasSubscribers` check. The context's shape:
// index.d.ts `CommandContext` (TracingChannel adds `result` or `error`).

const dc = require('node:diagnostics_channel');

const commands = dc.tracingChannel('fluxor:command');

/** `fn()` (a promise), traced with `context()` when anyone subscribes. */
function trace(fn, context) {
  return commands.hasSubscribers ? commands.tracePromise(fn, context()) : fn();
}

/** The opcodes of a serializer other than JSON (src/ops.rs), named as the operations they are. */
const SERIALIZED = { setv: 'set', msetv: 'mset', mgetv: 'mget', gos_storev: 'gos_store' };

/**
 * The context of a batch-path operation from its wire strings (src/ops.rs);
 * `cost` is an mget's or mset's key count. `where`: { server, keyPrefix }.
 */
function wireContext(args, cost, where) {
  const operation = SERIALIZED[args[0]] ?? args[0];
  const many = operation === 'mget' || operation === 'mset';
  const keyless = many || operation === 'ping';
  return {
    operation,
    key: keyless ? undefined : args[1],
    keyCount: many ? cost : keyless ? 0 : 1,
    keyPrefix: where.keyPrefix,
    server: where.server,
  };
}

module.exports = { commands, trace, wireContext };
