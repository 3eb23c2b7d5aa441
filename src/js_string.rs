//! Reply texts as JS strings. V8 caps a string at 2^29 - 24 UTF-16 units
//! (about 512 MB of ASCII): a longer value, or an mget whose values together
//! pass it, cannot become one. Such a reply becomes that call's
//! ERR_REPLY_TOO_LARGE Error instead, so the rest of its batch, which crosses
//! to JS in the same callback, is still delivered.

use std::ptr;

use napi::bindgen_prelude::{Buffer, Null, ToNapiValue};
use napi::sys;

use crate::error::{CacheError, Code};
use crate::ops::Stored;

/// `s` as a JS string, or the Error that says it is too large for one.
///
/// # Safety
/// On the JS thread of `env`.
pub unsafe fn string(env: sys::napi_env, s: String) -> napi::Result<sys::napi_value> {
  let len = s.len();
  String::to_napi_value(env, s).or_else(|_| too_large(env, len))
}

/// An array of strings, Buffers (stored bytes) and nulls (mget values that
/// are not all JSON).
///
/// # Safety
/// On the JS thread of `env`.
pub unsafe fn list(env: sys::napi_env, items: Vec<Option<Stored>>) -> napi::Result<sys::napi_value> {
  let total = items.iter().map(|s| if let Some(Stored::Text(t)) = s { t.len() } else { 0 }).sum();
  let mut array = ptr::null_mut();
  napi::check_status!(sys::napi_create_array_with_length(env, items.len(), &mut array))?;
  for (i, item) in items.into_iter().enumerate() {
    let value = match item {
      Some(Stored::Text(s)) => match String::to_napi_value(env, s) {
        Ok(v) => v,
        Err(_) => return too_large(env, total),
      },
      Some(Stored::Bytes(b)) => Buffer::to_napi_value(env, b.into())?,
      None => Null::to_napi_value(env, Null)?,
    };
    napi::check_status!(sys::napi_set_element(env, array, i as u32, value))?;
  }
  Ok(array)
}

/// The Error of a reply of `bytes` that V8 refused as a string. V8 may have
/// thrown as it refused: that exception is cleared, this Error replaces it.
unsafe fn too_large(env: sys::napi_env, bytes: usize) -> napi::Result<sys::napi_value> {
  let mut pending = false;
  if sys::napi_is_exception_pending(env, &mut pending) == sys::Status::napi_ok && pending {
    let mut thrown = ptr::null_mut();
    sys::napi_get_and_clear_last_exception(env, &mut thrown);
  }
  let message = format!("the reply ({bytes} bytes) is too large to become a JavaScript string (at most 2^29 - 24 characters); read the value in parts");
  crate::create_error(env, CacheError::new(Code::ReplyTooLarge, message))
}
