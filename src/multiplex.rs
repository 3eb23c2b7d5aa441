//! One multiplexed TCP connection to one server, built for the JS thread.
//!
//! Crossing to a tokio thread for every batch costs a thread wake-up, the
//! biggest cost of a cache call on a small machine. So a batch is encoded
//! and written to the socket by the caller (the JS thread) when the socket
//! takes it. Bytes the socket does not take at once wait in a buffer that a
//! writer task flushes, so the JS thread never blocks and order is kept.
//!
//! Replies are read and parsed (redis-rs's codec) by whoever `pump`s, and
//! matched to batches in order. At first a tokio reader task does; once the
//! JS thread's own loop watches the socket (`watch_from_js`), the JS thread
//! does, and the tokio reader drops its registration, so a reply wakes one
//! thread, not two. The reader keeps the command timeouts either way: it
//! wakes for the oldest deadline (and then reads what a busy JS thread has
//! not).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use redis::{Value, ValueCodec};
use tokio::io::Interest;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_util::codec::Decoder;

use crate::error::{CacheError, Code, Result};

/// Completes a batch: one value per command, in order, or the error that
/// failed the whole batch.
pub type Done = Box<dyn FnOnce(Result<Vec<Value>>) + Send>;

/// Told once when the connection breaks.
pub type OnLost = Arc<dyn Fn(CacheError) + Send + Sync>;

pub struct Multiplexed {
  /// Non-blocking; tokio waits on it through registrations of duplicates.
  sock: Arc<TcpStream>,
  shared: Arc<Shared>,
  tasks: [AbortHandle; 2],
  /// Whether a JS-loop watcher was started.
  watched: AtomicBool,
}

struct Shared {
  inner: Mutex<Inner>,
  /// Wakes the writer task when bytes wait in `out`.
  flush: Notify,
  addr: String,
  timeout: Duration,
  on_lost: OnLost,
  /// The JS thread's loop watches and reads the socket.
  js_reads: AtomicBool,
}

#[derive(Default)]
struct Inner {
  pending: VecDeque<Pending>,
  /// Bytes read and not parsed yet, and the parser's state.
  input: BytesMut,
  codec: ValueCodec,
  /// Bytes written after the ones the writer task is flushing.
  out: Vec<u8>,
  /// The writer task owns the socket's write side until `out` is empty.
  flushing: bool,
  closed: Option<CacheError>,
}

struct Pending {
  left: usize,
  values: Vec<Value>,
  deadline: Instant,
  /// None once the batch timed out: its replies are still read, and dropped.
  done: Option<Done>,
}

impl Multiplexed {
  /// Connects to `host:port`; the caller runs the handshake with `send`.
  pub async fn connect(host: &str, port: u16, timeout: Duration, on_lost: OnLost) -> Result<Multiplexed> {
    let addr = format!("{host}:{port}");
    let broken = |e: io::Error| CacheError::new(Code::Connection, format!("{addr}: {e}"));
    let stream = tokio::net::TcpStream::connect((host, port)).await.map_err(broken)?;
    stream.set_nodelay(true).map_err(broken)?;
    let sock = Arc::new(stream.into_std().map_err(broken)?);
    let reader = register(&sock, Interest::READABLE).map_err(broken)?;
    let writer = register(&sock, Interest::WRITABLE).map_err(broken)?;
    let shared = Arc::new(Shared { inner: Mutex::new(Inner::default()), flush: Notify::new(), addr, timeout, on_lost, js_reads: AtomicBool::new(false) });
    let reader = tokio::spawn(read_loop(reader, sock.clone(), shared.clone())).abort_handle();
    let writer = tokio::spawn(write_loop(writer, sock.clone(), shared.clone())).abort_handle();
    Ok(Multiplexed { sock, shared, tasks: [reader, writer], watched: AtomicBool::new(false) })
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
    let mut inner = self.shared.inner.lock().unwrap();
    if let Some(err) = &inner.closed {
      let err = err.clone();
      drop(inner);
      return done(Err(err));
    }
    inner.pending.push_back(Pending { left: count, values: Vec::with_capacity(count), deadline, done: Some(done) });
    let written = if inner.flushing { 0 } else { write_now(&self.sock, packed) };
    if written < packed.len() {
      inner.out.extend_from_slice(&packed[written..]);
      if !inner.flushing {
        inner.flushing = true;
        self.shared.flush.notify_one();
      }
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
    // A JS-loop watcher sees the end of the stream and closes itself.
    let _ = self.sock.shutdown(Shutdown::Both);
  }
}

impl Drop for Multiplexed {
  fn drop(&mut self) {
    for task in &self.tasks {
      task.abort();
    }
    // The JS-loop watcher holds the socket too: let it see the end.
    let _ = self.sock.shutdown(Shutdown::Both);
  }
}

/// Writes what the socket takes now; a write error is left to the reader,
/// which sees the broken connection too.
fn write_now(mut sock: &TcpStream, mut buf: &[u8]) -> usize {
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

impl Shared {
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

  fn is_closed(&self) -> bool {
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

  /// Reads what the socket has, parses it and completes the batches it
  /// finishes. Any thread may call it: the lock makes one reader at a time,
  /// and the parser's state lives under it. Edge-triggered waiters (tokio)
  /// must read `until_blocked`; a level-triggered one (libuv) may stop at a
  /// short read and save a system call, as libuv's own streams do.
  fn pump(&self, until_blocked: bool, mut read: impl FnMut(&mut [u8]) -> io::Result<usize>) -> std::result::Result<(), String> {
    let mut completed = Vec::new();
    {
      let mut inner = self.inner.lock().unwrap();
      let inner = &mut *inner;
      if inner.closed.is_some() {
        return Ok(());
      }
      loop {
        if inner.input.capacity() - inner.input.len() < 16 * 1024 {
          inner.input.reserve(64 * 1024);
        }
        let len = inner.input.len();
        let spare = inner.input.capacity() - len;
        // SAFETY: the bytes past `len` are only exposed after `read` wrote them.
        unsafe { inner.input.set_len(len + spare) };
        let result = read(&mut inner.input[len..]);
        let got = *result.as_ref().unwrap_or(&0);
        unsafe { inner.input.set_len(len + got) };
        match result {
          Ok(0) => return Err("closed by the server".into()),
          Ok(n) if n < spare && !until_blocked => break,
          Ok(_) => {}
          Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
          Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
          Err(e) => return Err(e.to_string()),
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
    }
    for (done, values) in completed {
      done(Ok(values));
    }
    Ok(())
  }

  /// The next deadline the reader must wake for.
  fn next_deadline(&self) -> Option<Instant> {
    let inner = self.inner.lock().unwrap();
    inner.pending.iter().filter(|p| p.done.is_some()).map(|p| p.deadline).min()
  }
}

async fn read_loop(reader: Registration, sock: Arc<TcpStream>, shared: Arc<Shared>) {
  let mut reader = Some(reader);
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
          if let Err(why) = shared.pump(true, |buf| (&*sock).read(buf)) {
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
      return shared.lost(e);
    }
    // Through the registration, so that its readiness is cleared once the
    // socket is drained.
    if let Err(why) = shared.pump(true, |buf| registration.try_io(Interest::READABLE, || (&*sock).read(buf))) {
      return shared.lost(why);
    }
  }
}

async fn write_loop(writer: Registration, sock: Arc<TcpStream>, shared: Arc<Shared>) {
  loop {
    shared.flush.notified().await;
    loop {
      let chunk = {
        let mut inner = shared.inner.lock().unwrap();
        if inner.out.is_empty() || inner.closed.is_some() {
          inner.flushing = false;
          inner.out.clear();
          break;
        }
        std::mem::take(&mut inner.out)
      };
      let mut rest = &chunk[..];
      while !rest.is_empty() {
        if let Err(e) = writer.ready(Interest::WRITABLE).await {
          return shared.lost(e);
        }
        match writer.try_io(Interest::WRITABLE, || (&*sock).write(rest)) {
          Ok(n) => rest = &rest[n..],
          Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
          Err(e) => return shared.lost(e),
        }
      }
    }
  }
}

/// Tokio's wait on one direction of the socket, through a duplicate of it,
/// so that the reader's can be dropped while the writer's stays.
struct Registration {
  #[cfg(unix)]
  fd: tokio::io::unix::AsyncFd<TcpStream>,
  #[cfg(not(unix))]
  stream: tokio::net::TcpStream,
}

fn register(sock: &TcpStream, interest: Interest) -> io::Result<Registration> {
  #[cfg(unix)]
  // SAFETY: the AsyncFd owns the duplicate, which stays open until it drops.
  let fd = unsafe { tokio::io::unix::AsyncFd::register_with_interest(sock.try_clone()?, interest) }.map_err(|e| e.into_parts().1)?;
  #[cfg(unix)]
  return Ok(Registration { fd });
  #[cfg(not(unix))]
  {
    let _ = interest;
    Ok(Registration { stream: tokio::net::TcpStream::from_std(sock.try_clone()?)? })
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

/// Runs a read made by the JS thread from its event loop, so that what the
/// read finishes reaches JS at once (deliver.rs).
pub trait JsTurn: Send + Sync {
  fn run(&self, read: &mut dyn FnMut());
}

impl Multiplexed {
  /// Lets the JS thread's own event loop (libuv) watch the socket too, so a
  /// reply wakes the JS thread directly, as in a pure-JS client, instead of
  /// waking the tokio reader that then wakes the JS thread. Called on the JS
  /// thread; idempotent. The tokio reader stays, for timeouts and when the
  /// JS thread is busy.
  #[cfg(unix)]
  pub fn watch_from_js(&self, env: napi::sys::napi_env, turn: impl FnOnce() -> Arc<dyn JsTurn>) {
    if self.watched.swap(true, Ordering::Relaxed) {
      return;
    }
    // SAFETY: called on the JS thread that owns `env` and its loop.
    if unsafe { js_poll::start(env, self.sock.clone(), self.shared.clone(), turn()) } {
      self.shared.js_reads.store(true, Ordering::Relaxed);
    }
  }

  #[cfg(not(unix))]
  pub fn watch_from_js(&self, _env: napi::sys::napi_env, _turn: impl FnOnce() -> Arc<dyn JsTurn>) {}
}

/// The libuv side: a uv_poll handle on the socket, on the JS thread's loop.
/// It closes when the connection does, or when the JS environment ends (a
/// worker thread's loop must have no handles left when it closes).
#[cfg(unix)]
mod js_poll {
  use std::io::Read;
  use std::net::TcpStream;
  use std::os::fd::AsRawFd;
  use std::os::raw::{c_int, c_void};
  use std::ptr;
  use std::sync::Arc;

  use napi::sys;

  use super::{JsTurn, Shared};

  const UV_POLL: c_int = 8;
  const UV_READABLE: c_int = 1;

  extern "C" {
    fn uv_handle_size(kind: c_int) -> usize;
    fn uv_poll_init_socket(lp: *mut c_void, handle: *mut c_void, fd: c_int) -> c_int;
    fn uv_poll_start(handle: *mut c_void, events: c_int, cb: extern "C" fn(*mut c_void, c_int, c_int)) -> c_int;
    fn uv_poll_stop(handle: *mut c_void) -> c_int;
    fn uv_close(handle: *mut c_void, cb: extern "C" fn(*mut c_void));
    fn uv_unref(handle: *mut c_void);
  }

  /// What the handle's `data` points at. It keeps the socket open until the
  /// handle is closed, so libuv never watches a closed descriptor.
  struct Watch {
    stream: Arc<TcpStream>,
    shared: Arc<Shared>,
    /// Let go at the environment's teardown: no JS is called after it.
    turn: Option<Arc<dyn JsTurn>>,
    cleanup: sys::napi_async_cleanup_hook_handle,
    closing: bool,
  }

  /// # Safety
  /// On the JS thread of `env`.
  pub unsafe fn start(env: sys::napi_env, stream: Arc<TcpStream>, shared: Arc<Shared>, turn: Arc<dyn JsTurn>) -> bool {
    let mut lp = ptr::null_mut();
    if sys::napi_get_uv_event_loop(env, &mut lp) != sys::Status::napi_ok || lp.is_null() {
      return false;
    }
    let handle = libc::calloc(1, uv_handle_size(UV_POLL));
    if handle.is_null() {
      return false;
    }
    if uv_poll_init_socket(lp.cast(), handle, stream.as_raw_fd()) != 0 {
      libc::free(handle);
      return false;
    }
    let watch = Box::new(Watch { stream, shared, turn: Some(turn), cleanup: ptr::null_mut(), closing: false });
    // `data` is the first field of every libuv handle.
    *(handle as *mut *mut Watch) = Box::into_raw(watch);
    let watch = &mut *data(handle);
    if sys::napi_add_async_cleanup_hook(env, Some(on_teardown), handle, &mut watch.cleanup) != sys::Status::napi_ok {
      watch.cleanup = ptr::null_mut();
      close(handle);
      return false;
    }
    // The tokio side keeps working if this fails.
    if uv_poll_start(handle, UV_READABLE, on_readable) != 0 {
      close(handle);
      return false;
    }
    // Watching does not keep the process alive; batches in flight do.
    uv_unref(handle);
    true
  }

  unsafe fn data(handle: *mut c_void) -> *mut Watch {
    *(handle as *mut *mut Watch)
  }

  unsafe fn close(handle: *mut c_void) {
    let watch = &mut *data(handle);
    if !watch.closing {
      watch.closing = true;
      uv_poll_stop(handle);
      uv_close(handle, on_close);
    }
  }

  extern "C" fn on_readable(handle: *mut c_void, status: c_int, _events: c_int) {
    // SAFETY: `data` was set in `start` and lives until `on_close`.
    let watch = unsafe { &*data(handle) };
    let mut result = Ok(());
    if status < 0 {
      result = Err(format!("poll error {status}"));
    } else if let Some(turn) = &watch.turn {
      turn.run(&mut || result = watch.shared.pump(false, |buf| (&*watch.stream).read(buf)));
    }
    if let Err(why) = result {
      unsafe { close(handle) };
      watch.shared.lost(why);
    } else if watch.shared.is_closed() {
      unsafe { close(handle) };
    }
  }

  unsafe extern "C" fn on_teardown(_hook: sys::napi_async_cleanup_hook_handle, handle: *mut c_void) {
    (*data(handle)).turn = None;
    close(handle);
  }

  extern "C" fn on_close(handle: *mut c_void) {
    // SAFETY: the handle is closed: nothing uses it or its `data` any more.
    unsafe {
      let watch = Box::from_raw(data(handle));
      if !watch.cleanup.is_null() {
        sys::napi_remove_async_cleanup_hook(watch.cleanup);
      }
      drop(watch);
      libc::free(handle);
    }
  }
}
