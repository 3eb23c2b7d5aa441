//! Distributed locks: one key per lock in the reserved namespace, taken with
//! an atomic SET NX PX, released and extended only by the holder's token
//! (compare-and-delete / compare-and-expire scripts). Each acquisition also
//! increments the lock's fencing counter in the same script, so fencing
//! tokens strictly increase in the order the lock was held.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use redis::Value;

use crate::engine::Engine;
use crate::error::{CacheError, Code, Result};

const ACQUIRE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
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

pub struct LockRequest<'a> {
  pub key: &'a str,
  pub token: &'a str,
  pub ttl_ms: u64,
  pub retries: u32,
  pub retry_delay_ms: u64,
}

/// Takes the lock, retrying `retries` times with a jittered delay; resolves
/// the fencing token.
pub async fn acquire(engine: &Arc<Engine>, req: LockRequest<'_>) -> Result<u64> {
  let (lock_key, fence_key) = keys(engine, req.key)?;
  let attempts = req.retries.saturating_add(1);
  for attempt in 1..=attempts {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(ACQUIRE).arg(2).arg(&lock_key).arg(&fence_key).arg(req.token).arg(req.ttl_ms);
    match first(engine.run(vec![cmd]).await?)? {
      Value::Int(fence) if fence > 0 => return Ok(fence as u64),
      _ if attempt < attempts => tokio::time::sleep(jittered(req.retry_delay_ms)).await,
      _ => {}
    }
  }
  Err(CacheError::new(
    Code::LockNotAcquired,
    format!("could not acquire lock {:?} after {attempts} attempt{}", req.key, if attempts == 1 { "" } else { "s" }),
  ))
}

/// Releases the lock if `token` still holds it.
pub async fn release(engine: &Arc<Engine>, key: &str, token: &str) -> Result<bool> {
  let (lock_key, _) = keys(engine, key)?;
  let mut cmd = redis::cmd("EVAL");
  cmd.arg(RELEASE).arg(1).arg(&lock_key).arg(token);
  Ok(matches!(first(engine.run(vec![cmd]).await?)?, Value::Int(1)))
}

/// Sets the lock's expiry to `ttl_ms` if `token` still holds it.
pub async fn extend(engine: &Arc<Engine>, key: &str, token: &str, ttl_ms: u64) -> Result<bool> {
  let (lock_key, _) = keys(engine, key)?;
  let mut cmd = redis::cmd("EVAL");
  cmd.arg(EXTEND).arg(1).arg(&lock_key).arg(token).arg(ttl_ms);
  Ok(matches!(first(engine.run(vec![cmd]).await?)?, Value::Int(1)))
}

fn keys(engine: &Engine, key: &str) -> Result<(Vec<u8>, Vec<u8>)> {
  if key.is_empty() {
    return Err(CacheError::type_error("lock key must be a non-empty string"));
  }
  Ok((engine.codec.lock_key(key), engine.codec.fence_key(key)))
}

fn first(values: Vec<Value>) -> Result<Value> {
  values.into_iter().next().ok_or_else(|| CacheError::new(Code::Redis, "no reply"))
}

/// `ms` ± 50 %, so that waiting contenders do not retry in lockstep.
fn jittered(ms: u64) -> Duration {
  let mut h = RandomState::new().build_hasher();
  h.write_u64(ms);
  let r = h.finish() % 1000; // 0..1000
  Duration::from_micros(ms * (500 + r))
}
