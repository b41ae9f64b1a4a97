//! A process-wide count of Rust panics, for the fault harness (`faults/`): a scenario must end
//! with 0 panics, including ones inside tokio tasks that the runtime would otherwise swallow.
//! The hook chains to the previous one, so panic messages still reach stderr as before.

use std::panic;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

use napi_derive::napi;

static PANICS: AtomicU64 = AtomicU64::new(0);
static INSTALL: Once = Once::new();

/// Installs the counting hook once per process (called when a client is created, so every panic
/// of the io thread and the binding is seen).
pub fn install_counter() {
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::Relaxed);
            previous(info);
        }));
    });
}

/// Rust panics seen in this process since the first client was created (diagnostics; the
/// fault harness asserts it stays 0).
#[napi]
pub fn panic_count() -> f64 {
    install_counter();
    PANICS.load(Ordering::Relaxed) as f64
}
