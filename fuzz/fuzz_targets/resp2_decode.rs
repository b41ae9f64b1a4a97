//! Raw bytes into the RESP2 decoder, all at once: never a panic, the per-call contract holds
//! (see `clustr_fuzz::feed`), and every frame it returns re-encodes and decodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let m = clustr_fuzz::feed(data, &[]);
    for frame in &m.frames {
        clustr_fuzz::assert_reencodes(frame);
    }
});
