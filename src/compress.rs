//! Optional value compression (`compression: { threshold }`): LZ4 blocks
//! (lz4_flex), marked so that any instance recognises them on read, with
//! compression on or off.
//!
//! A compressed value is `MAGIC` followed by the LZ4 block of the stored
//! bytes (their length first, 4 bytes little-endian). 0xC1 can never start
//! UTF-8 text, so no JSON text, no text value and no binary value (marked
//! 0xC0, src/ops.rs) is mistaken for one.

/// The first bytes of a compressed value.
pub const MAGIC: &[u8] = b"\xC1L4";

/// Largest value a compressed one may claim to hold: Redis's own cap on a
/// string (proto-max-bulk-len), so a corrupt length cannot allocate more.
const MAX_SIZE: usize = 512 * 1024 * 1024;

/// `stored` compressed when it is at least `threshold` bytes and shrinks;
/// as it is otherwise.
pub fn maybe_compress(stored: Vec<u8>, threshold: Option<usize>) -> Vec<u8> {
  match threshold {
    Some(t) if stored.len() >= t => {
      let block = lz4_flex::block::compress_prepend_size(&stored);
      if block.len() + MAGIC.len() < stored.len() {
        let mut out = Vec::with_capacity(MAGIC.len() + block.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&block);
        out
      } else {
        stored
      }
    }
    _ => stored,
  }
}

/// The stored bytes of a value as read: decompressed when compressed. A
/// block that does not decompress is returned as it is (it was never ours).
pub fn unpack(raw: Vec<u8>) -> Vec<u8> {
  let Some(block) = raw.strip_prefix(MAGIC) else { return raw };
  match lz4_flex::block::uncompressed_size(block) {
    Ok((size, _)) if size <= MAX_SIZE => lz4_flex::block::decompress_size_prepended(block).unwrap_or(raw),
    _ => raw,
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn round_trips_and_keeps_small_values() {
    let json = format!("[{}]", vec!["\"a fairly repetitive value\""; 50].join(","));
    let packed = maybe_compress(json.clone().into_bytes(), Some(64));
    assert!(packed.starts_with(MAGIC) && packed.len() < json.len() / 4);
    assert_eq!(unpack(packed), json.as_bytes());
    assert_eq!(maybe_compress(b"12345".to_vec(), Some(64)), b"12345", "under the threshold");
    assert_eq!(maybe_compress(json.clone().into_bytes(), None), json.as_bytes(), "off");
    assert_eq!(unpack(b"{\"a\":1}".to_vec()), b"{\"a\":1}");
    let corrupt = [MAGIC, &[0xff, 0xff, 0xff, 0x7f, 1, 2]].concat();
    assert_eq!(unpack(corrupt.clone()), corrupt, "a length past the cap is not allocated");
  }
}
