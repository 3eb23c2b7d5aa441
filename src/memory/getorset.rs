//! getOrSet's lease steps on the memory store: what the scripts of
//! src/getorset.rs do on a server, with the same replies. A lease holds its
//! token followed by the value's state when it was taken (store.rs
//! `state`); storing and releasing wake this process's waiters directly, in
//! place of the server's PUBLISH.

use std::time::Duration;

use redis::Value;

use super::store::Store;
use crate::codec::Codec;
use crate::connection::Outcome;
use crate::getorset::Gos;

pub fn run(store: &Store, codec: &Codec, gos: &Gos) -> Vec<Outcome> {
  let int = |n: i64| Ok(Value::Int(n));
  let bulk = |v: Option<String>| v.map_or(Value::Nil, |v| Value::BulkString(v.into_bytes()));
  match gos {
    Gos::Read(k) => {
      let mut shard = store.shard(k);
      let v = shard.text(k);
      vec![Ok(bulk(v)), int(shard.pttl(k))]
    }
    Gos::Lease { key, token, lease_ms, min_pttl, force } => {
      let lease = codec.lease_key(key);
      let (v, ttl, state) = {
        let mut shard = store.shard(key);
        (shard.text(key), shard.pttl(key), shard.state(key))
      };
      let word = |w: &str| Value::BulkString(w.as_bytes().to_vec());
      let reply = if v.is_some() && !*force && (ttl == -1 || ttl >= *min_pttl as i64) {
        vec![word("hit"), bulk(v), Value::Int(ttl)]
      } else if store.shard(&lease).set_nx(&lease, &format!("{token}{state}"), *lease_ms) {
        vec![word("won"), bulk(v), Value::Int(ttl), Value::Int(0)]
      } else {
        vec![word("busy"), bulk(v), Value::Int(ttl), Value::Int(store.shard(&lease).pttl(&lease))]
      };
      let index = codec.lease_index();
      store.shard(&index).tag_add(&index, *lease_ms, false, std::iter::once(lease.as_slice()));
      vec![Ok(Value::Array(reply)), int(1)]
    }
    Gos::Store { key, token, value, px_ms, tags } => {
      let lease = codec.lease_key(key);
      let stored = match take_lease(store, &lease, token) {
        None => false,
        Some(was) => {
          let stored = store.shard(key).unchanged(key, &was) && {
            store.shard(key).set(key, &String::from_utf8_lossy(value), *px_ms);
            true
          };
          publish(store, key);
          stored
        }
      };
      let index = codec.lease_index();
      let removed = store.shard(&index).member_remove(&index, &lease);
      super::add_to_tags(store, codec, tags, std::iter::once(key.as_slice()), *px_ms);
      store.enforce_bounds();
      vec![int(stored as i64), int(removed as i64)]
    }
    Gos::Release { key, token, extend_ms } => {
      let lease = codec.lease_key(key);
      let released = match take_lease(store, &lease, token) {
        None => false,
        Some(was) => {
          let mut shard = store.shard(key);
          // Fail-safe: the stale value lives on, never shortened.
          let pttl = shard.pttl(key);
          if pttl >= 0 && pttl < *extend_ms as i64 && shard.unchanged(key, &was) {
            shard.pexpire(key, *extend_ms);
          }
          drop(shard);
          publish(store, key);
          true
        }
      };
      let index = codec.lease_index();
      let removed = store.shard(&index).member_remove(&index, &lease);
      vec![int(released as i64), int(removed as i64)]
    }
    Gos::Extend { key, token, lease_ms } => {
      let lease = codec.lease_key(key);
      let mut shard = store.shard(&lease);
      let held = shard.text(&lease).is_some_and(|l| l.starts_with(token.as_str())) && shard.pexpire(&lease, *lease_ms);
      drop(shard);
      let index = codec.lease_index();
      store.shard(&index).tag_add(&index, *lease_ms, false, std::iter::once(lease.as_slice()));
      vec![int(held as i64), int(1)]
    }
  }
}

/// Deletes the lease if `token` holds it; returns the state it recorded.
fn take_lease(store: &Store, lease: &[u8], token: &str) -> Option<String> {
  let mut shard = store.shard(lease);
  let held = shard.text(lease).filter(|l| l.starts_with(token))?;
  shard.del(lease);
  Some(held[token.len()..].to_string())
}

/// Wakes this process's waiters on `key`.
fn publish(store: &Store, key: &[u8]) {
  let waiters = store.fills.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
  for tx in waiters.into_iter().flatten() {
    let _ = tx.send(());
  }
}

/// Resolves true when `key` was stored (or its lease given up) within `wait`.
pub async fn await_fill(store: &Store, key: Vec<u8>, wait: Duration) -> bool {
  let (tx, rx) = tokio::sync::oneshot::channel();
  store.fills.lock().unwrap_or_else(|e| e.into_inner()).entry(key.clone()).or_default().push(tx);
  let woken = matches!(tokio::time::timeout(wait, rx).await, Ok(Ok(())));
  if !woken {
    // Waits that ran out leave nothing behind.
    let mut fills = store.fills.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(waiters) = fills.get_mut(&key) {
      waiters.retain(|tx| !tx.is_closed());
      if waiters.is_empty() {
        fills.remove(&key);
      }
    }
  }
  woken
}

/// Cancels every lease handed out under the prefix (invalidate()).
pub fn cancel_leases(store: &Store, codec: &Codec) {
  let index = codec.lease_index();
  for lease in store.shard(&index).members(&index) {
    store.shard(&lease).del(&lease);
  }
  store.shard(&index).del(&index);
}
