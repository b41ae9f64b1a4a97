//! The decoder must mean the same whatever the reads: the first byte says how many of the
//! following bytes are read sizes (up to 8), the rest is the stream. Fed in those reads it must
//! give the same frames, then the same error or the same unread tail, as fed all at once and
//! byte by byte.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = (n as usize % 9).min(rest.len());
    let (sizes, stream) = rest.split_at(n);
    let sizes: Vec<usize> = sizes.iter().map(|&s| s as usize).collect();
    let whole = clustr_fuzz::feed(stream, &[]);
    let chunked = clustr_fuzz::feed(stream, &sizes);
    assert_eq!(whole, chunked, "reads of {sizes:?}");
    if stream.len() <= 4096 {
        assert_eq!(whole, clustr_fuzz::feed(stream, &[1]), "byte by byte");
    }
});
