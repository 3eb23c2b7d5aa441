//! How a connection reaches its server: TCP (keepalive on) or a unix socket,
//! optionally TLS (rustls with the ring provider). The socket is opened and
//! the TLS handshake run on tokio; then the socket and the TLS session are
//! handed to the multiplexed core (src/multiplex.rs), which drives the TLS
//! records itself on whichever thread reads or writes.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use redis::{ConnectionAddr, TlsCertificates};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::{CacheError, Code, Result};
use crate::options::{Options, Target};

/// What a connection needs besides the server's address.
#[derive(Clone)]
pub struct Transport {
  pub tls: Option<Tls>,
  /// Idle time before the first TCP keepalive probe (and between probes);
  /// None: no keepalive.
  pub keep_alive: Option<Duration>,
}

#[derive(Clone)]
pub struct Tls {
  pub config: Arc<ClientConfig>,
  /// The name sent (SNI) and verified; None: the host connected to.
  pub servername: Option<String>,
}

impl Default for Transport {
  fn default() -> Self {
    Transport { tls: None, keep_alive: Some(DEFAULT_KEEP_ALIVE) }
  }
}

pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(5);

/// One instance's TLS client config, shared by its clones of the options.
pub type ConfigCache = Arc<std::sync::OnceLock<Result<Arc<ClientConfig>>>>;

impl Transport {
  /// The transport the options ask for: TLS when the target says so (a
  /// `rediss://` URL or the `tls` option), with their certificates.
  pub fn from_options(opts: &Options) -> Result<Transport> {
    let addr = match &opts.target {
      Target::Standalone(info) => Some(info.addr()),
      Target::Cluster(nodes) => nodes.first().map(|n| n.addr()),
      // Sentinel comes back with the master as a standalone target.
      Target::Sentinel(_) => None,
    };
    let tls = match addr {
      Some(ConnectionAddr::TcpTls { insecure, .. }) => {
        // Every target of one instance has the same `insecure` (the tls option's).
        let config = opts.tls_config.get_or_init(|| client_config(opts.tls.as_ref(), *insecure).map(Arc::new)).clone()?;
        Some(Tls { config, servername: opts.tls_servername.clone() })
      }
      _ => None,
    };
    Ok(Transport { tls, keep_alive: opts.keep_alive })
  }
}

/// A rustls client config from PEM certificates: `ca` replaces the system's
/// roots; `insecure` accepts any server certificate (rejectUnauthorized: false).
pub fn client_config(certs: Option<&TlsCertificates>, insecure: bool) -> Result<ClientConfig> {
  let bad = |what: &str, e: &dyn std::fmt::Display| CacheError::type_error(format!("options.tls.{what}: {e}"));
  let provider = Arc::new(rustls::crypto::ring::default_provider());
  let mut roots = RootCertStore::empty();
  match certs.and_then(|c| c.root_cert.as_deref()) {
    Some(pem) => {
      for cert in CertificateDer::pem_slice_iter(pem) {
        roots.add(cert.map_err(|e| bad("ca", &e))?).map_err(|e| bad("ca", &e))?;
      }
      if roots.is_empty() {
        return Err(bad("ca", &"no certificate in the PEM text"));
      }
    }
    None if !insecure => {
      let native = rustls_native_certs::load_native_certs();
      roots.add_parsable_certificates(native.certs);
      if roots.is_empty() {
        let why = native.errors.first().map(|e| e.to_string()).unwrap_or_else(|| "none found".into());
        return Err(CacheError::new(Code::Connection, format!("no trusted root certificates on this system ({why}): give options.tls.ca")));
      }
    }
    None => {}
  }
  let builder =
    ClientConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().map_err(|e| bad("ca", &e))?.with_root_certificates(roots);
  let mut config = match certs.and_then(|c| c.client_tls.as_ref()) {
    Some(client) => {
      let chain = CertificateDer::pem_slice_iter(&client.client_cert).collect::<std::result::Result<Vec<_>, _>>().map_err(|e| bad("cert", &e))?;
      let key = PrivateKeyDer::from_pem_slice(&client.client_key).map_err(|e| bad("key", &e))?;
      builder.with_client_auth_cert(chain, key).map_err(|e| bad("cert", &e))?
    }
    None => builder.with_no_client_auth(),
  };
  if insecure {
    config.dangerous().set_certificate_verifier(Arc::new(AcceptAny(provider)));
  }
  Ok(config)
}

/// rejectUnauthorized: false. Signatures are still checked, so the session
/// is at least with the holder of the certificate shown.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
  fn verify_server_cert(
    &self,
    _: &CertificateDer<'_>,
    _: &[CertificateDer<'_>],
    _: &ServerName<'_>,
    _: &[u8],
    _: UnixTime,
  ) -> std::result::Result<ServerCertVerified, rustls::Error> {
    Ok(ServerCertVerified::assertion())
  }

  fn verify_tls12_signature(
    &self,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
  ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
    rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
  }

  fn verify_tls13_signature(
    &self,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
  ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
    rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
  }

  fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
    self.0.signature_verification_algorithms.supported_schemes()
  }
}

/// The socket under a connection: non-blocking once opened.
pub enum Sock {
  Tcp(TcpStream),
  #[cfg(unix)]
  Unix(std::os::unix::net::UnixStream),
}

impl Sock {
  pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
    match self {
      Sock::Tcp(s) => (&*s).read(buf),
      #[cfg(unix)]
      Sock::Unix(s) => (&*s).read(buf),
    }
  }

  pub fn write(&self, buf: &[u8]) -> io::Result<usize> {
    match self {
      Sock::Tcp(s) => (&*s).write(buf),
      #[cfg(unix)]
      Sock::Unix(s) => (&*s).write(buf),
    }
  }

  fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    match self {
      Sock::Tcp(s) => (&*s).write_vectored(bufs),
      #[cfg(unix)]
      Sock::Unix(s) => (&*s).write_vectored(bufs),
    }
  }

  pub fn shutdown(&self) {
    let _ = match self {
      Sock::Tcp(s) => s.shutdown(Shutdown::Both),
      #[cfg(unix)]
      Sock::Unix(s) => s.shutdown(Shutdown::Both),
    };
  }

  pub fn try_clone(&self) -> io::Result<Sock> {
    Ok(match self {
      Sock::Tcp(s) => Sock::Tcp(s.try_clone()?),
      #[cfg(unix)]
      Sock::Unix(s) => Sock::Unix(s.try_clone()?),
    })
  }

  /// The error that ended the connection (SO_ERROR), if any.
  pub fn take_error(&self) -> Option<io::Error> {
    match self {
      Sock::Tcp(s) => s.take_error().ok().flatten(),
      #[cfg(unix)]
      Sock::Unix(s) => s.take_error().ok().flatten(),
    }
  }

  /// A `Write` over the socket, for rustls to write its records into.
  pub fn writer(&self) -> SockWriter<'_> {
    SockWriter(self)
  }
}

#[cfg(unix)]
impl std::os::fd::AsRawFd for Sock {
  fn as_raw_fd(&self) -> std::os::fd::RawFd {
    match self {
      Sock::Tcp(s) => s.as_raw_fd(),
      Sock::Unix(s) => s.as_raw_fd(),
    }
  }
}

pub struct SockWriter<'a>(&'a Sock);

impl Write for SockWriter<'_> {
  fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
    self.0.write(buf)
  }

  // rustls hands over its queued records at once: one system call.
  fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    self.0.write_vectored(bufs)
  }

  fn flush(&mut self) -> io::Result<()> {
    Ok(())
  }
}

/// An open socket, with its TLS session when the transport has TLS.
pub type Opened = (Sock, Option<ClientConnection>);

/// Connects to `host:port` (TCP_NODELAY, keepalive) and runs the TLS
/// handshake. Errors name `host:port`.
pub async fn open_tcp(host: &str, port: u16, transport: &Transport) -> Result<Opened> {
  let addr = format!("{host}:{port}");
  let broken = |e: io::Error| CacheError::new(Code::Connection, format!("{addr}: {}", io_why(&e)));
  let stream = tokio::net::TcpStream::connect((host, port)).await.map_err(broken)?;
  stream.set_nodelay(true).map_err(broken)?;
  if let Some(idle) = transport.keep_alive {
    let keepalive = socket2::TcpKeepalive::new().with_time(idle);
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd", target_os = "windows"))]
    let keepalive = keepalive.with_interval(idle);
    socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive).map_err(broken)?;
  }
  match &transport.tls {
    None => Ok((Sock::Tcp(stream.into_std().map_err(broken)?), None)),
    Some(tls) => {
      let (stream, session) = handshake(stream, tls, host, &addr).await?;
      Ok((Sock::Tcp(stream.into_std().map_err(broken)?), Some(session)))
    }
  }
}

/// Connects to the unix socket at `path`.
#[cfg(unix)]
pub async fn open_unix(path: &Path, transport: &Transport) -> Result<Opened> {
  let addr = path.display().to_string();
  let broken = |e: io::Error| CacheError::new(Code::Connection, format!("{addr}: {}", io_why(&e)));
  let stream = tokio::net::UnixStream::connect(path).await.map_err(broken)?;
  match &transport.tls {
    None => Ok((Sock::Unix(stream.into_std().map_err(broken)?), None)),
    Some(tls) => {
      let (stream, session) = handshake(stream, tls, "localhost", &addr).await?;
      Ok((Sock::Unix(stream.into_std().map_err(broken)?), Some(session)))
    }
  }
}

#[cfg(not(unix))]
pub async fn open_unix(path: &Path, _: &Transport) -> Result<Opened> {
  Err(CacheError::type_error(format!("unix sockets are not supported on this platform ({})", path.display())))
}

/// The TLS handshake on tokio; the session then goes on without tokio-rustls.
async fn handshake<S>(stream: S, tls: &Tls, host: &str, addr: &str) -> Result<(S, ClientConnection)>
where
  S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
  let name = tls.servername.as_deref().unwrap_or(host);
  let name = ServerName::try_from(name.to_string()).map_err(|e| CacheError::type_error(format!("options.tls.servername: {e} ({name:?})")))?;
  let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
  let stream = connector.connect(name, stream).await.map_err(|e| CacheError::new(Code::Connection, format!("{addr}: TLS handshake failed: {}", io_why(&e))))?;
  let (stream, mut session) = stream.into_inner();
  // The core queues whole batches: no limit on what waits to be sent.
  session.set_buffer_limit(None);
  Ok((stream, session))
}

/// What an I/O error means for a connection, in words.
pub fn io_why(e: &io::Error) -> String {
  use io::ErrorKind::*;
  match e.kind() {
    ConnectionReset => "connection reset".into(),
    ConnectionAborted => "connection aborted".into(),
    ConnectionRefused => "connection refused".into(),
    BrokenPipe => "broken pipe (the server closed the connection)".into(),
    UnexpectedEof => "closed by the server".into(),
    TimedOut => "timed out (no answer to TCP keepalive or retransmissions)".into(),
    NotFound => "no such socket".into(),
    _ => match e.get_ref() {
      // rustls's errors arrive wrapped in an io::Error by tokio-rustls.
      Some(inner) => inner.to_string(),
      None => e.to_string(),
    },
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[tokio::test]
  async fn keepalive_is_set_on_the_socket_unless_turned_off() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sock, _) = open_tcp("127.0.0.1", port, &Transport::default()).await.unwrap();
    let Sock::Tcp(tcp) = &sock else { panic!("a TCP socket") };
    let sock2 = socket2::SockRef::from(tcp);
    assert!(sock2.keepalive().unwrap());
    assert_eq!(sock2.tcp_keepalive_time().unwrap(), DEFAULT_KEEP_ALIVE);
    assert!(sock2.tcp_nodelay().unwrap());
    let off = Transport { keep_alive: None, ..Transport::default() };
    let (sock, _) = open_tcp("127.0.0.1", port, &off).await.unwrap();
    let Sock::Tcp(tcp) = &sock else { panic!("a TCP socket") };
    assert!(!socket2::SockRef::from(tcp).keepalive().unwrap());
  }

  #[test]
  fn io_errors_in_words() {
    assert_eq!(io_why(&io::ErrorKind::ConnectionReset.into()), "connection reset");
    assert_eq!(io_why(&io::Error::new(io::ErrorKind::InvalidData, rustls::Error::DecryptError)), "cannot decrypt peer's message");
  }
}
