//! The napi binding: argument checks, napi types and error mapping over the
//! engine. The JS face (index.js) wraps `CacheEngine` into `CacheModule`.
//!
//! Native promises never reject: they resolve to a value or to an `Error`
//! built here with its `code` (and TypeError/RangeError class for bad
//! arguments), which the JS face throws. That keeps one error mapping for
//! every method and for each operation inside a batch.

#![deny(clippy::all)]

mod codec;
mod compress;
mod connection;
mod deliver;
mod engine;
mod error;
mod getorset;
mod invalidate;
mod lock;
mod metrics;
mod multiplex;
mod ops;
mod options;
mod scan;
mod sentinel;
mod stats;
mod wake;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::ptr;
use std::sync::Arc;

use napi::bindgen_prelude::{Buffer, Function, Null, ToNapiValue, TypeName};
use napi::{sys, Env, Status, ValueType};
use napi_derive::napi;

use crate::deliver::Deliver;
use crate::engine::Engine;
use crate::error::{ArgKind, CacheError};
use crate::ops::{Reply, Stored};
use crate::options::Options;
use crate::wake::Wakes;

#[napi_derive::module_init]
fn init() {
  // rustls needs a process-wide crypto provider for TLS connections.
  let _ = rustls::crypto::ring::default_provider().install_default();
  // One worker: the JS thread does the encoding, so a second worker mostly
  // adds wake-ups (see README "Architecture").
  let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("the tokio runtime starts");
  napi::bindgen_prelude::create_custom_tokio_runtime(rt);
}

#[napi]
pub struct CacheEngine {
  engine: Arc<Engine>,
  deliver: Arc<Deliver>,
  wakes: Wakes,
}

// The napi finalizer, on the JS thread: the one place the JS callback can be
// let go (see deliver::Direct).
impl Drop for CacheEngine {
  fn drop(&mut self) {
    self.deliver.close();
  }
}

#[napi]
impl CacheEngine {
  /// `options`: the constructor options as JSON text, without functions.
  /// `onReplies(batches)` receives every finished batch as `[batchId, replies]`.
  #[napi(constructor, ts_args_type = "options: string, onReplies: (batches: Array<[batchId: number, replies: Array<Reply>]>) => void")]
  pub fn new(env: Env, options: String, on_replies: Function<Vec<(u32, Vec<Reply>)>, ()>) -> napi::Result<Self> {
    let opts = Options::parse(&options, |name| std::env::var(name).ok()).map_err(|e| throw(&env, &e))?;
    let deliver = Arc::new(Deliver::new(&env, on_replies)?);
    let events = deliver.clone();
    let engine = Engine::new(opts, Arc::new(move |err| events.send(0, vec![Reply::Err(err)])));
    Ok(CacheEngine { engine: Arc::new(engine), deliver, wakes: Wakes::default() })
  }

  #[napi(getter)]
  pub fn key_prefix(&self) -> String {
    self.engine.opts.key_prefix.clone()
  }

  /// `host:port` of the server (the seed nodes in cluster mode).
  #[napi(getter)]
  pub fn address(&self) -> String {
    self.engine.addr()
  }

  /// defaultTTL in ms (0 = no expiry), for getOrSet's freshness.
  #[napi(getter)]
  pub fn default_ttl_ms(&self) -> f64 {
    self.engine.opts.default_ttl_ms as f64
  }

  #[napi(getter)]
  pub fn command_timeout_ms(&self) -> f64 {
    self.engine.opts.command_timeout.as_millis() as f64
  }

  /// getOrSet: resolves true when another process stored (or gave up) `key`
  /// within `ms`, false when the time ran out (src/wake.rs).
  #[napi]
  pub async fn await_fill(&self, key: String, ms: u32) -> bool {
    // Not connected (before initialize, after disconnect): no subscription
    // is opened; the caller's next command fails and it runs the factory.
    if !self.engine.is_connected() {
      return false;
    }
    let Ok(stored) = self.engine.codec.key(&key) else { return false };
    let channel = self.engine.codec.fill_channel();
    self.wakes.wait(&self.engine.opts, channel, stored, std::time::Duration::from_millis(ms.into())).await
  }

  #[napi(getter)]
  pub fn connected(&self) -> bool {
    self.engine.is_connected()
  }

  /// Connects (or reconnects) and PINGs. Resolves null, or the Error.
  #[napi(ts_return_type = "Promise<null | Error>")]
  pub async fn connect(&self) -> Reply {
    match self.engine.connect().await {
      Ok(()) => Reply::Nil,
      Err(e) => Reply::Err(e),
    }
  }

  /// Sends batch `id` of hot-path operations (wire format: src/ops.rs); its
  /// replies, one per operation, arrive through `onReplies`.
  #[napi]
  pub fn exec(&self, env: Env, id: u32, ops: Vec<String>) {
    if let Some(mux) = self.engine.standalone() {
      mux.watch_from_js(env.raw(), || self.deliver.js_turn());
    }
    let deliver = self.deliver.clone();
    self.engine.exec(&ops, move |replies| deliver.send(id, replies));
  }

  /// Whether pending batches keep the process alive.
  #[napi]
  pub fn hold(&self, env: Env, active: bool) -> napi::Result<()> {
    self.deliver.hold(&env, active)
  }

  /// A built-in strategy: `kind` is cascade, tag or pattern. Resolves the
  /// number of cache keys removed, or the Error.
  #[napi(ts_return_type = "Promise<number | Error>")]
  pub async fn invalidate(&self, kind: String, arg: String) -> Reply {
    let e = &self.engine;
    let removed = match kind.as_str() {
      "cascade" => invalidate::cascade(e, &arg).await,
      "tag" => invalidate::tag(e, &arg).await,
      "pattern" => invalidate::pattern(e, &arg).await,
      other => Err(CacheError::new(error::Code::UnknownStrategy, format!("unknown invalidation strategy {other:?}"))),
    };
    if let Ok(n) = removed {
      stats::add(&e.stats.deletes, n);
    }
    // Whatever it removed, no getOrSet factory in flight writes back over it.
    let removed = match removed {
      Ok(n) => getorset::cancel_leases(e).await.map(|()| n),
      err => err,
    };
    reply(removed.map(|n| Reply::Int(n as i64)))
  }

  /// The nodes `cache.scan` walks ("" for the one server, else each
  /// master's host:port), or the Error.
  #[napi(ts_return_type = "Promise<Array<string> | Error>")]
  pub async fn scan_nodes(&self) -> Reply {
    reply(scan::nodes(&self.engine).await.map(|nodes| Reply::List(nodes.into_iter().map(|n| Some(Stored::Text(n))).collect())))
  }

  /// One page of `cache.scan(glob)` on `node` from `cursor`: a JSON array
  /// text `[nextCursor, ...keys]` ("0": the node is done), or the Error.
  #[napi(ts_return_type = "Promise<string | Error>")]
  pub async fn scan(&self, node: String, cursor: String, glob: String, count: u32) -> Reply {
    reply(scan::page(&self.engine, &node, &cursor, &glob, count).await.map(Reply::Json))
  }

  /// `getStats()` as JSON text, or the Error; `reset` starts a new window.
  #[napi(ts_return_type = "Promise<string | Error>")]
  pub async fn stats(&self, reset: bool) -> Reply {
    reply(self.engine.stats_json(reset).await.map(Reply::Str))
  }

  /// `metrics()`: Prometheus text exposition of this instance's figures.
  #[napi]
  pub fn metrics(&self) -> String {
    metrics::prometheus(&self.engine.stats.read(), self.engine.is_connected())
  }

  #[napi]
  pub fn disconnect(&self) {
    self.wakes.stop();
    self.engine.disconnect();
  }
}

fn reply(result: error::Result<Reply>) -> Reply {
  result.unwrap_or_else(Reply::Err)
}

/// Throws `err` into JS as the right Error class with its `code`.
fn throw(env: &Env, err: &CacheError) -> napi::Error {
  let code = Some(err.code.as_str());
  let _ = match err.arg {
    Some(ArgKind::Type) => env.throw_type_error(&err.message, code),
    Some(ArgKind::Range) => env.throw_range_error(&err.message, code),
    None => env.throw_error(&err.message, code),
  };
  napi::Error::from_status(Status::PendingException)
}

/// Builds the JS Error for `err`, with its `code` (and `redisCode` for a
/// server's error reply). The one place errors are made on this side; the JS
/// face makes them its CacheError where they arrive (lib/errors.js).
unsafe fn create_error(env: sys::napi_env, err: CacheError) -> napi::Result<sys::napi_value> {
  let code = String::to_napi_value(env, err.code.as_str().to_string())?;
  let msg = String::to_napi_value(env, err.message)?;
  let mut out = ptr::null_mut();
  let create = match err.arg {
    Some(ArgKind::Type) => sys::napi_create_type_error,
    Some(ArgKind::Range) => sys::napi_create_range_error,
    None => sys::napi_create_error,
  };
  napi::check_status!(create(env, code, msg, &mut out))?;
  if let Some(redis_code) = err.redis_code {
    let value = String::to_napi_value(env, redis_code)?;
    napi::check_status!(sys::napi_set_named_property(env, out, c"redisCode".as_ptr(), value))?;
  }
  Ok(out)
}

impl TypeName for Reply {
  fn type_name() -> &'static str {
    "Reply"
  }

  fn value_type() -> ValueType {
    ValueType::Unknown
  }
}

impl ToNapiValue for Reply {
  unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
    match val {
      Reply::Nil => Null::to_napi_value(env, Null),
      Reply::Bool(b) => bool::to_napi_value(env, b),
      Reply::Int(i) => i64::to_napi_value(env, i),
      Reply::Str(s) => String::to_napi_value(env, s),
      Reply::Bytes(b) => Buffer::to_napi_value(env, b.into()),
      Reply::List(items) => Vec::<Option<Stored>>::to_napi_value(env, items),
      Reply::Json(text) => String::to_napi_value(env, text),
      Reply::Err(e) => create_error(env, e),
    }
  }
}

impl TypeName for Stored {
  fn type_name() -> &'static str {
    "Stored"
  }

  fn value_type() -> ValueType {
    ValueType::Unknown
  }
}

impl ToNapiValue for Stored {
  unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
    match val {
      Stored::Text(s) => String::to_napi_value(env, s),
      Stored::Bytes(b) => Buffer::to_napi_value(env, b.into()),
    }
  }
}
