//! The in-process keyspace: the few Redis commands the engine's operations
//! become, with Redis's answers, on keys spread over shards so that a long
//! walk (pattern invalidation) holds one small shard at a time.
//!
//! Expiry needs no timer: an expired key is dropped when it is next touched,
//! and every write also samples a few keys of its shard and drops those past
//! their time (as Redis's active expiry does). Bounds (`maxEntries`,
//! `maxBytes`) are kept by evicting, after a write, the least recently used
//! of a few sampled cache values (approximated LRU, as Redis's): locks,
//! fencing counters and tag indexes are never evicted.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use indexmap::IndexMap;

pub const SHARDS: usize = 64;
/// Keys a write samples for expiry, and values an eviction compares.
const SAMPLES: usize = 5;
/// What an entry costs beyond its key and value bytes (map slot, header,
/// allocation rounding), so that `maxBytes` bounds the real footprint.
const OVERHEAD: u64 = 80;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Bounds {
  /// 0: unbounded.
  pub max_entries: u64,
  pub max_bytes: u64,
}

enum Data {
  /// A cache value (JSON text) or a lock's token.
  Text(Box<str>),
  /// A fencing counter.
  Int(i64),
  /// A tag index: member key -> its expiry (0: none), like the sorted set.
  Members(HashMap<Box<[u8]>, u64>),
}

struct Entry {
  data: Data,
  /// Ms since the store was made; 0: never.
  expires_at: u64,
  /// When it was last read or written, for eviction.
  used: u64,
  /// Cache values only.
  evictable: bool,
}

impl Entry {
  fn size(&self, key: &[u8]) -> u64 {
    let data = match &self.data {
      Data::Text(s) => s.len() as u64,
      Data::Int(_) => 8,
      Data::Members(m) => m.keys().map(|k| k.len() as u64 + 48).sum(),
    };
    key.len() as u64 + data + OVERHEAD
  }

  fn live(&self, now: u64) -> bool {
    self.expires_at == 0 || self.expires_at > now
  }
}

#[derive(Default)]
struct Shard {
  map: IndexMap<Box<[u8]>, Entry>,
  rng: u64,
}

pub struct Store {
  shards: Box<[Mutex<Shard>]>,
  hasher: RandomState,
  pub bounds: Bounds,
  born: Instant,
  entries: AtomicU64,
  bytes: AtomicU64,
  peak: AtomicU64,
  evictions: AtomicU64,
  expired: AtomicU64,
  /// The next shard an eviction starts in.
  evict_at: AtomicUsize,
  /// getOrSet waiters by stored key: the in-process PUBLISH (getorset.rs).
  pub fills: Mutex<HashMap<Vec<u8>, Vec<tokio::sync::oneshot::Sender<()>>>>,
}

/// What getStats reports of the store.
pub struct Figures {
  pub keys: u64,
  pub bytes: u64,
  pub peak: u64,
  pub evictions: u64,
  pub expired: u64,
}

/// One shard, locked, with the store's accounting.
pub struct Locked<'a> {
  store: &'a Store,
  shard: MutexGuard<'a, Shard>,
  now: u64,
}

impl Store {
  pub fn new(bounds: Bounds) -> Store {
    Store {
      shards: (0..SHARDS).map(|i| Mutex::new(Shard { map: IndexMap::new(), rng: 0x9E37_79B9_7F4A_7C15 ^ i as u64 })).collect(),
      hasher: RandomState::new(),
      bounds,
      born: Instant::now(),
      entries: AtomicU64::new(0),
      bytes: AtomicU64::new(0),
      peak: AtomicU64::new(0),
      evictions: AtomicU64::new(0),
      expired: AtomicU64::new(0),
      evict_at: AtomicUsize::new(0),
      fills: Mutex::new(HashMap::new()),
    }
  }

  fn now(&self) -> u64 {
    // Never 0, which means "no expiry".
    self.born.elapsed().as_millis() as u64 + 1
  }

  pub fn lock_shard(&self, i: usize) -> Locked<'_> {
    // A panic cannot leave a shard half-changed in a way later calls trip on.
    let shard = self.shards[i].lock().unwrap_or_else(|e| e.into_inner());
    Locked { store: self, shard, now: self.now() }
  }

  /// The shard that holds `key`, locked.
  pub fn shard(&self, key: &[u8]) -> Locked<'_> {
    self.lock_shard(self.hasher.hash_one(key) as usize % SHARDS)
  }

  pub fn figures(&self) -> Figures {
    Figures {
      keys: self.entries.load(Relaxed),
      bytes: self.bytes.load(Relaxed),
      peak: self.peak.load(Relaxed),
      evictions: self.evictions.load(Relaxed),
      expired: self.expired.load(Relaxed),
    }
  }

  fn over(&self) -> bool {
    let b = self.bounds;
    (b.max_entries > 0 && self.entries.load(Relaxed) > b.max_entries) || (b.max_bytes > 0 && self.bytes.load(Relaxed) > b.max_bytes)
  }

  /// Evicts until the store is within its bounds (or nothing is left to
  /// evict). Call with no shard locked.
  pub fn enforce_bounds(&self) {
    let mut empty_in_a_row = 0;
    while self.over() && empty_in_a_row < SHARDS {
      let i = self.evict_at.fetch_add(1, Relaxed) % SHARDS;
      if self.lock_shard(i).evict_one() {
        empty_in_a_row = 0;
      } else {
        empty_in_a_row += 1;
      }
    }
  }
}

impl Locked<'_> {
  fn rand(&mut self) -> u64 {
    // xorshift64: sampling needs spread, not quality.
    let mut x = self.shard.rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    self.shard.rng = x;
    x
  }

  /// The live entry at `key`; an expired one is dropped on the way.
  fn live(&mut self, key: &[u8]) -> Option<&mut Entry> {
    let now = self.now;
    let (i, _, entry) = self.shard.map.get_full_mut(key)?;
    if entry.live(now) {
      let entry = &mut self.shard.map[i];
      entry.used = now;
      return Some(entry);
    }
    self.remove_at(i);
    self.store.expired.fetch_add(1, Relaxed);
    None
  }

  fn remove_at(&mut self, i: usize) -> Option<Entry> {
    let (key, entry) = self.shard.map.swap_remove_index(i)?;
    self.store.entries.fetch_sub(1, Relaxed);
    self.store.bytes.fetch_sub(entry.size(&key), Relaxed);
    Some(entry)
  }

  fn remove(&mut self, key: &[u8]) -> Option<Entry> {
    let i = self.shard.map.get_index_of(key)?;
    self.remove_at(i)
  }

  fn insert(&mut self, key: &[u8], data: Data, expires_at: u64, evictable: bool) {
    let entry = Entry { data, expires_at, used: self.now, evictable };
    let size = entry.size(key);
    match self.shard.map.get_mut(key) {
      Some(old) => {
        self.store.bytes.fetch_sub(old.size(key), Relaxed);
        *old = entry;
      }
      None => {
        self.shard.map.insert(key.into(), entry);
        self.store.entries.fetch_add(1, Relaxed);
      }
    }
    let bytes = self.store.bytes.fetch_add(size, Relaxed) + size;
    self.store.peak.fetch_max(bytes, Relaxed);
    self.sweep();
  }

  /// Drops the expired among a few sampled keys of this shard.
  fn sweep(&mut self) {
    for _ in 0..SAMPLES {
      let len = self.shard.map.len();
      if len == 0 {
        return;
      }
      let i = (self.rand() % len as u64) as usize;
      if !self.shard.map[i].live(self.now) {
        self.remove_at(i);
        self.store.expired.fetch_add(1, Relaxed);
      }
    }
  }

  /// Removes an expired key or the least recently used of a few sampled
  /// cache values; false when this shard has none.
  fn evict_one(&mut self) -> bool {
    let len = self.shard.map.len();
    let mut oldest: Option<(u64, usize)> = None;
    for _ in 0..SAMPLES.min(len) * 2 {
      let i = (self.rand() % len as u64) as usize;
      let e = &self.shard.map[i];
      if !e.live(self.now) {
        self.remove_at(i);
        self.store.expired.fetch_add(1, Relaxed);
        return true;
      }
      if e.evictable && oldest.is_none_or(|(used, _)| e.used < used) {
        oldest = Some((e.used, i));
      }
    }
    // The samples can all miss in a shard of mostly locks and indexes.
    let oldest = oldest.or_else(|| self.shard.map.values().position(|e| e.evictable).map(|i| (0, i)));
    match oldest {
      Some((_, i)) => {
        self.remove_at(i);
        self.store.evictions.fetch_add(1, Relaxed);
        true
      }
      None => false,
    }
  }

  fn expiry(&self, ttl_ms: u64) -> u64 {
    if ttl_ms == 0 {
      0
    } else {
      self.now.saturating_add(ttl_ms)
    }
  }

  // ---- the commands ------------------------------------------------------

  /// GET: the text (a counter as its digits), or None.
  pub fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
    match &self.live(key)?.data {
      Data::Text(s) => Some(s.as_bytes().to_vec()),
      Data::Int(n) => Some(n.to_string().into_bytes()),
      Data::Members(_) => None,
    }
  }

  /// SET [PX ttl] (0: none).
  pub fn set(&mut self, key: &[u8], text: &str, ttl_ms: u64) {
    let expires_at = self.expiry(ttl_ms);
    self.insert(key, Data::Text(text.into()), expires_at, true);
  }

  /// SET [PX ttl] of a name the module keeps for itself: never evicted.
  pub fn set_reserved(&mut self, key: &[u8], text: &str, ttl_ms: u64) {
    let expires_at = self.expiry(ttl_ms);
    self.insert(key, Data::Text(text.into()), expires_at, false);
  }

  /// SET NX PX, for a lock: whether it was set.
  pub fn set_nx(&mut self, key: &[u8], text: &str, ttl_ms: u64) -> bool {
    if self.live(key).is_some() {
      return false;
    }
    let expires_at = self.expiry(ttl_ms);
    self.insert(key, Data::Text(text.into()), expires_at, false);
    true
  }

  /// INCR of a counter that never expires.
  pub fn incr(&mut self, key: &[u8]) -> i64 {
    let n = match self.live(key).map(|e| &e.data) {
      Some(Data::Int(n)) => n + 1,
      _ => 1,
    };
    self.insert(key, Data::Int(n), 0, false);
    n
  }

  /// DEL: whether the key was there.
  pub fn del(&mut self, key: &[u8]) -> bool {
    self.live(key).is_some() && self.remove(key).is_some()
  }

  /// DEL if the key holds `text` (a lock's compare-and-delete).
  pub fn del_if(&mut self, key: &[u8], text: &str) -> bool {
    matches!(self.live(key), Some(Entry { data: Data::Text(t), .. }) if &**t == text) && self.remove(key).is_some()
  }

  pub fn exists(&mut self, key: &[u8]) -> bool {
    self.live(key).is_some()
  }

  /// PTTL: ms left, -1 without expiry, -2 when missing.
  pub fn pttl(&mut self, key: &[u8]) -> i64 {
    let now = self.now;
    match self.live(key) {
      None => -2,
      Some(e) if e.expires_at == 0 => -1,
      Some(e) => (e.expires_at - now) as i64,
    }
  }

  /// PEXPIRE (0: PERSIST): whether the key was there.
  pub fn pexpire(&mut self, key: &[u8], ttl_ms: u64) -> bool {
    let expires_at = self.expiry(ttl_ms);
    match self.live(key) {
      Some(e) => {
        e.expires_at = expires_at;
        true
      }
      None => false,
    }
  }

  /// PEXPIRE if the key holds `text` (a lock's compare-and-expire).
  pub fn pexpire_if(&mut self, key: &[u8], text: &str, ttl_ms: u64) -> bool {
    matches!(self.live(key), Some(Entry { data: Data::Text(t), .. }) if &**t == text) && self.pexpire(key, ttl_ms)
  }

  /// Adds `members` to tag index `key` (each expiring in `ttl_ms`, 0: never)
  /// and drops those past their time; the index expires with its last
  /// member (ops.rs TAG_ADD, the same on a server).
  /// With `members_only`, only members already there move (ZADD XX).
  pub fn tag_add<'k>(&mut self, key: &[u8], ttl_ms: u64, members_only: bool, members: impl Iterator<Item = &'k [u8]>) {
    let now = self.now;
    let score = self.expiry(ttl_ms);
    let mut set = match self.remove(key) {
      Some(Entry { data: Data::Members(set), expires_at, .. }) if expires_at == 0 || expires_at > now => set,
      _ => HashMap::new(),
    };
    for m in members {
      match set.get_mut(m) {
        Some(at) => *at = score,
        None if !members_only => drop(set.insert(m.into(), score)),
        None => {}
      }
    }
    set.retain(|_, at| *at == 0 || *at >= now);
    let last = if set.values().any(|at| *at == 0) { 0 } else { set.values().copied().max().unwrap_or(now) };
    if !set.is_empty() {
      self.insert(key, Data::Members(set), last, false);
    }
  }

  /// The members of tag index `key`.
  pub fn members(&mut self, key: &[u8]) -> Vec<Box<[u8]>> {
    match self.live(key).map(|e| &e.data) {
      Some(Data::Members(set)) => set.keys().cloned().collect(),
      _ => Vec::new(),
    }
  }

  /// getOrSet's record of a value: "" for none, else " <hash> <absolute
  /// expiry ms or -1>" (a lease remembers it; see getorset.rs).
  pub fn state(&mut self, key: &[u8]) -> String {
    let hasher = &self.store.hasher;
    match self.live(key) {
      Some(Entry { data: Data::Text(t), expires_at, .. }) => {
        let at = if *expires_at == 0 { -1 } else { *expires_at as i64 };
        format!(" {:x} {at}", hasher.hash_one(&**t))
      }
      _ => String::new(),
    }
  }

  /// Whether `key` is as `state` recorded; a value that merely expired
  /// since counts as unchanged.
  pub fn unchanged(&mut self, key: &[u8], was: &str) -> bool {
    let now = self.now as i64;
    let now_state = self.state(key);
    if now_state == was {
      return true;
    }
    now_state.is_empty() && was.rsplit(' ').next().and_then(|at| at.parse::<i64>().ok()).is_some_and(|at| at >= 0 && at <= now)
  }

  /// The text at `key`, if it is one.
  pub fn text(&mut self, key: &[u8]) -> Option<String> {
    match &self.live(key)?.data {
      Data::Text(t) => Some(t.to_string()),
      _ => None,
    }
  }

  /// ZREM of one member.
  pub fn member_remove(&mut self, key: &[u8], member: &[u8]) -> bool {
    match self.live(key).map(|e| &mut e.data) {
      Some(Data::Members(set)) => set.remove(member).is_some(),
      _ => false,
    }
  }

  /// Removes the live keys for which `remove` holds (expired ones go too,
  /// uncounted); returns how many live ones went.
  pub fn remove_where(&mut self, mut remove: impl FnMut(&[u8]) -> bool) -> u64 {
    let now = self.now;
    let mut removed = 0;
    let mut i = 0;
    while i < self.shard.map.len() {
      let (key, entry) = self.shard.map.get_index(i).expect("in range");
      let live = entry.live(now);
      if !live || remove(key) {
        self.remove_at(i);
        if live {
          removed += 1;
        } else {
          self.store.expired.fetch_add(1, Relaxed);
        }
      } else {
        i += 1;
      }
    }
    removed
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  const FREE: Bounds = Bounds { max_entries: 0, max_bytes: 0 };

  #[test]
  fn commands_answer_as_redis() {
    let s = Store::new(FREE);
    let mut sh = s.shard(b"k");
    assert_eq!(sh.pttl(b"k"), -2);
    sh.set(b"k", "1", 0);
    assert_eq!(sh.pttl(b"k"), -1);
    assert!(sh.pexpire(b"k", 5000));
    assert!((4000..=5000).contains(&sh.pttl(b"k")));
    assert!(sh.pexpire(b"k", 0));
    assert_eq!(sh.pttl(b"k"), -1);
    assert_eq!(sh.get(b"k").as_deref(), Some(&b"1"[..]));
    assert!(!sh.set_nx(b"k", "t", 100));
    assert!(sh.del(b"k"));
    assert!(!sh.del(b"k"));
    assert!(sh.set_nx(b"k", "t", 100));
    assert!(!sh.del_if(b"k", "u"));
    assert!(sh.pexpire_if(b"k", "t", 1000));
    assert!(sh.del_if(b"k", "t"));
    assert_eq!((sh.incr(b"f"), sh.incr(b"f")), (1, 2));
    drop(sh);
    assert_eq!(s.figures().keys, 1);
  }

  #[test]
  fn expired_keys_are_gone_without_a_timer() {
    let s = Store::new(FREE);
    let mut sh = s.shard(b"k");
    sh.set(b"k", "1", 1);
    sh.now += 2;
    assert_eq!(sh.get(b"k"), None);
    assert_eq!(sh.pttl(b"k"), -2);
    drop(sh);
    assert_eq!(s.figures().keys, 0);
    // A write's sweep finds expired keys nobody asks for.
    for i in 0..200 {
      s.shard(format!("x{i}").as_bytes()).set(format!("x{i}").as_bytes(), "v", 1);
    }
    std::thread::sleep(std::time::Duration::from_millis(5));
    for i in 0..2000 {
      s.shard(format!("y{i}").as_bytes()).set(format!("y{i}").as_bytes(), "v", 0);
    }
    assert!(s.figures().expired > 100, "{}", s.figures().expired);
  }

  #[test]
  fn bounds_evict_cache_values_only() {
    let s = Store::new(Bounds { max_entries: 10, max_bytes: 0 });
    s.shard(b"lock").set_nx(b"lock", "t", 60_000);
    for i in 0..100 {
      let k = format!("k{i}");
      s.shard(k.as_bytes()).set(k.as_bytes(), "v", 0);
      s.enforce_bounds();
    }
    let f = s.figures();
    assert_eq!((f.keys, f.evictions), (10, 91));
    assert!(s.shard(b"lock").exists(b"lock"));
    let s = Store::new(Bounds { max_entries: 0, max_bytes: 10 * (OVERHEAD + 3) });
    for i in 0..100 {
      let k = format!("k{i:02}");
      s.shard(k.as_bytes()).set(k.as_bytes(), "", 0);
      s.enforce_bounds();
    }
    assert_eq!(s.figures().keys, 10);
  }

  #[test]
  fn tag_index_expires_with_its_last_member() {
    let s = Store::new(FREE);
    let mut sh = s.shard(b"t");
    sh.tag_add(b"t", 1000, false, [&b"a"[..], b"b"].into_iter());
    assert!((900..=1000).contains(&sh.pttl(b"t")));
    sh.tag_add(b"t", 0, false, [&b"c"[..]].into_iter());
    sh.tag_add(b"t", 0, true, [&b"d"[..]].into_iter());
    assert_eq!(sh.pttl(b"t"), -1);
    let mut m = sh.members(b"t");
    m.sort();
    assert_eq!(m, vec![b"a".to_vec().into(), b"b".to_vec().into(), b"c".to_vec().into()]);
  }
}
