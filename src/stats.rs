//! This instance's counters and a latency histogram (no sample arrays).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Sub-buckets per power of two: a bucket's width is at most 1/16 of its value.
const SUB: usize = 16;
const BUCKETS: usize = 64 * SUB;

pub struct Stats {
  pub hits: AtomicU64,
  pub misses: AtomicU64,
  pub sets: AtomicU64,
  pub deletes: AtomicU64,
  pub errors: AtomicU64,
  pub operations: AtomicU64,
  latency_us: Box<[AtomicU64]>,
}

impl Default for Stats {
  fn default() -> Self {
    Stats {
      hits: AtomicU64::new(0),
      misses: AtomicU64::new(0),
      sets: AtomicU64::new(0),
      deletes: AtomicU64::new(0),
      errors: AtomicU64::new(0),
      operations: AtomicU64::new(0),
      latency_us: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
    }
  }
}

pub fn add(counter: &AtomicU64, n: u64) {
  counter.fetch_add(n, Relaxed);
}

impl Stats {
  /// Records `count` commands that each took `elapsed`.
  pub fn record_latency(&self, elapsed: Duration, count: u64) {
    let us = elapsed.as_micros().min(u128::from(u64::MAX)) as u64;
    self.latency_us[bucket_of(us)].fetch_add(count, Relaxed);
  }

  /// The latency at quantile `q` (0..=1) in milliseconds; 0 before any command.
  pub fn latency_ms(&self, q: f64) -> f64 {
    let counts: Vec<u64> = self.latency_us.iter().map(|c| c.load(Relaxed)).collect();
    let total: u64 = counts.iter().sum();
    if total == 0 {
      return 0.0;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (i, c) in counts.iter().enumerate() {
      seen += c;
      if seen >= rank {
        return upper_bound_of(i) as f64 / 1000.0;
      }
    }
    unreachable!("rank is at most the total")
  }

  pub fn hit_rate(&self) -> f64 {
    let hits = self.hits.load(Relaxed) as f64;
    let looked = hits + self.misses.load(Relaxed) as f64;
    if looked == 0.0 {
      0.0
    } else {
      hits / looked
    }
  }
}

fn bucket_of(v: u64) -> usize {
  if v < SUB as u64 {
    return v as usize;
  }
  let power = 63 - v.leading_zeros() as usize; // v >= 2^power
  let shift = power - 4; // keep the 4 bits after the leading one
  let sub = ((v >> shift) as usize) & (SUB - 1);
  (power - 3) * SUB + sub
}

/// The largest value that falls into bucket `i`.
fn upper_bound_of(i: usize) -> u64 {
  if i < SUB {
    return i as u64;
  }
  let power = i / SUB + 3;
  let sub = (i % SUB) as u64;
  let shift = power - 4;
  ((SUB as u64 + sub + 1) << shift) - 1
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn buckets_bound_their_values() {
    for v in [0u64, 1, 15, 16, 17, 31, 32, 100, 1000, 12345, 1 << 40] {
      let b = bucket_of(v);
      assert!(upper_bound_of(b) >= v, "{v}");
      assert!(upper_bound_of(b) as f64 <= v as f64 * 1.07 + 1.0, "{v}");
      if b > 0 {
        assert!(upper_bound_of(b - 1) < v, "{v}");
      }
    }
  }

  #[test]
  fn server_info_sums() {
    let mut info = ServerInfo::default();
    info.add("# Server\r\nredis_version:7.0.15\r\n# Memory\r\nused_memory:100\r\nused_memory_peak:150\r\nused_memory_rss:400\r\n", 3);
    info.add("redis_version:7.0.15\r\nused_memory:10\r\nused_memory_peak:15\r\nused_memory_rss:40\r\n", 2);
    assert_eq!((info.version.as_str(), info.used, info.peak, info.rss, info.keys), ("7.0.15", 110, 165, 440, 5));
  }

  #[test]
  fn quantiles() {
    let s = Stats::default();
    assert_eq!(s.latency_ms(0.5), 0.0);
    s.record_latency(Duration::from_micros(100), 98);
    s.record_latency(Duration::from_millis(50), 2);
    assert!((s.latency_ms(0.5) - 0.1).abs() < 0.01);
    assert!((s.latency_ms(0.99) - 50.0).abs() < 3.5);
    assert_eq!(s.hit_rate(), 0.0);
    add(&s.hits, 3);
    add(&s.misses, 1);
    assert_eq!(s.hit_rate(), 0.75);
  }
}

/// What the server says about itself, summed over masters in a cluster.
#[derive(Default)]
pub struct ServerInfo {
  pub version: String,
  /// `maxmemory-policy` (of the first master that says).
  pub eviction_policy: String,
  pub used: u64,
  pub peak: u64,
  pub rss: u64,
  pub keys: u64,
}

impl ServerInfo {
  /// Adds one server's `INFO` text and `DBSIZE`.
  pub fn add(&mut self, info: &str, keys: u64) {
    for line in info.lines() {
      let Some((name, value)) = line.trim_end().split_once(':') else { continue };
      let n = || value.parse::<u64>().unwrap_or(0);
      match name {
        "redis_version" if self.version.is_empty() => self.version = value.to_string(),
        "maxmemory_policy" if self.eviction_policy.is_empty() => self.eviction_policy = value.to_string(),
        "used_memory" => self.used += n(),
        "used_memory_peak" => self.peak += n(),
        "used_memory_rss" => self.rss += n(),
        _ => {}
      }
    }
    self.keys += keys;
  }
}
