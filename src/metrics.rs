//! `metrics()`: this instance's counters and per-operation latency as
//! Prometheus text exposition (format 0.0.4), every name prefixed
//! `fluxor_cache_`. Counters never reset (`getStats({ reset })` does not
//! touch them), as Prometheus expects.

use std::fmt::Write;

use crate::ops::Kind;
use crate::stats::{Counts, LE_US};

pub fn prometheus(c: &Counts, connected: bool) -> String {
  let mut out = String::with_capacity(4096);
  let counters = [
    ("hits", "Key look-ups that found a value (get, each key of mget).", c.hits),
    ("misses", "Key look-ups that found nothing.", c.misses),
    ("sets", "Keys written.", c.sets),
    ("deletes", "Keys removed (del and invalidate).", c.deletes),
    ("errors", "Operations that failed.", c.errors),
    ("operations", "Operations sent to the engine.", c.operations),
  ];
  for (name, help, value) in counters {
    family(&mut out, &format!("{name}_total"), "counter", help);
    let _ = writeln!(out, "fluxor_cache_{name}_total {value}");
  }
  let used: Vec<_> = Kind::ALL.iter().zip(&c.ops).filter(|(_, o)| o.count > 0).collect();
  family(&mut out, "operation_errors_total", "counter", "Operations that failed, by operation.");
  for (kind, o) in &used {
    let _ = writeln!(out, "fluxor_cache_operation_errors_total{{operation=\"{}\"}} {}", kind.name(), o.errors);
  }
  let name = "operation_duration_seconds";
  family(&mut out, name, "histogram", "Round trip of each operation's batch, from its write to its replies, by operation.");
  for (kind, o) in &used {
    let (op, l) = (kind.name(), &o.latency);
    let mut below = 0;
    for (i, bound) in LE_US.iter().enumerate() {
      below += l.le.get(i).copied().unwrap_or(0);
      let _ = writeln!(out, "fluxor_cache_{name}_bucket{{operation=\"{op}\",le=\"{}\"}} {below}", *bound as f64 / 1e6);
    }
    let total: u64 = l.le.iter().sum();
    let _ = writeln!(out, "fluxor_cache_{name}_bucket{{operation=\"{op}\",le=\"+Inf\"}} {total}");
    let _ = writeln!(out, "fluxor_cache_{name}_sum{{operation=\"{op}\"}} {}", l.sum_us as f64 / 1e6);
    let _ = writeln!(out, "fluxor_cache_{name}_count{{operation=\"{op}\"}} {total}");
  }
  family(&mut out, "connected", "gauge", "Whether the instance is connected (1) or not (0): before initialize(), while reconnecting and after disconnect().");
  let _ = writeln!(out, "fluxor_cache_connected {}", u8::from(connected));
  out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
  let _ = writeln!(out, "# HELP fluxor_cache_{name} {help}");
  let _ = writeln!(out, "# TYPE fluxor_cache_{name} {kind}");
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::stats::Stats;
  use std::time::Duration;

  #[test]
  fn exposition() {
    let s = Stats::default();
    s.record_ops([(Kind::Get, false), (Kind::Get, true)].into_iter(), Some(Duration::from_micros(300)));
    let text = prometheus(&s.read(), true);
    for line in [
      "# TYPE fluxor_cache_hits_total counter",
      "fluxor_cache_operation_errors_total{operation=\"get\"} 1",
      "fluxor_cache_operation_duration_seconds_bucket{operation=\"get\",le=\"0.00025\"} 0",
      "fluxor_cache_operation_duration_seconds_bucket{operation=\"get\",le=\"0.0005\"} 2",
      "fluxor_cache_operation_duration_seconds_bucket{operation=\"get\",le=\"10\"} 2",
      "fluxor_cache_operation_duration_seconds_bucket{operation=\"get\",le=\"+Inf\"} 2",
      "fluxor_cache_operation_duration_seconds_sum{operation=\"get\"} 0.0006",
      "fluxor_cache_operation_duration_seconds_count{operation=\"get\"} 2",
      "fluxor_cache_connected 1",
    ] {
      assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    assert!(!text.contains("operation=\"set\""), "only the kinds that ran");
  }
}
