//! getOrSet's Redis side: the lease that makes one factory run per key across
//! processes, the scripts that read, store and release under it, and the
//! lease index that lets invalidation cancel write-backs in flight.
//!
//! Names (all in the reserved namespace, see codec.rs):
//! - `<prefix>__fluxor__:lease:{T}<key>`: the lease of `<key>`, a random token
//!   with a PX expiry. `T` is a short string that hashes to the same cluster
//!   slot as `<prefix><key>` (`slot_tag`), so that one script can read the
//!   value and the lease whatever braces the key holds.
//! - `<prefix>__fluxor__:leases`: a sorted set of the lease names handed out,
//!   scored by expiry, which `invalidate()` reads to cancel them.
//! - `<prefix>__fluxor__:filled`: the channel a holder publishes the stored
//!   key's name on when it stored or gave up, to wake waiters (wake.rs).
//!
//! The value itself is stored exactly as `set` stores it (JSON text, PX =
//! ttl + grace): no envelope. Freshness comes from the remaining PTTL: a
//! value whose PTTL is below `grace` is logically expired (stale).
//!
//! No stale write-back: the store script writes only while the lease still
//! holds the holder's token and the value is as it was when the lease was
//! taken (`state_lua`); `del` deletes the key's lease (ops.rs) and
//! `invalidate()` every lease in the index, so a write that lands while a
//! factory runs wins.
//!
//! Wire (after the opcode; ttl and lease in whole ms):
//!   gos_read key                            -> [json|null, pttl]
//!   gos_lease key token leaseMs minPttl force -> [state, json|null, pttl, leasePttl]
//!   gos_store key token json pxMs tags      -> stored?
//!   gos_storev key token tagged pxMs tags   -> stored? (a serializer's value, ops.rs)
//!   gos_release key token extendMs          -> released?
//!   gos_extend key token leaseMs            -> still held?

use std::sync::{Arc, OnceLock};

use redis::{Cmd, Value};

use crate::cluster::SLOTS;
use crate::codec::{parse_ms, Codec};
use crate::compress::maybe_compress;
use crate::connection::Outcome;
use crate::engine::Engine;
use crate::error::{CacheError, Result};
use crate::ops::{add_to_tags, int_of, parse_tags, stored_of, tagged, Op, Reply, Stored, Wire, Writing};
use crate::stats::{add, Stats};

/// Lua helpers of the lease scripts. A lease holds its token followed by the
/// state of the value when it was taken: ` <sha1 of the value> <absolute
/// expiry ms, or -1>`, or nothing for no value. A write since (a `set`,
/// `mset`, `expire`, another client's SET) changes that state, so the store
/// is refused without `set` touching the lease; a value that merely expired
/// meanwhile still counts as unchanged. (`del` and `invalidate` delete the
/// lease: a delete of a missing key leaves no state to compare.)
macro_rules! state_lua {
  () => {
    r"
local function expiry(k)
  local at = redis.pcall('PEXPIRETIME', k)
  if type(at) == 'number' then return at end
  local ttl = redis.call('PTTL', k)
  if ttl < 0 then return ttl end
  local t = redis.call('TIME')
  return t[1] * 1000 + math.floor(t[2] / 1000) + ttl
end
local function state(k, v)
  if not v then return '' end
  return ' ' .. redis.sha1hex(v) .. ' ' .. expiry(k)
end
local function unchanged(k, was)
  local v = redis.call('GET', k)
  if was == '' then return not v end
  local sha, at = string.match(was, '^ (%x+) (%-?%d+)$')
  at = tonumber(at)
  if not v then
    if at < 0 then return false end
    local t = redis.call('TIME')
    return at <= t[1] * 1000 + math.floor(t[2] / 1000) + 2
  end
  return redis.sha1hex(v) == sha and math.abs(expiry(k) - at) <= 2
end
local function held(l, token)
  return l and string.sub(l, 1, #token) == token
end
"
  };
}

/// Reads the value and its PTTL; if it is missing, stale (PTTL below
/// ARGV[3]) or `force` is set, tries to take the lease.
const LEASE: &str = concat!(
  state_lua!(),
  r"
local v = redis.call('GET', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if v and ARGV[4] == '0' and (ttl == -1 or ttl >= tonumber(ARGV[3])) then return {'hit', v, ttl} end
if redis.call('SET', KEYS[2], ARGV[1] .. state(KEYS[1], v), 'NX', 'PX', ARGV[2]) then return {'won', v or false, ttl, 0} end
return {'busy', v or false, ttl, redis.call('PTTL', KEYS[2])}
"
);

/// Writes the value only while the lease is the holder's and nobody wrote
/// the key since it was taken; either way the lease is given back and
/// waiters are woken. The PUBLISH is a pcall, last: a user without channel
/// permissions (Redis 7's default for new ACL users) still stores, and its
/// waiters poll.
const STORE: &str = concat!(
  state_lua!(),
  r"
local l = redis.call('GET', KEYS[2])
if not held(l, ARGV[1]) then return 0 end
redis.call('DEL', KEYS[2])
local stored = 0
if unchanged(KEYS[1], string.sub(l, #ARGV[1] + 1)) then
  if ARGV[3] == '0' then redis.call('SET', KEYS[1], ARGV[2]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
  stored = 1
end
redis.pcall('PUBLISH', ARGV[4], KEYS[1])
return stored
"
);

/// Gives the lease back; ARGV[2] > 0 extends the stale value's life
/// (fail-safe) to ARGV[2] ms, never shortening it (a failed refresh-ahead run
/// leaves a fresh value), unless someone wrote the key meanwhile. PUBLISH as
/// in STORE.
const RELEASE: &str = concat!(
  state_lua!(),
  r"
local l = redis.call('GET', KEYS[2])
if not held(l, ARGV[1]) then return 0 end
redis.call('DEL', KEYS[2])
local pttl = redis.call('PTTL', KEYS[1])
if pttl >= 0 and pttl < tonumber(ARGV[2]) and unchanged(KEYS[1], string.sub(l, #ARGV[1] + 1)) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
redis.pcall('PUBLISH', ARGV[3], KEYS[1])
return 1
"
);

const EXTEND: &str = concat!(
  state_lua!(),
  r"
if held(redis.call('GET', KEYS[1]), ARGV[1]) then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"
);

/// Adds a lease name to the index, scored by its expiry (server clock);
/// drops expired ones, and the index expires with its last lease.
const INDEX_ADD: &str = r"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2]
if top then redis.call('PEXPIREAT', KEYS[1], top) end
return 1
";

pub enum Gos {
  Read(Vec<u8>),
  Lease {
    key: Vec<u8>,
    token: String,
    lease_ms: u64,
    min_pttl: u64,
    force: bool,
  },
  /// `value`: the stored bytes (compressed when the options say so).
  Store {
    key: Vec<u8>,
    token: String,
    value: Vec<u8>,
    px_ms: u64,
    tags: Vec<String>,
  },
  Release {
    key: Vec<u8>,
    token: String,
    extend_ms: u64,
  },
  Extend {
    key: Vec<u8>,
    token: String,
    lease_ms: u64,
  },
}

/// Reads one getOrSet operation off the wire (see the module docs).
pub fn parse(opcode: &str, wire: &mut Wire, codec: &Codec, writing: Writing) -> Result<Result<Op>> {
  let n = match opcode {
    "gos_read" => 1,
    "gos_lease" => 5,
    "gos_store" | "gos_storev" => 5,
    "gos_release" | "gos_extend" => 3,
    _ => return Err(crate::ops::malformed()),
  };
  let a = wire.take(n)?;
  Ok((|| {
    let key = codec.key(&a[0])?;
    Ok(Op::Gos(match opcode {
      "gos_read" => Gos::Read(key),
      "gos_lease" => Gos::Lease { key, token: a[1].clone(), lease_ms: parse_ms(&a[2])?, min_pttl: parse_ms(&a[3])?, force: a[4] == "1" },
      "gos_store" | "gos_storev" => {
        let value = if opcode == "gos_storev" { tagged(&a[2])? } else { a[2].clone().into_bytes() };
        Gos::Store { key, token: a[1].clone(), value: maybe_compress(value, writing.compress_at), px_ms: parse_ms(&a[3])?, tags: parse_tags(&a[4])? }
      }
      "gos_release" => Gos::Release { key, token: a[1].clone(), extend_ms: parse_ms(&a[2])? },
      _ => Gos::Extend { key, token: a[1].clone(), lease_ms: parse_ms(&a[2])? },
    }))
  })())
}

impl Gos {
  pub fn commands(&self, codec: &Codec, out: &mut Vec<Cmd>) {
    match self {
      Gos::Read(k) => {
        out.push(redis::cmd("GET").arg(k).clone());
        out.push(redis::cmd("PTTL").arg(k).clone());
      }
      Gos::Lease { key, token, lease_ms, min_pttl, force } => {
        let lease = codec.lease_key(key);
        out.push(eval(LEASE, &[key, &lease]).arg(token).arg(lease_ms).arg(min_pttl).arg(if *force { "1" } else { "0" }).clone());
        // Every attempt indexes the lease name (a waiter's only refreshes a
        // score): one pipelined command, so invalidate() sees a lease the
        // moment it exists.
        out.push(eval(INDEX_ADD, &[&codec.lease_index()]).arg(lease_ms).arg(&lease).clone());
      }
      Gos::Store { key, token, value, px_ms, tags } => {
        let lease = codec.lease_key(key);
        out.push(eval(STORE, &[key, &lease]).arg(token).arg(value).arg(px_ms).arg(codec.fill_channel()).clone());
        out.push(redis::cmd("ZREM").arg(codec.lease_index()).arg(&lease).clone());
        // Conservative: the key joins its tags' indexes even when the store
        // was refused (an index may name a key it no longer needs to).
        add_to_tags(codec, tags, &[key], *px_ms, out);
      }
      Gos::Release { key, token, extend_ms } => {
        let lease = codec.lease_key(key);
        out.push(eval(RELEASE, &[key, &lease]).arg(token).arg(extend_ms).arg(codec.fill_channel()).clone());
        out.push(redis::cmd("ZREM").arg(codec.lease_index()).arg(&lease).clone());
      }
      Gos::Extend { key, token, lease_ms } => {
        let lease = codec.lease_key(key);
        out.push(eval(EXTEND, &[&lease]).arg(token).arg(lease_ms).clone());
        out.push(eval(INDEX_ADD, &[&codec.lease_index()]).arg(lease_ms).arg(&lease).clone());
      }
    }
  }

  /// What the operation resolves to: only its first command's outcome
  /// counts (the index and tag updates that travel with it are best effort).
  pub fn reply(self, outcomes: &mut [Outcome], stats: &Stats) -> Result<Reply> {
    let mut values = outcomes.iter_mut().map(|o| std::mem::replace(o, Ok(Value::Nil)));
    let first = values.next().unwrap_or(Ok(Value::Nil))?;
    Ok(match self {
      Gos::Read(_) => {
        let pttl = values.next().unwrap_or(Ok(Value::Nil))?;
        let value = stored_of(first);
        add(if value.is_some() { &stats.hits } else { &stats.misses }, 1);
        Reply::List(vec![value, Some(Stored::Text(int_of(&pttl).to_string()))])
      }
      Gos::Lease { .. } => match first {
        Value::Array(items) => Reply::List(
          items
            .into_iter()
            .map(|v| match v {
              Value::Int(i) => Some(Stored::Text(i.to_string())),
              v => stored_of(v),
            })
            .collect(),
        ),
        other => return Err(CacheError::new(crate::error::Code::Redis, format!("unexpected lease reply {other:?}"))),
      },
      Gos::Store { .. } => {
        let stored = int_of(&first) > 0;
        if stored {
          add(&stats.sets, 1);
        }
        Reply::Bool(stored)
      }
      Gos::Release { .. } | Gos::Extend { .. } => Reply::Bool(int_of(&first) > 0),
    })
  }
}

/// Cancels every lease handed out under the prefix, so that no factory that
/// ran during an invalidation writes its (possibly older) result back.
pub async fn cancel_leases(engine: &Arc<Engine>) -> Result<()> {
  if let Some(memory) = &engine.memory {
    return memory.cancel_leases(&engine.codec);
  }
  let index = engine.codec.lease_index();
  let mut range = redis::cmd("ZRANGE");
  range.arg(&index).arg(0).arg(-1);
  let leases: Vec<Vec<u8>> = match engine.run(vec![range]).await?.pop() {
    Some(Value::Array(items)) => items.into_iter().filter_map(|v| if let Value::BulkString(b) = v { Some(b) } else { None }).collect(),
    _ => Vec::new(),
  };
  if leases.is_empty() {
    return Ok(());
  }
  // Each lease lives in its key's slot: one DEL each in a cluster.
  let mut cmds: Vec<Cmd> =
    if engine.is_cluster() { leases.iter().map(|l| redis::cmd("DEL").arg(l).clone()).collect() } else { vec![redis::cmd("DEL").arg(&leases).clone()] };
  cmds.push(redis::cmd("ZREM").arg(&index).arg(&leases).clone());
  engine.run(cmds).await.map(drop)
}

/// A short string whose cluster slot is `key`'s: as a hash tag it puts a
/// name in the same slot as `key`, whatever braces `key` holds.
pub fn slot_tag(key: &[u8]) -> String {
  // For each slot, the number of the first candidate that hashes to it.
  // Strings of up to three letters and digits reach all 16384 slots (a test
  // checks); the table takes about a millisecond, once per process.
  static FIRST: OnceLock<Vec<u32>> = OnceLock::new();
  let first = FIRST.get_or_init(|| {
    let mut first = vec![u32::MAX; SLOTS];
    let mut left = SLOTS;
    for n in 0..CANDIDATES {
      let (name, len) = candidate(n);
      let slot = slot_of(&name[..len]);
      if first[slot] == u32::MAX {
        first[slot] = n;
        left -= 1;
        if left == 0 {
          break;
        }
      }
    }
    first
  });
  let n = first[slot_of(key)];
  debug_assert!(n != u32::MAX, "every slot has a tag");
  let (name, len) = candidate(n);
  String::from_utf8(name[..len].to_vec()).expect("ASCII")
}

const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const CANDIDATES: u32 = 62 + 62 * 62 + 62 * 62 * 62;

/// Candidate `n`: the strings of one, then two, then three letters and
/// digits, in a buffer, with its length.
fn candidate(mut n: u32) -> ([u8; 3], usize) {
  let mut len = 1;
  let mut count = 62;
  while n >= count {
    n -= count;
    len += 1;
    count *= 62;
  }
  let mut out = [0; 3];
  for c in &mut out[..len] {
    *c = ALPHABET[(n % 62) as usize];
    n /= 62;
  }
  (out, len)
}

/// Redis Cluster's slot of a key (src/cluster.rs), as an index.
fn slot_of(key: &[u8]) -> usize {
  usize::from(crate::cluster::slot_of(key))
}

fn eval(script: &str, keys: &[&[u8]]) -> Cmd {
  let mut cmd = redis::cmd("EVAL");
  cmd.arg(script).arg(keys.len());
  for k in keys {
    cmd.arg(*k);
  }
  cmd
}

#[cfg(test)]
mod tests {
  use super::*;
  use redis::cluster_routing::Slot;

  #[test]
  fn a_lease_shares_its_keys_slot_whatever_the_braces() {
    // (A prefix with an unmatched `{` cannot share slots: README says so.)
    for prefix in ["", "app:", "p{t}:", "a}b:"] {
      let codec = Codec::new(prefix);
      for key in ["user:1", "a{b}c", "}{", "{}x", "x{", "{", "}", "a}b{c}d", "{{x}}", "ключ"] {
        let stored = codec.key(key).unwrap();
        let lease = codec.lease_key(&stored);
        assert_eq!(Slot::for_key(&lease), Slot::for_key(&stored), "prefix {prefix:?} key {key:?}");
        assert!(lease.starts_with(format!("{prefix}__fluxor__:lease:").as_bytes()));
      }
    }
  }

  #[test]
  fn every_slot_has_a_tag() {
    let mut seen = std::collections::HashSet::new();
    for i in 0..200_000u32 {
      let key = i.to_string();
      let slot = Slot::for_key(slot_tag(key.as_bytes()));
      assert!(slot_tag(key.as_bytes()).len() <= 3);
      assert_eq!(slot, Slot::for_key(&key));
      seen.insert(slot);
    }
    assert_eq!(seen.len(), 16384, "every slot reached");
  }
}
