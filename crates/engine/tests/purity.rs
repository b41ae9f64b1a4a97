//! Keeps the engine free of I/O, clocks and randomness (ARCHITECTURE.md): its Cargo.toml has no
//! tokio or napi dependency, so the compiler already refuses those; this test refuses the std
//! escapes the compiler cannot see.

use std::fs;
use std::path::Path;

const FORBIDDEN: &[&str] = &[
    "std::net",
    "std::fs",
    "std::thread",
    "std::process",
    "Instant::now",
    "SystemTime",
    "tokio",
    "napi",
];

#[test]
fn engine_sources_use_no_io_clock_or_randomness() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offences = Vec::new();
    for entry in fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for f in FORBIDDEN {
                if code.contains(f) {
                    offences.push(format!("{}:{}: {}", path.display(), n + 1, f));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "engine must stay pure:\n{}",
        offences.join("\n")
    );
}

#[test]
fn engine_manifest_has_no_runtime_dependencies() {
    let manifest =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let declared: Vec<&str> = manifest
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.starts_with('#'))
        .collect();
    for dep in ["tokio", "napi", "mio", "socket2"] {
        assert!(
            !declared.iter().any(|l| l.starts_with(dep)),
            "engine depends on {dep}"
        );
    }
}
