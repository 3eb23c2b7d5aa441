//! Constructor options: defaults, environment fallbacks and validation.
//!
//! The JS face hands the options over as JSON text (functions such as
//! `retryStrategy` stay in JS), so this module sees plain data and can be
//! unit-tested without Node.

use std::time::Duration;

use redis::{ClientTlsConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo, TlsCertificates};
use serde_json::{Map, Value};

use crate::error::{CacheError, Result};

/// Where the cache connects.
// Made once per instance: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Target {
  Standalone(ConnectionInfo),
  Cluster(Vec<ConnectionInfo>),
}

#[derive(Clone)]
pub struct Options {
  pub target: Target,
  pub key_prefix: String,
  /// 0 means no expiry.
  pub default_ttl_ms: u64,
  pub connect_timeout: Duration,
  pub command_timeout: Duration,
  /// CA and client certificate for TLS connections (PEM); None: the system's roots.
  pub tls: Option<TlsCertificates>,
}

/// The `tls` option: whether to use TLS, and how.
struct Tls {
  certs: Option<TlsCertificates>,
  reject_unauthorized: bool,
}

impl Options {
  pub fn is_cluster(&self) -> bool {
    matches!(self.target, Target::Cluster(_))
  }

  /// Parses the constructor options; `env` reads an environment variable
  /// (REDIS_HOST, REDIS_PORT, REDIS_PASSWORD, REDIS_DB) for absent options.
  pub fn parse(json: &str, env: impl Fn(&str) -> Option<String>) -> Result<Options> {
    let value: Value = serde_json::from_str(json).map_err(|e| CacheError::type_error(format!("options must be a plain object ({e})")))?;
    let o = match value {
      Value::Object(map) => map,
      Value::Null => Map::new(),
      _ => return Err(CacheError::type_error("options must be a plain object")),
    };

    let password = opt_string(&o, "password")?.or_else(|| env("REDIS_PASSWORD").filter(|p| !p.is_empty()));
    let username = opt_string(&o, "username")?;
    let enable_cluster = opt_bool(&o, "enableCluster")?.unwrap_or(false);
    let tls = parse_tls(&o)?;

    let target = if enable_cluster {
      let nodes = match o.get("clusterNodes") {
        None | Some(Value::Null) => {
          return Err(CacheError::type_error("options.clusterNodes must list the cluster's seed nodes when options.enableCluster is true"))
        }
        Some(Value::Array(nodes)) if nodes.is_empty() => return Err(CacheError::range_error("options.clusterNodes must name at least one node")),
        Some(Value::Array(nodes)) => nodes,
        Some(_) => return Err(CacheError::type_error("options.clusterNodes must be an array of { host, port }")),
      };
      let mut infos = Vec::with_capacity(nodes.len());
      for (i, node) in nodes.iter().enumerate() {
        let name = format!("clusterNodes[{i}]");
        let node = node.as_object().ok_or_else(|| CacheError::type_error(format!("options.{name} must be an object {{ host, port }}")))?;
        let host = host_of(node, &format!("{name}.host"))?.unwrap_or_else(|| "localhost".into());
        let port = port_of(node, &format!("{name}.port"))?.unwrap_or(6379);
        infos.push(connection_info(addr(host, port, tls.as_ref()), 0, username.as_deref(), password.as_deref())?);
      }
      Target::Cluster(infos)
    } else if let Some(url) = opt_string(&o, "url")? {
      Target::Standalone(parse_url(&url, username.as_deref(), password.as_deref(), tls.as_ref())?)
    } else {
      let host = match host_of(&o, "host")? {
        Some(h) => h,
        None => env("REDIS_HOST").filter(|h| !h.is_empty()).unwrap_or_else(|| "localhost".into()),
      };
      let port = match port_of(&o, "port")? {
        Some(p) => p,
        None => match env("REDIS_PORT").filter(|p| !p.is_empty()) {
          Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| CacheError::range_error(format!("REDIS_PORT must be a port number from 1 to 65535, got {p:?}")))?,
          None => 6379,
        },
      };
      let db = match opt_integer(&o, "db", 0, i64::from(i32::MAX))? {
        Some(db) => db,
        None => match env("REDIS_DB").filter(|d| !d.is_empty()) {
          Some(d) => {
            d.parse::<i64>().ok().filter(|d| *d >= 0).ok_or_else(|| CacheError::range_error(format!("REDIS_DB must be a database number, got {d:?}")))?
          }
          None => 0,
        },
      };
      Target::Standalone(connection_info(addr(host, port, tls.as_ref()), db, username.as_deref(), password.as_deref())?)
    };

    let key_prefix = opt_string(&o, "keyPrefix")?.unwrap_or_else(|| "fluxor:".into());
    let default_ttl = opt_seconds(&o, "defaultTTL")?.unwrap_or(3600.0);
    let connect_timeout = opt_millis(&o, "connectTimeout")?.unwrap_or(5000);
    let command_timeout = opt_millis(&o, "commandTimeout")?.unwrap_or(5000);

    Ok(Options {
      target,
      key_prefix,
      default_ttl_ms: seconds_to_ms(default_ttl),
      connect_timeout: Duration::from_millis(connect_timeout),
      command_timeout: Duration::from_millis(command_timeout),
      tls: tls.and_then(|t| t.certs),
    })
  }
}

/// Seconds (fractions allowed) to whole milliseconds; a positive ttl never
/// rounds down to 0, which would mean "no expiry".
pub fn seconds_to_ms(seconds: f64) -> u64 {
  if seconds <= 0.0 {
    0
  } else {
    ((seconds * 1000.0).round() as u64).max(1)
  }
}

/// The `host:port` a connection info points at, for error messages.
pub fn addr_of(info: &ConnectionInfo) -> String {
  match info.addr() {
    ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
    ConnectionAddr::TcpTls { host, port, .. } => format!("{host}:{port}"),
    other => other.to_string(),
  }
}

fn addr(host: String, port: u16, tls: Option<&Tls>) -> ConnectionAddr {
  match tls {
    None => ConnectionAddr::Tcp(host, port),
    Some(t) => ConnectionAddr::TcpTls { host, port, insecure: !t.reject_unauthorized, tls_params: None },
  }
}

/// `tls: true` or `{ ca, cert, key, rejectUnauthorized }` (PEM text; the JS
/// face turns Buffers into text).
fn parse_tls(o: &Map<String, Value>) -> Result<Option<Tls>> {
  let t = match present(o, "tls") {
    None | Some(Value::Bool(false)) => return Ok(None),
    Some(Value::Bool(true)) => return Ok(Some(Tls { certs: None, reject_unauthorized: true })),
    Some(Value::Object(t)) => t,
    Some(_) => return Err(CacheError::type_error("options.tls must be a boolean or an object { ca, cert, key, rejectUnauthorized }")),
  };
  let pem = |name: &str| -> Result<Option<Vec<u8>>> {
    match present(t, name) {
      None => Ok(None),
      Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone().into_bytes())),
      Some(_) => Err(CacheError::type_error(format!("options.tls.{name} must be PEM text (a string or a Buffer)"))),
    }
  };
  let (ca, cert, key) = (pem("ca")?, pem("cert")?, pem("key")?);
  let reject_unauthorized = match present(t, "rejectUnauthorized") {
    None => true,
    Some(Value::Bool(b)) => *b,
    Some(_) => return Err(CacheError::type_error("options.tls.rejectUnauthorized must be a boolean")),
  };
  let client_tls = match (cert, key) {
    (Some(client_cert), Some(client_key)) => Some(ClientTlsConfig { client_cert, client_key }),
    (None, None) => None,
    _ => return Err(CacheError::type_error("options.tls.cert and options.tls.key go together")),
  };
  let certs = (ca.is_some() || client_tls.is_some()).then_some(TlsCertificates { client_tls, root_cert: ca });
  Ok(Some(Tls { certs, reject_unauthorized }))
}

fn connection_info(addr: ConnectionAddr, db: i64, username: Option<&str>, password: Option<&str>) -> Result<ConnectionInfo> {
  let info = addr.into_connection_info().map_err(|e| CacheError::type_error(format!("options: {e}")))?;
  let mut redis = RedisConnectionInfo::default().set_db(db);
  if let Some(u) = username {
    redis = redis.set_username(u);
  }
  if let Some(p) = password {
    redis = redis.set_password(p);
  }
  Ok(info.set_redis_settings(redis))
}

fn parse_url(url: &str, username: Option<&str>, password: Option<&str>, tls: Option<&Tls>) -> Result<ConnectionInfo> {
  if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
    return Err(CacheError::type_error(format!("options.url must start with redis:// or rediss://, got {url:?}")));
  }
  let mut info = url.into_connection_info().map_err(|e| CacheError::type_error(format!("options.url is not a valid Redis URL: {e}")))?;
  // The tls option applies to a redis:// URL too, and sets rejectUnauthorized.
  if let Some(t) = tls {
    let (host, port) = match info.addr() {
      ConnectionAddr::Tcp(h, p) | ConnectionAddr::TcpTls { host: h, port: p, .. } => (h.clone(), *p),
      other => return Err(CacheError::type_error(format!("options.url: unsupported address {other}"))),
    };
    info = info.set_addr(addr(host, port, Some(t)));
  }
  // Credentials in the URL win; the options fill in what it leaves out.
  let mut redis = info.redis_settings().clone();
  if redis.username().is_none() {
    if let Some(u) = username {
      redis = redis.set_username(u);
    }
  }
  if redis.password().is_none() {
    if let Some(p) = password {
      redis = redis.set_password(p);
    }
  }
  Ok(info.set_redis_settings(redis))
}

fn present<'a>(o: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
  o.get(name).filter(|v| !v.is_null())
}

fn opt_string(o: &Map<String, Value>, name: &str) -> Result<Option<String>> {
  match present(o, name) {
    None => Ok(None),
    Some(Value::String(s)) => Ok(Some(s.clone())),
    Some(_) => Err(CacheError::type_error(format!("options.{name} must be a string"))),
  }
}

fn opt_bool(o: &Map<String, Value>, name: &str) -> Result<Option<bool>> {
  match present(o, name) {
    None => Ok(None),
    Some(Value::Bool(b)) => Ok(Some(*b)),
    Some(_) => Err(CacheError::type_error(format!("options.{name} must be a boolean"))),
  }
}

fn host_of(o: &Map<String, Value>, name: &str) -> Result<Option<String>> {
  match present(o, name.rsplit('.').next().unwrap_or(name)) {
    None => Ok(None),
    Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
    Some(_) => Err(CacheError::type_error(format!("options.{name} must be a non-empty string"))),
  }
}

fn port_of(o: &Map<String, Value>, name: &str) -> Result<Option<u16>> {
  let field = name.rsplit('.').next().unwrap_or(name);
  match present(o, field) {
    None => Ok(None),
    // Like ioredis, a numeric string is accepted for the port.
    Some(Value::String(s)) => s
      .parse::<u16>()
      .ok()
      .filter(|p| *p > 0)
      .map(Some)
      .ok_or_else(|| CacheError::range_error(format!("options.{name} must be a port number from 1 to 65535, got {s:?}"))),
    Some(Value::Number(n)) => n
      .as_f64()
      .filter(|p| p.fract() == 0.0 && *p >= 1.0 && *p <= 65535.0)
      .map(|p| Some(p as u16))
      .ok_or_else(|| CacheError::range_error(format!("options.{name} must be a port number from 1 to 65535, got {n}"))),
    Some(_) => Err(CacheError::type_error(format!("options.{name} must be a number"))),
  }
}

fn opt_number(o: &Map<String, Value>, name: &str) -> Result<Option<f64>> {
  match present(o, name) {
    None => Ok(None),
    Some(Value::Number(n)) => Ok(n.as_f64()),
    // The JS face sends NaN and ±Infinity as strings (JSON has no such numbers).
    Some(Value::String(s)) if matches!(s.as_str(), "NaN" | "Infinity" | "-Infinity") => {
      Err(CacheError::range_error(format!("options.{name} must be a finite number, got {s}")))
    }
    Some(_) => Err(CacheError::type_error(format!("options.{name} must be a number"))),
  }
}

fn opt_integer(o: &Map<String, Value>, name: &str, min: i64, max: i64) -> Result<Option<i64>> {
  match opt_number(o, name)? {
    None => Ok(None),
    Some(n) if n.fract() == 0.0 && n >= min as f64 && n <= max as f64 => Ok(Some(n as i64)),
    Some(n) => Err(CacheError::range_error(format!("options.{name} must be an integer from {min} to {max}, got {n}"))),
  }
}

/// A TTL in seconds: finite and not negative (0 = no expiry).
fn opt_seconds(o: &Map<String, Value>, name: &str) -> Result<Option<f64>> {
  match opt_number(o, name)? {
    Some(n) if n < 0.0 => Err(CacheError::range_error(format!("options.{name} must be 0 or more seconds, got {n}"))),
    other => Ok(other),
  }
}

/// A timeout in milliseconds: a positive, finite number.
fn opt_millis(o: &Map<String, Value>, name: &str) -> Result<Option<u64>> {
  match opt_number(o, name)? {
    None => Ok(None),
    Some(n) if n > 0.0 && n <= 2_147_483_647.0 => Ok(Some(n.ceil() as u64)),
    Some(n) => Err(CacheError::range_error(format!("options.{name} must be a positive number of milliseconds, got {n}"))),
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::error::{ArgKind, Code};

  fn no_env(_: &str) -> Option<String> {
    None
  }

  fn standalone(o: &Options) -> &ConnectionInfo {
    match &o.target {
      Target::Standalone(info) => info,
      Target::Cluster(_) => panic!("expected standalone"),
    }
  }

  #[test]
  fn defaults() {
    let o = Options::parse("{}", no_env).unwrap();
    assert_eq!(addr_of(standalone(&o)), "localhost:6379");
    assert_eq!(o.key_prefix, "fluxor:");
    assert_eq!(o.default_ttl_ms, 3_600_000);
    assert_eq!(o.connect_timeout, Duration::from_millis(5000));
    assert_eq!(o.command_timeout, Duration::from_millis(5000));
    assert_eq!(standalone(&o).redis_settings().db(), 0);
  }

  #[test]
  fn env_fills_absent_options_only() {
    let env = |k: &str| match k {
      "REDIS_HOST" => Some("127.0.0.9".to_string()),
      "REDIS_PORT" => Some("7000".to_string()),
      "REDIS_DB" => Some("3".to_string()),
      "REDIS_PASSWORD" => Some("pw".to_string()),
      _ => None,
    };
    let o = Options::parse("{}", env).unwrap();
    assert_eq!(addr_of(standalone(&o)), "127.0.0.9:7000");
    assert_eq!(standalone(&o).redis_settings().db(), 3);
    assert_eq!(standalone(&o).redis_settings().password(), Some("pw"));
    let o = Options::parse(r#"{"host":"h","port":1,"db":2}"#, env).unwrap();
    assert_eq!(addr_of(standalone(&o)), "h:1");
    assert_eq!(standalone(&o).redis_settings().db(), 2);
  }

  #[test]
  fn url_overrides_host_and_port() {
    let o = Options::parse(r#"{"host":"x","port":1,"url":"redis://:secret@127.0.0.1:6380/4"}"#, no_env).unwrap();
    let info = standalone(&o);
    assert_eq!(addr_of(info), "127.0.0.1:6380");
    assert_eq!(info.redis_settings().db(), 4);
    assert_eq!(info.redis_settings().password(), Some("secret"));
  }

  #[test]
  fn bad_options_name_the_option() {
    let cases = [
      (r#"{"port":"abc"}"#, ArgKind::Range, "options.port"),
      (r#"{"port":70000}"#, ArgKind::Range, "options.port"),
      (r#"{"port":true}"#, ArgKind::Type, "options.port"),
      (r#"{"host":5}"#, ArgKind::Type, "options.host"),
      (r#"{"db":-1}"#, ArgKind::Range, "options.db"),
      (r#"{"defaultTTL":-1}"#, ArgKind::Range, "options.defaultTTL"),
      (r#"{"connectTimeout":-5}"#, ArgKind::Range, "options.connectTimeout"),
      (r#"{"commandTimeout":"1s"}"#, ArgKind::Type, "options.commandTimeout"),
      (r#"{"defaultTTL":"NaN"}"#, ArgKind::Range, "options.defaultTTL"),
      (r#"{"keyPrefix":1}"#, ArgKind::Type, "options.keyPrefix"),
      (r#"{"url":"http://x"}"#, ArgKind::Type, "options.url"),
      (r#"{"enableCluster":true}"#, ArgKind::Type, "options.clusterNodes"),
      (r#"{"enableCluster":true,"clusterNodes":[]}"#, ArgKind::Range, "options.clusterNodes"),
      (r#"{"enableCluster":true,"clusterNodes":[{"host":"a","port":0}]}"#, ArgKind::Range, "options.clusterNodes[0].port"),
      (r#"{"enableCluster":"yes"}"#, ArgKind::Type, "options.enableCluster"),
      ("[1]", ArgKind::Type, "options"),
    ];
    for (json, kind, name) in cases {
      let err = Options::parse(json, no_env).err().unwrap_or_else(|| panic!("{json} should fail"));
      assert_eq!(err.code, Code::InvalidArg, "{json}");
      assert_eq!(err.arg, Some(kind), "{json}: {}", err.message);
      assert!(err.message.contains(name), "{json}: {}", err.message);
    }
  }

  #[test]
  fn cluster_nodes() {
    let o = Options::parse(r#"{"enableCluster":true,"clusterNodes":[{"host":"127.0.0.1","port":7000},{"host":"127.0.0.1","port":"7001"}]}"#, no_env).unwrap();
    match o.target {
      Target::Cluster(nodes) => {
        let addrs: Vec<_> = nodes.iter().map(addr_of).collect();
        assert_eq!(addrs, ["127.0.0.1:7000", "127.0.0.1:7001"]);
      }
      Target::Standalone(_) => panic!("expected cluster"),
    }
  }

  #[test]
  fn tls() {
    let o = Options::parse(r#"{"tls":{"ca":"PEM","rejectUnauthorized":false}}"#, no_env).unwrap();
    assert!(matches!(standalone(&o).addr(), ConnectionAddr::TcpTls { insecure: true, .. }));
    assert_eq!(o.tls.as_ref().unwrap().root_cert.as_deref(), Some(&b"PEM"[..]));
    let o = Options::parse(r#"{"url":"rediss://127.0.0.1:6380"}"#, no_env).unwrap();
    assert!(matches!(standalone(&o).addr(), ConnectionAddr::TcpTls { insecure: false, .. }));
    let o = Options::parse(r#"{"tls":true}"#, no_env).unwrap();
    assert!(matches!(standalone(&o).addr(), ConnectionAddr::TcpTls { .. }) && o.tls.is_none());
    for bad in [r#"{"tls":"yes"}"#, r#"{"tls":{"ca":5}}"#, r#"{"tls":{"cert":"C"}}"#, r#"{"tls":{"rejectUnauthorized":"no"}}"#] {
      let err = Options::parse(bad, no_env).err().unwrap();
      assert!(err.message.contains("options.tls"), "{bad}: {}", err.message);
    }
  }

  #[test]
  fn ttl_rounding() {
    assert_eq!(seconds_to_ms(0.0), 0);
    assert_eq!(seconds_to_ms(1.5), 1500);
    assert_eq!(seconds_to_ms(0.0001), 1);
  }
}
