//! Whether the server may evict lock keys. Locks (lock.rs) are keys with a
//! ttl, and their fencing counters keys without one; under `maxmemory` an
//! `allkeys-*` policy may evict either, a `volatile-*` one the locks. No
//! client can stop that, so `initialize()` says so (a `warning` event).

use redis::Value;

use crate::connection::Connection;

/// The server's `maxmemory-policy` when it may evict lock keys (maxmemory set
/// and a policy other than noeviction), else None. CONFIG GET may be refused
/// (an ACL, a managed service): then INFO memory; None when neither answers.
pub async fn unsafe_policy(conn: &Connection) -> Option<String> {
  let mut found = None;
  for node in conn.masters().await.ok()? {
    let mut config = redis::cmd("CONFIG");
    config.arg("GET").arg("maxmemory*");
    let fields = match conn.run_on(&node, vec![config]).await.pop() {
      Some(Ok(Value::Array(items))) => pairs(items),
      Some(Ok(Value::Map(items))) => items.into_iter().filter_map(|(k, v)| Some((text(k)?, text(v)?))).collect(),
      _ => {
        let mut info = redis::cmd("INFO");
        info.arg("memory");
        match conn.run_on(&node, vec![info]).await.pop() {
          Some(Ok(v)) => text(v).map(|t| info_fields(&t)).unwrap_or_default(),
          _ => Vec::new(),
        }
      }
    };
    let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let maxmemory = get("maxmemory").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let policy = get("maxmemory-policy").or_else(|| get("maxmemory_policy"));
    if let Some(policy) = policy.filter(|p| maxmemory > 0 && evicts(p)) {
      found = Some(policy.to_string());
    }
  }
  found
}

/// Whether `policy` may evict keys with a ttl (every lock is one).
pub fn evicts(policy: &str) -> bool {
  policy.starts_with("allkeys-") || policy.starts_with("volatile-")
}

fn text(v: Value) -> Option<String> {
  match v {
    Value::BulkString(b) => String::from_utf8(b).ok(),
    Value::SimpleString(s) => Some(s),
    Value::VerbatimString { text, .. } => Some(text),
    _ => None,
  }
}

fn pairs(items: Vec<Value>) -> Vec<(String, String)> {
  let mut out = Vec::new();
  let mut items = items.into_iter();
  while let (Some(k), Some(v)) = (items.next(), items.next()) {
    if let (Some(k), Some(v)) = (text(k), text(v)) {
      out.push((k, v));
    }
  }
  out
}

fn info_fields(text: &str) -> Vec<(String, String)> {
  text.lines().filter_map(|line| line.trim_end().split_once(':')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn which_policies_evict_locks() {
    for p in ["allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"] {
      assert!(evicts(p), "{p}");
    }
    assert!(!evicts("noeviction"));
  }

  #[test]
  fn info_memory_fields() {
    let f = info_fields("# Memory\r\nmaxmemory:1048576\r\nmaxmemory_policy:allkeys-lru\r\n");
    assert_eq!(f, [("maxmemory".to_string(), "1048576".to_string()), ("maxmemory_policy".to_string(), "allkeys-lru".to_string())]);
  }
}
