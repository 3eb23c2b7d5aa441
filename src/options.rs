//! Constructor options: defaults, environment fallbacks and validation.
//!
//! The JS face hands the options over as JSON text (functions such as
//! `retryStrategy` stay in JS), so this module sees plain data and can be
//! unit-tested without Node.

use std::time::Duration;

use redis::{ClientTlsConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo, TlsCertificates};
use serde_json::{Map, Value};

use crate::error::{CacheError, Result};
use crate::memory;
use crate::sentinel::{self, Sentinel};

/// Every option of `new CacheModule(options)`, in one place: any other name
/// is refused. `retryStrategy` and `localCache` stay in JS; `path` and `keepAlive` (and
/// `tls.servername`) belong to the transport.
pub const OPTIONS: &[&str] = &[
  "host",
  "port",
  "path",
  "password",
  "username",
  "db",
  "url",
  "tls",
  "keepAlive",
  "connectionName",
  "enableCluster",
  "clusterNodes",
  "sentinels",
  "name",
  "sentinelUsername",
  "sentinelPassword",
  "keyPrefix",
  "defaultTTL",
  "connectTimeout",
  "commandTimeout",
  "retryStrategy",
  "store",
  "memory",
  "localCache",
  "serializer",
  "compression",
];
const TLS_OPTIONS: &[&str] = &["ca", "cert", "key", "rejectUnauthorized", "servername"];
const NODE_OPTIONS: &[&str] = &["host", "port"];

/// Options of other Redis clients (ioredis, node-redis) that people bring
/// along, and what this module does instead.
const FOREIGN: &[(&str, &str)] = &[
  ("lazyConnect", "nothing connects before initialize() anyway"),
  ("enableOfflineQueue", "commands are never queued while disconnected: they fail fast (a get fallback answers)"),
  ("maxRetriesPerRequest", "commands are never retried: they fail fast while reconnecting"),
  ("enableAutoPipelining", "commands are always pipelined"),
  ("clientSideCache", "use localCache: a near cache kept coherent by the server"),
  ("enableReadyCheck", "initialize() resolves once the server answers PING"),
  ("reconnectOnError", "the connection is replaced when it breaks (with sentinels, also on READONLY)"),
  ("sentinelRetryStrategy", "retryStrategy paces every reconnect, the sentinel lookup included"),
  ("role", "the master is always the one used"),
  ("noDelay", "TCP_NODELAY is always on"),
  ("database", "use db"),
  ("prefix", "use keyPrefix"),
  ("socket", "use host, port, path and tls"),
  ("rootNodes", "use enableCluster and clusterNodes"),
  ("ttl", "use defaultTTL (seconds)"),
  ("timeout", "use commandTimeout (ms)"),
];
use crate::ops::Writing;

/// Where the cache connects.
// Made once per instance: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Target {
  Standalone(ConnectionInfo),
  Cluster(Vec<ConnectionInfo>),
  /// The master of a Sentinel group, looked up on every connect.
  Sentinel(Sentinel),
  /// An in-process store (src/memory/): no server at all.
  Memory(memory::Config),
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
  /// CLIENT SETNAME in the handshake.
  pub connection_name: Option<String>,
  /// `tls.servername`: the name sent (SNI) and verified instead of the host.
  pub tls_servername: Option<String>,
  /// The TLS client config, built at the first connect and kept (its
  /// session cache lets reconnects resume).
  pub tls_config: crate::transport::ConfigCache,
  /// TCP keepalive idle time; None: off (`keepAlive: false`).
  pub keep_alive: Option<Duration>,
  /// `compression.threshold`: values of at least this many bytes are stored
  /// compressed; None: compression off.
  pub compress_at: Option<usize>,
}

/// The `tls` option: whether to use TLS, and how.
struct Tls {
  certs: Option<TlsCertificates>,
  reject_unauthorized: bool,
  servername: Option<String>,
}

impl Options {
  pub fn is_cluster(&self) -> bool {
    matches!(self.target, Target::Cluster(_))
  }

  pub fn is_sentinel(&self) -> bool {
    matches!(self.target, Target::Sentinel(_))
  }

  pub fn writing(&self) -> Writing {
    Writing { default_ttl_ms: self.default_ttl_ms, compress_at: self.compress_at }
  }

  /// Parses the constructor options; `env` reads an environment variable
  /// (REDIS_URL, REDIS_HOST, REDIS_PORT, REDIS_PASSWORD, REDIS_DB) for what
  /// the options leave out.
  pub fn parse(json: &str, env: impl Fn(&str) -> Option<String>) -> Result<Options> {
    let value: Value = serde_json::from_str(json).map_err(|e| CacheError::type_error(format!("options must be a plain object ({e})")))?;
    let o = match value {
      Value::Object(map) => map,
      Value::Null => Map::new(),
      _ => return Err(CacheError::type_error("options must be a plain object")),
    };
    known(&o, OPTIONS, "options")?;

    let password = opt_string(&o, "password")?;
    let username = opt_string(&o, "username")?;
    let enable_cluster = opt_bool(&o, "enableCluster")?.unwrap_or(false);
    let tls = parse_tls(&o)?;
    let env = |name: &str| env(name).filter(|v| !v.is_empty());
    // Where the server is named, first match wins: options.url, then host
    // and port (or path, or sentinels), then REDIS_URL, then REDIS_HOST and
    // REDIS_PORT. A URL
    // overrides every REDIS_* variable.
    let url = match opt_string(&o, "url")? {
      Some(url) => Some((url, "options.url")),
      None if !enable_cluster && !["host", "port", "path", "sentinels"].iter().any(|k| present(&o, k).is_some()) => env("REDIS_URL").map(|u| (u, "REDIS_URL")),
      None => None,
    };
    let sentinel_url = url.as_ref().filter(|(u, _)| u.trim_start().to_ascii_lowercase().starts_with(sentinel::SCHEME));

    let target = if let Some(config) = parse_memory(&o, url.as_ref().map(|(u, what)| (u.as_str(), *what)))? {
      Target::Memory(config)
    } else if enable_cluster {
      if present(&o, "sentinels").is_some() {
        return Err(CacheError::type_error("options.sentinels and options.enableCluster exclude each other (Sentinel watches a master group, not a cluster)"));
      }
      let nodes = match o.get("clusterNodes") {
        None | Some(Value::Null) => {
          return Err(CacheError::type_error("options.clusterNodes must list the cluster's seed nodes when options.enableCluster is true"))
        }
        Some(Value::Array(nodes)) if nodes.is_empty() => return Err(CacheError::range_error("options.clusterNodes must name at least one node")),
        Some(Value::Array(nodes)) => nodes,
        Some(_) => return Err(CacheError::type_error("options.clusterNodes must be an array of { host, port }")),
      };
      let password = password.or_else(|| env("REDIS_PASSWORD"));
      let mut infos = Vec::with_capacity(nodes.len());
      for (host, port) in nodes_of(nodes, "clusterNodes", 6379)? {
        infos.push(connection_info(addr(host, port, tls.as_ref()), 0, username.as_deref(), password.as_deref())?);
      }
      Target::Cluster(infos)
    } else if sentinel_url.is_some() || present(&o, "sentinels").is_some() {
      Target::Sentinel(parse_sentinel(&o, sentinel_url.map(|(u, what)| (u.as_str(), *what)), username.as_deref(), password.as_deref(), tls.as_ref())?)
    } else if let Some((url, what)) = &url {
      Target::Standalone(parse_url(url, what, username.as_deref(), password.as_deref(), tls.as_ref())?)
    } else if let Some(path) = opt_string(&o, "path")? {
      if path.is_empty() {
        return Err(CacheError::type_error("options.path must be the path of a unix socket"));
      }
      if tls.is_some() {
        return Err(CacheError::type_error("options.tls does not apply to a unix socket (options.path)"));
      }
      let password = password.or_else(|| env("REDIS_PASSWORD"));
      let db = opt_db(&o)?.unwrap_or(0);
      Target::Standalone(connection_info(ConnectionAddr::Unix(path.into()), db, username.as_deref(), password.as_deref())?)
    } else {
      let password = password.or_else(|| env("REDIS_PASSWORD"));
      let host = match host_of(&o, "host")? {
        Some(h) => h,
        None => env("REDIS_HOST").unwrap_or_else(|| "localhost".into()),
      };
      let port = match port_of(&o, "port")? {
        Some(p) => p,
        None => match env("REDIS_PORT") {
          Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| CacheError::range_error(format!("REDIS_PORT must be a port number from 1 to 65535, got {p:?}")))?,
          None => 6379,
        },
      };
      let db = match opt_db(&o)? {
        Some(db) => db,
        None => match env("REDIS_DB") {
          Some(d) => {
            d.parse::<i64>().ok().filter(|d| *d >= 0).ok_or_else(|| CacheError::range_error(format!("REDIS_DB must be a database number, got {d:?}")))?
          }
          None => 0,
        },
      };
      Target::Standalone(connection_info(addr(host, port, tls.as_ref()), db, username.as_deref(), password.as_deref())?)
    };
    if !matches!(target, Target::Sentinel(_)) {
      for name in ["name", "sentinelUsername", "sentinelPassword"] {
        if present(&o, name).is_some() {
          return Err(CacheError::type_error(format!("options.{name} is a Sentinel option: it needs options.sentinels (or a redis+sentinel:// url)")));
        }
      }
    }

    let key_prefix = opt_string(&o, "keyPrefix")?.unwrap_or_else(|| "fluxor:".into());
    let default_ttl = opt_seconds(&o, "defaultTTL")?.unwrap_or(3600.0);
    let connect_timeout = opt_millis(&o, "connectTimeout")?.unwrap_or(5000);
    let command_timeout = opt_millis(&o, "commandTimeout")?.unwrap_or(5000);
    let connection_name = opt_string(&o, "connectionName")?;
    if let Some(name) = &connection_name {
      // What CLIENT SETNAME accepts.
      if name.is_empty() || !name.chars().all(|c| ('!'..='~').contains(&c)) {
        return Err(CacheError::range_error(format!("options.connectionName must be printable ASCII without spaces, got {name:?}")));
      }
    }
    let keep_alive = match present(&o, "keepAlive") {
      None | Some(Value::Bool(true)) => Some(crate::transport::DEFAULT_KEEP_ALIVE),
      Some(Value::Bool(false)) => None,
      // TCP counts keepalive time in whole seconds.
      Some(_) => opt_millis(&o, "keepAlive")?.map(|ms| Duration::from_secs(ms.div_ceil(1000))),
    };
    let compress_at = parse_compression(&o)?;

    Ok(Options {
      target,
      key_prefix,
      default_ttl_ms: seconds_to_ms(default_ttl),
      connect_timeout: Duration::from_millis(connect_timeout),
      command_timeout: Duration::from_millis(command_timeout),
      tls_servername: tls.as_ref().and_then(|t| t.servername.clone()),
      tls_config: Default::default(),
      tls: tls.and_then(|t| t.certs),
      connection_name,
      keep_alive,
      compress_at,
    })
  }
}

/// Options a server needs, which an in-process store has no use for.
const SERVER_OPTIONS: &[&str] = &[
  "host",
  "port",
  "path",
  "password",
  "username",
  "db",
  "tls",
  "keepAlive",
  "connectionName",
  "enableCluster",
  "clusterNodes",
  "sentinels",
  "name",
  "sentinelUsername",
  "sentinelPassword",
];
const MEMORY_OPTIONS: &[&str] = &["name", "maxEntries", "maxBytes"];

/// `store: 'memory'` (with `memory: { name, maxEntries, maxBytes }`) or a
/// `memory://name` url (options.url, or REDIS_URL when no server is named):
/// the in-process store; None for a server.
fn parse_memory(o: &Map<String, Value>, url: Option<(&str, &str)>) -> Result<Option<memory::Config>> {
  let store = match present(o, "store") {
    None => None,
    Some(Value::String(s)) if s == "memory" || s == "redis" => Some(s.as_str()),
    Some(other) => return Err(CacheError::type_error(format!("options.store must be 'redis' or 'memory', got {other}"))),
  };
  let url_name = url.and_then(|(u, _)| {
    let u = u.trim();
    u.get(..9).filter(|scheme| scheme.eq_ignore_ascii_case("memory://")).map(|_| &u[9..])
  });
  let memory = store == Some("memory") || (store.is_none() && url_name.is_some());
  if !memory {
    if url_name.is_some() {
      return Err(CacheError::type_error("store: 'redis' and a memory:// url exclude each other"));
    }
    if present(o, "memory").is_some() {
      return Err(CacheError::type_error("options.memory configures the in-process store: it needs store: 'memory' (or a memory:// url)"));
    }
    return Ok(None);
  }
  if let Some((_, "options.url")) = url.filter(|_| url_name.is_none()) {
    return Err(CacheError::type_error("store: 'memory' has no server: leave options.url out (or make it memory://<name>)"));
  }
  if let Some(name) = SERVER_OPTIONS.iter().find(|name| present(o, name).is_some()) {
    return Err(CacheError::type_error(format!("options.{name} is a server option: the memory store has no server")));
  }
  let m = match present(o, "memory") {
    None => Map::new(),
    Some(Value::Object(m)) => m.clone(),
    Some(_) => return Err(CacheError::type_error("options.memory must be an object { name, maxEntries, maxBytes }")),
  };
  known(&m, MEMORY_OPTIONS, "options.memory")?;
  let url_name = url_name.filter(|n| !n.is_empty());
  let name = match (present(&m, "name"), url_name) {
    (None, None) => "default",
    (None, Some(n)) => n,
    (Some(Value::String(a)), b) if !a.is_empty() && b.is_none_or(|b| b == a) => a.as_str(),
    (Some(Value::String(a)), Some(b)) if !a.is_empty() => {
      return Err(CacheError::type_error(format!("options.memory.name ({a:?}) and the url's store name ({b:?}) differ")))
    }
    _ => return Err(CacheError::type_error("options.memory.name must be a non-empty string")),
  };
  let bound = |field: &str| -> Result<u64> {
    match present(&m, field) {
      None => Ok(0),
      Some(Value::Number(n)) => {
        n.as_u64().ok_or_else(|| CacheError::range_error(format!("options.memory.{field} must be a whole number, 0 (no bound) or more, got {n}")))
      }
      Some(other) => Err(CacheError::type_error(format!("options.memory.{field} must be a number, got {other}"))),
    }
  };
  Ok(Some(memory::Config { name: name.to_string(), bounds: memory::Bounds { max_entries: bound("maxEntries")?, max_bytes: bound("maxBytes")? } }))
}

/// Refuses option names that are not in `names`, naming the nearest one.
fn known(o: &Map<String, Value>, names: &[&str], path: &str) -> Result<()> {
  for key in o.keys() {
    if names.contains(&key.as_str()) {
      continue;
    }
    if let Some((_, instead)) = FOREIGN.iter().find(|(name, _)| name == key) {
      return Err(CacheError::type_error(format!("{path}.{key} is not an option of this module (it is another Redis client's): {instead}")));
    }
    let lower = key.to_lowercase();
    let nearest =
      names.iter().map(|n| (strsim::damerau_levenshtein(&lower, &n.to_lowercase()), n)).filter(|(d, n)| *d <= 2.min(n.len() / 3)).min_by_key(|(d, _)| *d);
    return Err(CacheError::type_error(match nearest {
      Some((_, n)) => format!("{path}.{key} is not an option: did you mean {n}?"),
      None => format!("{path}.{key} is not an option (the options are {})", names.join(", ")),
    }));
  }
  Ok(())
}

/// `[{ host, port }]` (at least one, checked by the caller) as host and port.
fn nodes_of(nodes: &[Value], name: &str, default_port: u16) -> Result<Vec<(String, u16)>> {
  let mut out = Vec::with_capacity(nodes.len());
  for (i, node) in nodes.iter().enumerate() {
    let path = format!("{name}[{i}]");
    let node = node.as_object().ok_or_else(|| CacheError::type_error(format!("options.{path} must be an object {{ host, port }}")))?;
    known(node, NODE_OPTIONS, &format!("options.{path}"))?;
    let host = host_of(node, &format!("{path}.host"))?.unwrap_or_else(|| "localhost".into());
    let port = port_of(node, &format!("{path}.port"))?.unwrap_or(default_port);
    out.push((host, port));
  }
  Ok(out)
}

/// `sentinels`, `name`, `sentinelUsername`, `sentinelPassword` (and `db`),
/// or a redis+sentinel:// URL, whose host list and name win.
fn parse_sentinel(o: &Map<String, Value>, url: Option<(&str, &str)>, username: Option<&str>, password: Option<&str>, tls: Option<&Tls>) -> Result<Sentinel> {
  let sentinel_username = opt_string(o, "sentinelUsername")?;
  let sentinel_password = opt_string(o, "sentinelPassword")?;
  let mut db = opt_db(o)?;
  let (mut username, mut password) = (username.map(String::from), password.map(String::from));
  let (nodes, name) = match url {
    Some((url, what)) => {
      let u = sentinel::parse_url(url.trim()).map_err(|why| CacheError::type_error(format!("{what} ({}) is not a Sentinel URL: {why}", redact(url))))?;
      // Credentials in the URL win; the options fill in what it leaves out.
      username = u.username.or(username);
      password = u.password.or(password);
      db = u.db.or(db);
      (u.sentinels, u.name)
    }
    None => {
      let nodes = match o.get("sentinels") {
        Some(Value::Array(nodes)) if nodes.is_empty() => return Err(CacheError::range_error("options.sentinels must name at least one sentinel")),
        Some(Value::Array(nodes)) => nodes_of(nodes, "sentinels", 26379)?,
        _ => return Err(CacheError::type_error("options.sentinels must be an array of { host, port }")),
      };
      let name = match present(o, "name") {
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        None => return Err(CacheError::type_error("options.name must name the master group (sentinel monitor <name> …) when options.sentinels is given")),
        Some(_) => return Err(CacheError::type_error("options.name must be a non-empty string (the master group's name)")),
      };
      (nodes, name)
    }
  };
  let sentinels = nodes
    .into_iter()
    .map(|(host, port)| connection_info(ConnectionAddr::Tcp(host, port), 0, sentinel_username.as_deref(), sentinel_password.as_deref()))
    .collect::<Result<Vec<_>>>()?;
  let master = connection_info(addr(String::new(), 0, tls), db.unwrap_or(0), username.as_deref(), password.as_deref())?;
  Ok(Sentinel::new(name, sentinels, master))
}

/// `url` with any userinfo (`user:password@`) hidden, for messages.
pub fn redact(url: &str) -> String {
  let start = url.find("://").map_or(0, |i| i + 3);
  let end = url[start..].find(['/', '?', '#']).map_or(url.len(), |i| start + i);
  match url[start..end].rfind('@') {
    Some(at) => format!("{}***{}", &url[..start], &url[start + at..]),
    None => url.to_string(),
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

/// Bytes from which values are compressed when `compression` is `true`.
const COMPRESS_AT: usize = 1024;

/// `compression: true | false | { threshold }` (bytes).
fn parse_compression(o: &Map<String, Value>) -> Result<Option<usize>> {
  match present(o, "compression") {
    None | Some(Value::Bool(false)) => Ok(None),
    Some(Value::Bool(true)) => Ok(Some(COMPRESS_AT)),
    Some(Value::Object(c)) => match known(c, &["threshold"], "options.compression").and(Ok(present(c, "threshold")))? {
      None => Ok(Some(COMPRESS_AT)),
      Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n <= u64::from(u32::MAX)) => Ok(n.as_u64().map(|n| n as usize)),
      Some(v) => Err(CacheError::range_error(format!("options.compression.threshold must be a whole number of bytes, 0 or more; got {v}"))),
    },
    Some(_) => Err(CacheError::type_error("options.compression must be a boolean or an object { threshold }")),
  }
}

/// `tls: true` or `{ ca, cert, key, rejectUnauthorized }` (PEM text; the JS
/// face turns Buffers into text).
fn parse_tls(o: &Map<String, Value>) -> Result<Option<Tls>> {
  let t = match present(o, "tls") {
    None | Some(Value::Bool(false)) => return Ok(None),
    Some(Value::Bool(true)) => return Ok(Some(Tls { certs: None, reject_unauthorized: true, servername: None })),
    Some(Value::Object(t)) => t,
    Some(_) => return Err(CacheError::type_error("options.tls must be a boolean or an object { ca, cert, key, rejectUnauthorized, servername }")),
  };
  known(t, TLS_OPTIONS, "options.tls")?;
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
  let servername = match present(t, "servername") {
    None => None,
    Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
    Some(_) => return Err(CacheError::type_error("options.tls.servername must be a non-empty string")),
  };
  let certs = (ca.is_some() || client_tls.is_some()).then_some(TlsCertificates { client_tls, root_cert: ca });
  Ok(Some(Tls { certs, reject_unauthorized, servername }))
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

/// A redis://, rediss:// or unix:// URL (`what` names where it came from); `?db=`
/// wins over the path's db. Messages never echo the URL's userinfo.
fn parse_url(url: &str, what: &str, username: Option<&str>, password: Option<&str>, tls: Option<&Tls>) -> Result<ConnectionInfo> {
  let bad = |why: String| CacheError::type_error(format!("{what} ({}) {why}", redact(url)));
  let trimmed = url.trim();
  let scheme = trimmed.split("://").next().unwrap_or_default().to_ascii_lowercase();
  if !["redis", "rediss", "unix", "redis+unix"].contains(&scheme.as_str()) || !trimmed.contains("://") {
    return Err(bad("must start with redis://, rediss://, unix:// or redis+sentinel://".into()));
  }
  // redis-rs reads `rediss://…#insecure` as "accept any certificate": too
  // quiet for turning verification off.
  if scheme == "rediss" && trimmed.contains('#') {
    return Err(bad("has a fragment (#insecure?), which is not accepted: to skip certificate checks say tls: { rejectUnauthorized: false }".into()));
  }
  let mut info = trimmed.into_connection_info().map_err(|e| bad(format!("is not a valid Redis URL: {e}")))?;
  let parsed = url::Url::parse(trimmed).map_err(|e| bad(format!("is not a valid URL: {e}")))?;
  for (key, value) in parsed.query_pairs() {
    match &*key {
      "db" => {
        let db = value.parse::<i64>().ok().filter(|d| *d >= 0).ok_or_else(|| bad(format!("has db={value:?}, not a database number")))?;
        info = info.clone().set_redis_settings(info.redis_settings().clone().set_db(db));
      }
      other => return Err(bad(format!("has an unknown query parameter {other:?} (only db is read)"))),
    }
  }
  if matches!(info.addr(), ConnectionAddr::Unix(_)) && tls.is_some() {
    return Err(bad("names a unix socket: options.tls does not apply".into()));
  }
  // The tls option applies to a redis:// URL too, and sets rejectUnauthorized.
  if let Some(t) = tls {
    let (host, port) = match info.addr() {
      ConnectionAddr::Tcp(h, p) | ConnectionAddr::TcpTls { host: h, port: p, .. } => (h.clone(), *p),
      other => return Err(bad(format!("names an unsupported address {other}"))),
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

fn opt_db(o: &Map<String, Value>) -> Result<Option<i64>> {
  opt_integer(o, "db", 0, i64::from(i32::MAX))
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

/// The longest TTL in seconds: the expiry time (now + ttl, in ms) stays an
/// exact integer in a double, as the tag scripts (Lua) compute it; far under
/// what Redis takes (2^63 - 1 ms). lib/args.js has the same bound.
const MAX_TTL_SECONDS: f64 = 9e12;

/// A TTL in seconds: finite, not negative (0 = no expiry), at most MAX_TTL_SECONDS.
fn opt_seconds(o: &Map<String, Value>, name: &str) -> Result<Option<f64>> {
  match opt_number(o, name)? {
    Some(n) if n < 0.0 => Err(CacheError::range_error(format!("options.{name} must be 0 or more seconds, got {n}"))),
    Some(n) if n > MAX_TTL_SECONDS => {
      Err(CacheError::range_error(format!("options.{name} must be at most {MAX_TTL_SECONDS} seconds (about 285,000 years), got {n}")))
    }
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
      _ => panic!("expected standalone"),
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
      (r#"{"defaultTTL":1e16}"#, ArgKind::Range, "options.defaultTTL must be at most 9000000000000 seconds"),
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
      _ => panic!("expected cluster"),
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
  fn unknown_options_are_refused_by_name() {
    let message = |json: &str| {
      let err = Options::parse(json, no_env).err().unwrap_or_else(|| panic!("{json} should fail"));
      assert_eq!((err.code, err.arg), (Code::InvalidArg, Some(ArgKind::Type)), "{json}");
      err.message
    };
    assert_eq!(message(r#"{"keyprefix":"x"}"#), "options.keyprefix is not an option: did you mean keyPrefix?");
    assert_eq!(message(r#"{"comandTimeout":1}"#), "options.comandTimeout is not an option: did you mean commandTimeout?");
    assert!(
      message(r#"{"lazyConnect":true}"#).starts_with("options.lazyConnect is not an option of this module (it is another Redis client's): nothing connects")
    );
    assert!(message(r#"{"colour":1}"#).contains("options.colour is not an option (the options are host, port,"));
    assert!(message(r#"{"tls":{"servrname":"x"}}"#).contains("options.tls.servrname is not an option: did you mean servername?"));
    assert!(
      message(r#"{"enableCluster":true,"clusterNodes":[{"host":"a","prot":1}]}"#).contains("options.clusterNodes[0].prot is not an option: did you mean port?")
    );
    // The transport's options are known (their transport is another file's).
    Options::parse(r#"{"keepAlive":1000,"path":"/tmp/redis.sock"}"#, no_env).unwrap();
    Options::parse(r#"{"tls":{"servername":"x"}}"#, no_env).unwrap();
  }

  #[test]
  fn where_the_server_is_named() {
    let env = |k: &str| match k {
      "REDIS_URL" => Some("redis://:envpw@10.0.0.1:7001/5".to_string()),
      "REDIS_HOST" => Some("10.0.0.2".to_string()),
      "REDIS_PASSWORD" => Some("pw".to_string()),
      "REDIS_DB" => Some("3".to_string()),
      _ => None,
    };
    // No host, port or url: REDIS_URL, over every other REDIS_* variable.
    let o = Options::parse("{}", env).unwrap();
    assert_eq!((addr_of(standalone(&o)), standalone(&o).redis_settings().db()), ("10.0.0.1:7001".into(), 5));
    assert_eq!(standalone(&o).redis_settings().password(), Some("envpw"));
    // host or port: REDIS_URL is not read; the other variables fill in.
    let o = Options::parse(r#"{"port":7002}"#, env).unwrap();
    assert_eq!((addr_of(standalone(&o)), standalone(&o).redis_settings().password()), ("10.0.0.2:7002".into(), Some("pw")));
    // options.url: no REDIS_* variable applies, REDIS_PASSWORD included.
    let o = Options::parse(r#"{"url":"redis://127.0.0.1:7003"}"#, env).unwrap();
    let info = standalone(&o);
    assert_eq!((addr_of(info), info.redis_settings().password(), info.redis_settings().db()), ("127.0.0.1:7003".into(), None, 0));
    // The password option still fills in for a URL without one.
    let o = Options::parse(r#"{"url":"redis://127.0.0.1:7003","password":"opt"}"#, env).unwrap();
    assert_eq!(standalone(&o).redis_settings().password(), Some("opt"));
  }

  #[test]
  fn url_forms() {
    let db = |url: &str| standalone(&Options::parse(&format!(r#"{{"url":"{url}"}}"#), no_env).unwrap()).redis_settings().db();
    assert_eq!(db("redis://h:1?db=3"), 3);
    assert_eq!(db("redis://h:1/2?db=4"), 4);
    assert_eq!(db(" Redis://h:1/6 "), 6);
    for bad in ["redis://h?db=x", "redis://h?protocol=resp3", "http://:pw@h", "h:1"] {
      let err = Options::parse(&format!(r#"{{"url":"{bad}"}}"#), no_env).err().unwrap_or_else(|| panic!("{bad} should fail"));
      assert!(err.message.starts_with("options.url"), "{bad}: {}", err.message);
    }
  }

  #[test]
  fn secrets_never_in_messages() {
    for url in [
      "Redis://:s3cret@h:1/x",
      "redis+tls://u:s3cret@h",
      " redis://:s3cret@h:1/x",
      "http://u:s3cret@h/",
      ":s3cret@h",
      "redis://:s3cret@h?db=x",
      "redis+sentinel://:s3cret@h",
    ] {
      let json = serde_json::json!({ "url": url }).to_string();
      let err = Options::parse(&json, no_env).err().unwrap_or_else(|| panic!("{url} should fail"));
      assert!(!err.message.contains("s3cret"), "{url}: {}", err.message);
      assert!(err.message.contains("***"), "{url}: {}", err.message);
    }
    let env = |k: &str| (k == "REDIS_URL").then(|| "rediss+x://:s3cret@h".to_string());
    let err = Options::parse("{}", env).err().unwrap();
    assert!(err.message.starts_with("REDIS_URL") && !err.message.contains("s3cret"), "{}", err.message);
    assert_eq!(redact("redis://user:pw@h:1/0?x=a@b"), "redis://***@h:1/0?x=a@b");
    assert_eq!(redact("redis://h:1/0"), "redis://h:1/0");
  }

  fn sentinel_of(o: &Options) -> &Sentinel {
    match &o.target {
      Target::Sentinel(s) => s,
      _ => panic!("expected sentinel"),
    }
  }

  #[test]
  fn sentinel_options() {
    let o = Options::parse(
      r#"{"sentinels":[{"host":"127.0.0.1","port":26379},{"host":"s2"}],"name":"mymaster","password":"m","sentinelPassword":"s","db":2,"tls":true}"#,
      no_env,
    )
    .unwrap();
    let s = sentinel_of(&o);
    assert_eq!(s.name, "mymaster");
    assert_eq!(s.sentinels.iter().map(addr_of).collect::<Vec<_>>(), ["127.0.0.1:26379", "s2:26379"]);
    assert_eq!(s.sentinels[0].redis_settings().password(), Some("s"));
    assert_eq!((s.master.redis_settings().password(), s.master.redis_settings().db()), (Some("m"), 2));
    assert!(matches!(s.master.addr(), ConnectionAddr::TcpTls { .. }));
    let o = Options::parse(r#"{"url":"redis+sentinel://:pw@127.0.0.1:1,127.0.0.1:2/grp/3"}"#, no_env).unwrap();
    let s = sentinel_of(&o);
    assert_eq!((s.name.as_str(), s.sentinels.len(), s.master.redis_settings().db()), ("grp", 2, 3));
    assert_eq!((s.master.redis_settings().password(), s.sentinels[0].redis_settings().password()), (Some("pw"), None));
    let env = |k: &str| (k == "REDIS_URL").then(|| "redis+sentinel://h/g".to_string());
    assert_eq!(sentinel_of(&Options::parse("{}", env).unwrap()).name, "g");
  }

  #[test]
  fn bad_sentinel_options() {
    let cases = [
      (r#"{"sentinels":[],"name":"m"}"#, ArgKind::Range, "options.sentinels must name at least one"),
      (r#"{"sentinels":{"host":"h"},"name":"m"}"#, ArgKind::Type, "options.sentinels must be an array"),
      (r#"{"sentinels":[{"host":"h"}]}"#, ArgKind::Type, "options.name must name the master group"),
      (r#"{"sentinels":[{"host":"h"}],"name":""}"#, ArgKind::Type, "options.name must be a non-empty string"),
      (r#"{"sentinels":[{"host":"h","port":0}],"name":"m"}"#, ArgKind::Range, "options.sentinels[0].port"),
      (r#"{"sentinels":["h:1"],"name":"m"}"#, ArgKind::Type, "options.sentinels[0] must be an object"),
      (r#"{"name":"m"}"#, ArgKind::Type, "options.name is a Sentinel option"),
      (r#"{"sentinelPassword":"x"}"#, ArgKind::Type, "options.sentinelPassword is a Sentinel option"),
      (r#"{"sentinels":[{"host":"h"}],"name":"m","sentinelPassword":5}"#, ArgKind::Type, "options.sentinelPassword must be a string"),
      (r#"{"sentinels":[{"host":"h"}],"name":"m","enableCluster":true,"clusterNodes":[{"host":"h"}]}"#, ArgKind::Type, "exclude each other"),
      (r#"{"url":"redis+sentinel://h"}"#, ArgKind::Type, "must name the master group"),
      (r#"{"connectionName":"a b"}"#, ArgKind::Range, "options.connectionName"),
      (r#"{"connectionName":5}"#, ArgKind::Type, "options.connectionName must be a string"),
      (r#"{"sentinels":[{"host":"h"}],"name":"m","sentinelUsername":[]}"#, ArgKind::Type, "options.sentinelUsername must be a string"),
      (r#"{"sentinels":[{"host":"h"}],"name":7}"#, ArgKind::Type, "options.name must be a non-empty string"),
    ];
    for (json, kind, text) in cases {
      let err = Options::parse(json, no_env).err().unwrap_or_else(|| panic!("{json} should fail"));
      assert_eq!(err.arg, Some(kind), "{json}: {}", err.message);
      assert!(err.message.contains(text), "{json}: {}", err.message);
    }
  }

  #[test]
  fn transport_options() {
    let o = Options::parse("{}", no_env).unwrap();
    assert_eq!(o.keep_alive, Some(crate::transport::DEFAULT_KEEP_ALIVE));
    assert_eq!(Options::parse(r#"{"keepAlive":false}"#, no_env).unwrap().keep_alive, None);
    assert_eq!(Options::parse(r#"{"keepAlive":1500}"#, no_env).unwrap().keep_alive, Some(Duration::from_secs(2)));
    let o = Options::parse(r#"{"path":"/tmp/r.sock","db":2}"#, no_env).unwrap();
    assert!(matches!(standalone(&o).addr(), ConnectionAddr::Unix(p) if p.to_str() == Some("/tmp/r.sock")));
    assert_eq!(standalone(&o).redis_settings().db(), 2);
    let o = Options::parse(r#"{"url":"unix:///tmp/r.sock"}"#, no_env).unwrap();
    assert!(matches!(standalone(&o).addr(), ConnectionAddr::Unix(_)));
    let o = Options::parse(r#"{"tls":{"servername":"cache.example.com"}}"#, no_env).unwrap();
    assert_eq!(o.tls_servername.as_deref(), Some("cache.example.com"));
    for bad in [r#"{"url":"rediss://h/#insecure"}"#, r#"{"path":"/x","tls":true}"#, r#"{"keepAlive":"1s"}"#, r#"{"tls":{"servername":""}}"#] {
      let err = Options::parse(bad, no_env).err().unwrap_or_else(|| panic!("{bad} should fail"));
      assert_eq!(err.arg, Some(ArgKind::Type), "{bad}");
    }
  }

  #[test]
  fn ttl_rounding() {
    assert_eq!(seconds_to_ms(0.0), 0);
    assert_eq!(seconds_to_ms(1.5), 1500);
    assert_eq!(seconds_to_ms(0.0001), 1);
  }
}
