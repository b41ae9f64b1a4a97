//! Replays the error lines the `redirect_line` fuzz target (fuzz/) once tripped over, kept in
//! `tests/fuzz-regressions/redirect_line/`, with the target's own property: classifying never
//! panics, and an accepted MOVED/ASK names a slot 0..=16383 and a valid address that formats
//! back (`MOVED <slot> <addr>`) to the same redirection.

use std::path::Path;

use clustr_engine::redirect::{classify, Redirect};
use clustr_engine::topology::NodeAddr;

#[test]
fn every_saved_redirect_line_still_behaves() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions/redirect_line");
    let current = NodeAddr::new("10.0.0.9", 7000);
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).expect("the redirect_line regressions folder") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let line = std::fs::read(&path).unwrap();
        replayed += 1;
        let Ok(Some(Redirect::Moved { slot, addr } | Redirect::Ask { slot, addr })) =
            classify(&line, &current)
        else {
            continue;
        };
        assert!(slot < 16384, "{name}");
        assert!(
            !addr
                .host
                .chars()
                .any(|c| c.is_control() || c == '[' || c == ']'),
            "{name}: host {:?}",
            addr.host
        );
        let again = format!("MOVED {slot} {addr}");
        assert_eq!(
            classify(again.as_bytes(), &current),
            Ok(Some(Redirect::Moved { slot, addr })),
            "{name}: {again}"
        );
    }
    assert!(replayed > 0, "no saved lines in {}", dir.display());
}

/// The line the fuzzer found: a host with brackets was accepted and printed as `[...]:port`,
/// which reads back as something else. Now it is refused outright.
#[test]
fn a_host_with_brackets_is_refused() {
    let current = NodeAddr::new("10.0.0.9", 7000);
    let got = classify(b"MOVED 0 -[:12]:1400", &current);
    assert!(got.is_err(), "{got:?}");
}
