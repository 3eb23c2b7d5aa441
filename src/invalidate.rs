//! The built-in invalidation strategies: `pattern`, `cascade` and `tag`.
//!
//! Never KEYS: SCAN with a bounded COUNT on every master, and UNLINK in
//! batches, one round trip a page (the UNLINK of a page travels with the
//! SCAN for the next), so a server with millions of keys keeps answering
//! others meanwhile. Only keys under keyPrefix are touched, and never those
//! in the reserved namespace (locks, tag indexes); counts are of cache keys.

use std::collections::HashMap;
use std::sync::Arc;

use redis::cluster_routing::Slot;
use redis::{Cmd, Value};

use crate::codec::escape_glob;
use crate::engine::Engine;
use crate::error::{CacheError, Code, Result};

/// Keys a SCAN or ZSCAN page asks for.
const PAGE: usize = 1000;

/// Runs the built-in strategy `kind` (cascade, tag or pattern) and counts
/// what it removed.
pub async fn run(engine: &Arc<Engine>, kind: &str, arg: &str) -> Result<u64> {
  let removed = match kind {
    "cascade" => cascade(engine, arg).await?,
    "tag" => tag(engine, arg).await?,
    "pattern" => pattern(engine, arg).await?,
    other => return Err(CacheError::new(Code::UnknownStrategy, format!("unknown invalidation strategy {other:?}"))),
  };
  crate::stats::add(&engine.stats.deletes, removed);
  // Whatever it removed, no getOrSet factory in flight writes back over it.
  crate::getorset::cancel_leases(engine).await?;
  Ok(removed)
}

/// Removes every key under keyPrefix whose unprefixed name matches `glob`.
pub async fn pattern(engine: &Arc<Engine>, glob: &str) -> Result<u64> {
  scan_unlink(engine, engine.codec.scan_pattern(glob)).await
}

/// Removes `key` and every key under `key:`; glob characters in `key` match
/// only themselves.
pub async fn cascade(engine: &Arc<Engine>, key: &str) -> Result<u64> {
  let stored = engine.codec.key(key)?;
  let own = engine.run(unlink(vec![stored], engine.is_cluster())).await?;
  let subkeys = scan_unlink(engine, engine.codec.scan_pattern(&format!("{}:*", escape_glob(key)))).await?;
  Ok(sum(&own)? + subkeys)
}

/// Removes every key set with `tag`, then the tag's index.
pub async fn tag(engine: &Arc<Engine>, tag: &str) -> Result<u64> {
  let index = engine.codec.tag_index(tag);
  let cluster = engine.is_cluster();
  let mut removed = 0;
  let mut cursor = 0u64;
  loop {
    let mut zscan = redis::cmd("ZSCAN");
    zscan.arg(&index).arg(cursor).arg("COUNT").arg(PAGE);
    let reply = engine.run(vec![zscan]).await?;
    let (next, items) = scan_page(reply.into_iter().next())?;
    // Members and scores alternate.
    let members: Vec<Vec<u8>> = items.into_iter().step_by(2).filter(|m| engine.codec.user_key(m).is_some()).collect();
    if !members.is_empty() {
      // The members' records of their tags go too (expire.rs); only the
      // members are counted.
      let records = members.iter().map(|m| engine.codec.tag_record(m)).collect();
      let mut cmds = unlink(members, cluster);
      let counted = cmds.len();
      cmds.extend(unlink(records, cluster));
      removed += sum(&engine.run(cmds).await?[..counted])?;
    }
    if next == 0 {
      break;
    }
    cursor = next;
  }
  engine.run(unlink(vec![index], cluster)).await?;
  Ok(removed)
}

/// SCAN every master for `pattern` (already escaped and prefixed) and UNLINK
/// what it finds, outside the reserved namespace.
async fn scan_unlink(engine: &Arc<Engine>, pattern: Vec<u8>) -> Result<u64> {
  let cluster = engine.is_cluster();
  let mut removed = 0;
  for node in engine.masters().await? {
    let mut cursor = 0u64;
    let mut found: Vec<Vec<u8>> = Vec::new();
    loop {
      let mut cmds = unlink(std::mem::take(&mut found), cluster);
      let unlinks = cmds.len();
      let mut scan = redis::cmd("SCAN");
      scan.arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(PAGE);
      cmds.push(scan);
      let mut values = engine.run_on(&node, cmds).await?;
      let page = values.pop();
      removed += sum(&values[..unlinks])?;
      let (next, keys) = scan_page(page)?;
      found = keys.into_iter().filter(|k| engine.codec.user_key(k).is_some()).collect();
      if next == 0 {
        break;
      }
      cursor = next;
    }
    if !found.is_empty() {
      removed += sum(&engine.run_on(&node, unlink(found, cluster)).await?)?;
    }
  }
  Ok(removed)
}

/// UNLINK commands for `keys`: one, or in a cluster one per slot (a
/// multi-key command must stay within a slot).
fn unlink(keys: Vec<Vec<u8>>, cluster: bool) -> Vec<Cmd> {
  if keys.is_empty() {
    return Vec::new();
  }
  let groups: Vec<Vec<Vec<u8>>> = if cluster {
    let mut by_slot: HashMap<Slot, Vec<Vec<u8>>> = HashMap::new();
    for k in keys {
      by_slot.entry(Slot::for_key(&k)).or_default().push(k);
    }
    by_slot.into_values().collect()
  } else {
    vec![keys]
  };
  groups
    .into_iter()
    .map(|keys| {
      let mut cmd = redis::cmd("UNLINK");
      for k in keys {
        cmd.arg(k);
      }
      cmd
    })
    .collect()
}

fn sum(values: &[Value]) -> Result<u64> {
  values.iter().try_fold(0, |acc, v| match v {
    Value::Int(n) => Ok(acc + *n as u64),
    other => Err(unexpected(other)),
  })
}

/// A SCAN-family reply: the next cursor and the page's items.
fn scan_page(v: Option<Value>) -> Result<(u64, Vec<Vec<u8>>)> {
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

fn unexpected(v: &Value) -> CacheError {
  CacheError::new(Code::Redis, format!("unexpected reply {v:?}"))
}
