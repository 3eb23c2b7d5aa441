//! The cache engine: options, the current connection, and the one dispatch
//! path every command takes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use redis::{Cmd, Value};

use crate::codec::Codec;
use crate::connection::{describe, Connection, Node, Outcome};
use crate::error::{CacheError, Code, Result};
use crate::memory;
use crate::ops::{Kind, Op, Reply, Wire};
use crate::options::{Options, Target};
use crate::stats::{add, ServerInfo, Stats};

/// Receives what the engine reports on its own: a lost connection.
pub type Events = Arc<dyn Fn(CacheError) + Send + Sync>;

enum State {
  /// Before initialize() and after disconnect().
  Idle,
  Ready(Current),
  /// The connection broke; the JS face reconnects by retryStrategy.
  Lost(CacheError),
}

/// The connection in use, with a number that tells it from later ones.
#[derive(Clone)]
pub struct Current {
  pub conn: Connection,
  generation: u64,
}

pub struct Engine {
  pub opts: Options,
  pub codec: Codec,
  pub stats: Stats,
  state: RwLock<State>,
  generations: AtomicU64,
  events: Events,
  /// The in-process store, instead of a server (src/memory/).
  pub memory: Option<memory::Backend>,
}

impl Engine {
  pub fn new(opts: Options, events: Events) -> Engine {
    Engine {
      memory: match &opts.target {
        Target::Memory(config) => Some(memory::Backend::new(config.clone())),
        _ => None,
      },
      codec: Codec::new(&opts.key_prefix),
      opts,
      stats: Stats::default(),
      state: RwLock::new(State::Idle),
      generations: AtomicU64::new(0),
      events,
    }
  }

  pub fn addr(&self) -> String {
    describe(&self.opts.target)
  }

  /// Opens a new connection and makes it the current one. Resolves the
  /// server's eviction policy when it may evict lock keys (eviction.rs).
  pub async fn connect(self: &Arc<Self>) -> Result<Option<String>> {
    if let Some(memory) = &self.memory {
      return memory.connect().map(|()| None);
    }
    let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
    let engine = Arc::downgrade(self);
    let on_lost = Arc::new(move |err: CacheError| {
      if let Some(engine) = engine.upgrade() {
        engine.lost(generation, err);
      }
    });
    let conn = Connection::open(&self.opts, on_lost).await?;
    let eviction = crate::eviction::unsafe_policy(&conn).await;
    let old = std::mem::replace(&mut *self.state_mut(), State::Ready(Current { conn, generation }));
    if let State::Ready(old) = old {
      old.conn.close();
    }
    Ok(eviction)
  }

  pub fn disconnect(&self) {
    if let Some(memory) = &self.memory {
      memory.disconnect();
    }
    let old = std::mem::replace(&mut *self.state_mut(), State::Idle);
    // Closing completes what is pending: not under the lock.
    if let State::Ready(current) = old {
      current.conn.close();
    }
  }

  // The state is replaced whole under the lock, so a panic elsewhere cannot
  // leave it half-written: a poisoned lock is as good as any.
  fn state(&self) -> RwLockReadGuard<'_, State> {
    self.state.read().unwrap_or_else(PoisonError::into_inner)
  }

  fn state_mut(&self) -> RwLockWriteGuard<'_, State> {
    self.state.write().unwrap_or_else(PoisonError::into_inner)
  }

  pub fn connection(&self) -> Result<Current> {
    match &*self.state() {
      State::Ready(current) => Ok(current.clone()),
      State::Lost(err) => Err(err.clone()),
      State::Idle => Err(CacheError::not_connected()),
    }
  }

  /// The standalone connection's socket, when that is what is in use.
  pub fn standalone(&self) -> Option<Arc<crate::multiplex::Multiplexed>> {
    match &*self.state() {
      State::Ready(Current { conn: Connection::Standalone(mux), .. }) => Some(mux.clone()),
      _ => None,
    }
  }

  /// The cluster connection, when that is what is in use.
  pub fn cluster(&self) -> Option<Arc<crate::cluster::Cluster>> {
    match &*self.state() {
      State::Ready(Current { conn: Connection::Cluster(cluster), .. }) => Some(cluster.clone()),
      _ => None,
    }
  }

  pub fn is_connected(&self) -> bool {
    if let Some(memory) = &self.memory {
      return memory.is_connected();
    }
    matches!(&*self.state(), State::Ready(_))
  }

  /// Marks connection `generation` lost (unless a newer one replaced it) so
  /// that commands fail fast until the JS face reconnects, and says so.
  fn lost(&self, generation: u64, err: CacheError) {
    {
      let mut state = self.state_mut();
      if !matches!(&*state, State::Ready(c) if c.generation == generation) {
        return;
      }
      *state = State::Lost(CacheError::new(Code::Connection, format!("{}; reconnecting", err.message)));
    }
    (self.events)(err);
  }

  /// Sends `cmds` on the current connection; `done` gets one outcome per
  /// command. Latency and lost connections are accounted for here, for
  /// every caller.
  pub fn send(self: &Arc<Self>, cmds: Vec<Cmd>, done: impl FnOnce(Vec<Outcome>) + Send + 'static) {
    let current = match self.connection() {
      Ok(current) => current,
      Err(err) => return done(vec![Err(err); cmds.len()]),
    };
    let started = Instant::now();
    let n = cmds.len() as u64;
    let engine = self.clone();
    let generation = current.generation;
    current.conn.send(
      cmds,
      Box::new(move |outcomes: Vec<Outcome>| {
        engine.stats.record_latency(started.elapsed(), n);
        // A cluster reconnects its nodes itself: one node down is not the
        // whole cache lost.
        if !engine.is_cluster() {
          // The server's connection broke (or, behind sentinels, the server
          // was demoted to a replica): commands fail fast until the JS face
          // reconnects, to the master the sentinels name then.
          let sentinel = engine.opts.is_sentinel();
          if let Some(Err(err)) = outcomes.iter().find(|o| matches!(o, Err(e) if e.is_connection_lost() || (sentinel && e.code == Code::ReadOnly))) {
            engine.lost(generation, err.clone());
          }
        }
        done(outcomes)
      }),
    );
  }

  /// `send`, awaited, for everything off the hot path: the first error
  /// fails the whole request.
  pub async fn run(self: &Arc<Self>, cmds: Vec<Cmd>) -> Result<Vec<Value>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    self.send(cmds, move |r| drop(tx.send(r)));
    rx.await.map_err(|_| CacheError::new(Code::Connection, "the connection was closed"))?.into_iter().collect()
  }

  /// The servers that hold data (every master in a cluster).
  pub async fn masters(&self) -> Result<Vec<Node>> {
    self.connection()?.conn.masters().await
  }

  /// In a cluster, what the masters say of their slots and migrations
  /// (cluster.rs `layout`); empty on one server.
  pub async fn layout(&self) -> Result<String> {
    match self.connection()?.conn {
      Connection::Cluster(cluster) => cluster.layout().await,
      _ => Ok(String::new()),
    }
  }

  /// `run` on one node.
  pub async fn run_on(self: &Arc<Self>, node: &Node, cmds: Vec<Cmd>) -> Result<Vec<Value>> {
    match node {
      Node::Standalone => self.run(cmds).await,
      node => {
        let current = self.connection()?;
        let started = Instant::now();
        let n = cmds.len() as u64;
        let outcomes = current.conn.run_on(node, cmds).await;
        self.stats.record_latency(started.elapsed(), n);
        outcomes.into_iter().collect()
      }
    }
  }

  /// `getStats()`: this instance's counters since the window started (a
  /// new one now with `reset`) and the servers' figures, as JSON text.
  pub async fn stats_json(self: &Arc<Self>, reset: bool) -> Result<String> {
    if let Some(memory) = &self.memory {
      // The store's own figures in place of INFO and DBSIZE.
      let figures = memory.stats()?;
      let mut stats = self.stats.window_json(reset);
      stats.extend(figures);
      return Ok(serde_json::Value::Object(stats).to_string());
    }
    let current = self.connection();
    let connected = current.is_ok();
    if let Err(err) = &current {
      if err.code == Code::NotConnected {
        return Err(err.clone());
      }
    }
    let mut server = ServerInfo::default();
    let mut nodes = Vec::new();
    if connected {
      for node in self.masters().await? {
        let mut info = redis::cmd("INFO");
        info.arg("server").arg("memory");
        let values = self.run_on(&node, vec![info, redis::cmd("DBSIZE")]).await?;
        let text = match &values[0] {
          Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
          Value::VerbatimString { text, .. } => text.clone(),
          other => return Err(CacheError::new(Code::Redis, format!("unexpected INFO reply {other:?}"))),
        };
        let keys = match values[1] {
          Value::Int(n) => n as u64,
          _ => 0,
        };
        server.add(&text, keys);
        nodes.push(match node {
          Node::Standalone => self.addr(),
          Node::Master { host, port } => format!("{host}:{port}"),
        });
      }
    }
    let serde_json::Value::Object(servers) = serde_json::json!({
      "memory": { "used": server.used, "peak": server.peak, "rss": server.rss },
      "keys": server.keys,
      "connected": connected,
      "server": {
        "version": server.version,
        "mode": if self.opts.is_cluster() { "cluster" } else { "standalone" },
        "nodes": nodes,
        "evictionPolicy": server.eviction_policy,
      },
    }) else {
      unreachable!("an object")
    };
    let mut stats = self.stats.window_json(reset);
    stats.extend(servers);
    Ok(serde_json::Value::Object(stats).to_string())
  }

  pub fn is_cluster(&self) -> bool {
    self.opts.is_cluster()
  }

  /// Runs one batch of hot-path operations from the JS face; `deliver` gets
  /// one reply per operation, in order.
  pub fn exec(self: &Arc<Self>, wire: &[String], deliver: impl FnOnce(Vec<Reply>) + Send + 'static) {
    let mut reader = Wire::new(wire);
    let mut ops: Vec<Result<Op>> = Vec::new();
    let mut kinds: Vec<Kind> = Vec::new();
    while !reader.is_done() {
      match reader.next_op(&self.codec, self.opts.writing()) {
        Ok((kind, op)) => {
          kinds.push(kind);
          ops.push(op);
        }
        Err(err) => return deliver(vec![Reply::Err(err)]),
      }
    }
    add(&self.stats.operations, ops.len() as u64);
    if let Some(memory) = &self.memory {
      return deliver(self.exec_in_memory(memory, ops, kinds));
    }
    if let Err(err) = self.connection() {
      self.stats.record_ops(kinds.into_iter().map(|k| (k, true)), None);
      return deliver(self.fail_all(err, ops.len()));
    }
    let cluster = self.is_cluster();
    let mut cmds = Vec::with_capacity(ops.len());
    let mut spans = Vec::with_capacity(ops.len());
    for op in &ops {
      let start = cmds.len();
      if let Ok(op) = op {
        op.commands(&self.codec, cluster, &mut cmds);
      }
      spans.push(start..cmds.len());
    }
    if cmds.is_empty() {
      let replies = ops.into_iter().map(|op| self.reply_err(op.err().expect("an op without commands failed"))).collect();
      self.stats.record_ops(kinds.into_iter().map(|k| (k, true)), None);
      return deliver(replies);
    }
    let engine = self.clone();
    let started = Instant::now();
    self.send(cmds, move |mut outcomes| {
      let mut then = Vec::new();
      let elapsed = started.elapsed();
      let replies: Vec<Reply> = ops
        .into_iter()
        .zip(spans)
        .map(|(op, span)| {
          let outcomes = &mut outcomes[span];
          match op.and_then(|op| {
            op.follow_up(&engine.codec, outcomes, &mut then);
            op.reply(outcomes, &engine.stats)
          }) {
            Ok(reply) => reply,
            Err(e) => engine.reply_err(e),
          }
        })
        .collect();
      engine.stats.record_ops(kinds.into_iter().zip(&replies).map(|(k, r)| (k, matches!(r, Reply::Err(_)))), Some(elapsed));
      if then.is_empty() {
        deliver(replies)
      } else {
        // A second round some operations need (expire.rs); the batch is
        // answered once it is done.
        engine.send(then, move |_| deliver(replies));
      }
    });
  }

  /// `exec` on the memory store: each operation answered at once with the
  /// replies its commands would get from a server, through the same `reply`.
  fn exec_in_memory(&self, memory: &memory::Backend, ops: Vec<Result<Op>>, kinds: Vec<Kind>) -> Vec<Reply> {
    let store = match memory.store() {
      Ok(store) => store,
      Err(err) => {
        self.stats.record_ops(kinds.into_iter().map(|k| (k, true)), None);
        return self.fail_all(err, ops.len());
      }
    };
    let started = Instant::now();
    let replies: Vec<Reply> = ops
      .into_iter()
      .map(|op| {
        match op.and_then(|op| {
          let mut outcomes = memory::run(&store, &self.codec, &op);
          op.reply(&mut outcomes, &self.stats)
        }) {
          Ok(reply) => reply,
          Err(e) => self.reply_err(e),
        }
      })
      .collect();
    self.stats.record_ops(kinds.into_iter().zip(&replies).map(|(k, r)| (k, matches!(r, Reply::Err(_)))), Some(started.elapsed()));
    replies
  }

  fn reply_err(&self, err: CacheError) -> Reply {
    add(&self.stats.errors, 1);
    Reply::Err(err)
  }

  fn fail_all(&self, err: CacheError, count: usize) -> Vec<Reply> {
    (0..count).map(|_| self.reply_err(err.clone())).collect()
  }
}
