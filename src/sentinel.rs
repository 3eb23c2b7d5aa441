//! Redis Sentinel: the master of a group is looked up through the sentinels
//! on every (re)connect, so the reconnect after a failover reaches the
//! promoted replica. The data connection is the ordinary standalone one to
//! the address found.
//!
//! redis-rs has a Sentinel client, but it waits on the sentinels in list
//! order with no timeout of its own (one that accepts and never answers
//! holds up the lookup) and checks the master over a second connection that
//! lacks the TLS certificates. The lookup is one command, so it is asked here
//! directly: each sentinel in turn within a share of connectTimeout, starting
//! with the one that answered last (as ioredis does).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::{AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, Value};

use crate::connection::Connection;
use crate::error::{CacheError, Code, Result};
use crate::multiplex::OnLost;
use crate::options::{addr_of, Options, Target};

/// A master group behind sentinels.
#[derive(Clone)]
pub struct Sentinel {
  pub name: String,
  pub sentinels: Vec<ConnectionInfo>,
  /// The master's credentials, db and TLS; its host and port are looked up.
  pub master: ConnectionInfo,
  /// The sentinel to ask first: the one that answered last.
  first: Arc<AtomicUsize>,
  /// The master found last (`host:port`), for messages and getStats().
  current: Arc<Mutex<Option<String>>>,
}

impl Sentinel {
  pub fn new(name: String, sentinels: Vec<ConnectionInfo>, master: ConnectionInfo) -> Sentinel {
    Sentinel { name, sentinels, master, first: Arc::default(), current: Arc::default() }
  }

  /// The master in use (`host:port`), or the group and its sentinels before one was found.
  pub fn describe(&self) -> String {
    match &*self.current.lock().unwrap() {
      Some(addr) => addr.clone(),
      None => format!("master {:?} via sentinels {}", self.name, self.sentinels.iter().map(addr_of).collect::<Vec<_>>().join(",")),
    }
  }

  /// Looks the master up and opens the standalone connection to it, all
  /// within connectTimeout; a node that turns out not to be a master (the
  /// sentinels have not finished a failover) is refused.
  pub async fn open(&self, opts: &Options, on_lost: OnLost) -> Result<Connection> {
    let started = Instant::now();
    let (host, port) = self.lookup(opts.connect_timeout).await?;
    let addr = format!("{host}:{port}");
    let mut master = opts.clone();
    master.target = Target::Standalone(self.master_at(host, port));
    master.connect_timeout = opts.connect_timeout.saturating_sub(started.elapsed()).max(Duration::from_millis(1));
    let conn = Connection::open_direct(&master, on_lost).await?;
    let role = conn.run(vec![redis::cmd("ROLE")]).await.pop().expect("one outcome per command");
    let refused = match role {
      Ok(Value::Array(items)) => match items.first() {
        Some(Value::BulkString(role)) if role == b"master" => None,
        Some(Value::BulkString(role)) => Some(String::from_utf8_lossy(role).into_owned()),
        _ => Some("unknown".into()),
      },
      // A user whose ACL forbids ROLE: trust the sentinels (a demoted master
      // still shows itself by READONLY replies, see engine.rs).
      Err(e) if e.code == Code::NoPerm => None,
      Err(e) => {
        conn.close();
        return Err(e);
      }
      Ok(_) => Some("unknown".into()),
    };
    if let Some(role) = refused {
      conn.close();
      return Err(CacheError::new(
        Code::Connection,
        format!("{addr}, named by the sentinels as master {:?}, is a {role} (a failover is under way)", self.name),
      ));
    }
    *self.current.lock().unwrap() = Some(addr);
    Ok(conn)
  }

  /// Asks each sentinel in turn for the master's address.
  async fn lookup(&self, budget: Duration) -> Result<(String, u16)> {
    let n = self.sentinels.len();
    let share = budget / n as u32;
    let start = self.first.load(Ordering::Relaxed) % n;
    let mut problems = Vec::with_capacity(n);
    for k in 0..n {
      let i = (start + k) % n;
      let info = &self.sentinels[i];
      let addr = addr_of(info);
      match tokio::time::timeout(share, ask(info, &self.name)).await {
        Ok(Ok(Some(master))) => {
          self.first.store(i, Ordering::Relaxed);
          return Ok(master);
        }
        Ok(Ok(None)) => problems.push(CacheError::new(Code::Connection, format!("{addr} knows no master named {:?}", self.name))),
        Ok(Err(e)) => problems.push(CacheError::from_redis(&e, &addr)),
        Err(_) => problems.push(CacheError::timeout(&format!("asking sentinel {addr}"), share.as_millis() as u64)),
      }
    }
    // Auth problems are the ones to fix first; timeouts only when nothing else went wrong.
    let code = if problems.iter().any(|p| p.code == Code::Auth) {
      Code::Auth
    } else if problems.iter().all(|p| p.code == Code::Timeout) {
      Code::Timeout
    } else {
      Code::Connection
    };
    let why = problems.into_iter().map(|p| p.message).collect::<Vec<_>>().join("; ");
    Err(CacheError::new(code, format!("no sentinel named the master {:?}: {why}", self.name)))
  }

  /// The master found last, to open another connection to (getOrSet's
  /// wake-ups, src/wake.rs); None before the first lookup.
  pub fn master_now(&self) -> Option<ConnectionInfo> {
    let current = self.current.lock().unwrap().clone()?;
    let (host, port) = current.rsplit_once(':')?;
    Some(self.master_at(host.to_string(), port.parse().ok()?))
  }

  fn master_at(&self, host: String, port: u16) -> ConnectionInfo {
    let addr = match self.master.addr() {
      ConnectionAddr::TcpTls { insecure, .. } => ConnectionAddr::TcpTls { host, port, insecure: *insecure, tls_params: None },
      _ => ConnectionAddr::Tcp(host, port),
    };
    self.master.clone().set_addr(addr)
  }
}

/// One sentinel's answer: the master's address, or None when it does not know the name.
async fn ask(sentinel: &ConnectionInfo, name: &str) -> redis::RedisResult<Option<(String, u16)>> {
  let client = Client::open(sentinel.clone())?;
  let config = AsyncConnectionConfig::new().set_connection_timeout(None).set_response_timeout(None);
  let mut conn = client.get_multiplexed_async_connection_with_config(&config).await?;
  redis::cmd("SENTINEL").arg("GET-MASTER-ADDR-BY-NAME").arg(name).query_async(&mut conn).await
}

/// What a `redis+sentinel://[user:password@]host[:port][,host[:port]…]/name[/db]`
/// URL says; the userinfo is the master's, as in a redis:// URL.
#[derive(Debug, PartialEq)]
pub struct SentinelUrl {
  pub sentinels: Vec<(String, u16)>,
  pub name: String,
  pub db: Option<i64>,
  pub username: Option<String>,
  pub password: Option<String>,
}

pub const SCHEME: &str = "redis+sentinel://";

/// Parses a sentinel URL; errors say what is wrong without echoing the URL
/// (it may hold a password).
pub fn parse_url(url: &str) -> std::result::Result<SentinelUrl, String> {
  let rest = url.get(..SCHEME.len()).filter(|s| s.eq_ignore_ascii_case(SCHEME)).map(|_| &url[SCHEME.len()..]).ok_or("it must start with redis+sentinel://")?;
  let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
  let (authority, tail) = rest.split_at(end);
  let (userinfo, hosts) = match authority.rsplit_once('@') {
    Some((userinfo, hosts)) => (Some(userinfo), hosts),
    None => (None, authority),
  };
  // The url crate reads the userinfo (percent-decoded), the path and the query
  // once the host list is out of the way.
  let parsed = url::Url::parse(&format!("redis://{}sentinels{tail}", userinfo.map(|u| format!("{u}@")).unwrap_or_default()))
    .map_err(|e| format!("it is not a valid URL ({e})"))?;
  let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8().map(|s| s.into_owned()).map_err(|_| "its userinfo is not UTF-8".to_string());
  let username = Some(parsed.username()).filter(|u| !u.is_empty()).map(decode).transpose()?;
  let password = parsed.password().map(decode).transpose()?;
  let mut sentinels = Vec::new();
  for host in hosts.split(',') {
    let (h, port) = match host.rsplit_once(':') {
      Some((h, p)) if !h.ends_with(']') || host.starts_with('[') => {
        (h, p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| format!("sentinel port {p:?} is not a port number"))?)
      }
      _ => (host, 26379),
    };
    let h = h.trim_start_matches('[').trim_end_matches(']');
    if h.is_empty() {
      return Err("it must name at least one sentinel host (host:port,host:port)".into());
    }
    sentinels.push((h.to_string(), port));
  }
  let mut path = parsed.path_segments().into_iter().flatten().filter(|s| !s.is_empty());
  let name = path.next().map(decode).transpose()?.ok_or("it must name the master group after the hosts (/mymaster)")?;
  let mut db = path.next().map(|d| d.parse::<i64>().ok().filter(|d| *d >= 0).ok_or(format!("{d:?} is not a database number"))).transpose()?;
  if path.next().is_some() {
    return Err("its path must be /name or /name/db".into());
  }
  for (key, value) in parsed.query_pairs() {
    match &*key {
      "db" => db = Some(value.parse::<i64>().ok().filter(|d| *d >= 0).ok_or(format!("db={value:?} is not a database number"))?),
      other => return Err(format!("unknown query parameter {other:?} (only db is read)")),
    }
  }
  Ok(SentinelUrl { sentinels, name, db, username, password })
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn urls() {
    let u = parse_url("redis+sentinel://user:p%40ss@127.0.0.1:26379,[::1]:26380,sentinel-3/mymaster/2").unwrap();
    assert_eq!(u.sentinels, [("127.0.0.1".into(), 26379), ("::1".into(), 26380), ("sentinel-3".into(), 26379)]);
    assert_eq!((u.name.as_str(), u.db, u.username.as_deref(), u.password.as_deref()), ("mymaster", Some(2), Some("user"), Some("p@ss")));
    let u = parse_url("redis+sentinel://:pw@h:1/m?db=4").unwrap();
    assert_eq!((u.name.as_str(), u.db, u.username, u.password.as_deref()), ("m", Some(4), None, Some("pw")));
    let u = parse_url("Redis+Sentinel://h/m").unwrap();
    assert_eq!((u.sentinels, u.db, u.password), (vec![("h".into(), 26379)], None, None));
    for bad in
      ["redis://h/m", "redis+sentinel://h:1", "redis+sentinel://h:x/m", "redis+sentinel://,h/m", "redis+sentinel://h/m/x", "redis+sentinel://h/m?foo=1"]
    {
      let err = parse_url(bad).err().unwrap_or_else(|| panic!("{bad} should fail"));
      assert!(!err.contains("redis+sentinel://h"), "{bad}: {err}");
    }
  }
}
