//! Distributed locks: one key per lock in the reserved namespace, taken with
//! an atomic SET NX PX, released and extended only by the holder's token
//! (compare-and-delete / compare-and-expire scripts). Each acquisition also
//! increments the lock's fencing counter in the same script, so fencing
//! tokens strictly increase in the order the lock was held.
//!
//! Each step is one command on the hot path (ops.rs: `lock`, `unlock`,
//! `extend`); the JS face waits between attempts (lib/lock.js).

use redis::Cmd;

use crate::codec::Codec;

// Safe to run twice (a cluster retries it after a lost connection or a
// failover, not knowing whether it ran): the holder's token gets the fence it
// already has, not a second increment.
const ACQUIRE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  local fence = redis.call('GET', KEYS[2])
  if fence then return tonumber(fence) end
  return redis.call('INCR', KEYS[2])
end
return 0
";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

const EXTEND: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
";

/// One attempt: replies the fencing token, or 0 when someone else holds it.
pub fn acquire(codec: &Codec, key: &str, token: &str, ttl_ms: u64) -> Cmd {
  let mut cmd = eval(ACQUIRE, &[codec.lock_key(key), codec.fence_key(key)]);
  cmd.arg(token).arg(ttl_ms);
  cmd
}

/// Deletes the lock if `token` still holds it: replies 1, else 0.
pub fn release(codec: &Codec, key: &str, token: &str) -> Cmd {
  let mut cmd = eval(RELEASE, &[codec.lock_key(key)]);
  cmd.arg(token);
  cmd
}

/// Sets the lock's expiry to `ttl_ms` if `token` still holds it: replies 1, else 0.
pub fn extend(codec: &Codec, key: &str, token: &str, ttl_ms: u64) -> Cmd {
  let mut cmd = eval(EXTEND, &[codec.lock_key(key)]);
  cmd.arg(token).arg(ttl_ms);
  cmd
}

fn eval(script: &str, keys: &[Vec<u8>]) -> Cmd {
  let mut cmd = redis::cmd("EVAL");
  cmd.arg(script).arg(keys.len()).arg(keys);
  cmd
}
