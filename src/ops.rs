//! The hot-path operations (get, set, del, exists, expire, ttl, mget, mset,
//! ping, and the lock steps lock, unlock, extend):
//! how a batch arrives from JS, which commands each becomes, and what each
//! resolves to.
//!
//! The JS face queues operations and sends them as one flat array of strings
//! per batch (values are JSON text made by V8): an opcode, then its
//! arguments. `mget` and `mset` take their keys as JSON array texts, and
//! `mset` its values as JSON texts joined by NUL (JSON text never holds a
//! raw NUL): V8 writes those in a fraction of what a hundred strings cost to
//! cross one by one. Each list comes as a count of parts, then the parts
//! (nearly always one; lib/args.js `inParts` keeps each under V8's cap on a
//! string).
//!
//!   get key | del key | exists key | ttl key
//!   getx key | mgetx n keys..   (the near cache's reads: values and PTTLs)
//!   set key json ttl tags | expire key ttl
//!   mget n keys.. | mset ttl tags n keys.. n jsons.. | ping
//!   lock key token ttl | unlock key token | extend key token ttl
//!   gos_* (getOrSet, src/getorset.rs)
//!
//! `ttl` is whole milliseconds ("" = defaultTTL, "0" = no expiry); `tags` is a
//! JSON array of strings or "".
//!
//! With a serializer other than JSON (lib/serializer.js) values are tagged
//! strings, `t` + text or `b` + the base64 of bytes, and travel as:
//!
//!   setv key tagged ttl tags | msetv ttl tags n keys.. n values..
//!   mgetv n keys..
//!
//! where msetv's values are JSON array texts of tagged strings (text may hold
//! a NUL), and mgetv always answers one reply per value (no JSON array).
//!
//! Stored values: text as its UTF-8 bytes (JSON text by default, exactly as
//! the original module wrote it); bytes after the marker `BINARY`, which no
//! UTF-8 text starts with; either may be compressed (src/compress.rs). A read
//! answers text as a string and bytes as a Buffer.

use base64::Engine as _;
use redis::{Cmd, Value};

use crate::codec::{parse_ms, Codec};
use crate::compress::{maybe_compress, unpack};
use crate::connection::Outcome;
use crate::error::{CacheError, Code, Result};
use crate::getorset::{self, Gos};
use crate::stats::{add, Stats};
use crate::{expire, lock};

/// What one operation resolves to in JS.
pub enum Reply {
  Nil,
  Bool(bool),
  Int(i64),
  Str(String),
  /// A stored binary value (a Buffer in JS).
  Bytes(Vec<u8>),
  List(Vec<Option<Stored>>),
  /// A JSON array text of values (mget): one string and one JSON.parse in JS
  /// instead of one of each per value.
  Json(String),
  Err(CacheError),
}

/// The first byte of a stored binary value.
pub const BINARY: u8 = 0xC0;

/// A stored value as read.
#[derive(Debug, PartialEq)]
pub enum Stored {
  Text(String),
  Bytes(Vec<u8>),
}

impl Stored {
  /// A value's bytes as Redis answered them, decompressed.
  pub(crate) fn of(raw: Vec<u8>) -> Stored {
    let mut bytes = unpack(raw);
    if bytes.first() == Some(&BINARY) {
      bytes.remove(0);
      return Stored::Bytes(bytes);
    }
    Stored::Text(String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
  }
}

/// How values are written.
#[derive(Clone, Copy, Default)]
pub struct Writing {
  pub default_ttl_ms: u64,
  /// Values of at least this many bytes are compressed; None: never.
  pub compress_at: Option<usize>,
}

/// What kind of operation an `Op` came as: the names of
/// `getStats().byOperation` and of the metrics' `operation` label.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
  Get,
  Set,
  Del,
  Exists,
  Expire,
  Ttl,
  MGet,
  MSet,
  Lock,
  Unlock,
  Extend,
  Ping,
  /// The steps of getOrSet (src/getorset.rs), by their wire names.
  GosRead,
  GosLease,
  GosStore,
  GosRelease,
  GosExtend,
}

impl Kind {
  pub const ALL: [Kind; 17] = [
    Kind::Get,
    Kind::Set,
    Kind::Del,
    Kind::Exists,
    Kind::Expire,
    Kind::Ttl,
    Kind::MGet,
    Kind::MSet,
    Kind::Lock,
    Kind::Unlock,
    Kind::Extend,
    Kind::Ping,
    Kind::GosRead,
    Kind::GosLease,
    Kind::GosStore,
    Kind::GosRelease,
    Kind::GosExtend,
  ];
  pub const COUNT: usize = Kind::ALL.len();

  pub fn name(self) -> &'static str {
    match self {
      Kind::Get => "get",
      Kind::Set => "set",
      Kind::Del => "del",
      Kind::Exists => "exists",
      Kind::Expire => "expire",
      Kind::Ttl => "ttl",
      Kind::MGet => "mget",
      Kind::MSet => "mset",
      Kind::Lock => "lock",
      Kind::Unlock => "unlock",
      Kind::Extend => "extend",
      Kind::Ping => "ping",
      Kind::GosRead => "gos_read",
      Kind::GosLease => "gos_lease",
      Kind::GosStore => "gos_store",
      Kind::GosRelease => "gos_release",
      Kind::GosExtend => "gos_extend",
    }
  }
}

pub enum Op {
  Get(Vec<u8>),
  /// GET and PTTL: resolves [value, pttl].
  GetX(Vec<u8>),
  /// Every value, then every PTTL.
  MGetX(Vec<Vec<u8>>),
  Set {
    /// Keys and stored bytes.
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    ttl_ms: u64,
    tags: Vec<String>,
  },
  Del(Vec<u8>),
  Exists(Vec<u8>),
  /// expire.rs: two rounds when the key has tags.
  Expire(Vec<u8>, u64),
  Ttl(Vec<u8>),
  /// Keys, and whether every value is answered on its own (mgetv).
  MGet(Vec<Vec<u8>>, bool),
  /// The lock steps keep the user's key: lock.rs names their keys.
  Lock {
    key: String,
    token: String,
    ttl_ms: u64,
  },
  Unlock {
    key: String,
    token: String,
  },
  Extend {
    key: String,
    token: String,
    ttl_ms: u64,
  },
  Ping,
  Gos(Gos),
}

/// Reads operations off the flat wire array.
pub struct Wire<'a> {
  args: &'a [String],
  pos: usize,
}

impl<'a> Wire<'a> {
  pub fn new(args: &'a [String]) -> Self {
    Wire { args, pos: 0 }
  }

  pub fn is_done(&self) -> bool {
    self.pos >= self.args.len()
  }

  pub(crate) fn take(&mut self, n: usize) -> Result<&'a [String]> {
    let end = self.pos.checked_add(n).filter(|end| *end <= self.args.len()).ok_or_else(malformed)?;
    let out = &self.args[self.pos..end];
    self.pos = end;
    Ok(out)
  }

  /// A list sent in parts: their count, then the parts.
  fn parts(&mut self) -> Result<&'a [String]> {
    let n = self.take(1)?[0].parse().map_err(|_| malformed())?;
    self.take(n)
  }

  /// Keys sent as JSON array texts.
  fn keys(&mut self) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    for part in self.parts()? {
      keys.extend(serde_json::from_str::<Vec<String>>(part).map_err(|_| malformed())?);
    }
    Ok(keys)
  }

  /// The next operation and its kind. The outer error means the batch
  /// itself is malformed (a bug in the JS face); the inner one is a bad
  /// argument of this operation alone, whose arguments are still consumed.
  pub fn next_op(&mut self, codec: &Codec, writing: Writing) -> Result<(Kind, Result<Op>)> {
    let Writing { default_ttl_ms, compress_at } = writing;
    let store = |bytes: Vec<u8>| maybe_compress(bytes, compress_at);
    let opcode = self.take(1)?[0].as_str();
    Ok(match opcode {
      "get" => (Kind::Get, codec.key(&self.take(1)?[0]).map(Op::Get)),
      // The near cache's reads count as what the caller asked for.
      "getx" => (Kind::Get, codec.key(&self.take(1)?[0]).map(Op::GetX)),
      "del" => (Kind::Del, codec.key(&self.take(1)?[0]).map(Op::Del)),
      "exists" => (Kind::Exists, codec.key(&self.take(1)?[0]).map(Op::Exists)),
      "ttl" => (Kind::Ttl, codec.key(&self.take(1)?[0]).map(Op::Ttl)),
      "ping" => (Kind::Ping, Ok(Op::Ping)),
      "expire" => {
        let a = self.take(2)?;
        (Kind::Expire, (|| Ok(Op::Expire(codec.key(&a[0])?, parse_ms(&a[1])?)))())
      }
      "set" | "setv" => {
        let a = self.take(4)?;
        let op = (|| {
          let value = if opcode == "setv" { tagged(&a[1])? } else { a[1].clone().into_bytes() };
          let entries = vec![(codec.key(&a[0])?, store(value))];
          Ok(Op::Set { entries, ttl_ms: ttl_or(&a[2], default_ttl_ms)?, tags: parse_tags(&a[3])? })
        })();
        (Kind::Set, op)
      }
      "mget" | "mgetx" | "mgetv" => {
        let keys = self.keys()?;
        let op = if keys.is_empty() {
          Err(CacheError::range_error("mget needs at least one key"))
        } else {
          keys
            .iter()
            .map(|k| codec.key(k))
            .collect::<Result<_>>()
            .map(|keys| if opcode == "mgetx" { Op::MGetX(keys) } else { Op::MGet(keys, opcode == "mgetv") })
        };
        (Kind::MGet, op)
      }
      "msetv" => {
        let a = self.take(2)?;
        let keys = self.keys()?;
        let values = self.keys()?;
        if keys.len() != values.len() {
          return Err(malformed());
        }
        let op = (|| {
          if keys.is_empty() {
            return Err(CacheError::range_error("mset needs at least one entry"));
          }
          let entries = keys.iter().zip(values).map(|(k, v)| Ok((codec.key(k)?, store(tagged(&v)?)))).collect::<Result<_>>()?;
          Ok(Op::Set { entries, ttl_ms: ttl_or(&a[0], default_ttl_ms)?, tags: parse_tags(&a[1])? })
        })();
        (Kind::MSet, op)
      }
      "mset" => {
        let a = self.take(2)?;
        let keys = self.keys()?;
        let parts = self.parts()?;
        let jsons: Vec<&str> = if keys.is_empty() { Vec::new() } else { parts.iter().flat_map(|p| p.split('\0')).collect() };
        if keys.len() != jsons.len() {
          return Err(malformed());
        }
        let op = (|| {
          if keys.is_empty() {
            return Err(CacheError::range_error("mset needs at least one entry"));
          }
          let entries = keys.iter().zip(jsons).map(|(k, json)| Ok((codec.key(k)?, store(json.as_bytes().to_vec())))).collect::<Result<_>>()?;
          Ok(Op::Set { entries, ttl_ms: ttl_or(&a[0], default_ttl_ms)?, tags: parse_tags(&a[1])? })
        })();
        (Kind::MSet, op)
      }
      "lock" | "extend" => {
        let a = self.take(3)?;
        let (key, token) = (a[0].clone(), a[1].clone());
        let lock = opcode == "lock";
        let op = parse_ms(&a[2]).map(|ttl_ms| if lock { Op::Lock { key, token, ttl_ms } } else { Op::Extend { key, token, ttl_ms } });
        (if lock { Kind::Lock } else { Kind::Extend }, op)
      }
      "unlock" => {
        let a = self.take(2)?;
        (Kind::Unlock, Ok(Op::Unlock { key: a[0].clone(), token: a[1].clone() }))
      }
      op if op.starts_with("gos_") => {
        // gos_storev (a serializer's value) counts as gos_store.
        let name = if op == "gos_storev" { "gos_store" } else { op };
        let kind = Kind::ALL.into_iter().find(|k| k.name() == name).ok_or_else(malformed)?;
        (kind, getorset::parse(op, self, codec, writing)?)
      }
      _ => return Err(malformed()),
    })
  }
}

pub(crate) fn malformed() -> CacheError {
  CacheError::new(Code::InvalidArg, "malformed batch from the JS face")
}

/// A tagged value's stored bytes: `t` + text, or `b` + base64 bytes.
pub(crate) fn tagged(s: &str) -> Result<Vec<u8>> {
  match s.as_bytes().first() {
    Some(b't') => Ok(s.as_bytes()[1..].to_vec()),
    Some(b'b') => {
      let mut out = vec![BINARY];
      base64::engine::general_purpose::STANDARD.decode_vec(&s[1..], &mut out).map_err(|_| malformed())?;
      Ok(out)
    }
    _ => Err(malformed()),
  }
}

fn ttl_or(s: &str, default_ttl_ms: u64) -> Result<u64> {
  if s.is_empty() {
    Ok(default_ttl_ms)
  } else {
    parse_ms(s)
  }
}

pub(crate) fn parse_tags(s: &str) -> Result<Vec<String>> {
  if s.is_empty() {
    return Ok(Vec::new());
  }
  serde_json::from_str(s).map_err(|_| CacheError::type_error("tags must be an array of strings"))
}

/// Adds members to a tag index, a sorted set scored by each member's expiry
/// (ms since the epoch, server clock; +inf for none). Members past their
/// expiry are dropped on every write, and the index itself expires with its
/// last member, so an index never outgrows the keys it names. ARGV: the ttl
/// in ms, then `CH` (add, or move the expiry of members: CH only changes
/// what ZADD returns) or `XX` (move the expiry of members only), then
/// the members.
const TAG_ADD: &str = r"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ttl = tonumber(ARGV[1])
local score = ttl == 0 and '+inf' or (now + ttl)
for i = 3, #ARGV do redis.call('ZADD', KEYS[1], ARGV[2], score, ARGV[i]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2]
if top == nil then return 0 end
if top == 'inf' then redis.call('PERSIST', KEYS[1]) else redis.call('PEXPIREAT', KEYS[1], top) end
return 1
";

/// Most members one tag script call takes (Lua's stack bounds `unpack`).
const TAG_CHUNK: usize = 1000;

/// Sets the expiry of `keys` (stored names) in the index of `tag` to
/// `ttl_ms` from now (0: none): adding them, or with `members_only` only
/// those the index still names.
pub fn tag_add<'k>(codec: &Codec, tag: &str, ttl_ms: u64, members_only: bool, keys: impl Iterator<Item = &'k [u8]>) -> Cmd {
  let mut cmd = redis::cmd("EVAL");
  cmd.arg(TAG_ADD).arg(1).arg(codec.tag_index(tag)).arg(ttl_ms).arg(if members_only { "XX" } else { "CH" });
  for k in keys {
    cmd.arg(k);
  }
  cmd
}

impl Op {
  /// Appends this operation's commands; `cluster` splits multi-key commands.
  pub fn commands(&self, codec: &Codec, cluster: bool, out: &mut Vec<Cmd>) {
    match self {
      Op::Get(k) => out.push(key_cmd("GET", k)),
      Op::GetX(k) => {
        out.push(key_cmd("GET", k));
        out.push(key_cmd("PTTL", k));
      }
      Op::MGetX(keys) => {
        mget(keys, cluster, out);
        out.extend(keys.iter().map(|k| key_cmd("PTTL", k)));
      }
      // A delete clears the key's getOrSet lease: a factory in flight does
      // not write its older result back (src/getorset.rs; a set changes the
      // value, which the lease remembers), and the key's record of its tags
      // (expire.rs).
      Op::Del(k) => {
        out.push(key_cmd("DEL", k));
        out.push(key_cmd("DEL", &codec.lease_key(k)));
        out.push(key_cmd("DEL", &codec.tag_record(k)));
      }
      Op::Exists(k) => out.push(key_cmd("EXISTS", k)),
      Op::Expire(k, ms) => expire::commands(codec, k, *ms, out),
      Op::Ttl(k) => out.push(key_cmd("TTL", k)),
      Op::MGet(keys, _) => mget(keys, cluster, out),
      Op::Lock { key, token, ttl_ms } => out.push(lock::acquire(codec, key, token, *ttl_ms)),
      Op::Unlock { key, token } => out.push(lock::release(codec, key, token)),
      Op::Extend { key, token, ttl_ms } => out.push(lock::extend(codec, key, token, *ttl_ms)),
      // In a cluster redis-rs sends a PING to every master.
      Op::Ping => out.push(redis::cmd("PING")),
      Op::Set { entries, ttl_ms, tags, .. } => {
        for (k, json) in entries {
          let mut cmd = key_cmd("SET", k);
          cmd.arg(json);
          if *ttl_ms > 0 {
            cmd.arg("PX").arg(*ttl_ms);
          }
          out.push(cmd);
        }
        let keys: Vec<&[u8]> = entries.iter().map(|(k, _)| k.as_slice()).collect();
        add_to_tags(codec, tags, &keys, *ttl_ms, out);
      }
      Op::Gos(op) => op.commands(codec, out),
    }
  }

  /// Commands to send, once this operation's own are answered, before its
  /// batch is (expire.rs: a tagged key's indexes).
  pub fn follow_up(&self, codec: &Codec, outcomes: &[Outcome], out: &mut Vec<Cmd>) {
    if let Op::Expire(k, ms) = self {
      expire::follow_up(codec, k, *ms, outcomes, out);
    }
  }

  /// Turns this operation's replies (the values of its commands) into what it
  /// resolves to, counting hits, misses, sets and deletes.
  pub fn reply(self, outcomes: &mut [Outcome], stats: &Stats) -> Result<Reply> {
    if let Op::Gos(op) = self {
      return op.reply(outcomes, stats);
    }
    if let Some(Err(err)) = outcomes.iter().find(|o| o.is_err()) {
      return Err(err.clone());
    }
    let mut values = outcomes.iter_mut().map(|o| std::mem::replace(o, Ok(Value::Nil)).unwrap_or(Value::Nil));
    let first = values.next().unwrap_or(Value::Nil);
    Ok(match self {
      Op::Get(_) => {
        let v = stored_of(first);
        add(if v.is_some() { &stats.hits } else { &stats.misses }, 1);
        match v {
          None => Reply::Nil,
          Some(Stored::Text(s)) => Reply::Str(s),
          Some(Stored::Bytes(b)) => Reply::Bytes(b),
        }
      }
      Op::GetX(_) => {
        let v = stored_of(first);
        add(if v.is_some() { &stats.hits } else { &stats.misses }, 1);
        let pttl = int_of(&values.next().unwrap_or(Value::Nil));
        Reply::List(vec![v, Some(Stored::Text(pttl.to_string()))])
      }
      Op::MGetX(keys) => {
        let n = keys.len();
        let mut values: Vec<Value> = match first {
          Value::Array(items) => items.into_iter().chain(values).collect(),
          first => std::iter::once(first).chain(values).collect(),
        };
        debug_assert_eq!(values.len(), 2 * n);
        let pttls = values.split_off(n.min(values.len()));
        let hits = values.iter().filter(|v| !matches!(v, Value::Nil)).count() as u64;
        add(&stats.hits, hits);
        add(&stats.misses, n as u64 - hits);
        let mut out: Vec<Option<Stored>> = values.into_iter().map(stored_of).collect();
        out.extend(pttls.iter().map(|v| Some(Stored::Text(int_of(v).to_string()))));
        Reply::List(out)
      }
      Op::Set { entries, .. } => {
        add(&stats.sets, entries.len() as u64);
        Reply::Bool(true)
      }
      Op::Del(_) => {
        let n = int_of(&first);
        add(&stats.deletes, n as u64);
        Reply::Bool(n > 0)
      }
      Op::Exists(_) | Op::Expire(..) | Op::Unlock { .. } | Op::Extend { .. } => Reply::Bool(int_of(&first) > 0),
      Op::Ping => Reply::Bool(true),
      Op::Ttl(_) | Op::Lock { .. } => Reply::Int(int_of(&first)),
      Op::MGet(keys, one_by_one) => {
        let values: Vec<Value> = match first {
          // One MGET (standalone).
          Value::Array(items) => items,
          // One GET per key (cluster).
          first => std::iter::once(first).chain(values).collect(),
        };
        debug_assert_eq!(values.len(), keys.len());
        let hits = values.iter().filter(|v| !matches!(v, Value::Nil)).count() as u64;
        add(&stats.hits, hits);
        add(&stats.misses, values.len() as u64 - hits);
        let values: Vec<Value> = values
          .into_iter()
          .map(|v| match v {
            Value::BulkString(b) => Value::BulkString(unpack(b)),
            v => v,
          })
          .collect();
        match if one_by_one { None } else { json_array(&values) } {
          Some(text) => Reply::Json(text),
          None => Reply::List(values.into_iter().map(stored_of).collect()),
        }
      }
      Op::Gos(_) => unreachable!("answered above"),
    })
  }
}

/// One MGET, or one GET per key in a cluster.
fn mget(keys: &[Vec<u8>], cluster: bool, out: &mut Vec<Cmd>) {
  if cluster {
    out.extend(keys.iter().map(|k| key_cmd("GET", k)));
  } else {
    let mut cmd = redis::cmd("MGET");
    for k in keys {
      cmd.arg(k);
    }
    out.push(cmd);
  }
}

/// Adds `keys` to the index of each of `tags` (TAG_ADD), expiring with
/// `ttl_ms`, and writes each key's record of its tags with the same expiry
/// (so that expire() can move it in those indexes: expire.rs). Every tagged
/// write goes through here.
pub(crate) fn add_to_tags(codec: &Codec, tags: &[String], keys: &[&[u8]], ttl_ms: u64, out: &mut Vec<Cmd>) {
  if tags.is_empty() {
    return;
  }
  let record = serde_json::to_string(tags).expect("strings serialize");
  for k in keys {
    let mut cmd = key_cmd("SET", &codec.tag_record(k));
    cmd.arg(&record);
    if ttl_ms > 0 {
      cmd.arg("PX").arg(ttl_ms);
    }
    out.push(cmd);
  }
  for tag in tags {
    for chunk in keys.chunks(TAG_CHUNK) {
      out.push(tag_add(codec, tag, ttl_ms, false, chunk.iter().copied()));
    }
  }
}

fn key_cmd(name: &str, key: &[u8]) -> Cmd {
  let mut cmd = redis::cmd(name);
  cmd.arg(key);
  cmd
}

/// The values as one JSON array text, when every stored text is JSON; else
/// None, and JS decodes each value (raw text comes back as a string). Works
/// on the bytes as read: one check and one copy per value.
fn json_array(values: &[Value]) -> Option<String> {
  let size = values.iter().map(|v| if let Value::BulkString(b) = v { b.len() + 1 } else { 5 }).sum::<usize>();
  let mut out = Vec::with_capacity(size + 2);
  out.push(b'[');
  for (i, v) in values.iter().enumerate() {
    if i > 0 {
      out.push(b',');
    }
    match v {
      Value::BulkString(text) if serde_json::from_slice::<serde::de::IgnoredAny>(text).is_ok() => out.extend_from_slice(text),
      Value::Nil => out.extend_from_slice(b"null"),
      _ => return None,
    }
  }
  out.push(b']');
  String::from_utf8(out).ok()
}

pub(crate) fn stored_of(v: Value) -> Option<Stored> {
  match v {
    Value::BulkString(bytes) => Some(Stored::of(bytes)),
    Value::SimpleString(s) => Some(Stored::Text(s)),
    _ => None,
  }
}

pub(crate) fn int_of(v: &Value) -> i64 {
  match v {
    Value::Int(i) => *i,
    Value::Okay => 1,
    _ => 0,
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn mget_values_as_one_json_array() {
    let v = |s: &str| Value::BulkString(s.as_bytes().to_vec());
    assert_eq!(json_array(&[v(r#"{"a":1}"#), Value::Nil, v("2"), v(r#""s""#)]).as_deref(), Some(r#"[{"a":1},null,2,"s"]"#));
    assert_eq!(json_array(&[v("1"), v("not json {")]), None);
    assert_eq!(json_array(&[v("1"), v("1, 2")]), None, "two values in one would shift the rest");
    assert_eq!(json_array(&[Value::BulkString(b"\"\xff\"".to_vec())]), None, "not UTF-8: decoded one by one");
    assert_eq!(json_array(&[]).as_deref(), Some("[]"));
  }

  const W: Writing = Writing { default_ttl_ms: 5, compress_at: None };

  fn wire(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
  }

  #[test]
  fn mget_and_mset_read_their_keys_and_values() {
    let codec = Codec::new("p:");
    let args = wire(&["mget", "1", r#"["a","\u0000b"]"#, "mset", "", "", "2", r#"["k1"]"#, r#"["k2","k3"]"#, "2", "1\u{0}{\"x\":\"y\"}", "3"]);
    let mut w = Wire::new(&args);
    match w.next_op(&codec, W).unwrap() {
      (Kind::MGet, Ok(Op::MGet(keys, false))) => assert_eq!(keys, vec![b"p:a".to_vec(), b"p:\0b".to_vec()]),
      _ => panic!("not an mget"),
    }
    match w.next_op(&codec, W).unwrap() {
      (Kind::MSet, Ok(Op::Set { entries, ttl_ms, tags })) => {
        let expected = [("p:k1", "1"), ("p:k2", r#"{"x":"y"}"#), ("p:k3", "3")];
        assert_eq!(entries, expected.map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())), "lists in two parts each");
        assert_eq!((ttl_ms, tags.len()), (5, 0));
      }
      _ => panic!("not an mset"),
    }
    assert!(w.is_done());
    // A key count that does not match the values is a malformed batch.
    let args = wire(&["mset", "", "", "1", r#"["k1","k2"]"#, "1", "1"]);
    assert!(Wire::new(&args).next_op(&codec, W).is_err());
    let args = wire(&["mget", "1", "not json"]);
    assert!(Wire::new(&args).next_op(&codec, W).is_err());
    let args = wire(&["mget", "1", "[]", "mset", "", "", "1", "[]", "1", ""]);
    let mut w = Wire::new(&args);
    assert!(w.next_op(&codec, W).unwrap().1.is_err(), "no keys: a RangeError of this mget alone");
    assert!(w.next_op(&codec, W).unwrap().1.is_err(), "no entries: a RangeError of this mset alone");
    assert!(w.is_done());
  }

  #[test]
  fn tagged_values_and_what_reads_back() {
    let codec = Codec::new("p:");
    let args = wire(&["setv", "k", "bA/8A", "", "", "msetv", "", "", "1", r#"["a","b"]"#, "1", r#"["tx\u0000y","b"]"#]);
    let mut w = Wire::new(&args);
    match w.next_op(&codec, W).unwrap() {
      (Kind::Set, Ok(Op::Set { entries, .. })) => assert_eq!(entries, vec![(b"p:k".to_vec(), vec![BINARY, 3, 255, 0])]),
      _ => panic!("not a set"),
    }
    match w.next_op(&codec, W).unwrap() {
      (Kind::MSet, Ok(Op::Set { entries, .. })) => assert_eq!(entries, vec![(b"p:a".to_vec(), b"x\0y".to_vec()), (b"p:b".to_vec(), vec![BINARY])]),
      _ => panic!("not an mset"),
    }
    assert!(Wire::new(&wire(&["setv", "k", "x", "", ""])).next_op(&codec, W).unwrap().1.is_err(), "untagged");
    assert_eq!(Stored::of(vec![BINARY, 1, 2]), Stored::Bytes(vec![1, 2]));
    assert_eq!(Stored::of(b"\"s\"".to_vec()), Stored::Text("\"s\"".into()));
    // Compressed values are recognised on read whatever this instance writes.
    let big = format!("\"{}\"", "ab".repeat(200));
    let args = wire(&["set", "k", &big, "", ""]);
    let writing = Writing { default_ttl_ms: 5, compress_at: Some(100) };
    match Wire::new(&args).next_op(&codec, writing).unwrap() {
      (_, Ok(Op::Set { mut entries, .. })) => {
        let (_, stored) = entries.pop().unwrap();
        assert!(stored.len() < big.len() / 4);
        assert_eq!(Stored::of(stored), Stored::Text(big));
      }
      _ => panic!("not a set"),
    }
  }
}
