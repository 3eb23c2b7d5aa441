//! The built-in invalidation strategies: `pattern`, `cascade` and `tag`.
//!
//! Never KEYS: SCAN on every master (src/scan.rs), and UNLINK in
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
use crate::error::Result;
use crate::scan::{scan_cmd, scan_page, unexpected, PAGE};

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
      removed += sum(&engine.run(unlink(members, cluster)).await?)?;
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
      cmds.push(scan_cmd(cursor, &pattern, PAGE));
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
