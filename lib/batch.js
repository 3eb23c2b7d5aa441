'use strict';

// The JS side of the one dispatch path. Operations queue here and cross to
// Rust as one flat array of strings per batch (wire format: src/ops.rs). A
// batch leaves at the end of the current tick, or as soon as it holds
// FLUSH_AT commands' worth of Redis work (a get or a set is one, an mget or
// an mset one per key; a 100-key mset leaves on its own), so that Redis and
// the JS thread work at the same time under load: 64 gets or sets in flight
// go as two batches (counted in strings, 64 sets went as five, at 20 % less
// throughput; one batch of 64 or four of 16 are slower too). Rust writes the
// batch to the socket on this thread and hands the replies back through one
// long-lived callback, `receiver`.

const { cacheError, adopt } = require('./errors');
const { commands, wireContext } = require('./trace');

const FLUSH_AT = 32;
/** The cost of an operation that leaves at once with what is queued. */
const AT_ONCE = FLUSH_AT;
/**
 * Batchers with batches in flight. The engine's hold on its callback is a
 * GC root, so that callback reaches its batcher only weakly, and a
 * CacheModule nobody holds any more is collected (and its connection
 * closed); while replies are still due, this set keeps the batcher, so the
 * promises waiting on them still settle.
 */
const busy = new Set();

class Batcher {
  #engine = null;
  #onLost;
  #args = [];
  #pending = []; // per operation: resolve, reject, decode
  #cost = 0; // Redis commands queued
  #scheduled = false;
  #inflight = new Map(); // batch id -> its pending triples
  #held = false; // whether the engine keeps the process alive
  #releaseQueued = false;
  #nextId = 1;
  #idle = [];
  #where = null; // { server, keyPrefix }, for tracing

  /** `onLost(err)` hears when the engine lost its connection. */
  constructor(onLost) {
    this.#onLost = onLost;
    this.flush = this.flush.bind(this);
    const self = new WeakRef(this);
    /** What the engine calls with finished batches (see `settle`). */
    this.receiver = (batches) => self.deref()?.settle(batches);
  }

  /** `where`: { server, keyPrefix }, what a trace context names. */
  attach(engine, where) {
    this.#engine = engine;
    this.#where = where;
  }

  /**
   * Queues one operation (its wire strings); `decode` maps its raw reply;
   * `cost` is how many Redis commands it amounts to. Lock steps cost
   * AT_ONCE: their scripts cost Redis far more than a GET, so they leave at
   * once and Redis starts on them while JS goes on (measured: 1.5x the lock
   * throughput at 8 in flight). Traced (lib/trace.js) while anyone
   * subscribes.
   */
  run(decode, args, cost = 1) {
    if (commands.hasSubscribers) return commands.tracePromise(() => this.#queue(decode, args, cost), wireContext(args, cost, this.#where));
    return this.#queue(decode, args, cost);
  }

  #queue(decode, args, cost) {
    return new Promise((resolve, reject) => {
      const queued = this.#args;
      for (let i = 0; i < args.length; i++) queued.push(args[i]);
      this.#pending.push(resolve, reject, decode);
      this.#cost += cost;
      if (this.#cost >= FLUSH_AT) this.flush();
      else if (!this.#scheduled) {
        this.#scheduled = true;
        process.nextTick(this.flush);
      }
    });
  }

  flush() {
    this.#scheduled = false;
    if (this.#pending.length === 0) return;
    this.#cost = 0;
    const args = this.#args;
    const pending = this.#pending;
    this.#args = [];
    this.#pending = [];
    const id = this.#begin(pending);
    try {
      this.#engine.exec(id, args);
    } catch (err) {
      this.settle([[id, [err]]]);
    }
  }

  /**
   * A native call that answers later with one reply, as a batch of its own
   * (invalidate, getStats): `start(id)` begins it. Settled, held and drained
   * like a batch, so disconnect() waits for it too.
   */
  call(start, decode) {
    return new Promise((resolve, reject) => {
      const id = this.#begin([resolve, reject, decode]);
      try {
        start(id);
      } catch (err) {
        this.settle([[id, [err]]]);
      }
    });
  }

  /** Registers `pending` in flight under a new batch id. */
  #begin(pending) {
    const id = this.#nextId;
    this.#nextId = id === 0xffffffff ? 1 : id + 1;
    // Batches in flight keep the process alive; an idle connection does not.
    if (!this.#held) {
      this.#held = true;
      busy.add(this);
      this.#engine.hold(true);
    }
    this.#inflight.set(id, pending);
    return id;
  }

  /** Finished batches, each `[id, replies]` (batch 0: the connection was lost). */
  settle(batches) {
    for (let i = 0; i < batches.length; i++) this.#settleOne(batches[i][0], batches[i][1]);
  }

  #settleOne(id, replies) {
    if (id === 0) return this.#onLost(adopt(replies[0]));
    const pending = this.#inflight.get(id);
    if (pending === undefined) return;
    this.#inflight.delete(id);
    const n = pending.length / 3;
    // A batch-wide failure arrives as a single error.
    const shared =
      replies.length === n ? undefined
      : replies[0] instanceof Error ? adopt(replies[0])
      : cacheError('ERR_REDIS', `expected ${n} replies, got ${replies.length}`);
    for (let i = 0; i < n; i++) {
      const reply = shared === undefined ? replies[i] : shared;
      if (reply instanceof Error) {
        pending[3 * i + 1](shared === undefined ? adopt(reply) : reply);
      } else {
        let value;
        try {
          value = pending[3 * i + 2](reply);
        } catch (err) {
          pending[3 * i + 1](err);
          continue;
        }
        pending[3 * i](value);
      }
    }
    if (this.#inflight.size === 0) {
      if (!this.#releaseQueued) {
        this.#releaseQueued = true;
        queueMicrotask(this.#release);
      }
      if (this.#idle.length > 0) for (const done of this.#idle.splice(0)) done();
    }
  }

  /**
   * Lets the process exit once nothing is in flight or queued. A microtask
   * after the replies' own: an operation their callbacks queue at once (one
   * request in flight, in a loop) keeps the hold, which saves two native
   * calls on every round trip.
   */
  #release = () => {
    this.#releaseQueued = false;
    if (this.#held && this.#inflight.size === 0 && this.#pending.length === 0) {
      this.#held = false;
      busy.delete(this);
      this.#engine.hold(false);
    }
  };

  /** Sends what is queued and resolves when no batch is in flight. */
  drain() {
    this.flush();
    if (this.#inflight.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }
}

module.exports = { Batcher, AT_ONCE };
