//! Connections: a standalone server (one multiplexed socket) or a cluster
//! (redis-rs's async cluster client: slot map, MOVED/ASK, topology refresh).
//! Every command goes through `Connection::send`, which pipelines a batch,
//! keeps the caller's order and completes it with a callback.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, Pipeline, Value};
use tokio::sync::oneshot;

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
  Tls {
    conn: MultiplexedConnection,
    timeout: Duration,
  },
  Cluster {
    conn: ClusterConnection,
    timeout: Duration,
  },
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
        // The engine never opens a connection to its in-process store.
        Target::Memory(_) => Err(CacheError::type_error("the memory store has no server")),
        Target::Cluster(nodes) => {
          // redis-rs waits at least 1.28 s between retries by default, and
          // while it recovers from a lost node every request waits on its
          // internal timeouts: keep those short (a failover takes ~2 s) so
          // that traffic to healthy slots resumes quickly. commandTimeout
          // still bounds every call.
          let mut builder = redis::cluster::ClusterClientBuilder::new(nodes.clone())
            .connection_timeout(opts.connect_timeout.min(Duration::from_secs(1)))
            .response_timeout(opts.command_timeout.min(Duration::from_secs(1)))
            .retries(8)
            .min_retry_wait(25)
            .max_retry_wait(500);
          if let Some(ConnectionAddr::TcpTls { insecure, .. }) = nodes.first().map(|n| n.addr()) {
            builder = builder.tls(if *insecure { redis::TlsMode::Insecure } else { redis::TlsMode::Secure });
            if let Some(certs) = &opts.tls {
              builder = builder.certs(certs.clone());
            }
          }
          let client = builder.build().map_err(|e| CacheError::from_redis(&e, &what))?;
          let mut conn = match client.get_async_connection().await {
            Ok(conn) => conn,
            Err(e) => return Err(why_cluster_failed(&nodes[0], opts, &e, &what).await),
          };
          redis::cmd("PING").query_async::<()>(&mut conn).await.map_err(|e| CacheError::from_redis(&e, &what))?;
          Ok(Connection::Cluster { conn, timeout: opts.command_timeout })
        }
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
      Connection::Cluster { conn, timeout } => {
        let (conn, timeout) = (conn.clone(), *timeout);
        napi::bindgen_prelude::spawn(async move { done(run_cluster(conn, cmds, timeout).await) });
      }
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
      Connection::Cluster { conn, .. } => {
        let mut conn = conn.clone();
        let text: String = redis::cmd("CLUSTER").arg("NODES").query_async(&mut conn).await.map_err(|e| CacheError::from_redis(&e, "cluster"))?;
        Ok(parse_masters(&text))
      }
    }
  }

  /// `run` on one node (`Node::Standalone` on a standalone connection). In a
  /// cluster every command must stay within one slot of that node.
  pub async fn run_on(&self, node: &Node, cmds: Vec<Cmd>) -> Vec<Outcome> {
    match (self, node) {
      (Connection::Cluster { conn, timeout }, Node::Master { host, port }) => {
        let mut conn = conn.clone();
        let route = redis::cluster_routing::SingleNodeRoutingInfo::ByAddress { host: host.clone(), port: *port };
        let n = cmds.len();
        let addr = format!("{host}:{port}");
        outcomes(with_timeout(*timeout, &addr, conn.route_pipeline(pipeline(cmds), 0, n, route)).await, n)
      }
      _ => self.run(cmds).await,
    }
  }

  pub fn close(&self) {
    if let Connection::Standalone(mux) = self {
      mux.close(CacheError::not_connected());
    }
  }
}

async fn open_standalone(info: &ConnectionInfo, opts: &Options, on_lost: OnLost) -> Result<Connection> {
  let ConnectionAddr::Tcp(host, port) = info.addr() else {
    return Err(CacheError::type_error(format!("unsupported address {}", info.addr())));
  };
  let mux = Arc::new(Multiplexed::connect(host, *port, opts.command_timeout, on_lost).await?);
  let conn = Connection::Standalone(mux);
  let (cmds, auth) = handshake(info, opts.connection_name.as_deref());
  let checked = conn.run(cmds).await.into_iter().enumerate().try_for_each(|(i, outcome)| match outcome {
    // Any refusal of AUTH is an authentication failure (as redis-rs has it);
    // every other reply is classified by its own error code (NOAUTH…).
    Err(mut err) if err.redis_code.is_some() => {
      if Some(i) == auth {
        err.code = Code::Auth;
      }
      err.message = format!("{}: {}", addr_of(info), err.message);
      Err(err)
    }
    other => other.map(drop),
  });
  match checked {
    Ok(()) => Ok(conn),
    Err(e) => {
      conn.close();
      Err(e)
    }
  }
}

/// AUTH, SELECT, CLIENT SETNAME and PING, and where AUTH is among them.
fn handshake(info: &ConnectionInfo, name: Option<&str>) -> (Vec<Cmd>, Option<usize>) {
  let redis = info.redis_settings();
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

/// redis-rs reports a failed first cluster connection as an I/O error that
/// has lost its cause's kind; a direct connection to the first seed node
/// tells whether the password was refused (ERR_AUTH).
async fn why_cluster_failed(seed: &ConnectionInfo, opts: &Options, err: &redis::RedisError, what: &str) -> CacheError {
  let client = match &opts.tls {
    Some(certs) => Client::build_with_tls(seed.clone(), certs.clone()),
    None => Client::open(seed.clone()),
  };
  if let Ok(client) = client {
    if let Err(e) = client.get_multiplexed_async_connection().await {
      let probe = CacheError::from_redis(&e, what);
      if probe.code == Code::Auth {
        return probe;
      }
    }
  }
  CacheError::from_redis(err, what)
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

/// The masters in a `CLUSTER NODES` reply, as `host:port`.
fn parse_masters(text: &str) -> Vec<Node> {
  text
    .lines()
    .filter_map(|line| {
      let fields: Vec<&str> = line.split(' ').collect();
      let flags = fields.get(2)?;
      if !flags.split(',').any(|f| f == "master") || flags.contains("fail") || flags.contains("noaddr") {
        return None;
      }
      // ip:port@cport[,hostname]
      let addr = fields.get(1)?.split(['@', ',']).next()?;
      let (host, port) = addr.rsplit_once(':')?;
      Some(Node::Master { host: host.to_string(), port: port.parse().ok()? })
    })
    .collect()
}

/// In a cluster each command goes on its own through redis-rs's cluster
/// client (still pipelined on each node's one connection), which follows
/// MOVED/ASK redirections and retries across a failover; a slot whose node
/// is down or slow fails only its own commands.
async fn run_cluster(conn: ClusterConnection, cmds: Vec<Cmd>, timeout: Duration) -> Vec<Outcome> {
  join_all(cmds.into_iter().map(|cmd| {
    let mut conn = conn.clone();
    async move {
      let value = with_timeout(timeout, "cluster", async { cmd.query_async::<Value>(&mut conn).await.map(|v| vec![v]) }).await;
      outcomes(value, 1).pop().expect("one outcome")
    }
  }))
  .await
}

/// `host:port` (or the seed nodes) for error messages.
pub fn describe(target: &Target) -> String {
  match target {
    Target::Standalone(info) => addr_of(info),
    Target::Cluster(nodes) => nodes.iter().map(addr_of).collect::<Vec<_>>().join(","),
    Target::Sentinel(sentinel) => sentinel.describe(),
    Target::Memory(config) => config.url(),
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn masters_of_cluster_nodes() {
    let text = "07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected\n\
67ed 127.0.0.1:30002@40002 master - 0 1426238316232 2 connected 5461-10922\n\
292f 127.0.0.1:30003@40003 master,fail - 0 1426238318243 3 connected\n\
e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460\n";
    assert_eq!(parse_masters(text), vec![Node::Master { host: "127.0.0.1".into(), port: 30002 }, Node::Master { host: "127.0.0.1".into(), port: 30001 },]);
  }
}
