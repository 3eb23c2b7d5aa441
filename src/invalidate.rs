//! The built-in invalidation strategies: `pattern`, `cascade` and `tag`.
//!
//! Never KEYS: SCAN with a bounded COUNT on every master, and UNLINK in
//! batches, one round trip a page (the UNLINK of a page travels with the
//! SCAN for the next), so a server with millions of keys keeps answering
//! others meanwhile. Only keys under keyPrefix are touched, and never those
//! in the reserved namespace (locks, tag indexes); counts are of cache keys.

use std::sync::Arc;

use redis::{Cmd, Value};

use crate::codec::escape_glob;
use crate::connection::Node;
use crate::engine::Engine;
use crate::error::{CacheError, Code, Result};
use crate::memory;
use crate::scan::{scan_cmd, scan_page, unexpected, PAGE};

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
  if let Some(memory) = &engine.memory {
    return memory::pattern(memory.store()?, &engine.codec, glob).await;
  }
  scan_unlink(engine, engine.codec.scan_pattern(glob)).await
}

/// Removes `key` and every key under `key:`; glob characters in `key` match
/// only themselves.
pub async fn cascade(engine: &Arc<Engine>, key: &str) -> Result<u64> {
  if let Some(memory) = &engine.memory {
    return memory::cascade(memory.store()?, &engine.codec, key).await;
  }
  let stored = engine.codec.key(key)?;
  let own = engine.run(unlink(vec![stored], engine.is_cluster())).await?;
  let subkeys = scan_unlink(engine, engine.codec.scan_pattern(&format!("{}:*", escape_glob(key)))).await?;
  Ok(sum(&own)? + subkeys)
}

/// Removes every key set with `tag`, then the tag's index.
pub async fn tag(engine: &Arc<Engine>, tag: &str) -> Result<u64> {
  if let Some(memory) = &engine.memory {
    return memory::tag(memory.store()?, &engine.codec, tag).await;
  }
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
/// what it finds, outside the reserved namespace. In a cluster, a slot that
/// migrates while the masters are scanned can carry keys from a master not
/// scanned yet to one already scanned: so another pass follows a pass during
/// which the layout changed or a migration was under way, until one finds
/// nothing more (a key missed twice would have to move twice meanwhile).
async fn scan_unlink(engine: &Arc<Engine>, pattern: Vec<u8>) -> Result<u64> {
  if !engine.is_cluster() {
    return scan_unlink_on(engine, &Node::Standalone, &pattern).await;
  }
  let mut removed = 0;
  for pass in 0.. {
    let before = engine.layout().await?;
    let mut found = 0;
    for node in engine.masters().await? {
      found += scan_unlink_on(engine, &node, &pattern).await?;
    }
    removed += found;
    let after = engine.layout().await?;
    if (before == after && !after.contains('[')) || (pass > 0 && found == 0) {
      break;
    }
  }
  Ok(removed)
}

/// One node's SCAN, each page's UNLINK sent with the next page's SCAN. In a
/// cluster the UNLINKs are routed by key (a key may have moved on).
async fn scan_unlink_on(engine: &Arc<Engine>, node: &Node, pattern: &[u8]) -> Result<u64> {
  let cluster = engine.is_cluster();
  let mut removed = 0;
  let mut cursor = 0u64;
  let mut found: Vec<Vec<u8>> = Vec::new();
  loop {
    let unlinks = unlink(std::mem::take(&mut found), cluster);
    let scan = scan_cmd(cursor, pattern, PAGE);
    let page = if cluster {
      let (page, unlinked) = tokio::join!(engine.run_on(node, vec![scan]), run_unless_empty(engine, unlinks));
      removed += sum(&unlinked?)?;
      page?.pop()
    } else {
      let n = unlinks.len();
      let mut cmds = unlinks;
      cmds.push(scan);
      let mut values = engine.run_on(node, cmds).await?;
      let page = values.pop();
      removed += sum(&values[..n])?;
      page
    };
    let (next, keys) = scan_page(page)?;
    found = keys.into_iter().filter(|k| engine.codec.user_key(k).is_some()).collect();
    if next == 0 {
      break;
    }
    cursor = next;
  }
  removed += sum(&run_unless_empty(engine, unlink(found, cluster)).await?)?;
  Ok(removed)
}

async fn run_unless_empty(engine: &Arc<Engine>, cmds: Vec<Cmd>) -> Result<Vec<Value>> {
  if cmds.is_empty() {
    return Ok(Vec::new());
  }
  engine.run(cmds).await
}

/// UNLINK commands for `keys`: one, or in a cluster one per key (each is
/// routed on its own: a multi-key command in a migrating slot would meet
/// TRYAGAIN until the slot has moved).
fn unlink(keys: Vec<Vec<u8>>, cluster: bool) -> Vec<Cmd> {
  if keys.is_empty() {
    return Vec::new();
  }
  let groups = if cluster { keys.into_iter().map(|k| vec![k]).collect() } else { vec![keys] };
  groups
    .into_iter()
    .map(|keys: Vec<Vec<u8>>| {
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
