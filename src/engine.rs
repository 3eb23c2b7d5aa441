//! The cache engine: options, the current connection, and the one dispatch
//! path every command takes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Instant;

use redis::Cmd;

use crate::codec::Codec;
use crate::connection::{describe, Connection};
use crate::error::{CacheError, Code, Result};
use crate::ops::{Reply, Wire};
use crate::options::Options;
use crate::stats::{add, Stats};

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
}

impl Engine {
  pub fn new(opts: Options) -> Engine {
    Engine { codec: Codec::new(&opts.key_prefix), opts, stats: Stats::default(), state: RwLock::new(State::Idle), generations: AtomicU64::new(0) }
  }

  pub fn addr(&self) -> String {
    describe(&self.opts.target)
  }

  /// Opens a new connection and makes it the current one.
  pub async fn connect(&self) -> Result<()> {
    let conn = Connection::open(&self.opts).await?;
    let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
    *self.state.write().unwrap() = State::Ready(Current { conn, generation });
    Ok(())
  }

  pub fn disconnect(&self) {
    *self.state.write().unwrap() = State::Idle;
  }

  pub fn connection(&self) -> Result<Current> {
    match &*self.state.read().unwrap() {
      State::Ready(current) => Ok(current.clone()),
      State::Lost(err) => Err(err.clone()),
      State::Idle => Err(CacheError::not_connected()),
    }
  }

  pub fn is_connected(&self) -> bool {
    matches!(&*self.state.read().unwrap(), State::Ready(_))
  }

  /// Runs `cmds` on `conn` within commandTimeout. A broken connection is
  /// marked lost (unless a newer one replaced it meanwhile) so that later
  /// commands fail fast until the JS face reconnects.
  pub async fn run(&self, current: &Current, cmds: Vec<Cmd>) -> Result<Vec<redis::Value>> {
    let started = Instant::now();
    let n = cmds.len() as u64;
    let timeout = self.opts.command_timeout;
    let result = match tokio::time::timeout(timeout, current.conn.run(cmds)).await {
      Ok(Ok(values)) => Ok(values),
      Ok(Err(e)) => Err(CacheError::from_redis(&e, &self.addr())),
      Err(_) => Err(CacheError::timeout("command", timeout.as_millis() as u64)),
    };
    self.stats.record_latency(started.elapsed(), n);
    if let Err(err) = &result {
      if err.is_connection_lost() {
        let mut state = self.state.write().unwrap();
        if matches!(&*state, State::Ready(c) if c.generation == current.generation) {
          *state = State::Lost(CacheError::new(Code::Connection, format!("connection lost ({}); reconnecting", err.message)));
        }
      }
    }
    result
  }

  /// Runs one batch of hot-path operations from the JS face; one reply per
  /// operation, in order.
  pub async fn exec(&self, wire: Vec<String>) -> Vec<Reply> {
    let mut wire_ops = Wire::new(&wire);
    let mut ops = Vec::new();
    while !wire_ops.is_done() {
      match wire_ops.next_op(&self.codec, self.opts.default_ttl_ms) {
        Ok(op) => ops.push(op),
        Err(err) => return vec![Reply::Err(err)],
      }
    }
    let count = ops.len();
    add(&self.stats.operations, count as u64);
    let conn = match self.connection() {
      Ok(conn) => conn,
      Err(err) => return self.fail_all(err, count),
    };

    let mut cmds = Vec::with_capacity(count);
    let mut spans = Vec::with_capacity(count);
    for op in &ops {
      let start = cmds.len();
      if let Ok(op) = op {
        op.commands(&self.codec, conn.conn.is_cluster(), &mut cmds);
      }
      spans.push(start..cmds.len());
    }
    if cmds.is_empty() {
      return ops.into_iter().map(|op| self.reply_err(op.err().expect("an op without commands failed"))).collect();
    }
    let mut values = match self.run(&conn, cmds).await {
      Ok(values) => values,
      Err(err) => return self.fail_all(err, count),
    };
    ops
      .into_iter()
      .zip(spans)
      .map(|(op, span)| match op {
        Ok(op) => match op.reply(&mut values[span], &self.stats) {
          Reply::Err(e) => self.reply_err(e),
          reply => reply,
        },
        Err(e) => self.reply_err(e),
      })
      .collect()
  }

  fn reply_err(&self, err: CacheError) -> Reply {
    add(&self.stats.errors, 1);
    Reply::Err(err)
  }

  fn fail_all(&self, err: CacheError, count: usize) -> Vec<Reply> {
    (0..count).map(|_| self.reply_err(err.clone())).collect()
  }
}
