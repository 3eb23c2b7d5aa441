//! The memory engine: the cache's operations run against an in-process
//! store (store.rs) instead of a server, with the answers the server's
//! commands give, so that everything above (ops.rs `Op::reply`, the JS face)
//! is the same for both. Instances in one process that name the same store
//! share it, as two clients share a server; it lives while any of them does.

mod getorset;
mod glob;
mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use redis::Value;

use crate::codec::{escape_glob, Codec};
use crate::connection::Outcome;
use crate::error::{CacheError, Result};
use crate::ops::Op;
pub use store::Bounds;
use store::Store;

/// `store: 'memory'` with `memory: { name, maxEntries, maxBytes }`, or
/// `url: 'memory://name'`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
  pub name: String,
  pub bounds: Bounds,
}

impl Config {
  pub fn url(&self) -> String {
    format!("memory://{}", self.name)
  }
}

/// The process's named stores, held weakly: by the instances using them.
static STORES: Mutex<Option<HashMap<String, Weak<Store>>>> = Mutex::new(None);

/// The store named in `config`, made if no instance holds it.
fn open_store(config: &Config) -> Result<Arc<Store>> {
  let mut stores = STORES.lock().unwrap_or_else(|e| e.into_inner());
  let stores = stores.get_or_insert_with(HashMap::new);
  stores.retain(|_, s| s.strong_count() > 0);
  if let Some(store) = stores.get(&config.name).and_then(Weak::upgrade) {
    if store.bounds != config.bounds {
      return Err(CacheError::range_error(format!(
        "memory store {:?} is open with other bounds (maxEntries {}, maxBytes {}): instances sharing a store give the same ones",
        config.name, store.bounds.max_entries, store.bounds.max_bytes
      )));
    }
    return Ok(store);
  }
  let store = Arc::new(Store::new(config.bounds));
  stores.insert(config.name.clone(), Arc::downgrade(&store));
  Ok(store)
}

/// An engine's side of the memory store: the store once initialize() took
/// it (kept across disconnect(), as a server keeps its data), and whether
/// the instance is connected.
pub struct Backend {
  config: Config,
  state: Mutex<(Option<Arc<Store>>, bool)>,
}

impl Backend {
  pub fn new(config: Config) -> Backend {
    Backend { config, state: Mutex::new((None, false)) }
  }

  pub fn url(&self) -> String {
    self.config.url()
  }

  pub fn connect(&self) -> Result<()> {
    let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
    if state.0.is_none() {
      state.0 = Some(open_store(&self.config)?);
    }
    state.1 = true;
    Ok(())
  }

  pub fn disconnect(&self) {
    self.state.lock().unwrap_or_else(|e| e.into_inner()).1 = false;
  }

  pub fn is_connected(&self) -> bool {
    self.state.lock().unwrap_or_else(|e| e.into_inner()).1
  }

  /// The store, while connected.
  pub fn store(&self) -> Result<Arc<Store>> {
    match &*self.state.lock().unwrap_or_else(|e| e.into_inner()) {
      (Some(store), true) => Ok(store.clone()),
      _ => Err(CacheError::not_connected()),
    }
  }

  /// getOrSet: whether `key` (stored name) was filled within `wait`.
  pub async fn await_fill(&self, key: Vec<u8>, wait: std::time::Duration) -> bool {
    match self.store() {
      Ok(store) => getorset::await_fill(&store, key, wait).await,
      Err(_) => false,
    }
  }

  /// Cancels the getOrSet leases under keyPrefix (after an invalidation).
  pub fn cancel_leases(&self, codec: &Codec) -> Result<()> {
    getorset::cancel_leases(&*self.store()?, codec);
    Ok(())
  }

  /// getStats figures: keys, bytes used, peak, evictions and expirations.
  pub fn stats(&self) -> Result<serde_json::Map<String, serde_json::Value>> {
    let store = self.store()?;
    let f = store.figures();
    let bounded = store.bounds.max_entries > 0 || store.bounds.max_bytes > 0;
    let serde_json::Value::Object(figures) = serde_json::json!({
      "connected": true,
      "keys": f.keys,
      "memory": {
        "used": f.bytes, "peak": f.peak, "rss": f.bytes,
        "maxEntries": store.bounds.max_entries, "maxBytes": store.bounds.max_bytes,
        "evictions": f.evictions, "expired": f.expired,
      },
      "server": {
        "version": env!("CARGO_PKG_VERSION"), "mode": "memory", "nodes": [self.url()],
        // Never a lock, a fencing counter or a tag index (store.rs).
        "evictionPolicy": if bounded { "allkeys-lru" } else { "noeviction" },
      },
    }) else {
      unreachable!("an object")
    };
    Ok(figures)
  }
}

/// What the server's commands for `op` (ops.rs `Op::commands`, standalone)
/// reply, answered by the store.
pub fn run(store: &Store, codec: &Codec, op: &Op) -> Vec<Outcome> {
  let int = |b: bool| Ok(Value::Int(b as i64));
  let out = match op {
    Op::Get(k) => vec![Ok(store.shard(k).get(k).map_or(Value::Nil, Value::BulkString))],
    Op::GetX(k) => vec![Ok(store.shard(k).get(k).map_or(Value::Nil, Value::BulkString)), Ok(Value::Int(store.shard(k).pttl(k)))],
    Op::MGetX(keys) => std::iter::once(Ok(Value::Array(keys.iter().map(|k| store.shard(k).get(k).map_or(Value::Nil, Value::BulkString)).collect())))
      .chain(keys.iter().map(|k| Ok(Value::Int(store.shard(k).pttl(k)))))
      .collect(),
    Op::Del(k) => {
      let (lease, record) = (codec.lease_key(k), codec.tag_record(k));
      vec![int(store.shard(k).del(k)), int(store.shard(&lease).del(&lease)), int(store.shard(&record).del(&record))]
    }
    Op::Ping => vec![Ok(Value::SimpleString("PONG".into()))],
    Op::Exists(k) => vec![int(store.shard(k).exists(k))],
    // TTL: whole seconds, rounded as the server rounds them.
    Op::Ttl(k) => vec![Ok(Value::Int(match store.shard(k).pttl(k) {
      ms if ms < 0 => ms,
      ms => (ms + 500) / 1000,
    }))],
    Op::Expire(k, ms) => expire(store, codec, k, *ms),
    Op::MGet(keys, _) => vec![Ok(Value::Array(keys.iter().map(|k| store.shard(k).get(k).map_or(Value::Nil, Value::BulkString)).collect()))],
    Op::Set { entries, ttl_ms, tags } => {
      let mut out = Vec::with_capacity(entries.len() + tags.len());
      // Text only: the JS face refuses binary serializers and compression
      // with the memory store.
      for (k, json) in entries {
        store.shard(k).set(k, &String::from_utf8_lossy(json), *ttl_ms);
        out.push(Ok(Value::Okay));
      }
      add_to_tags(store, codec, tags, entries.iter().map(|(k, _)| k.as_slice()), *ttl_ms);
      store.enforce_bounds();
      out
    }
    Op::Lock { key, token, ttl_ms } => {
      let lock = codec.lock_key(key);
      let fence = codec.fence_key(key);
      let taken = store.shard(&lock).set_nx(&lock, token, *ttl_ms);
      let n = if taken { store.shard(&fence).incr(&fence) } else { 0 };
      store.enforce_bounds();
      vec![Ok(Value::Int(n))]
    }
    Op::Unlock { key, token } => {
      let lock = codec.lock_key(key);
      vec![int(store.shard(&lock).del_if(&lock, token))]
    }
    Op::Extend { key, token, ttl_ms } => {
      let lock = codec.lock_key(key);
      vec![int(store.shard(&lock).pexpire_if(&lock, token, *ttl_ms))]
    }
    Op::Gos(gos) => getorset::run(store, codec, gos),
  };
  out
}

/// Records `keys`' tags beside each of them and adds them to the tags'
/// indexes (ops.rs `add_to_tags`).
pub(super) fn add_to_tags<'k>(store: &Store, codec: &Codec, tags: &[String], keys: impl Iterator<Item = &'k [u8]> + Clone, ttl_ms: u64) {
  if tags.is_empty() {
    return;
  }
  let record = serde_json::to_string(tags).expect("strings serialize");
  for k in keys.clone() {
    let key = codec.tag_record(k);
    store.shard(&key).set_reserved(&key, &record, ttl_ms);
  }
  for tag in tags {
    let index = codec.tag_index(tag);
    store.shard(&index).tag_add(&index, ttl_ms, false, keys.clone());
  }
}

/// expire(): the key's and its tag record's expiry, and the key rescored in
/// the indexes of its tags (expire.rs; one step here, two rounds there).
fn expire(store: &Store, codec: &Codec, k: &[u8], ms: u64) -> Vec<Outcome> {
  let record = codec.tag_record(k);
  let existed = {
    let mut shard = store.shard(k);
    let existed = shard.exists(k);
    shard.pexpire(k, ms);
    existed
  };
  let tags = {
    let mut shard = store.shard(&record);
    shard.pexpire(&record, ms);
    shard.text(&record)
  };
  if existed {
    for tag in tags.as_deref().and_then(|t| serde_json::from_str::<Vec<String>>(t).ok()).unwrap_or_default() {
      let index = codec.tag_index(&tag);
      store.shard(&index).tag_add(&index, ms, true, std::iter::once(k));
    }
  }
  vec![Ok(Value::Int(existed as i64))]
}

/// Removes every cache key under keyPrefix whose unprefixed name matches
/// `glob` (Redis glob rules), one shard at a time: the JS thread waits for
/// at most one shard, never for the whole walk.
pub async fn pattern(store: Arc<Store>, codec: &Codec, glob: &str) -> Result<u64> {
  let pattern = codec.scan_pattern(glob);
  let mut removed = 0;
  for i in 0..store::SHARDS {
    removed += store.lock_shard(i).remove_where(|k| codec.user_key(k).is_some() && glob::matches(&pattern, k));
    tokio::task::yield_now().await;
  }
  Ok(removed)
}

/// `key` and every key under `key:`.
pub async fn cascade(store: Arc<Store>, codec: &Codec, key: &str) -> Result<u64> {
  let stored = codec.key(key)?;
  let own = store.shard(&stored).del(&stored) as u64;
  Ok(own + pattern(store, codec, &format!("{}:*", escape_glob(key))).await?)
}

/// Every key set with `tag`, then the tag's index.
pub async fn tag(store: Arc<Store>, codec: &Codec, tag: &str) -> Result<u64> {
  let index = codec.tag_index(tag);
  let members = store.shard(&index).members(&index);
  let mut removed = 0;
  for (i, k) in members.iter().enumerate() {
    if codec.user_key(k).is_some() {
      removed += store.shard(k).del(k) as u64;
      let record = codec.tag_record(k);
      store.shard(&record).del(&record);
    }
    if i % 1000 == 999 {
      tokio::task::yield_now().await;
    }
  }
  store.shard(&index).del(&index);
  Ok(removed)
}
