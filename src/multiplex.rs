//! One multiplexed TCP connection to one server, built for the JS thread.
//!
//! Crossing to a tokio thread for every batch costs a thread wake-up, the
//! biggest cost of a cache call on a small machine. So a batch is encoded
//! and written to the socket by the caller (the JS thread) when the socket
//! takes it; one tokio task reads the replies, parses them with redis-rs's
//! codec, matches them to batches in order and completes each batch with its
//! callback. Bytes the socket does not take at once wait in a buffer that a
//! writer task flushes, so the JS thread never blocks and order is kept.
//! Command timeouts are kept by the reader, which wakes for the oldest
//! deadline.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use redis::{Value, ValueCodec};
use tokio::net::TcpStream;
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
  stream: Arc<TcpStream>,
  shared: Arc<Shared>,
  tasks: [AbortHandle; 2],
}

struct Shared {
  inner: Mutex<Inner>,
  /// Wakes the writer task when bytes wait in `out`.
  flush: Notify,
  addr: String,
  timeout: Duration,
  on_lost: OnLost,
}

#[derive(Default)]
struct Inner {
  pending: VecDeque<Pending>,
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
    let stream = TcpStream::connect((host, port)).await.map_err(|e| CacheError::new(Code::Connection, format!("{addr}: {e}")))?;
    stream.set_nodelay(true).map_err(|e| CacheError::new(Code::Connection, format!("{addr}: {e}")))?;
    let stream = Arc::new(stream);
    let shared = Arc::new(Shared { inner: Mutex::new(Inner::default()), flush: Notify::new(), addr, timeout, on_lost });
    let reader = tokio::spawn(read_loop(stream.clone(), shared.clone())).abort_handle();
    let writer = tokio::spawn(write_loop(stream.clone(), shared.clone())).abort_handle();
    Ok(Multiplexed { stream, shared, tasks: [reader, writer] })
  }

  /// Writes `count` packed commands and calls `done` with their replies.
  /// Never blocks: what the socket does not take now is flushed by the
  /// writer task.
  pub fn send(&self, packed: &[u8], count: usize, done: Done) {
    let mut inner = self.shared.inner.lock().unwrap();
    if let Some(err) = &inner.closed {
      let err = err.clone();
      drop(inner);
      return done(Err(err));
    }
    inner.pending.push_back(Pending {
      left: count,
      values: Vec::with_capacity(count),
      deadline: Instant::now() + self.shared.timeout,
      done: Some(done),
    });
    let written = if inner.flushing { 0 } else { write_now(&self.stream, packed) };
    if written < packed.len() {
      inner.out.extend_from_slice(&packed[written..]);
      if !inner.flushing {
        inner.flushing = true;
        self.shared.flush.notify_one();
      }
    }
  }

  /// Fails what is pending with `err` and stops the tasks; the socket closes
  /// when the last handle is dropped.
  pub fn close(&self, err: CacheError) {
    for task in &self.tasks {
      task.abort();
    }
    self.shared.fail(err, false);
  }
}

impl Drop for Multiplexed {
  fn drop(&mut self) {
    for task in &self.tasks {
      task.abort();
    }
  }
}

/// Writes what the socket takes now; a write error is left to the reader,
/// which sees the broken connection too.
fn write_now(stream: &TcpStream, mut buf: &[u8]) -> usize {
  let total = buf.len();
  while !buf.is_empty() {
    match stream.try_write(buf) {
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

  fn lost(&self, why: impl std::fmt::Display) {
    self.fail(CacheError::new(Code::Connection, format!("{}: connection lost ({why})", self.addr)), true);
  }

  /// Fails the batches whose deadline has passed; their replies are dropped
  /// when they come.
  fn expire(&self, now: Instant) {
    let mut expired = Vec::new();
    {
      let mut inner = self.inner.lock().unwrap();
      for p in inner.pending.iter_mut() {
        if p.deadline > now {
          break;
        }
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

  /// The next deadline the reader must wake for.
  fn next_deadline(&self) -> Option<Instant> {
    let inner = self.inner.lock().unwrap();
    inner.pending.iter().find(|p| p.done.is_some()).map(|p| p.deadline)
  }
}

async fn read_loop(stream: Arc<TcpStream>, shared: Arc<Shared>) {
  let mut buf = BytesMut::with_capacity(64 * 1024);
  let mut codec = ValueCodec::default();
  loop {
    let readable = stream.readable();
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

    loop {
      if buf.capacity() - buf.len() < 16 * 1024 {
        buf.reserve(64 * 1024);
      }
      match stream.try_read_buf(&mut buf) {
        Ok(0) => return shared.lost("closed by the server"),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
        Err(e) => return shared.lost(e),
      }
    }

    let mut completed = Vec::new();
    {
      let mut inner = shared.inner.lock().unwrap();
      loop {
        let value = match codec.decode(&mut buf) {
          Ok(Some(value)) => value,
          Ok(None) => break,
          Err(e) => {
            drop(inner);
            return shared.lost(format!("unparsable reply: {e}"));
          }
        };
        let Some(front) = inner.pending.front_mut() else {
          drop(inner);
          return shared.lost("a reply nobody asked for");
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
  }
}

async fn write_loop(stream: Arc<TcpStream>, shared: Arc<Shared>) {
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
        if let Err(e) = stream.writable().await {
          return shared.lost(e);
        }
        match stream.try_write(rest) {
          Ok(n) => rest = &rest[n..],
          Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
          Err(e) => return shared.lost(e),
        }
      }
    }
  }
}
