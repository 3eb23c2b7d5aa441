//! Connections: a standalone server (one multiplexed socket) or a cluster
//! (src/cluster.rs: one multiplexed socket per master, slot routing).
//! Every command goes through `Connection::send`, which pipelines a batch,
//! keeps the caller's order and completes it with a callback.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, Pipeline, RedisConnectionInfo, Value};
use tokio::sync::oneshot;

use crate::cluster::{Addr, Cluster};
use crate::error::{CacheError, Code, Result};
use crate::multiplex::{Multiplexed, OnLost};

/// One command's outcome: its reply, or the error it got instead (a server
/// error reply, or a failure of the connection it went to).
pub type Outcome = Result<Value>;

/// Completes a batch with one outcome per command, in order.
pub type Done = Box<dyn FnOnce(Vec<Outcome>) + Send>;
use crate::options::{addr_of, Options, Target};

/// One server to talk to directly: the standalone server, or a cluster master.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
  Standalone,
  Master { host: String, port: u16 },
}

#[derive(Clone)]
pub enum Connection {
  /// Plain TCP to one server: the JS-thread write path (src/multiplex.rs).
  Standalone(Arc<Multiplexed>),
  /// TLS to one server, through redis-rs's multiplexed connection.
  Tls { conn: MultiplexedConnection, timeout: Duration },
  /// One multiplexed connection per master (src/cluster.rs).
  Cluster(Arc<Cluster>),
}

impl Connection {
  /// Connects, authenticates, selects the db and PINGs within connectTimeout.
  /// `on_lost` is told when a standalone connection breaks later.
  pub async fn open(opts: &Options, on_lost: OnLost) -> Result<Connection> {
    match &opts.target {
      Target::Sentinel(sentinel) => sentinel.open(opts, on_lost).await,
      _ => Connection::open_direct(opts, on_lost).await,
    }
  }

  /// `open` for a target that names its server(s).
  pub async fn open_direct(opts: &Options, on_lost: OnLost) -> Result<Connection> {
    let what = describe(&opts.target);
    let connect = async {
      match &opts.target {
        Target::Standalone(info) if matches!(info.addr(), ConnectionAddr::TcpTls { .. }) => {
          let err = |e: redis::RedisError| CacheError::from_redis(&e, &what);
          let client = match &opts.tls {
            Some(certs) => Client::build_with_tls(info.clone(), certs.clone()),
            None => Client::open(info.clone()),
          }
          .map_err(err)?;
          let config = AsyncConnectionConfig::new().set_connection_timeout(Some(opts.connect_timeout)).set_response_timeout(None);
          let mut conn = client.get_multiplexed_async_connection_with_config(&config).await.map_err(err)?;
          redis::cmd("PING").query_async::<()>(&mut conn).await.map_err(err)?;
          if let Some(name) = &opts.connection_name {
            redis::cmd("CLIENT").arg("SETNAME").arg(name).query_async::<()>(&mut conn).await.map_err(err)?;
          }
          Ok(Connection::Tls { conn, timeout: opts.command_timeout })
        }
        Target::Standalone(info) => open_standalone(info, opts, on_lost).await,
        // `open` looks the master up and comes back with its address.
        Target::Sentinel(_) => Err(CacheError::type_error("a Sentinel target has no address of its own")),
        Target::Cluster(seeds) => Ok(Connection::Cluster(Cluster::open(seeds, opts).await?)),
      }
    };
    tokio::time::timeout(opts.connect_timeout, connect)
      .await
      .unwrap_or_else(|_| Err(CacheError::timeout(&format!("connecting to {what}"), opts.connect_timeout.as_millis() as u64)))
  }

  /// Sends `cmds` as a pipeline and calls `done` with one outcome per
  /// command, in order, after commandTimeout at the latest. Standalone, the
  /// bytes are written by the calling thread. In a cluster each slot's share
  /// succeeds or fails on its own.
  pub fn send(&self, cmds: Vec<Cmd>, done: Done) {
    let n = cmds.len();
    match self {
      Connection::Standalone(mux) => {
        let mut packed = Vec::with_capacity(n * 64);
        for cmd in &cmds {
          cmd.write_packed_command(&mut packed);
        }
        mux.send(&packed, n, Box::new(move |result| done(outcomes(result, n))));
      }
      Connection::Tls { conn, timeout } => {
        let (mut conn, timeout) = (conn.clone(), *timeout);
        napi::bindgen_prelude::spawn(async move { done(outcomes(with_timeout(timeout, "redis", pipeline(cmds).query_async(&mut conn)).await, n)) });
      }
      Connection::Cluster(cluster) => cluster.send(cmds, done),
    }
  }

  /// `send`, awaited.
  pub async fn run(&self, cmds: Vec<Cmd>) -> Vec<Outcome> {
    let n = cmds.len();
    let (tx, rx) = oneshot::channel();
    self.send(cmds, Box::new(move |r| drop(tx.send(r))));
    rx.await.unwrap_or_else(|_| vec![Err(CacheError::new(Code::Connection, "the connection was closed")); n])
  }

  /// The servers that hold data: the one server, or every cluster master.
  pub async fn masters(&self) -> Result<Vec<Node>> {
    match self {
      Connection::Standalone(_) | Connection::Tls { .. } => Ok(vec![Node::Standalone]),
      Connection::Cluster(cluster) => Ok(cluster.masters().await?.into_iter().map(|Addr { host, port }| Node::Master { host, port }).collect()),
    }
  }

  /// `run` on one node (`Node::Standalone` on a standalone connection). In a
  /// cluster every command must stay within one slot of that node.
  pub async fn run_on(&self, node: &Node, cmds: Vec<Cmd>) -> Vec<Outcome> {
    match (self, node) {
      (Connection::Cluster(cluster), Node::Master { host, port }) => {
        let (tx, rx) = oneshot::channel();
        let n = cmds.len();
        cluster.send_to(Addr { host: host.clone(), port: *port }, cmds, Box::new(move |r| drop(tx.send(r))));
        rx.await.unwrap_or_else(|_| vec![Err(CacheError::new(Code::Connection, "the connection was closed")); n])
      }
      _ => self.run(cmds).await,
    }
  }

  pub fn close(&self) {
    match self {
      Connection::Standalone(mux) => mux.close(CacheError::not_connected()),
      Connection::Cluster(cluster) => cluster.close(),
      Connection::Tls { .. } => {}
    }
  }
}

async fn open_standalone(info: &ConnectionInfo, opts: &Options, on_lost: OnLost) -> Result<Connection> {
  let ConnectionAddr::Tcp(host, port) = info.addr() else {
    return Err(CacheError::type_error(format!("unsupported address {}", info.addr())));
  };
  let mux = open_node(host, *port, info.redis_settings(), opts.connection_name.as_deref(), opts.command_timeout, on_lost).await?;
  Ok(Connection::Standalone(mux))
}

/// One server's multiplexed connection, authenticated, on its db, named,
/// PINGed: the standalone server or one cluster node.
pub async fn open_node(host: &str, port: u16, redis: &RedisConnectionInfo, name: Option<&str>, timeout: Duration, on_lost: OnLost) -> Result<Arc<Multiplexed>> {
  let mux = Arc::new(Multiplexed::connect(host, port, timeout, on_lost).await?);
  let (cmds, auth) = handshake(redis, name);
  let checked = query(&mux, cmds).await.into_iter().enumerate().try_for_each(|(i, outcome)| match outcome {
    // Any refusal of AUTH is an authentication failure (as redis-rs has it);
    // every other reply is classified by its own error code (NOAUTH…).
    Err(mut err) if err.redis_code.is_some() => {
      if Some(i) == auth {
        err.code = Code::Auth;
      }
      err.message = format!("{host}:{port}: {}", err.message);
      Err(err)
    }
    other => other.map(drop),
  });
  match checked {
    Ok(()) => Ok(mux),
    Err(e) => {
      mux.close(CacheError::not_connected());
      Err(e)
    }
  }
}

/// `cmds` on one multiplexed connection, awaited: one outcome per command.
pub async fn query(mux: &Multiplexed, cmds: Vec<Cmd>) -> Vec<Outcome> {
  let n = cmds.len();
  let mut packed = Vec::with_capacity(n * 64);
  for cmd in &cmds {
    cmd.write_packed_command(&mut packed);
  }
  let (tx, rx) = oneshot::channel();
  mux.send(&packed, n, Box::new(move |r| drop(tx.send(r))));
  outcomes(rx.await.unwrap_or_else(|_| Err(CacheError::new(Code::Connection, "the connection was closed"))), n)
}

/// AUTH, SELECT, CLIENT SETNAME and PING, and where AUTH is among them.
fn handshake(redis: &RedisConnectionInfo, name: Option<&str>) -> (Vec<Cmd>, Option<usize>) {
  let mut cmds = Vec::new();
  let mut auth = None;
  if let Some(password) = redis.password() {
    let mut cmd = redis::cmd("AUTH");
    if let Some(user) = redis.username() {
      cmd.arg(user);
    }
    auth = Some(cmds.len());
    cmds.push(cmd.arg(password).clone());
  }
  if redis.db() != 0 {
    cmds.push(redis::cmd("SELECT").arg(redis.db()).clone());
  }
  if let Some(name) = name {
    cmds.push(redis::cmd("CLIENT").arg("SETNAME").arg(name).clone());
  }
  cmds.push(redis::cmd("PING"));
  (cmds, auth)
}

/// A batch's result as one outcome per command: a server error reply
/// becomes that command's error; a failed batch fails every command.
fn outcomes(result: Result<Vec<Value>>, n: usize) -> Vec<Outcome> {
  match result {
    Ok(values) => values
      .into_iter()
      .map(|v| match v {
        Value::ServerError(e) => Err(CacheError::server(&e)),
        v => Ok(v),
      })
      .collect(),
    Err(err) => vec![Err(err); n],
  }
}

/// A redis-rs request, mapped to our errors, with ERR_TIMEOUT after `timeout`.
async fn with_timeout<F>(timeout: Duration, addr: &str, request: F) -> Result<Vec<Value>>
where
  F: std::future::Future<Output = redis::RedisResult<Vec<Value>>>,
{
  match tokio::time::timeout(timeout, request).await {
    Ok(Ok(values)) => Ok(values),
    Ok(Err(e)) => Err(CacheError::from_redis(&e, addr)),
    Err(_) => Err(CacheError::timeout(&format!("command to {addr}"), timeout.as_millis() as u64)),
  }
}

fn pipeline(cmds: Vec<Cmd>) -> Pipeline {
  let mut pipe = Pipeline::with_capacity(cmds.len());
  pipe.ignore_errors();
  for cmd in cmds {
    pipe.add_command(cmd);
  }
  pipe
}

/// `host:port` (or the seed nodes) for error messages.
pub fn describe(target: &Target) -> String {
  match target {
    Target::Standalone(info) => addr_of(info),
    Target::Cluster(nodes) => nodes.iter().map(addr_of).collect::<Vec<_>>().join(","),
    Target::Sentinel(sentinel) => sentinel.describe(),
  }
}
