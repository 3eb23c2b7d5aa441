//! Redis's glob matching (`stringmatchlen` in util.c), byte for byte, so that
//! `invalidate('pattern', …)` on the memory store removes exactly what SCAN
//! MATCH finds on a server: `*`, `?`, `[abc]`, `[^a]`, `[a-z]` (ends in
//! either order), `\` escaping the next byte anywhere, an unclosed `[`
//! running to the end of the pattern, and no match past 1000 nested `*`.

/// Whether `string` matches `pattern`.
pub fn matches(pattern: &[u8], string: &[u8]) -> bool {
  // KEYS and SCAN skip matching for "*" (stringmatchlen itself would refuse "").
  if pattern == b"*" {
    return true;
  }
  let mut skip_longer = false;
  match_from(pattern, string, &mut skip_longer, 0)
}

/// The pattern's byte `i`, or 0 past its end (C reads its terminator there).
fn at(p: &[u8], i: usize) -> u8 {
  p.get(i).copied().unwrap_or(0)
}

fn match_from(pat: &[u8], s: &[u8], skip_longer: &mut bool, nesting: u32) -> bool {
  if nesting > 1000 {
    return false;
  }
  let (mut p, mut si) = (0usize, 0usize);
  while p < pat.len() && si < s.len() {
    match pat[p] {
      b'*' => {
        while p + 1 < pat.len() && pat[p + 1] == b'*' {
          p += 1;
        }
        if p + 1 == pat.len() {
          return true;
        }
        while si < s.len() {
          if match_from(&pat[p + 1..], &s[si..], skip_longer, nesting + 1) {
            return true;
          }
          if *skip_longer {
            return false;
          }
          si += 1;
        }
        // Nothing after this star matches anywhere in the rest: no longer
        // match of an earlier star can help either.
        *skip_longer = true;
        return false;
      }
      b'?' => si += 1,
      b'[' => {
        p += 1;
        let not = at(pat, p) == b'^';
        if not {
          p += 1;
        }
        let c = s[si];
        let mut hit = false;
        loop {
          let left = pat.len().saturating_sub(p);
          if at(pat, p) == b'\\' && left >= 2 {
            p += 1;
            hit |= pat[p] == c;
          } else if at(pat, p) == b']' {
            break;
          } else if left == 0 {
            // Unclosed: the class ends with the pattern.
            p -= 1;
            break;
          } else if left >= 3 && pat[p + 1] == b'-' {
            let (a, b) = (pat[p].min(pat[p + 2]), pat[p].max(pat[p + 2]));
            hit |= (a..=b).contains(&c);
            p += 2;
          } else {
            hit |= pat[p] == c;
          }
          p += 1;
        }
        if hit == not {
          return false;
        }
        si += 1;
      }
      b'\\' if pat.len() - p >= 2 => {
        p += 1;
        if pat[p] != s[si] {
          return false;
        }
        si += 1;
      }
      b => {
        if b != s[si] {
          return false;
        }
        si += 1;
      }
    }
    p += 1;
    if si == s.len() {
      while at(pat, p) == b'*' {
        p += 1;
      }
      break;
    }
  }
  p >= pat.len() && si == s.len()
}

#[cfg(test)]
mod tests {
  use super::matches;

  /// (pattern, key, whether Redis 7.0.15 `KEYS pattern` lists key): every
  /// case was checked against a real redis-server.
  pub const CASES: &[(&str, &str, bool)] = &[
    ("*", "", true),
    ("*", "abc", true),
    ("", "", true),
    ("", "a", false),
    ("a*", "abc", true),
    ("a*", "bac", false),
    ("*c", "abc", true),
    ("a*c", "ac", true),
    ("a*c", "abbbc", true),
    ("a*c", "abcd", false),
    ("a**c", "abc", true),
    ("?", "a", true),
    ("?", "", false),
    ("?", "ab", false),
    ("a?c", "abc", true),
    ("a?c", "ac", false),
    ("[abc]", "b", true),
    ("[abc]", "d", false),
    ("[^abc]", "d", true),
    ("[^abc]", "a", false),
    ("[a-c]x", "bx", true),
    ("[c-a]x", "bx", true),
    ("[a-c]x", "dx", false),
    ("[a\\]]", "]", true),
    ("[a\\-c]", "-", true),
    ("[a\\-c]", "b", false),
    ("[]a]", "a", false),
    ("[]", "a", false),
    ("[ab", "a", true),
    ("[ab", "b", true),
    ("[ab", "ab", false),
    ("[a-", "-", true),
    ("[a-", "a", true),
    ("\\*", "*", true),
    ("\\*", "a", false),
    ("\\?x", "?x", true),
    ("a\\", "a\\", true),
    ("a\\", "a", false),
    ("\\\\", "\\", true),
    ("user:*", "user:1", true),
    ("user:*", "user", false),
    ("user:\\*:x", "user:*:x", true),
    ("user:\\*:x", "user:1:x", false),
    ("*:*:*", "a:b:c", true),
    ("*:*:*", "a:b", false),
    ("a*b*c", "axxbyyc", true),
    ("a*b*c", "axxbyy", false),
    ("*a", "a", true),
    ("a*", "a", true),
    ("a***", "a", true),
    ("[*]", "*", true),
    ("[?]", "x", false),
    ("x[", "x[", false),
    ("x[", "x", false),
  ];

  #[test]
  fn redis_cases() {
    for (pattern, key, expected) in CASES {
      assert_eq!(matches(pattern.as_bytes(), key.as_bytes()), *expected, "{pattern:?} vs {key:?}");
    }
  }

  #[test]
  fn many_stars_do_not_take_exponential_time() {
    let pattern = "a*".repeat(30) + "b";
    let key = "a".repeat(60);
    assert!(!matches(pattern.as_bytes(), key.as_bytes()));
    let deep = "*a".repeat(1100);
    assert!(!matches(deep.as_bytes(), "a".repeat(1100).as_bytes()), "Redis gives up past 1000 nested stars");
  }
}
