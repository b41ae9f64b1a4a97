//! Large bulk replies as JS strings without a copy: an ASCII bulk of `EXTERNAL_MIN` bytes or more
//! becomes an external one-byte (Latin-1) string over the reply's own bytes, which ASCII bytes
//! are as they stand. Turning a 1 MiB reply into a string the ordinary way (UTF-8 decoding into
//! a fresh V8 large-object page, page faults and all) was about a fifth of the client's CPU in
//! the `big` benchmark.
//!
//! `node_api_create_external_string_latin1` arrived in Node 18.18 / 20.4, and the package
//! supports Node 18 from 18.0: the function is looked up once at run time (`dlsym`), never
//! linked, so an older Node takes the copying path instead of failing to load or aborting.

use std::ffi::{c_char, c_void};
use std::ptr;
use std::sync::OnceLock;

use napi::sys::{self, napi_env, napi_finalize, napi_value};

type CreateLatin1 = unsafe extern "C" fn(
    env: napi_env,
    str: *mut c_char,
    length: usize,
    finalize_callback: napi_finalize,
    finalize_hint: *mut c_void,
    result: *mut napi_value,
    copied: *mut bool,
) -> sys::napi_status;

#[cfg(unix)]
fn lookup() -> Option<CreateLatin1> {
    extern "C" {
        fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    }
    // RTLD_DEFAULT: every object already loaded, the node binary included.
    #[cfg(target_os = "macos")]
    let handle = -2isize as *mut c_void;
    #[cfg(not(target_os = "macos"))]
    let handle = ptr::null_mut();
    let f = unsafe { dlsym(handle, c"node_api_create_external_string_latin1".as_ptr()) };
    if f.is_null() {
        None
    } else {
        // Safety: the symbol is Node-API's, with exactly this signature (js_native_api.h).
        Some(unsafe { std::mem::transmute::<*mut c_void, CreateLatin1>(f) })
    }
}

#[cfg(not(unix))]
fn lookup() -> Option<CreateLatin1> {
    None
}

fn create_latin1() -> Option<CreateLatin1> {
    static F: OnceLock<Option<CreateLatin1>> = OnceLock::new();
    *F.get_or_init(lookup)
}

/// Frees the bytes behind an external string or Buffer once V8 has collected it.
pub unsafe extern "C" fn release_bytes(_env: napi_env, _data: *mut c_void, hint: *mut c_void) {
    drop(unsafe { Box::from_raw(hint.cast::<bytes::Bytes>()) });
}

/// Frees an external string's bytes once V8 has collected it, and takes them back out of the
/// memory V8 counts (see `ascii_string`).
unsafe extern "C" fn release_string(env: napi_env, _data: *mut c_void, hint: *mut c_void) {
    let bytes = unsafe { Box::from_raw(hint.cast::<bytes::Bytes>()) };
    let mut total = 0;
    // During teardown this may fail; there is nothing left to account for then.
    let _ = unsafe { sys::napi_adjust_external_memory(env, -(bytes.len() as i64), &mut total) };
}

/// `b` as an external JS string, or None when that cannot be done here (not ASCII, an older
/// Node, or Node declined): the caller then makes an ordinary string.
pub fn ascii_string(env: napi_env, b: &bytes::Bytes) -> Option<napi_value> {
    let create = create_latin1()?;
    if !b.is_ascii() {
        return None;
    }
    // V8 does not count an external string's bytes as memory it holds: told nothing, it saw no
    // reason to collect 1 MiB strings and a benchmark's RSS grew past 1 GiB. Counted here
    // before the string exists (its finalizer, which may run at once, takes them back out).
    let mut total = 0;
    let len = b.len() as i64;
    let _ = unsafe { sys::napi_adjust_external_memory(env, len, &mut total) };
    let owner = Box::into_raw(Box::new(b.clone()));
    let mut v = ptr::null_mut();
    let mut copied = false;
    let status = unsafe {
        create(
            env,
            b.as_ptr() as *mut c_char,
            b.len(),
            Some(release_string),
            owner.cast(),
            &mut v,
            &mut copied,
        )
    };
    // Copied or not, a string was made and the finalizer owns `owner` (when Node copied, it has
    // run it already). On failure it was never taken: free it and let the caller copy.
    if status == sys::Status::napi_ok {
        return Some(v);
    }
    let _ = unsafe { sys::napi_adjust_external_memory(env, -len, &mut total) };
    drop(unsafe { Box::from_raw(owner) });
    None
}
