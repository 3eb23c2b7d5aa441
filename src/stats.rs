//! This instance's counters and latency histograms (no sample arrays): the
//! figures of `getStats()` and `metrics()`.
//!
//! The counters only grow, as Prometheus counters must (`metrics()` reads
//! them as they are). `getStats()` reports a window: the counters minus
//! what they were when `getStats({ reset: true })` last started one.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::ops::Kind;

/// Sub-buckets per power of two: a bucket's width is at most 1/16 of its value.
const SUB: usize = 16;
const BUCKETS: usize = 64 * SUB;

/// The upper bounds (µs) of `metrics()`'s histogram buckets, counted exactly
/// beside the log buckets (whose bounds are not round numbers).
pub const LE_US: [u64; 16] =
  [100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000];

pub struct Stats {
  pub hits: AtomicU64,
  pub misses: AtomicU64,
  pub sets: AtomicU64,
  pub deletes: AtomicU64,
  pub errors: AtomicU64,
  pub operations: AtomicU64,
  /// Per command: every batch's round trip, once for each of its commands.
  latency: Histogram,
  /// Per hot-path operation kind (`Kind as usize`).
  ops: [OpStats; Kind::COUNT],
  /// The counts when the current `getStats()` window started.
  window: Mutex<Counts>,
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
      latency: Histogram::default(),
      ops: std::array::from_fn(|_| OpStats::default()),
      window: Mutex::new(Counts::default()),
    }
  }
}

/// One operation kind: how many ran, how many failed, and their latency
/// (allocated on first use: an instance uses a few kinds).
#[derive(Default)]
struct OpStats {
  count: AtomicU64,
  errors: AtomicU64,
  latency: OnceLock<Histogram>,
  /// The slowest in the current window (reset with it).
  max_us: AtomicU64,
}

/// A histogram of microseconds: log buckets for quantiles, and the
/// `LE_US` buckets (the last one past them) for `metrics()`.
struct Histogram {
  buckets: Box<[AtomicU64]>,
  le: [AtomicU64; LE_US.len() + 1],
  sum_us: AtomicU64,
}

impl Default for Histogram {
  fn default() -> Self {
    Histogram { buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(), le: Default::default(), sum_us: AtomicU64::new(0) }
  }
}

impl Histogram {
  fn record(&self, us: u64, count: u64) {
    self.buckets[bucket_of(us)].fetch_add(count, Relaxed);
    self.le[LE_US.partition_point(|&bound| bound < us)].fetch_add(count, Relaxed);
    self.sum_us.fetch_add(us.saturating_mul(count), Relaxed);
  }

  fn read(&self) -> Hist {
    Hist {
      buckets: self.buckets.iter().map(|c| c.load(Relaxed)).collect(),
      le: self.le.iter().map(|c| c.load(Relaxed)).collect(),
      sum_us: self.sum_us.load(Relaxed),
    }
  }
}

/// A histogram's counts at one moment (empty: none yet).
#[derive(Clone, Default)]
pub struct Hist {
  pub buckets: Vec<u64>,
  /// Per `LE_US` bound, the count of values over the previous bound and at
  /// most this one; the last: over every bound.
  pub le: Vec<u64>,
  pub sum_us: u64,
}

impl Hist {
  pub fn total(&self) -> u64 {
    self.buckets.iter().sum()
  }

  /// The latency at quantile `q` (0..=1) in milliseconds; 0 when empty.
  pub fn quantile_ms(&self, q: f64) -> f64 {
    let total = self.total();
    if total == 0 {
      return 0.0;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (i, c) in self.buckets.iter().enumerate() {
      seen += c;
      if seen >= rank {
        return upper_bound_of(i) as f64 / 1000.0;
      }
    }
    unreachable!("rank is at most the total")
  }

  fn minus(&self, base: &Hist) -> Hist {
    if base.buckets.is_empty() {
      return self.clone();
    }
    let diff = |now: &[u64], then: &[u64]| now.iter().zip(then).map(|(a, b)| a.saturating_sub(*b)).collect();
    Hist { buckets: diff(&self.buckets, &base.buckets), le: diff(&self.le, &base.le), sum_us: self.sum_us.saturating_sub(base.sum_us) }
  }
}

/// Every counter and histogram at one moment.
#[derive(Clone, Default)]
pub struct Counts {
  pub hits: u64,
  pub misses: u64,
  pub sets: u64,
  pub deletes: u64,
  pub errors: u64,
  pub operations: u64,
  pub latency: Hist,
  /// Per `Kind`, in `Kind::ALL` order.
  pub ops: Vec<OpCounts>,
}

#[derive(Clone, Default)]
pub struct OpCounts {
  pub count: u64,
  pub errors: u64,
  pub latency: Hist,
  pub max_us: u64,
}

impl Counts {
  pub fn hit_rate(&self) -> f64 {
    let looked = self.hits + self.misses;
    if looked == 0 {
      0.0
    } else {
      self.hits as f64 / looked as f64
    }
  }

  fn minus(&self, base: &Counts) -> Counts {
    let op = |i: usize, now: &OpCounts| match base.ops.get(i) {
      None => now.clone(),
      Some(b) => OpCounts { count: now.count - b.count, errors: now.errors - b.errors, latency: now.latency.minus(&b.latency), max_us: now.max_us },
    };
    Counts {
      hits: self.hits - base.hits,
      misses: self.misses - base.misses,
      sets: self.sets - base.sets,
      deletes: self.deletes - base.deletes,
      errors: self.errors - base.errors,
      operations: self.operations - base.operations,
      latency: self.latency.minus(&base.latency),
      ops: self.ops.iter().enumerate().map(|(i, o)| op(i, o)).collect(),
    }
  }
}

pub fn add(counter: &AtomicU64, n: u64) {
  counter.fetch_add(n, Relaxed);
}

impl Stats {
  /// Records `count` commands that each took `elapsed`.
  pub fn record_latency(&self, elapsed: Duration, count: u64) {
    self.latency.record(micros(elapsed), count);
  }

  /// Records one batch's operations, each as its kind and whether it
  /// failed; `elapsed` is the batch's round trip (None: it failed before
  /// anything was sent). A few atomic adds per kind, not per operation.
  pub fn record_ops(&self, ops: impl Iterator<Item = (Kind, bool)>, elapsed: Option<Duration>) {
    let mut tally = [(0u64, 0u64); Kind::COUNT];
    for (kind, failed) in ops {
      let t = &mut tally[kind as usize];
      t.0 += 1;
      t.1 += u64::from(failed);
    }
    let us = elapsed.map(micros);
    for (op, (count, failed)) in self.ops.iter().zip(tally) {
      if count == 0 {
        continue;
      }
      op.count.fetch_add(count, Relaxed);
      if failed > 0 {
        op.errors.fetch_add(failed, Relaxed);
      }
      if let Some(us) = us {
        op.latency.get_or_init(Histogram::default).record(us, count);
        op.max_us.fetch_max(us, Relaxed);
      }
    }
  }

  /// Every figure as it is now (what `metrics()` reports).
  pub fn read(&self) -> Counts {
    Counts {
      hits: self.hits.load(Relaxed),
      misses: self.misses.load(Relaxed),
      sets: self.sets.load(Relaxed),
      deletes: self.deletes.load(Relaxed),
      errors: self.errors.load(Relaxed),
      operations: self.operations.load(Relaxed),
      latency: self.latency.read(),
      ops: self
        .ops
        .iter()
        .map(|o| OpCounts {
          count: o.count.load(Relaxed),
          errors: o.errors.load(Relaxed),
          latency: o.latency.get().map(Histogram::read).unwrap_or_default(),
          max_us: o.max_us.load(Relaxed),
        })
        .collect(),
    }
  }

  /// The figures since the current window started (what `getStats()`
  /// reports); `reset` starts a new window now.
  pub fn window(&self, reset: bool) -> Counts {
    let mut start = self.window.lock().unwrap();
    let now = self.read();
    let window = now.minus(&start);
    if reset {
      *start = now;
      for op in &self.ops {
        op.max_us.store(0, Relaxed);
      }
    }
    window
  }

  /// `getStats()`'s own figures: the window's counters, latency and
  /// `byOperation` (the kinds that ran in it).
  pub fn window_json(&self, reset: bool) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::json;
    let w = self.window(reset);
    let by_operation: serde_json::Map<_, _> = Kind::ALL
      .iter()
      .zip(&w.ops)
      .filter(|(_, o)| o.count > 0)
      .map(|(kind, o)| {
        // A quantile is its bucket's upper bound: never past the slowest.
        let max = o.max_us as f64 / 1000.0;
        let q = |q| o.latency.quantile_ms(q).min(max);
        let stats = json!({ "count": o.count, "errors": o.errors, "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": max });
        (kind.name().to_string(), stats)
      })
      .collect();
    let serde_json::Value::Object(figures) = json!({
      "hits": w.hits,
      "misses": w.misses,
      "hitRate": w.hit_rate(),
      "sets": w.sets,
      "deletes": w.deletes,
      "errors": w.errors,
      "operations": w.operations,
      "latency": { "p50": w.latency.quantile_ms(0.5), "p99": w.latency.quantile_ms(0.99) },
      "byOperation": by_operation,
    }) else {
      unreachable!("an object")
    };
    figures
  }
}

fn micros(elapsed: Duration) -> u64 {
  elapsed.as_micros().min(u128::from(u64::MAX)) as u64
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
    assert_eq!(s.read().latency.quantile_ms(0.5), 0.0);
    s.record_latency(Duration::from_micros(100), 98);
    s.record_latency(Duration::from_millis(50), 2);
    let latency = s.read().latency;
    assert!((latency.quantile_ms(0.5) - 0.1).abs() < 0.01);
    assert!((latency.quantile_ms(0.99) - 50.0).abs() < 3.5);
    assert_eq!(s.read().hit_rate(), 0.0);
    add(&s.hits, 3);
    add(&s.misses, 1);
    assert_eq!(s.read().hit_rate(), 0.75);
  }

  #[test]
  fn per_operation_windows() {
    let s = Stats::default();
    let ms = Duration::from_millis;
    s.record_ops([(Kind::Get, false), (Kind::Get, true), (Kind::Set, false)].into_iter(), Some(ms(2)));
    s.record_ops([(Kind::Get, true)].into_iter(), None);
    add(&s.hits, 1);
    let w = s.window(true);
    let (get, set) = (&w.ops[Kind::Get as usize], &w.ops[Kind::Set as usize]);
    assert_eq!((get.count, get.errors, get.latency.total(), set.count, set.errors), (3, 2, 2, 1, 0));
    assert!((get.latency.quantile_ms(0.5) - 2.0).abs() < 0.15 && get.max_us == 2000);
    // A new window: nothing yet; the counters metrics() reads still grow.
    s.record_ops([(Kind::Get, false)].into_iter(), Some(ms(1)));
    let w = s.window(false);
    let get = &w.ops[Kind::Get as usize];
    assert_eq!((w.hits, get.count, get.errors, get.latency.total(), get.max_us), (0, 1, 0, 1, 1000));
    assert_eq!(w.ops[Kind::Set as usize].count, 0);
    let all = s.read();
    assert_eq!((all.hits, all.ops[Kind::Get as usize].count, all.ops[Kind::Get as usize].latency.total()), (1, 4, 3));
    let json = s.window_json(false);
    assert_eq!(json["byOperation"]["get"]["count"], 1);
    assert!(json["byOperation"].get("set").is_none(), "only what ran in the window");
  }

  #[test]
  fn prometheus_buckets_are_exact() {
    let s = Stats::default();
    for us in [50, 99, 100, 101, 1000, 1001, 20_000_000] {
      s.record_latency(Duration::from_micros(us), 1);
    }
    let l = s.read().latency;
    assert_eq!(&l.le[..5], &[3, 1, 0, 1, 1], "at most 100 µs, 250 µs, 500 µs, 1 ms, 2.5 ms");
    assert_eq!((l.le[LE_US.len()], l.le.iter().sum::<u64>()), (1, 7));
    assert_eq!(l.sum_us, 20_002_351);
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
