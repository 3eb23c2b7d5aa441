//! Key prefixing, the reserved namespaces, glob escaping and TTL arguments.

use crate::error::{CacheError, Result};

/// Every name the module keeps for itself starts, after keyPrefix, with this
/// segment: tag indexes, locks and fencing counters. User keys may not start
/// with it, and invalidation never removes what lies under it. getOrSet's
/// leases, their index and channel live here too.
pub const RESERVED: &str = "__fluxor__:";

#[derive(Clone)]
pub struct Codec {
  prefix: String,
}

impl Codec {
  pub fn new(prefix: &str) -> Self {
    Codec { prefix: prefix.to_string() }
  }

  /// The stored name of a user key.
  pub fn key(&self, key: &str) -> Result<Vec<u8>> {
    if key.is_empty() {
      return Err(CacheError::type_error("key must be a non-empty string"));
    }
    if key.starts_with(RESERVED) {
      return Err(CacheError::type_error(format!("key {key:?} lies in the reserved namespace {RESERVED:?}")));
    }
    Ok(self.join("", key))
  }

  /// The index of the keys set with `tag`.
  pub fn tag_index(&self, tag: &str) -> Vec<u8> {
    self.join("tag:", tag)
  }

  /// The record of the tags a stored key was last written with (a JSON
  /// array text, with the key's expiry), so that expire() can move the
  /// key's expiry in those tags' indexes too.
  pub fn tag_record(&self, stored: &[u8]) -> Vec<u8> {
    let mut out = self.join("tags:", "");
    out.extend_from_slice(stored.strip_prefix(self.prefix.as_bytes()).unwrap_or(stored));
    out
  }

  /// A lock's key: the name is a cluster hash tag, so that the lock and
  /// its fencing counter (the same key plus `:fence`) share a slot. A `}`
  /// would end the tag early, so it is escaped (as `%7D`, and `%` as `%25`;
  /// names without either keep their form); an empty tag would not count
  /// as one, so an empty name is `%`.
  pub fn lock_key(&self, key: &str) -> Vec<u8> {
    let mut name = String::with_capacity(key.len() + 2);
    for c in key.chars() {
      match c {
        '%' => name.push_str("%25"),
        '}' => name.push_str("%7D"),
        c => name.push(c),
      }
    }
    if name.is_empty() {
      name.push('%');
    }
    let mut out = self.join("lock:{", &name);
    out.push(b'}');
    out
  }

  pub fn fence_key(&self, key: &str) -> Vec<u8> {
    let mut out = self.lock_key(key);
    out.extend_from_slice(b":fence");
    out
  }

  /// The getOrSet lease of a stored key (getorset.rs): in the key's slot.
  pub fn lease_key(&self, stored: &[u8]) -> Vec<u8> {
    let user = &stored[self.prefix.len().min(stored.len())..];
    let mut out = self.join("lease:{", &crate::getorset::slot_tag(stored));
    out.push(b'}');
    out.extend_from_slice(user);
    out
  }

  /// The index of the getOrSet leases handed out (getorset.rs).
  pub fn lease_index(&self) -> Vec<u8> {
    self.join("leases", "")
  }

  /// The channel getOrSet publishes stored keys on (wake.rs).
  pub fn fill_channel(&self) -> Vec<u8> {
    self.join("filled", "")
  }

  /// The user's name of a stored key, or None for a reserved or foreign one.
  pub fn user_key<'a>(&self, stored: &'a [u8]) -> Option<&'a [u8]> {
    let rest = stored.strip_prefix(self.prefix.as_bytes())?;
    (!rest.starts_with(RESERVED.as_bytes())).then_some(rest)
  }

  /// A SCAN MATCH pattern: the escaped prefix followed by `glob` as given.
  pub fn scan_pattern(&self, glob: &str) -> Vec<u8> {
    let mut out = escape_glob(&self.prefix).into_bytes();
    out.extend_from_slice(glob.as_bytes());
    out
  }

  fn join(&self, namespace: &str, name: &str) -> Vec<u8> {
    let reserved = if namespace.is_empty() { "" } else { RESERVED };
    let mut out = Vec::with_capacity(self.prefix.len() + reserved.len() + namespace.len() + name.len());
    out.extend_from_slice(self.prefix.as_bytes());
    out.extend_from_slice(reserved.as_bytes());
    out.extend_from_slice(namespace.as_bytes());
    out.extend_from_slice(name.as_bytes());
    out
  }
}

/// Escapes Redis glob metacharacters so that `s` matches only itself.
pub fn escape_glob(s: &str) -> String {
  let mut out = String::with_capacity(s.len());
  for c in s.chars() {
    if matches!(c, '*' | '?' | '[' | ']' | '\\') {
      out.push('\\');
    }
    out.push(c);
  }
  out
}

/// Parses a TTL argument in milliseconds as the JS face sends it.
pub fn parse_ms(s: &str) -> Result<u64> {
  s.parse::<u64>().map_err(|_| CacheError::range_error(format!("ttl must be 0 or more milliseconds, got {s:?}")))
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn prefixes_and_reserves() {
    let c = Codec::new("app:");
    assert_eq!(c.key("user:1").unwrap(), b"app:user:1");
    assert!(c.key("").is_err());
    assert!(c.key("__fluxor__:tag:x").is_err());
    assert_eq!(c.tag_index("t"), b"app:__fluxor__:tag:t");
    assert_eq!(c.tag_record(b"app:user:1"), b"app:__fluxor__:tags:user:1");
    assert_eq!(c.lock_key("r"), b"app:__fluxor__:lock:{r}");
    assert_eq!(c.fence_key("r"), b"app:__fluxor__:lock:{r}:fence");
    assert_eq!(c.user_key(b"app:__fluxor__:lock:{r}"), None);
    assert_eq!(c.lock_key("}x%"), b"app:__fluxor__:lock:{%7Dx%25}");
    assert_eq!(c.lock_key(""), b"app:__fluxor__:lock:{%}");
    for name in ["}", "}x", "a}b{c}", "{", "", "%7D", "r"] {
      let slot = redis::cluster_routing::Slot::for_key(c.lock_key(name));
      assert_eq!(slot, redis::cluster_routing::Slot::for_key(c.fence_key(name)), "{name:?}: lock and fence share a slot");
    }
    assert_ne!(c.lock_key("}"), c.lock_key("%7D"), "escaping is one-to-one");
    assert_eq!(c.user_key(b"app:user:1"), Some(&b"user:1"[..]));
    assert_eq!(c.user_key(b"other:user:1"), None);
  }

  #[test]
  fn escapes_globs() {
    assert_eq!(escape_glob(r"a*b?[c]\d"), r"a\*b\?\[c\]\\d");
    assert_eq!(Codec::new("p*:").scan_pattern("x*"), b"p\\*:x*");
  }
}
