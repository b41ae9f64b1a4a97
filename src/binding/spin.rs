//! Keeps the JS thread awake for a moment after it wrote a lone command itself, so that the
//! wake-up for the reply finds it running instead of asleep in epoll.
//!
//! Why: a reply crosses two threads (the io thread reads it, then wakes the JS thread), and on a
//! VM a sleeping thread is slow to wake. Measured on the 2-vCPU bench VM, one GET at a time: with
//! the JS thread kept awake after its write, p50 went from 95 to 64 µs (redis-clustr, which wakes
//! once, 62–65 µs), for 15–25 % more CPU per GET.
//!
//! How: a libuv prepare handle runs when the loop has run every callback, tick and microtask and
//! is about to block. If a lone command was written since the last time, it polls the loop's own
//! epoll fd (without taking its events) and the sink's flag until anything is ready (normally the
//! reply), the loop's next timer is due, or `cap` has passed. So it delays no callback:
//! it only spends time the thread would have slept, as CPU. After 8 spins in a row that saw no
//! event within the cap (a server too far away), it pauses for the next 256 lone commands. With
//! several clients on one thread, one cap per loop turn is spent at most; with one CPU, never
//! (the spinning thread would keep the io thread, which must deliver the reply, off the CPU).
//! When the event that ends the spin is the io thread's wake-up (the sink has work), the spin
//! calls the shim's wake function itself, as the libuv async callback would a moment later: a
//! first version that left it to that path (epoll, the eventfd read, N-API's queue) had a p50
//! ~7 µs above a probe that took the replies at once. The async callback still comes, and finds
//! little or nothing to take.
//!
//! Lifetime: the handle is unref'd (it never keeps the process alive), closed by `close()` or
//! when the client is collected, and otherwise by an async cleanup hook when the environment
//! exits (a worker thread's loop must have no open handle left when it closes).

#[cfg(unix)]
use std::cell::Cell;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
#[cfg(unix)]
use std::time::Instant;

use clustr_io::Sink;
use napi::bindgen_prelude::{Function, FunctionRef};
use napi::{sys, JsValue};

/// The shim's wake function: takes what the sink holds and settles it.
type WakeNow = FunctionRef<(), ()>;

/// The cap when the caller sets none (`spinMicros`): above a loopback or same-rack round trip
/// through both threads on a slow VM (60–100 µs), far below a timer's 1 ms.
pub const DEFAULT_US: u32 = 200;
/// The most a caller may ask for: a spin must never hold the thread for a timer's length.
pub const MAX_US: u32 = 1000;
/// Spins in a row that saw no event before the cap, after which spinning pauses.
#[cfg(unix)]
const MISSES_BEFORE_PAUSE: u32 = 8;
/// Lone commands that are not followed by a spin during a pause.
#[cfg(unix)]
const PAUSE: u32 = 256;
/// A spin that would start this soon after another one ran out is in the same loop turn.
#[cfg(unix)]
const SAME_TURN: Duration = Duration::from_micros(20);

#[cfg(unix)]
thread_local! {
    /// When a spin on this thread (any client's) last ran out without an event.
    static LAST_MISS: Cell<Option<Instant>> = const { Cell::new(None) };
}

#[cfg(unix)]
mod uv {
    use std::ffi::{c_int, c_ulong, c_void};

    use napi::sys::uv_loop_s;

    pub const UV_PREPARE: c_int = 9;
    /// `nfds_t`: unsigned int on macOS, unsigned long on Linux.
    #[cfg(target_os = "macos")]
    pub type Nfds = std::ffi::c_uint;
    #[cfg(not(target_os = "macos"))]
    pub type Nfds = c_ulong;
    pub const POLLIN: i16 = 1;

    #[repr(C)]
    pub struct PollFd {
        pub fd: c_int,
        pub events: i16,
        pub revents: i16,
    }

    // libuv's own symbols, exported by the node binary like the N-API ones.
    extern "C" {
        pub fn uv_handle_size(kind: c_int) -> usize;
        pub fn uv_prepare_init(lp: *mut uv_loop_s, handle: *mut c_void) -> c_int;
        pub fn uv_prepare_start(
            handle: *mut c_void,
            cb: unsafe extern "C" fn(*mut c_void),
        ) -> c_int;
        pub fn uv_unref(handle: *mut c_void);
        pub fn uv_close(handle: *mut c_void, cb: unsafe extern "C" fn(*mut c_void));
        pub fn uv_backend_fd(lp: *const uv_loop_s) -> c_int;
        pub fn uv_backend_timeout(lp: *const uv_loop_s) -> c_int;
        pub fn uv_update_time(lp: *mut uv_loop_s);
        pub fn poll(fds: *mut PollFd, n: Nfds, timeout: c_int) -> c_int;
    }
}

/// The state the JS thread and the prepare handle share. Only the JS thread touches it; the
/// fields are atomics so the client object stays `Send`. (Without unix, nothing spins and most
/// fields are never read.)
#[cfg_attr(not(unix), allow(dead_code))]
pub struct Spin {
    cap: Duration,
    armed: AtomicBool,
    misses_in_row: AtomicU32,
    paused: AtomicU32,
    /// Spins that ended on an event, and spins that reached the cap.
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    lp: AtomicPtr<sys::uv_loop_s>,
    env: AtomicPtr<sys::napi_env__>,
    /// For napi_make_callback, which runs ticks and microtasks after the call like any callback.
    ctx: AtomicPtr<sys::napi_async_context__>,
    sink: Arc<Sink>,
    wake: Mutex<Option<WakeNow>>,
    handle: AtomicPtr<c_void>,
    hook: AtomicPtr<sys::napi_async_cleanup_hook_handle__>,
    closing: AtomicBool,
}

impl Spin {
    /// Starts the prepare handle on `env`'s loop; None where that is not available (or `cap` 0).
    #[cfg(unix)]
    pub fn start(
        env: sys::napi_env,
        cap_us: u32,
        sink: Arc<Sink>,
        wake: &Function<(), ()>,
    ) -> Option<Arc<Spin>> {
        // With one CPU (or a quota of one), a spinning JS thread would keep the io thread that
        // must deliver the reply off the CPU: every spin would run out.
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cap_us == 0 || cpus < 2 {
            return None;
        }
        let wake = wake.create_ref().ok()?;
        let mut lp = std::ptr::null_mut();
        let mut ctx = std::ptr::null_mut();
        // SAFETY: env is the live environment of the constructor call.
        unsafe {
            if sys::napi_get_uv_event_loop(env, &mut lp) != sys::Status::napi_ok || lp.is_null() {
                return None;
            }
            let mut name = std::ptr::null_mut();
            let label = c"redis-clustr-native:spin";
            if sys::napi_create_string_utf8(env, label.as_ptr(), -1, &mut name)
                != sys::Status::napi_ok
                || sys::napi_async_init(env, std::ptr::null_mut(), name, &mut ctx)
                    != sys::Status::napi_ok
            {
                return None;
            }
        }
        let spin = Arc::new(Spin {
            cap: Duration::from_micros(cap_us as u64),
            armed: AtomicBool::new(false),
            misses_in_row: AtomicU32::new(0),
            paused: AtomicU32::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            lp: AtomicPtr::new(lp),
            env: AtomicPtr::new(env),
            ctx: AtomicPtr::new(ctx),
            sink,
            wake: Mutex::new(Some(wake)),
            handle: AtomicPtr::new(std::ptr::null_mut()),
            hook: AtomicPtr::new(std::ptr::null_mut()),
            closing: AtomicBool::new(false),
        });
        // SAFETY: the handle is allocated with libuv's own size for it, its first field (`data`)
        // holds one strong reference to `spin`, released in `on_close`; all on the loop thread.
        unsafe {
            let layout = handle_layout();
            let handle = std::alloc::alloc(layout) as *mut c_void;
            if handle.is_null() {
                sys::napi_async_destroy(env, ctx);
                return None;
            }
            if uv::uv_prepare_init(lp, handle) != 0 {
                std::alloc::dealloc(handle as *mut u8, layout);
                sys::napi_async_destroy(env, ctx);
                return None;
            }
            *(handle as *mut *const Spin) = Arc::into_raw(spin.clone());
            spin.handle.store(handle, Relaxed);
            uv::uv_prepare_start(handle, on_prepare);
            uv::uv_unref(handle);
            // The hook holds a reference of its own, released when it runs or is removed.
            let mut hook = std::ptr::null_mut();
            let arg = Arc::into_raw(spin.clone()) as *mut c_void;
            if sys::napi_add_async_cleanup_hook(env, Some(on_env_exit), arg, &mut hook)
                == sys::Status::napi_ok
            {
                spin.hook.store(hook, Relaxed);
            } else {
                // Without the hook a worker's exit would find the handle open: no spin then.
                drop(Arc::from_raw(arg as *const Spin));
                spin.close();
                return None;
            }
        }
        Some(spin)
    }

    #[cfg(not(unix))]
    pub fn start(
        _env: sys::napi_env,
        _cap_us: u32,
        _sink: Arc<Sink>,
        _wake: &Function<(), ()>,
    ) -> Option<Arc<Spin>> {
        None
    }

    /// A lone command was just written from the JS thread: spin before the loop next sleeps.
    pub fn arm(&self) {
        self.armed.store(true, Relaxed);
    }

    /// Closes the handle (once; later calls do nothing). Call on the loop's thread.
    pub fn close(self: &Arc<Self>) {
        if self.closing.swap(true, Relaxed) {
            return;
        }
        let hook = self.hook.swap(std::ptr::null_mut(), Relaxed);
        // The wake function holds the client's JS object: it goes with the handle.
        drop(self.wake.lock().unwrap_or_else(|e| e.into_inner()).take());
        // SAFETY: on the loop thread; the hook was registered with one strong reference as its
        // argument, which is released here since it will never run now.
        unsafe {
            if !hook.is_null() && sys::napi_remove_async_cleanup_hook(hook) == sys::Status::napi_ok
            {
                drop(Arc::from_raw(Arc::as_ptr(self)));
            }
            close_handle(self);
        }
    }

    /// Runs the shim's wake function now, as an async callback would (ticks and microtasks
    /// after it). An exception it throws is reported like any uncaught exception.
    #[cfg(unix)]
    fn wake_now(&self) {
        let env = self.env.load(Relaxed);
        let ctx = self.ctx.load(Relaxed);
        // SAFETY: on the loop thread, between callbacks (no JS on the stack), inside a handle
        // scope of our own; every value used is created in that scope. The lock is not held
        // during the call: the JS it runs may close the client (close() takes it).
        unsafe {
            let mut scope = std::ptr::null_mut();
            if sys::napi_open_handle_scope(env, &mut scope) != sys::Status::napi_ok {
                return;
            }
            let napi_env = napi::Env::from_raw(env);
            let f = {
                let guard = self.wake.lock().unwrap_or_else(|e| e.into_inner());
                guard.as_ref().and_then(|w| w.borrow_back(&napi_env).ok())
            };
            if let Some(f) = f {
                let mut recv = std::ptr::null_mut();
                let mut out = std::ptr::null_mut();
                // napi_make_callback needs an object as `this` (undefined throws).
                sys::napi_get_global(env, &mut recv);
                let status =
                    sys::napi_make_callback(env, ctx, recv, f.raw(), 0, std::ptr::null(), &mut out);
                if status == sys::Status::napi_pending_exception {
                    let mut e = std::ptr::null_mut();
                    sys::napi_get_and_clear_last_exception(env, &mut e);
                    sys::napi_fatal_exception(env, e);
                }
            }
            sys::napi_close_handle_scope(env, scope);
        }
    }

    /// The prepare callback's work: see the module comment.
    #[cfg(unix)]
    fn run(&self) {
        if !self.armed.swap(false, Relaxed) || self.closing.load(Relaxed) {
            return;
        }
        let paused = self.paused.load(Relaxed);
        if paused > 0 {
            self.paused.store(paused - 1, Relaxed);
            return;
        }
        // Another client's spin on this thread just ran out in this same loop turn: one cap per
        // turn, however many clients are armed.
        let now = Instant::now();
        if LAST_MISS.with(|m| m.get().is_some_and(|t| now.duration_since(t) < SAME_TURN)) {
            return;
        }
        let lp = self.lp.load(Relaxed);
        // SAFETY: the loop outlives its handles. The loop's clock is brought up to date first:
        // the next timer's distance is then measured from now, not from the last poll.
        let (timeout, fd) = unsafe {
            uv::uv_update_time(lp);
            (uv::uv_backend_timeout(lp), uv::uv_backend_fd(lp))
        };
        if timeout == 0 || fd < 0 {
            return; // the loop will not sleep: there is work already
        }
        let cap = if timeout > 0 {
            self.cap.min(Duration::from_millis(timeout as u64))
        } else {
            self.cap
        };
        let start = Instant::now();
        let mut pfd = uv::PollFd {
            fd,
            events: uv::POLLIN,
            revents: 0,
        };
        let mut round = 0u32;
        loop {
            // The reply (the sink has work, seen without a syscall), or any other event: an epoll
            // fd polls readable while one of its events is ready, and nothing is consumed.
            round = round.wrapping_add(1);
            let reply = self.sink.has_work();
            // SAFETY: one valid pollfd, zero timeout.
            if reply || (round & 7 == 0 && unsafe { uv::poll(&mut pfd, 1, 0) } > 0) {
                // SAFETY: as above; libuv then takes the time spun off the timers' wait.
                unsafe { uv::uv_update_time(lp) };
                self.hits.fetch_add(1, Relaxed);
                self.misses_in_row.store(0, Relaxed);
                if reply {
                    self.wake_now();
                }
                return;
            }
            if start.elapsed() >= cap {
                // SAFETY: as above.
                unsafe { uv::uv_update_time(lp) };
                LAST_MISS.with(|m| m.set(Some(Instant::now())));
                self.misses.fetch_add(1, Relaxed);
                let n = self.misses_in_row.load(Relaxed) + 1;
                if n >= MISSES_BEFORE_PAUSE {
                    self.misses_in_row.store(0, Relaxed);
                    self.paused.store(PAUSE, Relaxed);
                } else {
                    self.misses_in_row.store(n, Relaxed);
                }
                return;
            }
            std::hint::spin_loop();
        }
    }
}

#[cfg(unix)]
fn handle_layout() -> std::alloc::Layout {
    // SAFETY: a pure query of a size.
    let size = unsafe { uv::uv_handle_size(uv::UV_PREPARE) };
    std::alloc::Layout::from_size_align(size.max(1), 16).expect("a small handle layout")
}

#[cfg(unix)]
unsafe fn close_handle(spin: &Spin) {
    let handle = spin.handle.swap(std::ptr::null_mut(), Relaxed);
    if !handle.is_null() {
        uv::uv_close(handle, on_close);
    }
}

#[cfg(not(unix))]
unsafe fn close_handle(_spin: &Spin) {}

#[cfg(unix)]
unsafe extern "C" fn on_prepare(handle: *mut c_void) {
    let spin = &*(*(handle as *const *const Spin));
    spin.run();
}

/// libuv is done with the handle: free it and the reference its `data` held.
#[cfg(unix)]
unsafe extern "C" fn on_close(handle: *mut c_void) {
    let spin = Arc::from_raw(*(handle as *const *const Spin));
    std::alloc::dealloc(handle as *mut u8, handle_layout());
    // The async context goes only now: a wake_now may have been using it when close() ran.
    // Closed by the environment's exit: the exit waits until the hook is removed.
    let ctx = spin.ctx.swap(std::ptr::null_mut(), Relaxed);
    if !ctx.is_null() {
        sys::napi_async_destroy(spin.env.load(Relaxed), ctx);
    }
    let hook = spin.hook.swap(std::ptr::null_mut(), Relaxed);
    if !hook.is_null() {
        sys::napi_remove_async_cleanup_hook(hook);
    }
}

/// The environment is exiting with the client still open: close the handle, and remove the hook
/// (which lets the exit go on) once libuv has let go of it.
#[cfg(unix)]
unsafe extern "C" fn on_env_exit(hook: sys::napi_async_cleanup_hook_handle, arg: *mut c_void) {
    let spin = Arc::from_raw(arg as *const Spin);
    if spin.closing.swap(true, Relaxed) || spin.handle.load(Relaxed).is_null() {
        sys::napi_remove_async_cleanup_hook(hook);
        return;
    }
    spin.hook.store(hook, Relaxed);
    close_handle(&spin);
}
