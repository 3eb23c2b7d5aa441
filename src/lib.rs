//! The napi binding: argument checks, napi types and error mapping over the
//! engine. The JS face (index.js) wraps `CacheEngine` into `CacheModule`.
//!
//! Native promises never reject: they resolve to a value or to an `Error`
//! built here with its `code` (and TypeError/RangeError class for bad
//! arguments), which the JS face throws. That keeps one error mapping for
//! every method and for each operation inside a batch.

#![deny(clippy::all)]

mod cluster;
mod codec;
mod compress;
mod connection;
mod deliver;
mod engine;
mod error;
mod eviction;
mod expire;
mod getorset;
mod invalidate;
mod js_poll;
mod js_string;
mod lock;
mod memory;
mod metrics;
mod multiplex;
mod ops;
mod options;
mod scan;
mod sentinel;
mod stats;
mod tracking;
mod transport;
mod wake;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::ptr;
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::{Buffer, Function, Null, PromiseRaw, ToNapiValue, TypeName};
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
  /// The near cache's invalidation connections, while tracking.
  tracker: Mutex<Option<tracking::Tracker>>,
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
    Ok(CacheEngine { engine: Arc::new(engine), deliver, tracker: Mutex::new(None), wakes: Wakes::default() })
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
    if let Some(memory) = &self.engine.memory {
      return memory.await_fill(stored, std::time::Duration::from_millis(ms.into())).await;
    }
    let channel = self.engine.codec.fill_channel();
    self.wakes.wait(&self.engine.opts, channel, stored, std::time::Duration::from_millis(ms.into())).await
  }

  #[napi(getter)]
  pub fn connected(&self) -> bool {
    self.engine.is_connected()
  }

  /// Connects (or reconnects) and PINGs. Resolves null, the server's
  /// eviction policy when it may evict lock keys, or the Error.
  #[napi(ts_return_type = "Promise<null | string | Error>")]
  pub fn connect<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, Reply>> {
    let engine = self.engine.clone();
    env.spawn_future(async move { Ok(reply(engine.connect().await.map(|policy| policy.map_or(Reply::Nil, Reply::Str)))) })
  }

  /// Sends batch `id` of hot-path operations (wire format: src/ops.rs); its
  /// replies, one per operation, arrive through `onReplies`.
  #[napi]
  pub fn exec(&self, env: Env, id: u32, ops: Vec<String>) {
    if let Some(mux) = self.engine.standalone() {
      mux.watch_from_js(env.raw(), || self.deliver.js_turn());
    } else if let Some(cluster) = self.engine.cluster() {
      cluster.watch_from_js(env.raw(), || self.deliver.js_turn());
    }
    let deliver = self.deliver.clone();
    if self.engine.memory.is_some() {
      // The store answers at once, on this thread: the replies go to JS in
      // this same call, with no queue and no turn of the event loop.
      let mut ops = Some(ops);
      let engine = &self.engine;
      return self.deliver.js_turn().run(&mut || {
        let deliver = deliver.clone();
        engine.exec(&ops.take().unwrap_or_default(), move |replies| deliver.send(id, replies))
      });
    }
    self.engine.exec(&ops, move |replies| deliver.send(id, replies));
  }

  /// Whether pending batches keep the process alive.
  #[napi]
  pub fn hold(&self, env: Env, active: bool) -> napi::Result<()> {
    self.deliver.hold(&env, active)
  }

  /// Call `id`: a built-in strategy (`kind`: cascade, tag or pattern). Its
  /// reply, the number of cache keys removed or the Error, arrives through
  /// `onReplies` like a batch's.
  #[napi]
  pub fn invalidate(&self, id: u32, kind: String, arg: String) {
    let engine = self.engine.clone();
    self.answer(id, async move { invalidate::run(&engine, &kind, &arg).await.map(|n| Reply::Int(n as i64)) });
  }

  /// Call `id`: the nodes `cache.scan` walks ("" for the one server, else
  /// each master's host:port), or the Error, through `onReplies`.
  #[napi]
  pub fn scan_nodes(&self, id: u32) {
    let engine = self.engine.clone();
    self.answer(id, async move { scan::nodes(&engine).await.map(|nodes| Reply::List(nodes.into_iter().map(|n| Some(Stored::Text(n))).collect())) });
  }

  /// Call `id`: one page of `cache.scan(glob)` on `node` from `cursor`, a
  /// JSON array text `[nextCursor, ...keys]` ("0": the node is done), or the
  /// Error, through `onReplies`.
  #[napi]
  pub fn scan(&self, id: u32, node: String, cursor: String, glob: String, count: u32) {
    let engine = self.engine.clone();
    self.answer(id, async move { scan::page(&engine, &node, &cursor, &glob, count).await.map(Reply::Json) });
  }

  /// Call `id`: `getStats()` as JSON text, or the Error, through
  /// `onReplies`; `reset` starts a new window.
  #[napi]
  pub fn stats(&self, id: u32, reset: bool) {
    let engine = self.engine.clone();
    self.answer(id, async move { engine.stats_json(reset).await.map(Reply::Str) });
  }

  /// `metrics()`: Prometheus text exposition of this instance's figures.
  #[napi]
  pub fn metrics(&self) -> String {
    metrics::prometheus(&self.engine.stats.read(), self.engine.is_connected())
  }

  #[napi]
  pub fn disconnect(&self) {
    self.untrack();
    self.wakes.stop();
    self.engine.disconnect();
  }

  /// Opens the near cache's invalidation connections (src/tracking.rs), if
  /// they are not open; their events arrive as batch `0xffffffff`.
  #[napi]
  pub fn track(&self, max_silence_ms: u32) {
    let mut tracker = self.tracker.lock().unwrap();
    if tracker.is_none() {
      let silence = std::time::Duration::from_millis(max_silence_ms.into());
      *tracker = Some(tracking::start(self.engine.clone(), self.deliver.clone(), silence));
    }
  }

  #[napi]
  pub fn untrack(&self) {
    self.tracker.lock().unwrap().take();
  }

  /// The clock of tracking events, in microseconds.
  #[napi]
  pub fn clock(&self) -> i64 {
    tracking::clock_us()
  }
}

impl CacheEngine {
  /// Runs `work` and hands its reply to JS as batch `id`. Work that takes
  /// round trips owns what it uses (never `&self`, which a worker's ending
  /// frees) and answers through the batches' delivery, which knows when the
  /// JS environment is gone.
  fn answer(&self, id: u32, work: impl std::future::Future<Output = error::Result<Reply>> + Send + 'static) {
    let deliver = self.deliver.clone();
    napi::bindgen_prelude::spawn(async move { deliver.send(id, vec![reply(work.await)]) });
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
      Reply::Str(s) | Reply::Json(s) => js_string::string(env, s),
      Reply::Bytes(b) => Buffer::to_napi_value(env, b.into()),
      Reply::List(items) => js_string::list(env, items),
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
