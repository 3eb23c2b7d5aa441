'use strict';

// The JS side of the one dispatch path. Operations queue here and cross to
// Rust as one flat array of strings per batch: a batch leaves at the end of
// the current tick, or as soon as FLUSH_AT operations are queued, so that
// Redis and the JS thread work at the same time under load. One native call
// (one Promise, one hop to the tokio thread) then carries many commands.

const { cacheError } = require('./errors');

const FLUSH_AT = 32;

class Batcher {
  #engine;
  #onError;
  #args = [];
  #pending = []; // per operation: resolve, reject, decode
  #scheduled = false;
  #inflight = 0;
  #idle = [];

  /** `onError(err)` sees every error an operation resolves to. */
  constructor(engine, onError) {
    this.#engine = engine;
    this.#onError = onError;
    this.flush = this.flush.bind(this);
  }

  /** Queues one operation; `decode` maps its raw reply. */
  run(decode, ...args) {
    return new Promise((resolve, reject) => {
      for (let i = 0; i < args.length; i++) this.#args.push(args[i]);
      this.#pending.push(resolve, reject, decode);
      if (this.#pending.length >= FLUSH_AT * 3) this.flush();
      else if (!this.#scheduled) {
        this.#scheduled = true;
        process.nextTick(this.flush);
      }
    });
  }

  flush() {
    this.#scheduled = false;
    if (this.#pending.length === 0) return;
    const args = this.#args;
    const pending = this.#pending;
    this.#args = [];
    this.#pending = [];
    this.#inflight++;
    let call;
    try {
      call = this.#engine.exec(args);
    } catch (err) {
      call = Promise.resolve([err]);
    }
    call.then(
      (replies) => this.#settle(pending, replies),
      (err) => this.#settle(pending, [err]),
    );
  }

  #settle(pending, replies) {
    const n = pending.length / 3;
    // A batch-wide failure arrives as a single error.
    const shared = replies.length === n ? undefined
      : replies[0] instanceof Error ? replies[0]
      : cacheError('ERR_REDIS', `expected ${n} replies, got ${replies.length}`);
    for (let i = 0; i < n; i++) {
      const reply = shared === undefined ? replies[i] : shared;
      if (reply instanceof Error) {
        this.#onError(reply);
        pending[3 * i + 1](reply);
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
    if (--this.#inflight === 0) for (const done of this.#idle.splice(0)) done();
  }

  /** Sends what is queued and resolves when no batch is in flight. */
  drain() {
    this.flush();
    if (this.#inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }
}

module.exports = { Batcher, FLUSH_AT };
