//! Error codes of the JS API and the mapping from redis-rs errors to them.

use std::fmt;

/// The `code` every rejection from the engine carries (SPEC "Errors");
/// ERR_LOCK_NOT_ACQUIRED and ERR_UNKNOWN_PATTERN come from the JS face.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
  NotConnected,
  Connection,
  Timeout,
  Auth,
  UnknownStrategy,
  InvalidArg,
  Redis,
}

impl Code {
  pub fn as_str(self) -> &'static str {
    match self {
      Code::NotConnected => "ERR_NOT_CONNECTED",
      Code::Connection => "ERR_CONNECTION",
      Code::Timeout => "ERR_TIMEOUT",
      Code::Auth => "ERR_AUTH",
      Code::UnknownStrategy => "ERR_UNKNOWN_STRATEGY",
      Code::InvalidArg => "ERR_INVALID_ARG",
      Code::Redis => "ERR_REDIS",
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
}

pub type Result<T> = std::result::Result<T, CacheError>;

impl CacheError {
  pub fn new(code: Code, message: impl Into<String>) -> Self {
    CacheError { code, message: message.into(), arg: None }
  }

  pub fn type_error(message: impl Into<String>) -> Self {
    CacheError { code: Code::InvalidArg, message: message.into(), arg: Some(ArgKind::Type) }
  }

  pub fn range_error(message: impl Into<String>) -> Self {
    CacheError { code: Code::InvalidArg, message: message.into(), arg: Some(ArgKind::Range) }
  }

  pub fn not_connected() -> Self {
    CacheError::new(Code::NotConnected, "not connected: call initialize() first (or the cache was disconnected)")
  }

  pub fn timeout(what: &str, ms: u64) -> Self {
    CacheError::new(Code::Timeout, format!("{what} timed out after {ms} ms"))
  }

  /// A server error reply, its text as the server sent it (`NOPERM ...`).
  pub fn server(e: &redis::ServerError) -> Self {
    let text = match e.details() {
      Some(details) => format!("{} {details}", e.code()),
      None => e.code().to_string(),
    };
    CacheError::new(Code::Redis, text)
  }

  /// Maps a redis-rs error; `addr` names the server for connection failures.
  pub fn from_redis(err: &redis::RedisError, addr: &str) -> Self {
    use redis::ErrorKind;
    let text = err.to_string();
    // Checked in this order: redis-rs reports a refused AUTH or a timed-out
    // response of a cluster node inside an Io error.
    let code = if err.kind() == ErrorKind::AuthenticationFailed
      || ["WRONGPASS", "NOAUTH", "AuthenticationFailed", "invalid password", "Password authentication failed"].iter().any(|t| text.contains(t))
    {
      Code::Auth
    } else if err.is_timeout() || text.contains("timed out") {
      Code::Timeout
    } else if matches!(err.kind(), ErrorKind::Io | ErrorKind::ClusterConnectionNotFound) || err.is_connection_dropped() || err.is_connection_refusal() {
      Code::Connection
    } else {
      Code::Redis
    };
    let message = match (code, err.code()) {
      (Code::Connection | Code::Auth | Code::Timeout, _) => format!("{addr}: {err}"),
      (_, Some(server_code)) => format!("{server_code} {}", err.detail().unwrap_or_default()).trim_end().to_string(),
      _ => err.to_string(),
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
