//! The JS thread's side of a multiplexed connection (src/multiplex.rs): a
//! libuv poll handle on the socket, on the JS thread's own event loop, so a
//! reply wakes the JS thread directly, as in a pure-JS client, instead of
//! waking the tokio reader that then wakes the JS thread. The read runs in a
//! `JsTurn` (src/deliver.rs), which hands what it finished to JS at once.
//!
//! Unsafe FFI lives here: the handle closes when the connection does, or
//! when the JS environment ends (a worker thread's loop must have no handles
//! left when it closes), and it keeps the socket open until it is closed, so
//! libuv never watches a closed descriptor.

#[cfg(unix)]
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::multiplex::Multiplexed;

/// Runs a read made by the JS thread from its event loop, so that what the
/// read finishes reaches JS at once (deliver.rs).
pub trait JsTurn: Send + Sync {
  fn run(&self, read: &mut dyn FnMut());
}

impl Multiplexed {
  /// Lets the JS thread's own event loop (libuv) watch the socket too.
  /// Called on the JS thread; idempotent. The tokio reader stays, for
  /// timeouts and when the JS thread is busy.
  #[cfg(unix)]
  pub fn watch_from_js(&self, env: napi::sys::napi_env, turn: impl FnOnce() -> Arc<dyn JsTurn>) {
    if self.watched.swap(true, Ordering::Relaxed) {
      return;
    }
    // SAFETY: called on the JS thread that owns `env` and its loop.
    if unsafe { uv::start(env, self.shared.clone(), turn()) } {
      self.shared.js_reads.store(true, Ordering::Relaxed);
    }
  }

  #[cfg(not(unix))]
  pub fn watch_from_js(&self, _env: napi::sys::napi_env, _turn: impl FnOnce() -> Arc<dyn JsTurn>) {}
}

#[cfg(unix)]
mod uv {
  use std::os::fd::AsRawFd;
  use std::os::raw::{c_int, c_void};
  use std::ptr;
  use std::sync::Arc;

  use napi::sys;

  use super::JsTurn;
  use crate::multiplex::Shared;

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

  /// What the handle's `data` points at. It holds the connection, and so
  /// its socket, until the handle is closed.
  struct Watch {
    shared: Arc<Shared>,
    /// Let go at the environment's teardown: no JS is called after it.
    turn: Option<Arc<dyn JsTurn>>,
    cleanup: sys::napi_async_cleanup_hook_handle,
    closing: bool,
  }

  /// # Safety
  /// On the JS thread of `env`.
  pub unsafe fn start(env: sys::napi_env, shared: Arc<Shared>, turn: Arc<dyn JsTurn>) -> bool {
    let mut lp = ptr::null_mut();
    if sys::napi_get_uv_event_loop(env, &mut lp) != sys::Status::napi_ok || lp.is_null() {
      return false;
    }
    let handle = libc::calloc(1, uv_handle_size(UV_POLL));
    if handle.is_null() {
      return false;
    }
    if uv_poll_init_socket(lp.cast(), handle, shared.sock.as_raw_fd()) != 0 {
      libc::free(handle);
      return false;
    }
    let watch = Box::new(Watch { shared, turn: Some(turn), cleanup: ptr::null_mut(), closing: false });
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
      // libuv reports any socket error as EBADF: ask the socket.
      result = Err(watch.shared.poll_error(status));
    } else if let Some(turn) = &watch.turn {
      turn.run(&mut || result = watch.shared.read_from_js());
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
