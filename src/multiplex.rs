//! One multiplexed connection to one server (TCP or a unix socket, plain or
//! TLS), built for the JS thread.
//!
//! Crossing to a tokio thread for every batch costs a thread wake-up, the
//! biggest cost of a cache call on a small machine. So a batch is encoded
//! (and, with TLS, encrypted) and written to the socket by the caller (the
//! JS thread) when the socket takes it. Bytes the socket does not take at
//! once wait in a buffer that a writer task flushes, so the JS thread never
//! blocks and order is kept.
//!
//! Replies are read (decrypted) and parsed (redis-rs's codec) by whoever
//! `pump`s, and matched to batches in order. At first a tokio reader task
//! does; once the JS thread's own loop watches the socket (src/js_poll.rs),
//! the JS thread does, and the tokio reader drops its registration, so a
//! reply wakes one thread, not two. The reader keeps the command timeouts
//! either way: it wakes for the oldest deadline (and then reads what a busy
//! JS thread has not).
//!
//! Everything that changes state (the queue, the parser, the TLS session)
//! lives under one lock, so any thread may write or read.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use redis::{Value, ValueCodec};
use rustls::ClientConnection;
use tokio::io::Interest;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::codec::Decoder;

use crate::error::{CacheError, Code, Result};
use crate::transport::{io_why, open_tcp, open_unix, Opened, Sock, Transport};

/// Completes a batch: one value per command, in order, or the error that
/// failed the whole batch.
pub type Done = Box<dyn FnOnce(Result<Vec<Value>>) + Send>;

/// Told once when the connection breaks.
pub type OnLost = Arc<dyn Fn(CacheError) + Send + Sync>;

pub struct Multiplexed {
  pub(crate) shared: Arc<Shared>,
  tasks: [AbortHandle; 2],
  /// Whether a JS-loop watcher was started (src/js_poll.rs).
  pub(crate) watched: AtomicBool,
}

pub(crate) struct Shared {
  inner: Mutex<Inner>,
  /// Non-blocking; tokio waits on it through registrations of duplicates.
  pub(crate) sock: Sock,
  /// Wakes the writer task when bytes wait to be written.
  flush: Notify,
  addr: String,
  timeout: Duration,
  on_lost: OnLost,
  /// The JS thread's loop watches and reads the socket.
  pub(crate) js_reads: AtomicBool,
}

#[derive(Default)]
struct Inner {
  pending: VecDeque<Pending>,
  /// Bytes read (decrypted) and not parsed yet, and the parser's state.
  input: BytesMut,
  codec: ValueCodec,
  tls: Option<TlsSession>,
  /// Plain connections: bytes not written yet (a TLS session keeps its own).
  out: BytesMut,
  /// The writer task owns the socket's write side until all is written.
  flushing: bool,
  closed: Option<CacheError>,
}

struct TlsSession {
  conn: ClientConnection,
  /// Records read and not decrypted yet.
  cipher: BytesMut,
}

struct Pending {
  left: usize,
  values: Vec<Value>,
  deadline: Instant,
  /// None once the batch timed out: its replies are still read, and dropped.
  done: Option<Done>,
}

impl Multiplexed {
  /// Connects to `host:port` over `transport` (TLS handshake included); the
  /// caller runs the Redis handshake with `send`.
  pub async fn connect(host: &str, port: u16, transport: &Transport, timeout: Duration, on_lost: OnLost) -> Result<Multiplexed> {
    let opened = open_tcp(host, port, transport).await?;
    Multiplexed::start(opened, format!("{host}:{port}"), timeout, on_lost)
  }

  /// Connects to the unix socket at `path`.
  pub async fn connect_unix(path: &std::path::Path, transport: &Transport, timeout: Duration, on_lost: OnLost) -> Result<Multiplexed> {
    let opened = open_unix(path, transport).await?;
    Multiplexed::start(opened, path.display().to_string(), timeout, on_lost)
  }

  fn start((sock, tls): Opened, addr: String, timeout: Duration, on_lost: OnLost) -> Result<Multiplexed> {
    let broken = |e: io::Error| CacheError::new(Code::Connection, format!("{addr}: {}", io_why(&e)));
    let reader = register(&sock, Interest::READABLE).map_err(broken)?;
    let writer = register(&sock, Interest::WRITABLE).map_err(broken)?;
    let shared = Arc::new(Shared::new(sock, tls, addr, timeout, on_lost));
    let reader = tokio::spawn(read_loop(reader, shared.clone())).abort_handle();
    let writer = tokio::spawn(write_loop(writer, shared.clone())).abort_handle();
    Ok(Multiplexed { shared, tasks: [reader, writer], watched: AtomicBool::new(false) })
  }

  /// Writes `count` packed commands and calls `done` with their replies.
  /// Never blocks: what the socket does not take now is flushed by the
  /// writer task.
  pub fn send(&self, packed: &[u8], count: usize, done: Done) {
    self.send_by(packed, count, Instant::now() + self.shared.timeout, done)
  }

  /// `send` with its own deadline (a cluster command retried on another
  /// node keeps its first deadline).
  pub fn send_by(&self, packed: &[u8], count: usize, deadline: Instant, done: Done) {
    if self.shared.enqueue(packed, count, deadline, done) {
      self.shared.flush.notify_one();
    }
  }

  /// Whether the connection broke or was closed.
  pub fn is_closed(&self) -> bool {
    self.shared.is_closed()
  }

  /// Fails what is pending with `err` and stops the tasks; the socket closes
  /// when the last handle is dropped.
  pub fn close(&self, err: CacheError) {
    for task in &self.tasks {
      task.abort();
    }
    self.shared.fail(err, false);
    self.shared.hang_up();
  }
}

impl Drop for Multiplexed {
  fn drop(&mut self) {
    for task in &self.tasks {
      task.abort();
    }
    // The JS-loop watcher holds the socket too: let it see the end.
    self.shared.hang_up();
  }
}

impl Inner {
  /// Writes what waits, as far as the socket takes it: Err(WouldBlock) when
  /// some is left.
  fn write_out(&mut self, sock: &Sock) -> io::Result<()> {
    match &mut self.tls {
      Some(tls) => {
        while tls.conn.wants_write() {
          match tls.conn.write_tls(&mut sock.writer()) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
          }
        }
      }
      None => {
        while !self.out.is_empty() {
          match sock.write(&self.out) {
            Ok(n) => self.out.advance(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
          }
        }
      }
    }
    Ok(())
  }

  /// Decrypts the records read into `input`; Err when the session fails,
  /// Ok(true) when the server closed it (close_notify).
  fn decrypt(&mut self) -> std::result::Result<bool, String> {
    let Some(tls) = &mut self.tls else { return Ok(false) };
    let mut closed = false;
    let mut records = &tls.cipher[..];
    while !records.is_empty() {
      tls.conn.read_tls(&mut records).map_err(|e| format!("TLS: {e}"))?;
      let state = tls.conn.process_new_packets().map_err(|e| format!("TLS: {e}"))?;
      let n = state.plaintext_bytes_to_read();
      if n > 0 {
        let len = self.input.len();
        self.input.resize(len + n, 0);
        tls.conn.reader().read_exact(&mut self.input[len..]).map_err(|e| format!("TLS: {e}"))?;
      }
      closed |= state.peer_has_closed();
    }
    tls.cipher.clear();
    Ok(closed)
  }
}

impl Shared {
  fn new(sock: Sock, tls: Option<ClientConnection>, addr: String, timeout: Duration, on_lost: OnLost) -> Shared {
    let inner = Inner { tls: tls.map(|conn| TlsSession { conn, cipher: BytesMut::new() }), ..Inner::default() };
    Shared { inner: Mutex::new(inner), sock, flush: Notify::new(), addr, timeout, on_lost, js_reads: AtomicBool::new(false) }
  }

  /// Queues a batch and writes what the socket takes now; true when the
  /// writer task must flush the rest. A write error is left to the reader,
  /// which sees the broken connection too.
  fn enqueue(&self, packed: &[u8], count: usize, deadline: Instant, done: Done) -> bool {
    let mut guard = self.inner.lock().unwrap();
    if let Some(err) = &guard.closed {
      let err = err.clone();
      drop(guard);
      done(Err(err));
      return false;
    }
    let inner = &mut *guard;
    inner.pending.push_back(Pending { left: count, values: Vec::with_capacity(count), deadline, done: Some(done) });
    match &mut inner.tls {
      // Without a buffer limit (transport.rs) rustls takes it all.
      Some(tls) => drop(tls.conn.writer().write_all(packed)),
      None if inner.flushing => inner.out.extend_from_slice(packed),
      None => {
        let written = write_now(&self.sock, packed);
        inner.out.extend_from_slice(&packed[written..]);
      }
    }
    if inner.flushing {
      return false;
    }
    let blocked = match inner.tls {
      Some(_) => matches!(inner.write_out(&self.sock), Err(e) if e.kind() == io::ErrorKind::WouldBlock),
      None => !inner.out.is_empty(),
    };
    inner.flushing = blocked;
    blocked
  }

  /// Marks the connection closed and fails every pending batch.
  fn fail(&self, err: CacheError, lost: bool) {
    let pending = {
      let mut inner = self.inner.lock().unwrap();
      if inner.closed.is_some() {
        return;
      }
      inner.closed = Some(err.clone());
      std::mem::take(&mut inner.pending)
    };
    for p in pending {
      if let Some(done) = p.done {
        done(Err(err.clone()));
      }
    }
    if lost {
      (self.on_lost)(err);
    }
  }

  pub(crate) fn lost(&self, why: impl std::fmt::Display) {
    self.fail(CacheError::new(Code::Connection, format!("{}: connection lost ({why})", self.addr)), true);
  }

  /// Ends the connection: a TLS close_notify if it can go at once, then
  /// shutdown (a JS-loop watcher sees the end of the stream and closes).
  fn hang_up(&self) {
    if let Ok(mut inner) = self.inner.lock() {
      if let Some(tls) = &mut inner.tls {
        tls.conn.send_close_notify();
        let _ = inner.write_out(&self.sock);
      }
    }
    self.sock.shutdown();
  }

  pub(crate) fn is_closed(&self) -> bool {
    self.inner.lock().unwrap().closed.is_some()
  }

  /// Fails the batches whose deadline has passed; their replies are dropped
  /// when they come.
  fn expire(&self, now: Instant) {
    let mut expired = Vec::new();
    {
      let mut inner = self.inner.lock().unwrap();
      // Not in deadline order when a cluster retry came after fresh batches.
      for p in inner.pending.iter_mut().filter(|p| p.deadline <= now) {
        if let Some(done) = p.done.take() {
          expired.push(done);
        }
      }
    }
    let ms = self.timeout.as_millis() as u64;
    for done in expired {
      done(Err(CacheError::timeout(&format!("command to {}", self.addr), ms)));
    }
  }

  /// Reads what the socket has, decrypts and parses it and completes the
  /// batches it finishes; Err says why the connection is lost. Any thread
  /// may call it: the lock makes one reader at a time, and the parser's and
  /// the TLS session's state live under it. Edge-triggered waiters (tokio)
  /// must read `until_blocked`; a level-triggered one (libuv) may stop at a
  /// short read and save a system call, as libuv's own streams do.
  pub(crate) fn pump(&self, until_blocked: bool, mut read: impl FnMut(&mut [u8]) -> io::Result<usize>) -> std::result::Result<(), String> {
    let mut completed = Vec::new();
    let result = {
      let mut guard = self.inner.lock().unwrap();
      if guard.closed.is_some() {
        return Ok(());
      }
      self.read_and_parse(&mut guard, until_blocked, &mut read, &mut completed)
    };
    // Batches finished before a failure are still answered.
    for (done, values) in completed {
      done(Ok(values));
    }
    result
  }

  fn read_and_parse(
    &self,
    inner: &mut Inner,
    until_blocked: bool,
    read: &mut impl FnMut(&mut [u8]) -> io::Result<usize>,
    completed: &mut Vec<(Done, Vec<Value>)>,
  ) -> std::result::Result<(), String> {
    let buf = match &mut inner.tls {
      Some(tls) => &mut tls.cipher,
      None => &mut inner.input,
    };
    let mut end = None;
    loop {
      if buf.capacity() - buf.len() < 16 * 1024 {
        buf.reserve(64 * 1024);
      }
      let len = buf.len();
      let spare = buf.capacity() - len;
      // SAFETY: the bytes past `len` are only exposed after `read` wrote them.
      unsafe { buf.set_len(len + spare) };
      let result = read(&mut buf[len..]);
      let got = *result.as_ref().unwrap_or(&0);
      unsafe { buf.set_len(len + got) };
      match result {
        Ok(0) => {
          end = Some("closed by the server".to_string());
          break;
        }
        Ok(n) if n < spare && !until_blocked => break,
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
        Err(e) => {
          end = Some(io_why(&e));
          break;
        }
      }
    }
    if inner.decrypt()? {
      end = Some("closed by the server (TLS close_notify)".into());
    }
    if let Some(tls) = &inner.tls {
      // The session may answer the server (a TLS 1.3 key update).
      if tls.conn.wants_write() && !inner.flushing && matches!(inner.write_out(&self.sock), Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
        inner.flushing = true;
        self.flush.notify_one();
      }
    }
    loop {
      let value = match inner.codec.decode(&mut inner.input) {
        Ok(Some(value)) => value,
        Ok(None) => break,
        Err(e) => return Err(format!("unparsable reply: {e}")),
      };
      let Some(front) = inner.pending.front_mut() else {
        return Err("a reply nobody asked for".into());
      };
      front.values.push(value);
      front.left -= 1;
      if front.left == 0 {
        let p = inner.pending.pop_front().expect("front exists");
        if let Some(done) = p.done {
          completed.push((done, p.values));
        }
      }
    }
    end.map_or(Ok(()), Err)
  }

  /// A read by the JS thread's loop, which watches the socket.
  pub(crate) fn read_from_js(&self) -> std::result::Result<(), String> {
    self.pump(false, |buf| self.sock.read(buf))
  }

  /// Why the socket reported an error to a poll (libuv says only EBADF).
  pub(crate) fn poll_error(&self, status: i32) -> String {
    match self.sock.take_error() {
      Some(e) => io_why(&e),
      None => match self.pump(true, |buf| self.sock.read(buf)) {
        Err(why) => why,
        Ok(()) => format!("socket error {status}"),
      },
    }
  }

  /// The next deadline the reader must wake for.
  fn next_deadline(&self) -> Option<Instant> {
    let inner = self.inner.lock().unwrap();
    inner.pending.iter().filter(|p| p.done.is_some()).map(|p| p.deadline).min()
  }
}

/// Writes what the socket takes now.
fn write_now(sock: &Sock, mut buf: &[u8]) -> usize {
  let total = buf.len();
  while !buf.is_empty() {
    match sock.write(buf) {
      Ok(n) => buf = &buf[n..],
      Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
      Err(_) => break,
    }
  }
  total - buf.len()
}

async fn read_loop(reader: Registration, shared: Arc<Shared>) {
  let mut reader = Some(reader);
  let sock = &shared.sock;
  while !shared.is_closed() {
    if shared.js_reads.load(Ordering::Relaxed) {
      // The JS thread reads now: without this registration, a reply no
      // longer wakes this thread too.
      reader = None;
    }
    let Some(registration) = &reader else {
      match shared.next_deadline() {
        Some(deadline) if deadline <= Instant::now() => {
          // The JS thread has not read by this deadline (it is busy): read
          // here, so that only replies that really did not come time out.
          if let Err(why) = shared.pump(true, |buf| sock.read(buf)) {
            return shared.lost(why);
          }
          shared.expire(Instant::now());
        }
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        // A batch queued later does not wake this task: look again soon.
        None => tokio::time::sleep(shared.timeout.min(Duration::from_millis(100))).await,
      }
      continue;
    };
    let readable = registration.ready(Interest::READABLE);
    let ready = match shared.next_deadline() {
      Some(deadline) => match tokio::time::timeout_at(deadline, readable).await {
        Ok(ready) => ready,
        Err(_) => {
          shared.expire(Instant::now());
          continue;
        }
      },
      // Idle, or a batch was queued after the check: a write does not wake
      // this task, so look again for its deadline now and then.
      None => match tokio::time::timeout(shared.timeout.min(Duration::from_millis(100)), readable).await {
        Ok(ready) => ready,
        Err(_) => continue,
      },
    };
    if let Err(e) = ready {
      return shared.lost(io_why(&e));
    }
    // Through the registration, so that its readiness is cleared once the
    // socket is drained.
    if let Err(why) = shared.pump(true, |buf| registration.try_io(Interest::READABLE, || sock.read(buf))) {
      return shared.lost(why);
    }
  }
}

async fn write_loop(writer: Registration, shared: Arc<Shared>) {
  loop {
    shared.flush.notified().await;
    loop {
      {
        let mut inner = shared.inner.lock().unwrap();
        if inner.closed.is_some() {
          inner.flushing = false;
          inner.out.clear();
          break;
        }
        match writer.try_io(Interest::WRITABLE, || inner.write_out(&shared.sock)) {
          Ok(()) => {
            inner.flushing = false;
            break;
          }
          Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
          Err(e) => {
            drop(inner);
            return shared.lost(io_why(&e));
          }
        }
      }
      if let Err(e) = writer.ready(Interest::WRITABLE).await {
        return shared.lost(io_why(&e));
      }
    }
  }
}

/// Tokio's wait on one direction of the socket, through a duplicate of it,
/// so that the reader's can be dropped while the writer's stays.
struct Registration {
  #[cfg(unix)]
  fd: tokio::io::unix::AsyncFd<Sock>,
  #[cfg(not(unix))]
  stream: tokio::net::TcpStream,
}

fn register(sock: &Sock, interest: Interest) -> io::Result<Registration> {
  #[cfg(unix)]
  // SAFETY: the AsyncFd owns the duplicate, which stays open until it drops.
  let fd = unsafe { tokio::io::unix::AsyncFd::register_with_interest(sock.try_clone()?, interest) }.map_err(|e| e.into_parts().1)?;
  #[cfg(unix)]
  return Ok(Registration { fd });
  #[cfg(not(unix))]
  {
    let _ = interest;
    let Sock::Tcp(tcp) = sock.try_clone()?;
    Ok(Registration { stream: tokio::net::TcpStream::from_std(tcp)? })
  }
}

impl Registration {
  async fn ready(&self, interest: Interest) -> io::Result<()> {
    #[cfg(unix)]
    return self.fd.ready(interest).await.map(drop);
    #[cfg(not(unix))]
    return self.stream.ready(interest).await.map(drop);
  }

  /// Runs `io`; a WouldBlock clears the readiness, so `ready` waits again.
  fn try_io<R>(&self, interest: Interest, io: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
    #[cfg(unix)]
    return self.fd.try_io(interest, |_| io());
    #[cfg(not(unix))]
    return self.stream.try_io(interest, io);
  }
}

#[cfg(all(test, unix))]
mod tests {
  use std::os::unix::net::UnixStream;
  use std::sync::mpsc;

  use super::*;

  /// A core over one end of a socket pair; the test plays the server on the
  /// other end, or feeds replies to `pump` itself.
  fn core(timeout: Duration) -> (Arc<Shared>, UnixStream, mpsc::Receiver<String>) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    let (tx, lost) = mpsc::channel();
    let tx = Mutex::new(tx);
    let on_lost: OnLost = Arc::new(move |e: CacheError| drop(tx.lock().unwrap().send(e.message)));
    (Arc::new(Shared::new(Sock::Unix(ours), None, "test:1".into(), timeout, on_lost)), theirs, lost)
  }

  type Outcome = Arc<Mutex<Vec<Result<Vec<Value>>>>>;

  fn batch(shared: &Shared, count: usize) -> Outcome {
    let out: Outcome = Arc::default();
    let sink = out.clone();
    shared.enqueue(b"", count, Instant::now() + shared.timeout, Box::new(move |r| sink.lock().unwrap().push(r)));
    out
  }

  /// Feeds `bytes` to `pump` in pieces of `step` bytes.
  fn feed(shared: &Shared, bytes: &[u8], step: usize) -> std::result::Result<(), String> {
    for piece in bytes.chunks(step) {
      let mut piece = Some(piece);
      shared.pump(false, |buf| match piece.take() {
        Some(p) => {
          buf[..p.len()].copy_from_slice(p);
          Ok(p.len())
        }
        None => Err(io::ErrorKind::WouldBlock.into()),
      })?;
    }
    Ok(())
  }

  const REPLIES: &[u8] = b"+OK\r\n$5\r\nhello\r\n*2\r\n$1\r\na\r\n$-1\r\n:42\r\n-ERR nope\r\n";

  #[test]
  fn replies_split_at_every_byte() {
    for step in 1..=REPLIES.len() {
      let (shared, _server, _) = core(Duration::from_secs(5));
      let (first, second) = (batch(&shared, 2), batch(&shared, 3));
      feed(&shared, REPLIES, step).unwrap();
      let first = first.lock().unwrap().pop().unwrap().unwrap();
      assert_eq!(first, vec![Value::Okay, Value::BulkString(b"hello".to_vec())], "step {step}");
      let second = second.lock().unwrap().pop().unwrap().unwrap();
      assert_eq!(second[0], Value::Array(vec![Value::BulkString(b"a".to_vec()), Value::Nil]), "step {step}");
      assert_eq!(second[1], Value::Int(42));
      assert!(matches!(&second[2], Value::ServerError(e) if e.details() == Some("nope")), "a server error is one command's reply");
    }
  }

  #[test]
  fn a_reply_nobody_asked_for_loses_the_connection() {
    let (shared, _server, _) = core(Duration::from_secs(5));
    let asked = batch(&shared, 1);
    let err = feed(&shared, b"+OK\r\n+OK\r\n", 10).unwrap_err();
    assert_eq!(err, "a reply nobody asked for");
    // The batch answered before it still completes.
    assert_eq!(asked.lock().unwrap().pop().unwrap().unwrap(), vec![Value::Okay]);
  }

  #[test]
  fn a_batch_past_its_deadline_fails_and_its_late_replies_are_dropped() {
    let (shared, _server, _) = core(Duration::from_millis(50));
    let late = batch(&shared, 2);
    shared.expire(Instant::now() + Duration::from_secs(1));
    let err = late.lock().unwrap().pop().unwrap().unwrap_err();
    assert_eq!((err.code, err.message.as_str()), (Code::Timeout, "command to test:1 timed out after 50 ms"));
    // The next batch gets its own replies, not the late ones.
    let next = batch(&shared, 1);
    assert!(shared.next_deadline().is_some());
    feed(&shared, b"+late\r\n+late\r\n:1\r\n", 3).unwrap();
    assert!(late.lock().unwrap().is_empty(), "a timed-out batch completes once");
    assert_eq!(next.lock().unwrap().pop().unwrap().unwrap(), vec![Value::Int(1)]);
  }

  #[test]
  fn an_earlier_deadline_queued_later_expires_first() {
    let (shared, _server, _) = core(Duration::from_secs(60));
    let fresh = batch(&shared, 1);
    let retried: Outcome = Arc::default();
    let sink = retried.clone();
    let soon = Instant::now() + Duration::from_millis(10);
    shared.enqueue(b"", 1, soon, Box::new(move |r| sink.lock().unwrap().push(r)));
    assert_eq!(shared.next_deadline(), Some(soon));
    shared.expire(soon);
    assert_eq!(retried.lock().unwrap().pop().unwrap().unwrap_err().code, Code::Timeout);
    assert!(fresh.lock().unwrap().is_empty(), "the batch with the later deadline waits on");
  }

  #[test]
  fn a_lost_connection_fails_every_pending_batch_as_a_whole() {
    let (shared, server, lost) = core(Duration::from_secs(5));
    let (first, second) = (batch(&shared, 2), batch(&shared, 1));
    // Half of the first batch's replies, then the server goes away.
    feed(&shared, b"+OK\r\n", 5).unwrap();
    drop(server);
    let why = shared.pump(true, |buf| shared.sock.read(buf)).unwrap_err();
    shared.lost(why);
    for b in [first, second] {
      let err = b.lock().unwrap().pop().unwrap().unwrap_err();
      assert_eq!(err.code, Code::Connection);
      assert_eq!(err.message, "test:1: connection lost (closed by the server)");
    }
    assert_eq!(lost.try_recv().unwrap(), "test:1: connection lost (closed by the server)");
    // Afterwards a batch fails at once with the same error.
    let after = batch(&shared, 1);
    assert_eq!(after.lock().unwrap().pop().unwrap().unwrap_err().message, "test:1: connection lost (closed by the server)");
  }

  #[test]
  fn a_batch_is_written_in_order_and_the_rest_waits_for_the_writer() {
    let (shared, mut server, _) = core(Duration::from_secs(5));
    let done: Done = Box::new(|_| {});
    // Bigger than the socket buffer: the rest waits for the writer task.
    let big = vec![b'x'; 8 << 20];
    let deadline = Instant::now() + shared.timeout;
    assert!(shared.enqueue(&big, 1, deadline, done), "the writer task is woken");
    assert!(!shared.enqueue(b"tail", 1, deadline, Box::new(|_| {})), "already woken");
    let mut got = vec![0u8; 1 << 16];
    let mut total = 0;
    server.set_nonblocking(true).unwrap();
    let mut tail = Vec::new();
    loop {
      match server.read(&mut got) {
        Ok(n) => {
          total += n;
          tail.extend_from_slice(&got[..n]);
          if tail.len() > 8 {
            tail.drain(..tail.len() - 8);
          }
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
          let mut inner = shared.inner.lock().unwrap();
          match inner.write_out(&shared.sock) {
            Ok(()) => {
              inner.flushing = false;
              if total == big.len() + 4 {
                break;
              }
            }
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
          }
        }
        Err(e) => panic!("{e}"),
      }
    }
    assert_eq!(&tail[..], b"xxxxtail");
  }
}
