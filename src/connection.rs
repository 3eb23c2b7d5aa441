//! One multiplexed connection per node: a standalone server or a cluster.
//! Every command the engine sends goes through `Connection::run`, which
//! pipelines a batch and keeps the caller's order.

use std::collections::HashMap;

use futures_util::future::join_all;
use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use redis::{AsyncConnectionConfig, Client, Cmd, Pipeline, RedisResult, Value};

use crate::error::{CacheError, Result};
use crate::options::{addr_of, Options, Target};

#[derive(Clone)]
pub enum Connection {
  Single(MultiplexedConnection),
  Cluster(ClusterConnection),
}

impl Connection {
  /// Connects and PINGs within `connectTimeout`.
  pub async fn open(opts: &Options) -> Result<Connection> {
    let what = describe(&opts.target);
    let connect = async {
      match &opts.target {
        Target::Standalone(info) => {
          let config = AsyncConnectionConfig::new().set_connection_timeout(Some(opts.connect_timeout));
          let client = Client::open(info.clone()).map_err(|e| CacheError::from_redis(&e, &what))?;
          let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| CacheError::from_redis(&e, &what))?;
          redis::cmd("PING").query_async::<()>(&mut conn).await.map_err(|e| CacheError::from_redis(&e, &what))?;
          Ok(Connection::Single(conn))
        }
        Target::Cluster(nodes) => {
          let client = redis::cluster::ClusterClientBuilder::new(nodes.clone())
            .connection_timeout(opts.connect_timeout)
            .response_timeout(opts.command_timeout)
            .build()
            .map_err(|e| CacheError::from_redis(&e, &what))?;
          let mut conn = client.get_async_connection().await.map_err(|e| CacheError::from_redis(&e, &what))?;
          redis::cmd("PING").query_async::<()>(&mut conn).await.map_err(|e| CacheError::from_redis(&e, &what))?;
          Ok(Connection::Cluster(conn))
        }
      }
    };
    tokio::time::timeout(opts.connect_timeout, connect)
      .await
      .unwrap_or_else(|_| Err(CacheError::timeout(&format!("connecting to {what}"), opts.connect_timeout.as_millis() as u64)))
  }

  pub fn is_cluster(&self) -> bool {
    matches!(self, Connection::Cluster(_))
  }

  /// Sends `cmds` as pipelines and returns one value per command, in order.
  /// A server error reply stays in its place as `Value::ServerError`; only a
  /// failure of the connection itself fails the whole batch.
  pub async fn run(&self, cmds: Vec<Cmd>) -> RedisResult<Vec<Value>> {
    match self {
      Connection::Single(conn) => {
        let mut conn = conn.clone();
        pipeline(cmds).query_async(&mut conn).await
      }
      Connection::Cluster(conn) => {
        // A cluster pipeline must stay within one slot: group by slot and
        // send the groups side by side.
        let n = cmds.len();
        let mut groups: HashMap<Option<Slot>, (Vec<usize>, Vec<Cmd>)> = HashMap::new();
        for (i, cmd) in cmds.into_iter().enumerate() {
          let group = groups.entry(routing_key(&cmd).map(Slot::for_key)).or_default();
          group.0.push(i);
          group.1.push(cmd);
        }
        let replies = join_all(groups.into_values().map(|(indexes, cmds)| {
          let mut conn = conn.clone();
          async move {
            let values: Vec<Value> = pipeline(cmds).query_async(&mut conn).await?;
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
    }
  }
}

/// The key that decides a command's slot: the first key argument.
fn routing_key(cmd: &Cmd) -> Option<&[u8]> {
  let mut args = cmd.args_iter().map(|a| match a {
    redis::Arg::Simple(bytes) => bytes,
    _ => &b""[..],
  });
  let name = args.next()?;
  let skip = if name.eq_ignore_ascii_case(b"EVAL") || name.eq_ignore_ascii_case(b"EVALSHA") { 2 } else { 0 };
  args.nth(skip)
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
  }
}
