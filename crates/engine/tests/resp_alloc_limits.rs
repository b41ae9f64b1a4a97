//! P6 of RELIABILITY.md §5: the decoder's memory stays proportional to the bytes it was fed, not
//! to what a header claims. A counting global allocator keeps, per thread, the bytes currently
//! allocated and their peak; each case feeds one input the way the connection reader does (into
//! a growing read buffer, decoding after every chunk) and checks that the peak above the start
//! stays ≤ 2 × bytes fed + 64 KiB — the read buffer's growth included (its initial 64 KiB,
//! reserved before any byte arrives, is not). Cases: huge bulk and
//! aggregate headers (refused, or plausible and merely incomplete), RESP3 headers with counts
//! that overflow when doubled, 100,000-deep nesting, and arbitrary proptest bytes.
//!
//! Its own test binary: a global allocator is per binary, and counting per thread keeps the
//! other tests running in parallel out of the figures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::BytesMut;
use clustr_engine::resp::Decoder;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Counting allocator

struct Counting;

thread_local! {
    // Const-initialised Cells need no lazy registration or destructor, so touching them from
    // inside the allocator cannot recurse into it.
    static CURRENT: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn add(delta: i64) {
    let _ = CURRENT.try_with(|c| {
        let now = c.get() + delta;
        c.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as i64);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as i64));
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as i64);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Counted as the old block and the new one alive at once, as a moving realloc has them.
        add(new_size as i64);
        add(-(layout.size() as i64));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns its result and the peak of bytes allocated (net) on this thread while
/// it ran, above what was allocated when it started.
fn peak_of<R>(f: impl FnOnce() -> R) -> (R, usize) {
    CURRENT.with(|c| c.set(0));
    PEAK.with(|p| p.set(0));
    let r = f();
    (r, PEAK.with(|p| p.get()).max(0) as usize)
}

// ---------------------------------------------------------------------------------------------
// Feeding

/// How a stream ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Rejected,
    /// Every byte fed, no error: complete frames and possibly an incomplete one.
    Open,
}

/// A read buffer as the connection reader starts it: 64 KiB whatever comes. That fixed cost is
/// paid before any byte arrives, so it is made outside the measurement.
fn read_buffer() -> BytesMut {
    BytesMut::with_capacity(64 * 1024)
}

/// Feeds `input` in `chunk`-byte reads into `buf` managed like the connection reader's
/// (another 64 KiB whenever less than 16 KiB is free), decoding (and dropping) every complete
/// frame after each read, until an error or the end of the input.
fn feed(input: &[u8], chunk: usize, mut buf: BytesMut) -> End {
    let mut d = Decoder::default();
    for piece in input.chunks(chunk.max(1)) {
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        buf.extend_from_slice(piece);
        loop {
            match d.decode(&mut buf) {
                Ok(Some(frame)) => drop(frame),
                Ok(None) => break,
                Err(_) => return End::Rejected,
            }
        }
    }
    End::Open
}

/// The bound of P6 for `fed` bytes.
fn bound(fed: usize) -> usize {
    2 * fed + 64 * 1024
}

/// Feeds `input` whole and in small reads; checks the bound and returns how it ended.
fn check(name: &str, input: &[u8]) -> End {
    let mut ends = Vec::new();
    for chunk in [input.len(), 4096, 7] {
        let buf = read_buffer();
        let (end, peak) = peak_of(|| feed(input, chunk, buf));
        assert!(
            peak <= bound(input.len()),
            "{name} (reads of {chunk}): peak {peak} bytes for {} fed",
            input.len()
        );
        ends.push(end);
    }
    assert!(ends.windows(2).all(|w| w[0] == w[1]), "{name}: {ends:?}");
    ends.pop().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Cases

/// The instrument itself: a decoder that did reserve for a header would be caught.
#[test]
fn the_counter_sees_a_reservation_the_size_of_a_header() {
    let ((), peak) = peak_of(|| drop(Vec::<u8>::with_capacity(1 << 20)));
    assert!(peak >= 1 << 20, "peak {peak}");
    let (v, peak) = peak_of(|| vec![0u64; 1000]);
    assert!(peak >= 8000 && v.len() == 1000, "peak {peak}");
}

#[test]
fn huge_size_headers_cost_no_more_than_their_own_bytes() {
    for (input, end) in [
        (&b"$1073741824\r\n"[..], End::Rejected),
        (b"$99999999999999999999\r\n", End::Rejected),
        (b"*4294967296\r\n", End::Rejected),
        (b"*9223372036854775807\r\n", End::Rejected),
        (b"*2\r\n*4294967296\r\n", End::Rejected),
        // RESP3 aggregates (a map's count doubled overflows i64): RESP2 was negotiated, so the
        // type byte alone is refused.
        (b"%4611686018427387904\r\n", End::Rejected),
        (b"~4294967296\r\n", End::Rejected),
        (b">4294967296\r\n", End::Rejected),
        (b"|4294967296\r\n", End::Rejected),
        // Within the limits but with nothing behind them: incomplete, and still nothing is
        // reserved for what they announce.
        (b"$536870912\r\nabc", End::Open),
        (b"*4294967295\r\n:1\r\n", End::Open),
        (b"*4294967295\r\n*4294967295\r\n*4294967295\r\n", End::Open),
    ] {
        let name = input.escape_ascii().to_string();
        assert_eq!(check(&name, input), end, "{name}");
    }
}

#[test]
fn nesting_100000_deep_is_refused_in_bounded_memory() {
    let deep = b"*1\r\n".repeat(100_000);
    assert_eq!(check("100000 x *1", &deep), End::Rejected);
    // Wide at every level: each level's reservation would be 1024 entries if built.
    let wide = b"*4294967295\r\n".repeat(100_000);
    assert_eq!(check("100000 x *4294967295", &wide), End::Rejected);
}

#[test]
fn a_long_valid_prefix_before_the_error_is_not_built() {
    // 100,000 integers in an array that then breaks: validation refuses it before building
    // anything (10 × expansion into values would break the bound).
    let mut input = b"*100001\r\n".to_vec();
    input.extend_from_slice(&b":1\r\n".repeat(100_000));
    input.extend_from_slice(b"&\r\n");
    assert_eq!(check("long prefix then garbage", &input), End::Rejected);
}

#[test]
fn a_line_without_an_end_is_refused_at_the_line_limit() {
    let mut input = b"+".to_vec();
    input.resize(1 << 20, b'x');
    assert_eq!(check("1 MiB status line", &input), End::Rejected);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Arbitrary bytes, and arbitrary bytes behind a header a hostile server might send:
    /// whatever they do, memory stays within the bound (fed ≤ 4 KiB, so even frames that do
    /// decode stay below it: a value is at most ~10× its encoding).
    #[test]
    fn arbitrary_bytes_stay_within_the_bound(
        head in prop::sample::select(vec![
            &b""[..], b"*4294967295\r\n", b"$536870912\r\n", b"*3\r\n*2\r\n", b"*1\r\n*1\r\n*1\r\n",
        ]),
        tail in prop::collection::vec(any::<u8>(), 0..4096),
        chunk in 1usize..600,
    ) {
        let mut input = head.to_vec();
        input.extend_from_slice(&tail);
        let buf = read_buffer();
        let (_, peak) = peak_of(|| feed(&input, chunk, buf));
        prop_assert!(peak <= bound(input.len()), "peak {} for {} bytes", peak, input.len());
    }
}
