//! Key scanning: SCAN with a bounded COUNT on every master, never KEYS.
//! `cache.scan()` walks it a page at a time from JS (one crossing per page);
//! the pattern and cascade invalidations walk it here (src/invalidate.rs).
//!
//! Each master is scanned on its own, so in a cluster each key is seen on
//! the one master that holds its slot. Only keys under keyPrefix are
//! returned, never those in the reserved namespace.

use std::sync::Arc;

use redis::{Cmd, Value};

use crate::connection::Node;
use crate::engine::Engine;
use crate::error::{CacheError, Code, Result};

/// Keys a SCAN or ZSCAN page asks for by default.
pub const PAGE: usize = 1000;

/// `SCAN cursor MATCH pattern COUNT count`.
pub fn scan_cmd(cursor: u64, pattern: &[u8], count: usize) -> Cmd {
  let mut scan = redis::cmd("SCAN");
  scan.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(count);
  scan
}

/// The nodes a scan walks, as `cache.scan` names them: "" for the one
/// server, else each master's `host:port`.
pub async fn nodes(engine: &Engine) -> Result<Vec<String>> {
  Ok(
    engine
      .masters()
      .await?
      .into_iter()
      .map(|node| match node {
        Node::Standalone => String::new(),
        Node::Master { host, port } => format!("{host}:{port}"),
      })
      .collect(),
  )
}

/// One page of `cache.scan(glob)` on `node` from `cursor`: a JSON array
/// text, the next cursor ("0": this node is done) then the user's names of
/// the keys found. Keys that are not UTF-8 text (not written by this
/// module) are left out: they could not be named from JS.
pub async fn page(engine: &Arc<Engine>, node: &str, cursor: &str, glob: &str, count: u32) -> Result<String> {
  let node = match node {
    "" => Node::Standalone,
    addr => {
      let (host, port) = addr.rsplit_once(':').and_then(|(h, p)| Some((h, p.parse().ok()?))).ok_or_else(|| bad_state(addr))?;
      Node::Master { host: host.to_string(), port }
    }
  };
  let cursor: u64 = cursor.parse().map_err(|_| bad_state(cursor))?;
  let count = if count == 0 { PAGE } else { count as usize };
  let mut values = engine.run_on(&node, vec![scan_cmd(cursor, &engine.codec.scan_pattern(glob), count)]).await?;
  let (next, keys) = scan_page(values.pop())?;
  let next = next.to_string();
  let mut out: Vec<&str> = vec![&next];
  out.extend(keys.iter().filter_map(|k| engine.codec.user_key(k)).filter_map(|k| std::str::from_utf8(k).ok()));
  Ok(serde_json::to_string(&out).expect("strings serialise"))
}

fn bad_state(what: &str) -> CacheError {
  CacheError::new(Code::InvalidArg, format!("malformed scan position {what:?} from the JS face"))
}

/// A SCAN-family reply: the next cursor and the page's items.
pub fn scan_page(v: Option<Value>) -> Result<(u64, Vec<Vec<u8>>)> {
  match v {
    Some(Value::Array(mut parts)) if parts.len() == 2 => {
      let items = parts.pop().expect("two parts");
      let cursor = match parts.pop().expect("two parts") {
        Value::BulkString(b) => std::str::from_utf8(&b).ok().and_then(|s| s.parse().ok()),
        _ => None,
      }
      .ok_or_else(|| unexpected(&Value::Nil))?;
      let items = match items {
        Value::Array(items) => items
          .into_iter()
          .map(|item| match item {
            Value::BulkString(b) => Ok(b),
            other => Err(unexpected(&other)),
          })
          .collect::<Result<_>>()?,
        other => return Err(unexpected(&other)),
      };
      Ok((cursor, items))
    }
    other => Err(unexpected(&other.unwrap_or(Value::Nil))),
  }
}

pub fn unexpected(v: &Value) -> CacheError {
  CacheError::new(Code::Redis, format!("unexpected reply {v:?}"))
}
