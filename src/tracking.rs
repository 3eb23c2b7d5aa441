//! The near cache's invalidation connections (README "Near cache").
//!
//! One RESP3 connection per data node (the server, the master behind the
//! sentinels, or every cluster master),
//! apart from the hot path, with `CLIENT TRACKING on BCAST PREFIX
//! <keyPrefix>`: the server pushes the name of every key written, deleted,
//! expired or evicted under the prefix, by any client, and a null after a
//! flush. The same connection carries a heartbeat. Everything goes to the JS
//! face as events through the engine's one delivery queue (batch id
//! `EVENTS`), in the order it was read, so JS applies every invalidation the
//! server sent before a PONG before it hears that PONG. A batch holds
//! events of three items each, `kind, at, keys | null`:
//!
//!   up, at       tracking is on everywhere, as of `at`
//!   alive, at    every node answered a PING sent at `at`
//!   keys, at, [] these keys changed (user names, prefix removed)
//!   flush, at    a node was flushed
//!   down, at     a connection was lost or the masters changed
//!
//! Events read in one burst leave as one batch (`Outbox`): one call into JS
//! for a storm of invalidations, not one per key.
//!
//! `at` is `clock_us()`, which JS maps onto `performance.now()` (the same
//! monotonic clock). On any loss every connection is dropped and the set is
//! made again, after a back-off; JS drops its copies at "down".

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::connection::Node;
use crate::deliver::Deliver;
use crate::engine::Engine;
use crate::error::{CacheError, Result};
use crate::ops::{Reply, Stored};
use crate::options::Target;

/// The batch id of tracking events (batch.js never gives it to a batch).
pub const EVENTS: u32 = u32::MAX;

/// What the server calls an invalidation connection (CLIENT LIST).
pub const CLIENT_NAME: &str = "fluxor-tracking";

/// Microseconds on the process's monotonic clock.
pub fn clock_us() -> i64 {
  static BASE: OnceLock<Instant> = OnceLock::new();
  BASE.get_or_init(Instant::now).elapsed().as_micros() as i64
}

/// The running invalidation connections; dropping this stops them.
pub struct Tracker {
  task: AbortHandle,
}

impl Drop for Tracker {
  fn drop(&mut self) {
    self.task.abort();
  }
}

/// Starts tracking; PINGs every `max_silence / 3`.
pub fn start(engine: Arc<Engine>, deliver: Arc<Deliver>, max_silence: Duration) -> Tracker {
  let beat = (max_silence / 3).max(Duration::from_millis(1));
  let outbox = Arc::new(Outbox::default());
  let task = napi::bindgen_prelude::spawn(async move {
    let supervise = async {
      let mut backoff = Duration::from_millis(50);
      loop {
        let up = session(&engine, &outbox, beat).await;
        outbox.push("down", clock_us(), None);
        // A session that ran resets the back-off; repeated failures to
        // connect wait longer each time, up to a second.
        backoff = if up { Duration::from_millis(50) } else { (backoff * 2).min(Duration::from_secs(1)) };
        tokio::time::sleep(backoff).await;
      }
    };
    tokio::select! {
      _ = supervise => {}
      _ = outbox.deliver(&deliver) => {}
    }
  });
  Tracker { task: task.abort_handle() }
}

/// Events on their way to JS, in order.
#[derive(Default)]
struct Outbox {
  queue: Mutex<Vec<Reply>>,
  ready: Notify,
}

impl Outbox {
  fn push(&self, kind: &str, at: i64, keys: Option<Vec<Option<String>>>) {
    let mut queue = self.queue.lock().unwrap();
    let first = queue.is_empty();
    queue.extend([
      Reply::Str(kind.to_string()),
      Reply::Int(at),
      keys.map_or(Reply::Nil, |keys| Reply::List(keys.into_iter().map(|k| k.map(Stored::Text)).collect())),
    ]);
    drop(queue);
    if first {
      self.ready.notify_one();
    }
  }

  /// Hands what is queued to JS whenever something is: after the reader
  /// that queued it yields, so a burst goes as one batch.
  async fn deliver(&self, deliver: &Deliver) {
    loop {
      self.ready.notified().await;
      let batch = std::mem::take(&mut *self.queue.lock().unwrap());
      if !batch.is_empty() {
        deliver.send(EVENTS, batch);
      }
    }
  }
}

/// One life of the connection set: opens it, says "up", beats until
/// something is lost. Whether it got as far as "up".
async fn session(engine: &Arc<Engine>, outbox: &Arc<Outbox>, beat: Duration) -> bool {
  let lost = Arc::new(Notify::new());
  let since = clock_us();
  // No node to track (a cluster with no healthy master known) is not "up".
  let Some(masters) = masters(engine).await.ok().filter(|m| !m.is_empty()) else { return false };
  let mut conns = Vec::with_capacity(masters.len());
  for node in &masters {
    match open(engine, outbox, &lost, node).await {
      Ok(conn) => conns.push(conn),
      Err(_) => return false,
    }
  }
  outbox.push("up", since, None);
  let timeout = engine.opts.command_timeout;
  let mut beats = 0u64;
  loop {
    tokio::select! {
      _ = lost.notified() => return true,
      _ = tokio::time::sleep(beat) => {}
    }
    let sent = clock_us();
    let pings = conns.iter().map(|conn| {
      let mut conn = conn.clone();
      async move { tokio::time::timeout(timeout, redis::cmd("PING").query_async::<Value>(&mut conn)).await }
    });
    if join_all(pings).await.iter().any(|r| !matches!(r, Ok(Ok(_)))) {
      return true;
    }
    // Behind sentinels, the hot path follows a failover to the new master:
    // a connection still on the old one would hear nothing of its writes.
    if let Target::Sentinel(sentinel) = &engine.opts.target {
      if !matches!(sentinel.master_now(), Some(now) if same_addr(&now, &masters[0])) {
        return true;
      }
    }
    outbox.push("alive", sent, None);
    // A cluster whose masters changed may serve keys from a node not
    // tracked yet (or a slot moved without MIGRATE sends no invalidation):
    // start over. Checked about once per maxSilence.
    beats += 1;
    if engine.is_cluster() && beats.is_multiple_of(3) && !matches!(masters_now(engine).await, Ok(m) if same_nodes(&m, &masters)) {
      return true;
    }
  }
}

/// The data nodes, with the connection info to reach each.
async fn masters(engine: &Arc<Engine>) -> Result<Vec<ConnectionInfo>> {
  match &engine.opts.target {
    Target::Standalone(info) => Ok(vec![info.clone()]),
    // Refused with localCache by the JS face: the store is in process already.
    Target::Memory(_) => Err(CacheError::type_error("the memory store has no server to track")),
    // The master the hot path found; none yet: try again later.
    Target::Sentinel(sentinel) => sentinel.master_now().map(|info| vec![info]).ok_or_else(CacheError::not_connected),
    Target::Cluster(seeds) => {
      let seed = &seeds[0];
      Ok(
        masters_now(engine)
          .await?
          .into_iter()
          .filter_map(|node| match node {
            Node::Master { host, port } => Some(seed.clone().set_addr(match seed.addr() {
              ConnectionAddr::TcpTls { insecure, .. } => ConnectionAddr::TcpTls { host, port, insecure: *insecure, tls_params: None },
              _ => ConnectionAddr::Tcp(host, port),
            })),
            Node::Standalone => None,
          })
          .collect(),
      )
    }
  }
}

async fn masters_now(engine: &Arc<Engine>) -> Result<Vec<Node>> {
  let mut nodes = engine.masters().await?;
  nodes.sort_by_key(|n| format!("{n:?}"));
  Ok(nodes)
}

fn addr(info: &ConnectionInfo) -> Option<(String, u16)> {
  match info.addr() {
    ConnectionAddr::Tcp(h, p) | ConnectionAddr::TcpTls { host: h, port: p, .. } => Some((h.clone(), *p)),
    _ => None,
  }
}

fn same_addr(a: &ConnectionInfo, b: &ConnectionInfo) -> bool {
  addr(a).is_some() && addr(a) == addr(b)
}

fn same_nodes(now: &[Node], infos: &[ConnectionInfo]) -> bool {
  let mut was: Vec<_> = infos.iter().filter_map(addr).collect();
  let mut is: Vec<_> = now
    .iter()
    .filter_map(|n| match n {
      Node::Master { host, port } => Some((host.clone(), *port)),
      Node::Standalone => None,
    })
    .collect();
  was.sort();
  is.sort();
  was == is
}

/// One invalidation connection, tracking on. Its pushes go to JS as they are
/// read; its loss wakes `lost`.
async fn open(engine: &Arc<Engine>, outbox: &Arc<Outbox>, lost: &Arc<Notify>, info: &ConnectionInfo) -> Result<MultiplexedConnection> {
  let opts = &engine.opts;
  let what = crate::options::addr_of(info);
  let err = |e: redis::RedisError| CacheError::from_redis(&e, &what);
  let settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
  let info = info.clone().set_redis_settings(settings);
  let client = match &opts.tls {
    Some(certs) if matches!(info.addr(), ConnectionAddr::TcpTls { .. }) => Client::build_with_tls(info, certs.clone()),
    _ => Client::open(info),
  }
  .map_err(err)?;
  let (engine_w, outbox_p, lost_p) = (Arc::downgrade(engine), outbox.clone(), lost.clone());
  let on_push = move |push: PushInfo| -> std::result::Result<(), ()> {
    match push.kind {
      PushKind::Invalidate => match push.data.first() {
        Some(Value::Array(keys)) => {
          let Some(engine) = engine_w.upgrade() else { return Ok(()) };
          let keys: Vec<Option<String>> = keys
            .iter()
            .filter_map(|k| match k {
              Value::BulkString(b) => engine.codec.user_key(b).map(|u| Some(String::from_utf8_lossy(u).into_owned())),
              _ => None,
            })
            .collect();
          if !keys.is_empty() {
            outbox_p.push("keys", clock_us(), Some(keys));
          }
        }
        _ => outbox_p.push("flush", clock_us(), None),
      },
      PushKind::Disconnection => lost_p.notify_one(),
      _ => {}
    }
    Ok(())
  };
  let config = AsyncConnectionConfig::new().set_connection_timeout(Some(opts.connect_timeout)).set_response_timeout(None).set_push_sender(on_push);
  let connect = async {
    let mut conn = client.get_multiplexed_async_connection_with_config(&config).await.map_err(err)?;
    redis::cmd("CLIENT").arg("SETNAME").arg(CLIENT_NAME).query_async::<()>(&mut conn).await.map_err(err)?;
    let mut tracking = redis::cmd("CLIENT");
    tracking.arg("TRACKING").arg("on").arg("BCAST");
    if !opts.key_prefix.is_empty() {
      tracking.arg("PREFIX").arg(&opts.key_prefix);
    }
    tracking.query_async::<()>(&mut conn).await.map_err(err)?;
    Ok(conn)
  };
  tokio::time::timeout(opts.connect_timeout, connect)
    .await
    .unwrap_or_else(|_| Err(CacheError::timeout(&format!("connecting to {what}"), opts.connect_timeout.as_millis() as u64)))
}
