//! Error codes of the JS API and the mapping from redis-rs errors to them.

use std::fmt;

/// The `code` every rejection from the engine carries (SPEC "Errors");
/// ERR_LOCK_NOT_ACQUIRED and ERR_UNKNOWN_PATTERN come from the JS face.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
  NotConnected,
  Connection,
  Timeout,
  /// The server refused the credentials, or wants some (NOAUTH, WRONGPASS).
  Auth,
  /// The user's ACL forbids the command or key (NOPERM).
  NoPerm,
  /// maxmemory reached and nothing to evict (OOM).
  Oom,
  /// A write reached a replica (READONLY): a failover demoted the server.
  ReadOnly,
  /// The server cannot serve this now, try later: LOADING, BUSY, MASTERDOWN,
  /// CLUSTERDOWN, TRYAGAIN, or a MOVED/ASK redirection left unresolved.
  Unavailable,
  UnknownStrategy,
  InvalidArg,
  /// Any other error reply (WRONGTYPE, ERR …).
  Redis,
  /// A reply too large to become a JS string (js_string.rs).
  ReplyTooLarge,
}

impl Code {
  pub fn as_str(self) -> &'static str {
    match self {
      Code::NotConnected => "ERR_NOT_CONNECTED",
      Code::Connection => "ERR_CONNECTION",
      Code::Timeout => "ERR_TIMEOUT",
      Code::Auth => "ERR_AUTH",
      Code::NoPerm => "ERR_NOPERM",
      Code::Oom => "ERR_OOM",
      Code::ReadOnly => "ERR_READONLY",
      Code::Unavailable => "ERR_UNAVAILABLE",
      Code::UnknownStrategy => "ERR_UNKNOWN_STRATEGY",
      Code::InvalidArg => "ERR_INVALID_ARG",
      Code::Redis => "ERR_REDIS",
      Code::ReplyTooLarge => "ERR_REPLY_TOO_LARGE",
    }
  }

  /// The code of a server error reply, from the reply's own code.
  fn of_server(code: &str) -> Code {
    match code {
      "NOAUTH" | "WRONGPASS" => Code::Auth,
      "NOPERM" => Code::NoPerm,
      "OOM" => Code::Oom,
      "READONLY" => Code::ReadOnly,
      "LOADING" | "BUSY" | "MASTERDOWN" | "CLUSTERDOWN" | "TRYAGAIN" | "MOVED" | "ASK" => Code::Unavailable,
      _ => Code::Redis,
    }
  }
}

/// What a bad argument is: a wrong type or a value out of range. The JS face
/// turns these into `TypeError` / `RangeError`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgKind {
  Type,
  Range,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheError {
  pub code: Code,
  pub message: String,
  /// Set for `ERR_INVALID_ARG` only.
  pub arg: Option<ArgKind>,
  /// The server's own error code (`WRONGTYPE`, `NOPERM`…) when the error is
  /// a server's error reply.
  pub redis_code: Option<String>,
}

pub type Result<T> = std::result::Result<T, CacheError>;

impl CacheError {
  pub fn new(code: Code, message: impl Into<String>) -> Self {
    CacheError { code, message: message.into(), arg: None, redis_code: None }
  }

  pub fn type_error(message: impl Into<String>) -> Self {
    CacheError { arg: Some(ArgKind::Type), ..CacheError::new(Code::InvalidArg, message) }
  }

  pub fn range_error(message: impl Into<String>) -> Self {
    CacheError { arg: Some(ArgKind::Range), ..CacheError::new(Code::InvalidArg, message) }
  }

  pub fn not_connected() -> Self {
    CacheError::new(Code::NotConnected, "not connected: call initialize() first (or the cache was disconnected)")
  }

  pub fn timeout(what: &str, ms: u64) -> Self {
    CacheError::new(Code::Timeout, format!("{what} timed out after {ms} ms"))
  }

  /// A server error reply, its text as the server sent it (`NOPERM ...`).
  pub fn server(e: &redis::ServerError) -> Self {
    CacheError::of_reply(e.code(), e.details())
  }

  fn of_reply(code: &str, details: Option<&str>) -> Self {
    let text = match details {
      Some(details) => format!("{code} {details}"),
      None => code.to_string(),
    };
    CacheError { redis_code: Some(code.to_string()), ..CacheError::new(Code::of_server(code), text) }
  }

  /// Maps a redis-rs error by its kind (a server reply by its own code);
  /// `addr` names the server for failures of the connection.
  pub fn from_redis(err: &redis::RedisError, addr: &str) -> Self {
    use redis::ErrorKind;
    if let Some(code) = err.code() {
      let mut e = CacheError::of_reply(code, err.detail());
      if e.code == Code::Auth {
        e.message = format!("{addr}: {}", e.message);
      }
      return e;
    }
    let code = match err.kind() {
      ErrorKind::AuthenticationFailed => Code::Auth,
      _ if err.is_timeout() => Code::Timeout,
      ErrorKind::Io | ErrorKind::ClusterConnectionNotFound => Code::Connection,
      _ if err.is_connection_dropped() || err.is_connection_refusal() => Code::Connection,
      _ => Code::Redis,
    };
    let message = match code {
      Code::Redis => err.to_string(),
      _ => format!("{addr}: {err}"),
    };
    CacheError::new(code, message)
  }

  /// Whether the connection that produced this error must be replaced.
  pub fn is_connection_lost(&self) -> bool {
    self.code == Code::Connection
  }
}

impl fmt::Display for CacheError {
  fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{}: {}", self.code.as_str(), self.message)
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use redis::{ErrorKind, RedisError, Value};

  /// A server's error reply as the parser reads it off the wire.
  fn reply(text: &str) -> CacheError {
    match redis::parse_redis_value(format!("-{text}\r\n").as_bytes()).unwrap() {
      Value::ServerError(e) => CacheError::server(&e),
      other => panic!("not an error reply: {other:?}"),
    }
  }

  fn code_of(text: &str) -> &'static str {
    reply(text).code.as_str()
  }

  #[test]
  fn auth() {
    assert_eq!(code_of("NOAUTH Authentication required."), "ERR_AUTH");
    assert_eq!(code_of("WRONGPASS invalid username-password pair or user is disabled."), "ERR_AUTH");
    let e = CacheError::from_redis(&RedisError::from((ErrorKind::AuthenticationFailed, "Password authentication failed")), "h:1");
    assert_eq!((e.code, e.message.starts_with("h:1: ")), (Code::Auth, true));
  }

  #[test]
  fn noperm() {
    let e = reply("NOPERM User u has no permissions to run the 'set' command");
    assert_eq!((e.code.as_str(), e.redis_code.as_deref()), ("ERR_NOPERM", Some("NOPERM")));
    assert_eq!(e.message, "NOPERM User u has no permissions to run the 'set' command");
  }

  #[test]
  fn oom() {
    assert_eq!(code_of("OOM command not allowed when used memory > 'maxmemory'."), "ERR_OOM");
  }

  #[test]
  fn readonly() {
    assert_eq!(code_of("READONLY You can't write against a read only replica."), "ERR_READONLY");
  }

  #[test]
  fn unavailable() {
    for text in [
      "LOADING Redis is loading the dataset in memory",
      "BUSY Redis is busy running a script.",
      "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
      "CLUSTERDOWN The cluster is down",
      "TRYAGAIN Multiple keys request during rehashing of slot",
      "MOVED 3999 127.0.0.1:6381",
      "ASK 3999 127.0.0.1:6381",
    ] {
      assert_eq!(code_of(text), "ERR_UNAVAILABLE", "{text}");
    }
  }

  #[test]
  fn redis() {
    let e = reply("WRONGTYPE Operation against a key holding the wrong kind of value");
    assert_eq!((e.code.as_str(), e.redis_code.as_deref()), ("ERR_REDIS", Some("WRONGTYPE")));
    // The text decides nothing: an ERR whose words look like another code's stays ERR_REDIS.
    assert_eq!(code_of("ERR invalid password NOAUTH WRONGPASS timed out"), "ERR_REDIS");
  }

  #[test]
  fn connection_and_timeout() {
    let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
    let e = CacheError::from_redis(&refused, "127.0.0.1:1");
    assert_eq!((e.code.as_str(), e.message.starts_with("127.0.0.1:1: ")), ("ERR_CONNECTION", true));
    let timed_out = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
    assert_eq!(CacheError::from_redis(&timed_out, "h:1").code.as_str(), "ERR_TIMEOUT");
    assert_eq!(CacheError::timeout("x", 5).code.as_str(), "ERR_TIMEOUT");
    assert_eq!(CacheError::not_connected().code.as_str(), "ERR_NOT_CONNECTED");
  }

  #[test]
  fn invalid_arg() {
    assert_eq!((CacheError::type_error("x").code.as_str(), CacheError::type_error("x").arg), ("ERR_INVALID_ARG", Some(ArgKind::Type)));
    assert_eq!(CacheError::range_error("x").arg, Some(ArgKind::Range));
    assert_eq!(CacheError::new(Code::UnknownStrategy, "x").code.as_str(), "ERR_UNKNOWN_STRATEGY");
  }
}
