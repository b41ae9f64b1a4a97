//! MOVED/ASK (and the other cluster conditions) from an arbitrary error line: never a panic; an
//! accepted redirection names a slot 0..=16383 and a valid address, and formatting it back as
//! `MOVED <slot> <addr>` classifies to the same thing; the error code is at most 32 characters.
#![no_main]

use clustr_engine::redirect::{classify, error_code, Redirect};
use clustr_engine::topology::NodeAddr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let current = NodeAddr::new("10.0.0.9", 7000);
    assert!(error_code(data).chars().count() <= 32);
    let Ok(Some(r)) = classify(data, &current) else {
        return;
    };
    let (slot, addr) = match &r {
        Redirect::Moved { slot, addr } | Redirect::Ask { slot, addr } => (*slot, addr),
        _ => return,
    };
    assert!(slot < 16384, "slot {slot}");
    clustr_fuzz::assert_host_ok(addr);
    let line = format!("MOVED {slot} {addr}");
    assert_eq!(
        classify(line.as_bytes(), &current),
        Ok(Some(Redirect::Moved {
            slot,
            addr: addr.clone()
        })),
        "{line}"
    );
});
