//! expire(): a key's expiry, and with it the key's place in the indexes of
//! the tags it was written with.
//!
//! A tag index is a sorted set scored by each member's expiry, trimmed and
//! expired by those scores (ops.rs TAG_ADD), so a key whose expiry moves
//! must move there too, or the index forgets it while it is still served.
//! Every tagged write keeps a record of the key's tags beside it (codec.rs
//! `tag_record`, with the key's expiry). expire() is an operation of the
//! batch like any other: it moves the key's and the record's expiry and
//! reads the record; when the key has tags, a second round rescores it in
//! those indexes (`follow_up`), and its batch is answered after that. In a
//! cluster the key, its record and each index lie in different slots, so no
//! one script can do it all; each command here stays within one slot.

use redis::{Cmd, Value};

use crate::codec::Codec;
use crate::connection::Outcome;
use crate::ops::tag_add;

/// The first round of `expire(stored, ttl_ms)` (0: no expiry). Its first
/// reply says whether the key was there, its last is the record of tags.
pub fn commands(codec: &Codec, stored: &[u8], ttl_ms: u64, out: &mut Vec<Cmd>) {
  let record = codec.tag_record(stored);
  let one = |name: &str, k: &[u8]| {
    let mut cmd = redis::cmd(name);
    cmd.arg(k);
    cmd
  };
  if ttl_ms == 0 {
    // 0 removes the expiry, as a ttl of 0 means "no expiry" everywhere else;
    // EXISTS answers whether the key is there.
    out.extend([one("EXISTS", stored), one("PERSIST", stored), one("PERSIST", &record)]);
  } else {
    out.extend([one("PEXPIRE", stored).arg(ttl_ms).clone(), one("PEXPIRE", &record).arg(ttl_ms).clone()]);
  }
  out.push(one("GET", &record));
}

/// The second round, from the first's outcomes: the key rescored in the
/// indexes of its tags that still name it (none when it has no tags).
pub fn follow_up(codec: &Codec, stored: &[u8], ttl_ms: u64, outcomes: &[Outcome], out: &mut Vec<Cmd>) {
  let existed = matches!(outcomes.first(), Some(Ok(Value::Int(n))) if *n > 0);
  let Some(Ok(Value::BulkString(json))) = outcomes.last() else { return };
  if !existed {
    return;
  }
  let tags: Vec<String> = serde_json::from_slice(json).unwrap_or_default();
  out.extend(tags.iter().map(|tag| tag_add(codec, tag, ttl_ms, true, std::iter::once(stored))));
}
