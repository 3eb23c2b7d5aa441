//! How finished batches reach the JS face's `onReplies(batches)`, where
//! `batches` is an array of `[id, replies]`.
//!
//! Two ways, one callback. A batch finished on a tokio thread goes through a
//! threadsafe function: a queue and a wake-up of the JS loop. A batch
//! finished while the JS thread itself read the socket (its libuv loop
//! watches it, see js_poll.rs) is handed over at once with
//! `napi_make_callback`: no queue, no extra loop turn, and the promise
//! callbacks and the next batch's flush run before the loop goes back to
//! sleep. That turn is most of a round trip's cost with one request in
//! flight.

use std::cell::RefCell;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use napi::bindgen_prelude::{Function, ToNapiValue};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{sys, Env, JsValue, Status};

use crate::js_poll::JsTurn;
use crate::ops::Reply;

type Batch = (u32, Vec<Reply>);

/// Weak: it keeps the process alive only while the JS face holds it
/// (`hold(true)` while batches are in flight).
type Tsfn = ThreadsafeFunction<Batch, (), Vec<Batch>, Status, false, true>;

thread_local! {
  /// Batches finished during a read by the JS thread, while it runs one.
  static COLLECTED: RefCell<Option<Vec<Batch>>> = const { RefCell::new(None) };
}

pub struct Deliver {
  tsfn: Tsfn,
  direct: Arc<Direct>,
}

impl Deliver {
  pub fn new(env: &Env, on_replies: Function<Vec<Batch>, ()>) -> napi::Result<Deliver> {
    let direct = Arc::new(Direct::new(env.raw(), on_replies.value().value)?);
    let tsfn = on_replies
      .build_threadsafe_function()
      .weak::<true>()
      .callee_handled::<false>()
      .build_callback(|ctx: napi::threadsafe_function::ThreadsafeCallContext<Batch>| Ok(vec![ctx.value]))
      .inspect_err(|_| direct.close())?;
    Ok(Deliver { tsfn, direct })
  }

  /// Lets go of the JS callback. On the JS thread, when the `CacheEngine`
  /// that owns this is finalized: the last reference to it may be dropped
  /// later on a tokio thread (a command in flight holds the engine).
  pub fn close(&self) {
    self.direct.close();
  }

  /// Hands batch `id` to JS, from any thread.
  pub fn send(&self, id: u32, replies: Vec<Reply>) {
    let batch = COLLECTED.with(|c| match c.borrow_mut().as_mut() {
      Some(collected) => {
        collected.push((id, replies));
        None
      }
      None => Some((id, replies)),
    });
    if let Some(batch) = batch {
      self.tsfn.call(batch, ThreadsafeFunctionCallMode::NonBlocking);
    }
  }

  /// Whether batches in flight keep the process alive. On the JS thread.
  pub fn hold(&self, env: &Env, active: bool) -> napi::Result<()> {
    // SAFETY: on the JS thread, with a live threadsafe function.
    let status = unsafe {
      if active {
        sys::napi_ref_threadsafe_function(env.raw(), self.tsfn.raw())
      } else {
        sys::napi_unref_threadsafe_function(env.raw(), self.tsfn.raw())
      }
    };
    napi::check_status!(status)
  }

  /// What the JS thread's socket watcher runs each read in.
  pub fn js_turn(&self) -> Arc<dyn JsTurn> {
    self.direct.clone()
  }
}

/// The JS callback, held for calls made on the JS thread itself.
pub struct Direct {
  env: sys::napi_env,
  func: sys::napi_ref,
  context: sys::napi_async_context,
  /// Set by `close`, after which nothing here touches napi. Not done in
  /// Drop: the last Arc may go on a tokio thread, where napi must not be
  /// called, and after the env itself is gone (a worker that ended; seen as
  /// a crash in `napi_async_destroy` there).
  closed: AtomicBool,
}

// SAFETY: made on the JS thread, and its napi handles are used and released
// only there (`call` from the socket watcher on that thread's loop, `close`
// from the owning `CacheEngine`'s finalizer); other threads only hold it.
unsafe impl Send for Direct {}
unsafe impl Sync for Direct {}

impl Direct {
  fn new(env: sys::napi_env, func: sys::napi_value) -> napi::Result<Direct> {
    let mut direct = Direct { env, func: ptr::null_mut(), context: ptr::null_mut(), closed: AtomicBool::new(false) };
    // SAFETY: on the JS thread, with a live function value.
    let made = unsafe {
      napi::check_status!(sys::napi_create_reference(env, func, 1, &mut direct.func)).and_then(|()| {
        let name = String::to_napi_value(env, "FluxorCacheReplies".to_string())?;
        napi::check_status!(sys::napi_async_init(env, ptr::null_mut(), name, &mut direct.context))
      })
    };
    made.inspect_err(|_| direct.close())?;
    Ok(direct)
  }

  unsafe fn call(&self, batches: Vec<Batch>) {
    if self.closed.load(Ordering::Acquire) {
      return;
    }
    let env = self.env;
    let mut scope = ptr::null_mut();
    if sys::napi_open_handle_scope(env, &mut scope) != sys::Status::napi_ok {
      return;
    }
    let mut func = ptr::null_mut();
    let mut recv = ptr::null_mut();
    let ready = sys::napi_get_reference_value(env, self.func, &mut func) == sys::Status::napi_ok
      && !func.is_null()
      && sys::napi_get_global(env, &mut recv) == sys::Status::napi_ok;
    if ready {
      if let Ok(arg) = Vec::<Batch>::to_napi_value(env, batches) {
        let mut result = ptr::null_mut();
        if sys::napi_make_callback(env, self.context, recv, func, 1, &arg, &mut result) == sys::Status::napi_pending_exception {
          // As for any callback from the event loop: an uncaught exception.
          let mut err = ptr::null_mut();
          if sys::napi_get_and_clear_last_exception(env, &mut err) == sys::Status::napi_ok {
            sys::napi_fatal_exception(env, err);
          }
        }
      }
    }
    sys::napi_close_handle_scope(env, scope);
  }

  /// On the JS thread, while the env lives.
  fn close(&self) {
    if self.closed.swap(true, Ordering::AcqRel) {
      return;
    }
    // SAFETY: see above; the handles are live until this first close.
    unsafe {
      if !self.context.is_null() {
        sys::napi_async_destroy(self.env, self.context);
      }
      if !self.func.is_null() {
        sys::napi_delete_reference(self.env, self.func);
      }
    }
  }
}

impl JsTurn for Direct {
  /// Runs `read` (on the JS thread, from its event loop) and calls JS once
  /// with the batches it finished.
  fn run(&self, read: &mut dyn FnMut()) {
    let outer = COLLECTED.with(|c| c.borrow_mut().replace(Vec::new()));
    read();
    let batches = COLLECTED.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer)).unwrap_or_default();
    if !batches.is_empty() {
      // SAFETY: on the JS thread, from a libuv callback (no JS on the stack).
      unsafe { self.call(batches) };
    }
  }
}
