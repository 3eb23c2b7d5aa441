//! Connections: a standalone server (one multiplexed socket) or a cluster
//! (redis-rs's async cluster client: slot map, MOVED/ASK, topology refresh).
//! Every command goes through `Connection::send`, which pipelines a batch,
//! keeps the caller's order and completes it with a callback.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use redis::{AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, Pipeline, Value};
use tokio::sync::oneshot;

use crate::error::{CacheError, Code, Result};
use crate::multiplex::{Done, Multiplexed, OnLost};
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
  Cluster { conn: ClusterConnection, timeout: Duration },
}

impl Connection {
  /// Connects, authenticates, selects the db and PINGs within connectTimeout.
  /// `on_lost` is told when a standalone connection breaks later.
  pub async fn open(opts: &Options, on_lost: OnLost) -> Result<Connection> {
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
          Ok(Connection::Tls { conn, timeout: opts.command_timeout })
        }
        Target::Standalone(info) => open_standalone(info, opts.command_timeout, on_lost).await,
        Target::Cluster(nodes) => {
          let mut builder = redis::cluster::ClusterClientBuilder::new(nodes.clone())
            .connection_timeout(opts.connect_timeout)
            .response_timeout(opts.command_timeout);
          if let Some(ConnectionAddr::TcpTls { insecure, .. }) = nodes.first().map(|n| n.addr()) {
            builder = builder.tls(if *insecure { redis::TlsMode::Insecure } else { redis::TlsMode::Secure });
            if let Some(certs) = &opts.tls {
              builder = builder.certs(certs.clone());
            }
          }
          let client = builder.build().map_err(|e| CacheError::from_redis(&e, &what))?;
          let mut conn = client.get_async_connection().await.map_err(|e| CacheError::from_redis(&e, &what))?;
          redis::cmd("PING").query_async::<()>(&mut conn).await.map_err(|e| CacheError::from_redis(&e, &what))?;
          Ok(Connection::Cluster { conn, timeout: opts.command_timeout })
        }
      }
    };
    tokio::time::timeout(opts.connect_timeout, connect)
      .await
      .unwrap_or_else(|_| Err(CacheError::timeout(&format!("connecting to {what}"), opts.connect_timeout.as_millis() as u64)))
  }

  /// Sends `cmds` as a pipeline and calls `done` with one value per command,
  /// in order. A server error reply stays in its place as
  /// `Value::ServerError`; only a broken connection or the timeout fails the
  /// whole batch (after commandTimeout at the latest). Standalone, the
  /// bytes are written by the calling thread.
  pub fn send(&self, cmds: Vec<Cmd>, done: Done) {
    match self {
      Connection::Standalone(mux) => {
        let mut packed = Vec::with_capacity(cmds.len() * 64);
        for cmd in &cmds {
          cmd.write_packed_command(&mut packed);
        }
        mux.send(&packed, cmds.len(), done);
      }
      Connection::Tls { conn, timeout } => {
        let mut conn = conn.clone();
        spawn_with_timeout(*timeout, async move { pipeline(cmds).query_async(&mut conn).await }, done);
      }
      Connection::Cluster { conn, timeout } => spawn_with_timeout(*timeout, run_cluster(conn.clone(), cmds), done),
    }
  }

  /// `send`, awaited.
  pub async fn run(&self, cmds: Vec<Cmd>) -> Result<Vec<Value>> {
    let (tx, rx) = oneshot::channel();
    self.send(cmds, Box::new(move |r| drop(tx.send(r))));
    rx.await.unwrap_or_else(|_| Err(CacheError::new(Code::Connection, "the connection was closed")))
  }

  /// The servers that hold data: the one server, or every cluster master.
  pub async fn masters(&self) -> Result<Vec<Node>> {
    match self {
      Connection::Standalone(_) | Connection::Tls { .. } => Ok(vec![Node::Standalone]),
      Connection::Cluster { conn, .. } => {
        let mut conn = conn.clone();
        let text: String = redis::cmd("CLUSTER")
          .arg("NODES")
          .query_async(&mut conn)
          .await
          .map_err(|e| CacheError::from_redis(&e, "cluster"))?;
        Ok(parse_masters(&text))
      }
    }
  }

  /// `run` on one node (`Node::Standalone` on a standalone connection). In a
  /// cluster every command must stay within one slot of that node.
  pub async fn run_on(&self, node: &Node, cmds: Vec<Cmd>) -> Result<Vec<Value>> {
    match (self, node) {
      (Connection::Cluster { conn, timeout }, Node::Master { host, port }) => {
        let mut conn = conn.clone();
        let route = redis::cluster_routing::SingleNodeRoutingInfo::ByAddress { host: host.clone(), port: *port };
        let n = cmds.len();
        let addr = format!("{host}:{port}");
        match tokio::time::timeout(*timeout, conn.route_pipeline(pipeline(cmds), 0, n, route)).await {
          Ok(Ok(values)) => Ok(values),
          Ok(Err(e)) => Err(CacheError::from_redis(&e, &addr)),
          Err(_) => Err(CacheError::timeout(&format!("command to {addr}"), timeout.as_millis() as u64)),
        }
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

async fn open_standalone(info: &ConnectionInfo, timeout: Duration, on_lost: OnLost) -> Result<Connection> {
  let ConnectionAddr::Tcp(host, port) = info.addr() else {
    return Err(CacheError::type_error(format!("unsupported address {}", info.addr())));
  };
  let mux = Arc::new(Multiplexed::connect(host, *port, timeout, on_lost).await?);
  let conn = Connection::Standalone(mux);
  let redis = info.redis_settings();
  let mut handshake = Vec::new();
  if let Some(password) = redis.password() {
    let mut auth = redis::cmd("AUTH");
    if let Some(user) = redis.username() {
      auth.arg(user);
    }
    handshake.push(auth.arg(password).clone());
  }
  if redis.db() != 0 {
    handshake.push(redis::cmd("SELECT").arg(redis.db()).clone());
  }
  handshake.push(redis::cmd("PING"));
  let has_auth = redis.password().is_some();
  let checked = conn.run(handshake).await.and_then(|values| {
    for (i, v) in values.iter().enumerate() {
      if let Value::ServerError(e) = v {
        let code = if has_auth && i == 0 { Code::Auth } else { Code::Redis };
        let err = CacheError::server(e);
        return Err(CacheError::new(code, format!("{}: {}", addr_of(info), err.message)));
      }
    }
    Ok(())
  });
  match checked {
    Ok(()) => Ok(conn),
    Err(e) => {
      conn.close();
      Err(e)
    }
  }
}

/// Runs a redis-rs request on tokio and completes `done` with its values,
/// or with ERR_TIMEOUT after `timeout`.
fn spawn_with_timeout<F>(timeout: Duration, request: F, done: Done)
where
  F: std::future::Future<Output = redis::RedisResult<Vec<Value>>> + Send + 'static,
{
  napi::bindgen_prelude::spawn(async move {
    done(match tokio::time::timeout(timeout, request).await {
      Ok(Ok(values)) => Ok(values),
      Ok(Err(e)) => Err(CacheError::from_redis(&e, "redis")),
      Err(_) => Err(CacheError::timeout("command", timeout.as_millis() as u64)),
    })
  });
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

/// A cluster pipeline must stay within one slot: group the commands by slot,
/// send the groups side by side and put the replies back in order.
async fn run_cluster(conn: ClusterConnection, cmds: Vec<Cmd>) -> redis::RedisResult<Vec<Value>> {
  let n = cmds.len();
  let mut groups: HashMap<Option<Slot>, (Vec<usize>, Vec<Cmd>)> = HashMap::new();
  for (i, cmd) in cmds.into_iter().enumerate() {
    let (indexes, group) = groups.entry(routing_key(&cmd).map(Slot::for_key)).or_default();
    indexes.push(i);
    group.push(cmd);
  }
  let replies = join_all(groups.into_values().map(|(indexes, group)| {
    let mut conn = conn.clone();
    async move {
      let values: Vec<Value> = pipeline(group).query_async(&mut conn).await?;
      Ok::<_, redis::RedisError>((indexes, values))
    }
  }))
  .await;
  let mut out = vec![Value::Nil; n];
  for reply in replies {
    let (indexes, values) = reply?;
    for (i, v) in indexes.into_iter().zip(values) {
      out[i] = v;
    }
  }
  Ok(out)
}

/// The key that decides a command's slot: its first key argument.
fn routing_key(cmd: &Cmd) -> Option<&[u8]> {
  let mut args = cmd.args_iter().map(|a| match a {
    redis::Arg::Simple(bytes) => bytes,
    _ => &b""[..],
  });
  let name = args.next()?;
  let skip = if name.eq_ignore_ascii_case(b"EVAL") || name.eq_ignore_ascii_case(b"EVALSHA") { 2 } else { 0 };
  args.nth(skip)
}

/// `host:port` (or the seed nodes) for error messages.
pub fn describe(target: &Target) -> String {
  match target {
    Target::Standalone(info) => addr_of(info),
    Target::Cluster(nodes) => nodes.iter().map(addr_of).collect::<Vec<_>>().join(","),
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
    assert_eq!(
      parse_masters(text),
      vec![
        Node::Master { host: "127.0.0.1".into(), port: 30002 },
        Node::Master { host: "127.0.0.1".into(), port: 30001 },
      ]
    );
  }
}
