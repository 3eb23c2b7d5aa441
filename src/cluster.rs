//! Redis Cluster on the JS-thread path: the slot map, one multiplexed
//! connection per master (src/multiplex.rs, as standalone), and the retries.
//!
//! A batch's commands are routed by the slot of their key and written as one
//! pipeline per master by the calling thread; the replies are put back in
//! the caller's order. A command that gets `MOVED` or `ASK` is sent on at
//! once to the node named (after `ASKING` for `ASK`); one that meets
//! `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN`, `LOADING`, `READONLY` or a lost
//! connection is routed again a moment later, on the slot map as it is then
//! (a refresh is started on `MOVED`, on those errors and on a lost
//! connection): so a migrating slot or a failover is ridden out. Every
//! command keeps the deadline its batch got (commandTimeout): retries never
//! extend it, and it is the only deadline there is.
//!
//! Retrying a command that may already have run is safe for every command
//! this module sends: they are idempotent (SET, GET, DEL, UNLINK, EXPIRE,
//! the tag index script, the lock scripts: the lock's acquire returns the
//! fence its holder already has; see src/lock.rs).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use redis::{Arg, Cmd, ConnectionInfo, RedisConnectionInfo, Value};
use redis::{ServerError, ServerErrorKind};
use tokio::time::Instant;

use crate::connection::{open_node, query, Done, Outcome};
use crate::error::{CacheError, Code, Result};
use crate::multiplex::{JsTurn, Multiplexed};
use crate::options::{addr_of, Options};

pub const SLOTS: usize = 16384;
/// Redirections followed at once; past that, the command waits for a
/// refreshed slot map like any retry.
const HOPS: u8 = 5;
/// The wait before a command is routed again after an error that a moment
/// may cure (failover, migration, reconnect).
const RETRY_WAIT: Duration = Duration::from_millis(50);
/// The least time between two slot map refreshes.
const REFRESH_GAP: Duration = Duration::from_millis(100);

/// A cluster node, as the cluster names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Addr {
  pub host: String,
  pub port: u16,
}

impl fmt::Display for Addr {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{}:{}", self.host, self.port)
  }
}

impl Addr {
  fn parse(s: &str) -> Option<Addr> {
    let (host, port) = s.rsplit_once(':')?;
    Some(Addr { host: host.to_string(), port: port.parse().ok()? })
  }
}

/// Which master serves each slot.
#[derive(Default)]
struct SlotMap {
  masters: Vec<Addr>,
  /// An index into `masters` per slot, or NONE.
  owner: Vec<u16>,
}

const NONE: u16 = u16::MAX;

impl SlotMap {
  /// From a `CLUSTER NODES` reply: the masters that serve slots and are not
  /// known to have failed, with their slots.
  fn parse(text: &str) -> SlotMap {
    let mut map = SlotMap { masters: Vec::new(), owner: vec![NONE; SLOTS] };
    for line in text.lines() {
      let fields: Vec<&str> = line.split(' ').collect();
      let Some(flags) = fields.get(2) else { continue };
      let flags: Vec<&str> = flags.split(',').collect();
      if !flags.contains(&"master") || flags.iter().any(|f| matches!(*f, "fail" | "noaddr" | "handshake")) {
        continue;
      }
      // ip:port@cport[,hostname]
      let Some(addr) = fields.get(1).and_then(|a| a.split(['@', ',']).next()).and_then(Addr::parse) else { continue };
      let index = map.masters.len() as u16;
      let mut serves = false;
      for range in fields.iter().skip(8).filter(|r| !r.starts_with('[')) {
        let (a, b) = range.split_once('-').unwrap_or((range, range));
        let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) else { continue };
        for slot in a..=b.min(SLOTS - 1) {
          map.owner[slot] = index;
          serves = true;
        }
      }
      if serves {
        map.masters.push(addr);
      }
    }
    map
  }

  fn owner(&self, slot: u16) -> Option<u16> {
    self.owner.get(slot as usize).copied().filter(|i| *i != NONE)
  }
}

/// The slot of a key (its hash tag's, if it has one). redis-rs hashes the
/// same way but does not expose the number (a unit test holds them equal).
pub fn slot_of(key: &[u8]) -> u16 {
  let tagged = key.iter().position(|b| *b == b'{').and_then(|open| {
    let len = key[open + 1..].iter().position(|b| *b == b'}')?;
    (len > 0).then(|| &key[open + 1..open + 1 + len])
  });
  crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(key)) % SLOTS as u16
}

/// The key a command is routed by: the first key of EVAL, else the first
/// argument; None for a command without one.
fn key_of(cmd: &Cmd) -> Option<&[u8]> {
  let mut args = cmd.args_iter().map(|a| match a {
    Arg::Simple(bytes) => bytes,
    _ => &[][..],
  });
  let name = args.next()?;
  let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
  if is("EVAL") || is("EVALSHA") {
    let _script = args.next();
    return if args.next()? == b"0" { None } else { args.next() };
  }
  if ["SCAN", "INFO", "DBSIZE", "PING", "CLUSTER", "FLUSHALL"].iter().any(|n| is(n)) {
    return None;
  }
  args.next()
}

type Waiter = Box<dyn FnOnce(Result<Arc<Multiplexed>>) + Send>;

enum NodeState {
  Ready(Arc<Multiplexed>),
  Connecting(Vec<Waiter>),
}

#[derive(Default)]
struct Refresh {
  running: bool,
  again: bool,
  last: Option<Instant>,
}

pub struct Cluster {
  seeds: Vec<Addr>,
  redis: RedisConnectionInfo,
  /// connectionName, for CLIENT SETNAME.
  name: Option<String>,
  timeout: Duration,
  connect_timeout: Duration,
  map: RwLock<Arc<SlotMap>>,
  nodes: Mutex<HashMap<Addr, NodeState>>,
  refresh: Mutex<Refresh>,
  /// A connection opened since the JS thread last looked.
  unwatched: AtomicBool,
  closed: AtomicBool,
  me: Weak<Cluster>,
}

/// One batch: its commands (kept for retries), deadline and outcomes.
struct Batch {
  cmds: Vec<Cmd>,
  deadline: Instant,
  state: Mutex<BatchState>,
}

struct BatchState {
  outcomes: Vec<Option<Outcome>>,
  left: usize,
  done: Option<Done>,
}

/// A command of a batch on its way.
struct Try {
  index: usize,
  /// A node named by a redirection, or the node `send_to` was given.
  to: Option<Addr>,
  /// Stays on `to` (a SCAN cursor belongs to its node).
  pinned: bool,
  asking: bool,
  hops: u8,
  /// What the last attempt got, rejected with when the deadline passes.
  last: Option<CacheError>,
}

impl Try {
  fn new(index: usize, to: Option<Addr>) -> Try {
    Try { pinned: to.is_some(), index, to, asking: false, hops: 0, last: None }
  }
}

impl Batch {
  fn finish(&self, results: Vec<(usize, Outcome)>) {
    if results.is_empty() {
      return;
    }
    let done = {
      let mut state = self.state.lock().unwrap();
      for (i, outcome) in results {
        if state.outcomes[i].is_none() {
          state.outcomes[i] = Some(outcome);
          state.left -= 1;
        }
      }
      if state.left > 0 {
        return;
      }
      state.done.take().map(|done| (done, std::mem::take(&mut state.outcomes)))
    };
    if let Some((done, outcomes)) = done {
      done(outcomes.into_iter().map(|o| o.expect("every command finished")).collect());
    }
  }
}

impl Cluster {
  /// Reads the slot map from the first seed that answers.
  pub async fn open(seeds: &[ConnectionInfo], opts: &Options) -> Result<Arc<Cluster>> {
    let cluster = Arc::new_cyclic(|me| Cluster {
      seeds: seeds.iter().filter_map(|s| Addr::parse(&addr_of(s))).collect(),
      redis: seeds.first().map(|s| s.redis_settings().clone()).unwrap_or_default(),
      name: opts.connection_name.clone(),
      timeout: opts.command_timeout,
      connect_timeout: opts.connect_timeout,
      map: RwLock::new(Arc::new(SlotMap::default())),
      nodes: Mutex::new(HashMap::new()),
      refresh: Mutex::new(Refresh::default()),
      unwatched: AtomicBool::new(false),
      closed: AtomicBool::new(false),
      me: me.clone(),
    });
    match cluster.load_slots().await {
      Ok(()) => {
        // Every master's connection up front, so the first commands do not
        // wait for them (one that fails is opened again when needed).
        let masters = cluster.map.read().unwrap().masters.clone();
        futures_util::future::join_all(masters.into_iter().map(|m| cluster.conn(m))).await;
        Ok(cluster)
      }
      Err(err) => {
        cluster.close();
        let seeds = cluster.seeds.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(",");
        Err(CacheError::new(err.code, format!("cluster seeds {seeds}: {}", err.message)))
      }
    }
  }

  pub fn close(&self) {
    self.closed.store(true, Ordering::Relaxed);
    let nodes = std::mem::take(&mut *self.nodes.lock().unwrap());
    for state in nodes.into_values() {
      match state {
        NodeState::Ready(mux) => mux.close(CacheError::not_connected()),
        NodeState::Connecting(waiters) => waiters.into_iter().for_each(|w| w(Err(CacheError::not_connected()))),
      }
    }
  }

  /// Sends `cmds`, each to the master of its key's slot; `done` gets one
  /// outcome per command, in order, by the deadline at the latest.
  /// A command without a key (PING) goes to every master: its outcome is
  /// the first error among theirs, else the last reply.
  pub fn send(&self, cmds: Vec<Cmd>, done: Done) {
    if cmds.iter().all(|cmd| key_of(cmd).is_some()) {
      let tries = (0..cmds.len()).map(|i| Try::new(i, None)).collect();
      return self.start(cmds, tries, done);
    }
    let masters = self.map.read().unwrap().masters.clone();
    let n = cmds.len();
    let (mut sent, mut tries, mut owner) = (Vec::new(), Vec::new(), Vec::new());
    for (i, cmd) in cmds.into_iter().enumerate() {
      let to: Vec<Option<Addr>> = if key_of(&cmd).is_some() || masters.is_empty() { vec![None] } else { masters.iter().cloned().map(Some).collect() };
      for to in to {
        tries.push(Try::new(sent.len(), to));
        sent.push(cmd.clone());
        owner.push(i);
      }
    }
    let combine = move |outcomes: Vec<Outcome>| {
      let mut out: Vec<Option<Outcome>> = (0..n).map(|_| None).collect();
      for (outcome, i) in outcomes.into_iter().zip(owner) {
        if !matches!(out[i], Some(Err(_))) {
          out[i] = Some(outcome);
        }
      }
      done(out.into_iter().map(|o| o.expect("every command was sent")).collect())
    };
    self.start(sent, tries, Box::new(combine));
  }

  /// Sends `cmds` to one node, whatever their keys.
  pub fn send_to(&self, node: Addr, cmds: Vec<Cmd>, done: Done) {
    let tries = (0..cmds.len()).map(|i| Try::new(i, Some(node.clone()))).collect();
    self.start(cmds, tries, done);
  }

  fn start(&self, cmds: Vec<Cmd>, tries: Vec<Try>, done: Done) {
    let n = cmds.len();
    if n == 0 {
      return done(Vec::new());
    }
    let state = BatchState { outcomes: (0..n).map(|_| None).collect(), left: n, done: Some(done) };
    let batch = Arc::new(Batch { cmds, deadline: Instant::now() + self.timeout, state: Mutex::new(state) });
    self.dispatch(&batch, tries);
  }

  /// The masters that serve slots, as a fresh look at the cluster says.
  pub async fn masters(&self) -> Result<Vec<Addr>> {
    self.load_slots().await?;
    Ok(self.map.read().unwrap().masters.clone())
  }

  /// Lets the JS thread's loop watch the connections opened since it last
  /// looked (see multiplex.rs). On the JS thread; cheap when none is new.
  pub fn watch_from_js(&self, env: napi::sys::napi_env, turn: impl FnOnce() -> Arc<dyn JsTurn>) {
    if !self.unwatched.swap(false, Ordering::Relaxed) {
      return;
    }
    let muxes: Vec<Arc<Multiplexed>> = self
      .nodes
      .lock()
      .unwrap()
      .values()
      .filter_map(|s| match s {
        NodeState::Ready(mux) => Some(mux.clone()),
        NodeState::Connecting(_) => None,
      })
      .collect();
    let turn = turn();
    for mux in muxes {
      mux.watch_from_js(env, || turn.clone());
    }
  }

  /// Groups `tries` per node and writes each group as one pipeline.
  fn dispatch(&self, batch: &Arc<Batch>, tries: Vec<Try>) {
    if Instant::now() >= batch.deadline {
      let ms = self.timeout.as_millis() as u64;
      let failed = tries.into_iter().map(|t| (t.index, Err(t.last.unwrap_or_else(|| CacheError::timeout("cluster command", ms))))).collect();
      return batch.finish(failed);
    }
    let map = self.map.read().unwrap().clone();
    let mut by_master: Vec<Vec<Try>> = (0..map.masters.len()).map(|_| Vec::new()).collect();
    let mut by_addr: Vec<(Addr, Vec<Try>)> = Vec::new();
    let mut unserved = Vec::new();
    for t in tries {
      if let Some(to) = &t.to {
        match by_addr.iter_mut().find(|(a, _)| a == to) {
          Some((_, group)) => group.push(t),
          None => by_addr.push((to.clone(), vec![t])),
        }
        continue;
      }
      let owner = match key_of(&batch.cmds[t.index]) {
        Some(key) => map.owner(slot_of(key)),
        None => (!map.masters.is_empty()).then_some(0),
      };
      match owner {
        Some(i) => by_master[i as usize].push(t),
        None => unserved.push(t),
      }
    }
    for (i, group) in by_master.into_iter().enumerate() {
      if !group.is_empty() {
        self.send_group(batch, map.masters[i].clone(), group);
      }
    }
    for (addr, group) in by_addr {
      self.send_group(batch, addr, group);
    }
    if !unserved.is_empty() {
      for t in &mut unserved {
        t.last.get_or_insert_with(|| CacheError::new(Code::Unavailable, "CLUSTERDOWN no master serves the slot"));
      }
      self.refresh();
      self.retry_later(batch, unserved);
    }
  }

  fn send_group(&self, batch: &Arc<Batch>, addr: Addr, tries: Vec<Try>) {
    let me = self.me.clone();
    let started = Arc::new(AtomicBool::new(false));
    let waiting = (batch.clone(), started.clone(), tries.iter().map(|t| t.index).collect::<Vec<_>>());
    let batch = batch.clone();
    self.with_conn(
      &addr,
      Box::new(move |conn| {
        started.store(true, Ordering::Relaxed);
        let Some(me) = me.upgrade() else { return };
        let mux = match conn {
          Ok(mux) => mux,
          Err(err) => return me.retry_all(&batch, tries, err),
        };
        let mut packed = Vec::with_capacity(tries.len() * 48);
        let mut count = 0;
        for t in &tries {
          if t.asking {
            redis::cmd("ASKING").write_packed_command(&mut packed);
            count += 1;
          }
          batch.cmds[t.index].write_packed_command(&mut packed);
          count += 1;
        }
        let deadline = batch.deadline;
        let weak = me.me.clone();
        mux.send_by(
          &packed,
          count,
          deadline,
          Box::new(move |result| {
            if let Some(me) = weak.upgrade() {
              me.replies(&batch, tries, result);
            } else {
              let failed = tries.into_iter().map(|t| (t.index, Err(CacheError::not_connected()))).collect();
              batch.finish(failed);
            }
          }),
        );
      }),
    );
    // Opening the connection can take up to connectTimeout: the commands
    // that wait for it still reject at their deadline.
    let (batch, started, indices) = waiting;
    if !started.load(Ordering::Relaxed) {
      let ms = self.timeout.as_millis() as u64;
      napi::bindgen_prelude::spawn(async move {
        tokio::time::sleep_until(batch.deadline).await;
        if !started.load(Ordering::Relaxed) {
          batch.finish(indices.into_iter().map(|i| (i, Err(CacheError::timeout(&format!("connecting to {addr}"), ms)))).collect());
        }
      });
    }
  }

  /// Sorts a group's replies into outcomes and commands to send on.
  fn replies(&self, batch: &Arc<Batch>, tries: Vec<Try>, result: Result<Vec<Value>>) {
    let values = match result {
      Ok(values) => values,
      Err(err) if err.is_connection_lost() => return self.retry_all(batch, tries, err),
      // No reply by the deadline (nothing to retry in the time left), or
      // the cache was disconnected.
      Err(err) => return batch.finish(tries.into_iter().map(|t| (t.index, Err(err.clone()))).collect()),
    };
    let mut values = values.into_iter();
    let mut finished = Vec::with_capacity(tries.len());
    let (mut now, mut later) = (Vec::new(), Vec::new());
    for mut t in tries {
      if t.asking {
        // ASKING's OK; were it refused, the command's own reply says so.
        values.next();
      }
      let error = match values.next().unwrap_or(Value::Nil) {
        Value::ServerError(e) => e,
        value => {
          finished.push((t.index, Ok(value)));
          continue;
        }
      };
      let kind = error.kind();
      match kind {
        Some(ServerErrorKind::Moved | ServerErrorKind::Ask) => {
          let moved = kind == Some(ServerErrorKind::Moved);
          if moved {
            self.refresh();
          }
          let target = redirect(&error);
          t.last = Some(CacheError::server(&error));
          t.asking = !moved;
          t.hops += 1;
          match target {
            Some(to) if t.hops <= HOPS => {
              t.to = Some(to);
              now.push(t);
            }
            _ => later.push(t),
          }
        }
        Some(
          ServerErrorKind::TryAgain | ServerErrorKind::ClusterDown | ServerErrorKind::MasterDown | ServerErrorKind::BusyLoading | ServerErrorKind::ReadOnly,
        ) => {
          if kind != Some(ServerErrorKind::TryAgain) {
            self.refresh();
          }
          t.last = Some(CacheError::server(&error));
          later.push(t);
        }
        _ => finished.push((t.index, Err(CacheError::server(&error)))),
      }
    }
    batch.finish(finished);
    if !now.is_empty() {
      self.dispatch(batch, now);
    }
    if !later.is_empty() {
      self.retry_later(batch, later);
    }
  }

  /// A node's connection failed: its commands are routed again later.
  fn retry_all(&self, batch: &Arc<Batch>, mut tries: Vec<Try>, err: CacheError) {
    self.refresh();
    for t in &mut tries {
      t.last = Some(err.clone());
    }
    self.retry_later(batch, tries);
  }

  fn retry_later(&self, batch: &Arc<Batch>, mut tries: Vec<Try>) {
    if self.closed.load(Ordering::Relaxed) {
      return batch.finish(tries.into_iter().map(|t| (t.index, Err(CacheError::not_connected()))).collect());
    }
    for t in &mut tries {
      if !t.pinned {
        t.to = None;
      }
      t.asking = false;
      t.hops = 0;
    }
    let wait = RETRY_WAIT.min(batch.deadline.saturating_duration_since(Instant::now()));
    let me = self.me.clone();
    let batch = batch.clone();
    napi::bindgen_prelude::spawn(async move {
      tokio::time::sleep(wait).await;
      match me.upgrade() {
        Some(me) => me.dispatch(&batch, tries),
        None => batch.finish(tries.into_iter().map(|t| (t.index, Err(CacheError::not_connected()))).collect()),
      }
    });
  }

  /// Calls `then` with the node's connection, opening it first if needed
  /// (one opening at a time per node).
  fn with_conn(&self, addr: &Addr, then: Waiter) {
    let mut nodes = self.nodes.lock().unwrap();
    if self.closed.load(Ordering::Relaxed) {
      drop(nodes);
      return then(Err(CacheError::not_connected()));
    }
    match nodes.get_mut(addr) {
      Some(NodeState::Ready(mux)) if !mux.is_closed() => {
        let mux = mux.clone();
        drop(nodes);
        return then(Ok(mux));
      }
      Some(NodeState::Connecting(waiters)) => return waiters.push(then),
      _ => {}
    }
    nodes.insert(addr.clone(), NodeState::Connecting(vec![then]));
    drop(nodes);
    let addr = addr.clone();
    let me = self.me.clone();
    napi::bindgen_prelude::spawn(async move {
      let Some(cluster) = me.upgrade() else { return };
      let lost = {
        let (me, addr) = (me.clone(), addr.clone());
        Arc::new(move |_: CacheError| {
          if let Some(cluster) = me.upgrade() {
            cluster.lost(&addr);
          }
        })
      };
      let opening = open_node(&addr.host, addr.port, &cluster.redis, cluster.name.as_deref(), cluster.timeout, lost);
      let opened = tokio::time::timeout(cluster.connect_timeout, opening)
        .await
        .unwrap_or_else(|_| Err(CacheError::timeout(&format!("connecting to {addr}"), cluster.connect_timeout.as_millis() as u64)));
      let waiters = {
        let mut nodes = cluster.nodes.lock().unwrap();
        let waiters = match nodes.remove(&addr) {
          Some(NodeState::Connecting(waiters)) => waiters,
          // Closed meanwhile: its waiters were told.
          _ => Vec::new(),
        };
        match &opened {
          Ok(mux) if !cluster.closed.load(Ordering::Relaxed) => {
            nodes.insert(addr, NodeState::Ready(mux.clone()));
            cluster.unwatched.store(true, Ordering::Relaxed);
          }
          Ok(mux) => mux.close(CacheError::not_connected()),
          Err(_) => {}
        }
        waiters
      };
      for waiter in waiters {
        waiter(opened.clone());
      }
    });
  }

  /// The connection to `addr` broke: forget it and look at the cluster again.
  fn lost(&self, addr: &Addr) {
    {
      let mut nodes = self.nodes.lock().unwrap();
      if matches!(nodes.get(addr), Some(NodeState::Ready(mux)) if mux.is_closed()) {
        nodes.remove(addr);
      }
    }
    self.refresh();
  }

  /// Refreshes the slot map in the background: one refresh at a time, at
  /// most one per REFRESH_GAP; asked during one, another follows it.
  fn refresh(&self) {
    {
      let mut r = self.refresh.lock().unwrap();
      if r.running {
        r.again = true;
        return;
      }
      r.running = true;
    }
    let me = self.me.clone();
    napi::bindgen_prelude::spawn(async move {
      loop {
        let Some(cluster) = me.upgrade() else { return };
        let last = cluster.refresh.lock().unwrap().last;
        if let Some(last) = last {
          tokio::time::sleep_until(last + REFRESH_GAP).await;
        }
        let _ = cluster.load_slots().await;
        let mut r = cluster.refresh.lock().unwrap();
        r.last = Some(Instant::now());
        if !r.again || cluster.closed.load(Ordering::Relaxed) {
          r.running = false;
          return;
        }
        r.again = false;
      }
    });
  }

  /// Asks the known masters, then the seeds, for the cluster's layout and
  /// installs the first answer; connections to nodes that no longer serve
  /// slots are closed.
  async fn load_slots(&self) -> Result<()> {
    let known = self.map.read().unwrap().masters.clone();
    let mut first_err = None;
    for addr in known.iter().chain(self.seeds.iter().filter(|s| !known.contains(s))) {
      let text = match self.cluster_nodes(addr).await {
        Ok(text) => text,
        Err(err) => {
          first_err.get_or_insert(err);
          continue;
        }
      };
      let map = SlotMap::parse(&text);
      if map.masters.is_empty() {
        first_err.get_or_insert(CacheError::new(Code::Redis, format!("{addr}: no master serves slots")));
        continue;
      }
      let stale: Vec<Arc<Multiplexed>> = {
        let mut nodes = self.nodes.lock().unwrap();
        let gone: Vec<Addr> = nodes.keys().filter(|a| !map.masters.contains(a)).cloned().collect();
        gone
          .into_iter()
          .filter_map(|a| match nodes.remove(&a) {
            Some(NodeState::Ready(mux)) => Some(mux),
            Some(connecting) => {
              nodes.insert(a, connecting);
              None
            }
            None => None,
          })
          .collect()
      };
      *self.map.write().unwrap() = Arc::new(map);
      for mux in stale {
        // Its pending commands are routed again.
        mux.close(CacheError::new(Code::Connection, "the node no longer serves slots"));
      }
      return Ok(());
    }
    Err(first_err.unwrap_or_else(|| CacheError::new(Code::Connection, "no cluster node to ask")))
  }

  async fn cluster_nodes(&self, addr: &Addr) -> Result<String> {
    let mux = self.conn(addr.clone()).await?;
    let mut cmd = redis::cmd("CLUSTER");
    cmd.arg("NODES");
    match query(&mux, vec![cmd]).await.pop() {
      Some(Ok(Value::BulkString(text))) => Ok(String::from_utf8_lossy(&text).into_owned()),
      Some(Ok(Value::VerbatimString { text, .. })) => Ok(text),
      Some(Err(err)) => Err(err),
      other => Err(CacheError::new(Code::Redis, format!("{addr}: unexpected CLUSTER NODES reply {other:?}"))),
    }
  }

  async fn conn(&self, addr: Addr) -> Result<Arc<Multiplexed>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    self.with_conn(&addr, Box::new(move |r| drop(tx.send(r))));
    rx.await.unwrap_or_else(|_| Err(CacheError::not_connected()))
  }

  /// What each master says of itself (`CLUSTER NODES`, its own line: its
  /// slots, and `[slot->-id]` while it migrates one): equal before and
  /// after a scan, and without a migration, means no key moved meanwhile.
  pub async fn layout(&self) -> Result<String> {
    let mut out = String::new();
    for addr in self.masters().await? {
      let text = self.cluster_nodes(&addr).await?;
      let Some(line) = text.lines().find(|l| l.contains("myself")) else { continue };
      let fields: Vec<&str> = line.split(' ').collect();
      out.push_str(&fields.iter().take(4).chain(fields.iter().skip(8)).copied().collect::<Vec<_>>().join(" "));
      out.push('\n');
    }
    Ok(out)
  }
}

/// The node a MOVED or ASK names, read by redis-rs.
fn redirect(error: &ServerError) -> Option<Addr> {
  let err = redis::RedisError::from(error.clone());
  let (addr, _slot) = err.redirect_node()?;
  Addr::parse(addr)
}

#[cfg(test)]
mod tests {
  use super::*;
  use redis::cluster_routing::Slot;

  #[test]
  fn slots_as_redis_rs_hashes_them() {
    for key in ["", "a", "user:1", "{user}:1", "a{}b", "a{b}c{d}", "{", "}{x}", "prefix:__fluxor__:lock:{%7Dx}", "\u{0}\u{ff}"] {
      assert_eq!(Slot::new(slot_of(key.as_bytes())), Some(Slot::for_key(key)), "{key:?}");
    }
    assert_eq!(slot_of(b"foo"), 12182);
  }

  #[test]
  fn routing_keys() {
    let mut set = redis::cmd("SET");
    set.arg("k1").arg("v");
    assert_eq!(key_of(&set), Some(&b"k1"[..]));
    let mut eval = redis::cmd("EVAL");
    eval.arg("return 1").arg(2).arg("lock").arg("fence").arg("token");
    assert_eq!(key_of(&eval), Some(&b"lock"[..]));
    let mut scan = redis::cmd("SCAN");
    scan.arg(0);
    assert_eq!(key_of(&scan), None);
  }

  #[test]
  fn slot_map_of_cluster_nodes() {
    let text = "07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected\n\
67ed 127.0.0.1:30002@40002,host-b master - 0 1426238316232 2 connected 5461-10922 [5461->-e7d1]\n\
292f 127.0.0.1:30003@40003 master,fail - 0 1426238318243 3 connected 10923-16383\n\
e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460 16000\n";
    let map = SlotMap::parse(text);
    assert_eq!(map.masters, vec![Addr { host: "127.0.0.1".into(), port: 30002 }, Addr { host: "127.0.0.1".into(), port: 30001 }]);
    assert_eq!((map.owner(0), map.owner(5460), map.owner(5461), map.owner(10922)), (Some(1), Some(1), Some(0), Some(0)));
    assert_eq!((map.owner(10923), map.owner(16000)), (None, Some(1)), "a failed master serves nothing");
  }
}
