//! expire(): a key's expiry, and with it the key's place in the indexes of
//! the tags it was written with.
//!
//! A tag index is a sorted set scored by each member's expiry, trimmed and
//! expired by those scores (ops.rs TAG_ADD), so a key whose expiry moves
//! must move there too, or the index forgets it while it is still served.
//! Every tagged write keeps a record of the key's tags beside it (codec.rs
//! `tag_record`, with the key's expiry); expire() moves the key's and the
//! record's expiry, reads the record, and then rescores the key in each of
//! those indexes. Two round trips: in a cluster the key, its record and the
//! indexes lie in different slots, so no one script can do it all; each
//! command here stays within one slot.

use std::sync::Arc;

use redis::Value;

use crate::engine::Engine;
use crate::error::Result;
use crate::ops::tag_add;
use crate::stats::add;

/// Sets `key`'s ttl to `ttl_ms` (0: no expiry); false when there is no such key.
pub async fn run(engine: &Arc<Engine>, key: &str, ttl_ms: u64) -> Result<bool> {
  add(&engine.stats.operations, 1);
  let done = moved(engine, key, ttl_ms).await;
  if done.is_err() {
    add(&engine.stats.errors, 1);
  }
  done
}

async fn moved(engine: &Arc<Engine>, key: &str, ttl_ms: u64) -> Result<bool> {
  let codec = &engine.codec;
  let stored = codec.key(key)?;
  let record = codec.tag_record(&stored);
  let one = |name: &str, k: &[u8]| {
    let mut cmd = redis::cmd(name);
    cmd.arg(k);
    cmd
  };
  let mut cmds = Vec::with_capacity(4);
  if ttl_ms == 0 {
    // 0 removes the expiry, as a ttl of 0 means "no expiry" everywhere else;
    // EXISTS answers whether the key is there.
    cmds.extend([one("EXISTS", &stored), one("PERSIST", &stored), one("PERSIST", &record)]);
  } else {
    cmds.extend([one("PEXPIRE", &stored).arg(ttl_ms).clone(), one("PEXPIRE", &record).arg(ttl_ms).clone()]);
  }
  cmds.push(one("GET", &record));
  let values = engine.run(cmds).await?;
  let existed = matches!(values[0], Value::Int(n) if n > 0);
  let tags: Vec<String> = match values.last() {
    Some(Value::BulkString(json)) if existed => serde_json::from_slice(json).unwrap_or_default(),
    _ => Vec::new(),
  };
  if !tags.is_empty() {
    engine.run(tags.iter().map(|tag| tag_add(codec, tag, ttl_ms, true, std::iter::once(&stored))).collect()).await?;
  }
  Ok(existed)
}
