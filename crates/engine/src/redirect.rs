//! Classifies a server error line (the bytes after `-`) into the cluster conditions the request
//! state machine acts on: MOVED/ASK redirections and the transient TRYAGAIN, CLUSTERDOWN,
//! LOADING, MASTERDOWN and READONLY states. Anything else is an ordinary error for the caller.
//!
//! The line is hostile input: the slot must be plain decimal 0..=16383, the port 1..=65535 and
//! the host pass the same checks as hosts in a topology reply (UTF-8, no control characters, at
//! most 255 bytes). A malformed MOVED/ASK is an error, never a guess. Codes are matched on the
//! exact first word, case-sensitively, as the server sends them.

use crate::slot::SLOTS;
use crate::topology::NodeAddr;
use crate::topology_parse::{bail, excerpt, validate_host, validate_port, TopologyError};

/// A cluster condition named by a server error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redirect {
    /// The slot now lives at `addr` for good: patch the map and resend there.
    Moved { slot: u16, addr: NodeAddr },
    /// The slot is migrating: resend this one request to `addr`, preceded by ASKING.
    Ask { slot: u16, addr: NodeAddr },
    /// A multi-key request hit a slot being migrated; retry after a short wait.
    TryAgain,
    /// The cluster (or this slot) is not served right now.
    ClusterDown,
    /// The node is loading its dataset.
    Loading,
    /// A replica lost its master and is configured not to serve stale data.
    MasterDown,
    /// A write reached a replica: the map is stale.
    ReadOnly,
}

/// The longest error code `error_code` returns, in bytes.
const MAX_CODE: usize = 32;

/// The first word of an error line (up to the first space, at most 32 bytes), lossily decoded:
/// the code JS sees for a server error, e.g. `ERR`, `WRONGTYPE`, `MOVED`.
pub fn error_code(err: &[u8]) -> String {
    let word = err.split(|&c| c == b' ').next().unwrap_or_default();
    String::from_utf8_lossy(&word[..word.len().min(MAX_CODE)]).into_owned()
}

/// Classifies an error line received from `current`. `Ok(None)` means an ordinary error; `Err`
/// means a MOVED/ASK that cannot be trusted (the connection's peer is misbehaving).
pub fn classify(err: &[u8], current: &NodeAddr) -> Result<Option<Redirect>, TopologyError> {
    let (code, rest) = match err.iter().position(|&c| c == b' ') {
        Some(i) => (&err[..i], Some(&err[i + 1..])),
        None => (err, None),
    };
    Ok(Some(match code {
        b"MOVED" | b"ASK" => {
            let name = if code == b"ASK" { "ASK" } else { "MOVED" };
            let (slot, addr) = target(rest.unwrap_or_default(), current)
                .map_err(|e| e.at(format_args!("{name} redirection")))?;
            if code == b"ASK" {
                Redirect::Ask { slot, addr }
            } else {
                Redirect::Moved { slot, addr }
            }
        }
        b"TRYAGAIN" => Redirect::TryAgain,
        b"CLUSTERDOWN" => Redirect::ClusterDown,
        b"LOADING" => Redirect::Loading,
        b"MASTERDOWN" => Redirect::MasterDown,
        b"READONLY" => Redirect::ReadOnly,
        _ => return Ok(None),
    }))
}

/// Parses `<slot> <host>:<port>` (exactly; no extra words).
fn target(rest: &[u8], current: &NodeAddr) -> Result<(u16, NodeAddr), TopologyError> {
    let mut words = rest.split(|&c| c == b' ');
    let slot_word = words.next().unwrap_or_default();
    let Some(addr) = words.next() else {
        bail!("no address after \"{}\"", excerpt(rest));
    };
    if words.next().is_some() {
        bail!("unexpected words in \"{}\"", excerpt(rest));
    }
    let slot = match decimal(slot_word) {
        Some(s) if s < SLOTS as u32 => s as u16,
        _ => bail!("slot \"{}\" is not a decimal 0..=16383", excerpt(slot_word)),
    };
    Ok((slot, address(addr, current)?))
}

/// `host:port`, `[v6]:port` or a bare IPv6 `a::b:port` (split at the last colon). An empty or
/// `?` host (7.0 sends `:port` for unknown-endpoint and `?:port` for a node without the
/// preferred hostname) means the node that sent the redirection.
fn address(addr: &[u8], current: &NodeAddr) -> Result<NodeAddr, TopologyError> {
    let split = if addr.first() == Some(&b'[') {
        match addr.iter().position(|&c| c == b']') {
            Some(close) if addr.get(close + 1) == Some(&b':') => {
                Some((&addr[1..close], &addr[close + 2..]))
            }
            _ => None,
        }
    } else {
        addr.iter()
            .rposition(|&c| c == b':')
            .map(|i| (&addr[..i], &addr[i + 1..]))
    };
    let Some((host, port)) = split else {
        bail!("address \"{}\" has no port", excerpt(addr));
    };
    let port = match decimal(port) {
        Some(p) => validate_port(p.into())?,
        None => bail!("port \"{}\" is not a decimal number", excerpt(port)),
    };
    let host = match host {
        b"" | b"?" => current.host.clone(),
        h => validate_host(h)?,
    };
    Ok(NodeAddr::new(host, port))
}

/// 1 to 5 ASCII digits, nothing else (no sign, no exponent, no spaces).
fn decimal(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 5 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |v, &d| v * 10 + u32::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur() -> NodeAddr {
        NodeAddr::new("10.0.0.9", 7000)
    }

    fn ok(line: &str) -> Option<Redirect> {
        classify(line.as_bytes(), &cur()).unwrap()
    }

    fn moved(slot: u16, host: &str, port: u16) -> Option<Redirect> {
        Some(Redirect::Moved {
            slot,
            addr: NodeAddr::new(host, port),
        })
    }

    #[test]
    fn moved_and_ask_carry_slot_and_address() {
        assert_eq!(
            ok("MOVED 3999 127.0.0.1:6381"),
            moved(3999, "127.0.0.1", 6381)
        );
        assert_eq!(ok("MOVED 0 a:1"), moved(0, "a", 1));
        assert_eq!(ok("MOVED 16383 a:65535"), moved(16383, "a", 65535));
        assert_eq!(
            ok("ASK 3999 node1.example:6380"),
            Some(Redirect::Ask {
                slot: 3999,
                addr: NodeAddr::new("node1.example", 6380)
            })
        );
    }

    #[test]
    fn ipv6_addresses_split_at_the_last_colon_or_the_bracket() {
        assert_eq!(ok("MOVED 1 ::1:6380"), moved(1, "::1", 6380));
        assert_eq!(ok("MOVED 1 [::1]:6380"), moved(1, "::1", 6380));
        assert_eq!(
            ok("ASK 1 fe80::1:2:3"),
            Some(Redirect::Ask {
                slot: 1,
                addr: NodeAddr::new("fe80::1:2", 3)
            })
        );
    }

    #[test]
    fn an_empty_or_unknown_host_means_the_sender() {
        assert_eq!(ok("MOVED 1 :6380"), moved(1, "10.0.0.9", 6380));
        assert_eq!(ok("MOVED 1 ?:6380"), moved(1, "10.0.0.9", 6380));
        assert_eq!(ok("MOVED 1 []:6380"), moved(1, "10.0.0.9", 6380));
    }

    #[test]
    fn malformed_redirections_are_errors() {
        let long = format!("MOVED 1 {}:1", "h".repeat(256));
        let bad: Vec<&[u8]> = vec![
            b"MOVED __proto__ 127.0.0.1:2",
            b"MOVED length 127.0.0.1:2",
            b"MOVED -1 a:1",
            b"MOVED 16384 a:1",
            b"MOVED 99999 a:1",
            b"MOVED 123456 a:1",
            b"MOVED 1e3 a:1",
            b"MOVED +1 a:1",
            b"MOVED  1 a:1",
            b"MOVED 0x1 a:1",
            b"MOVED",
            b"MOVED ",
            b"MOVED 1",
            b"MOVED 1 ",
            b"ASK 1",
            b"MOVED 1 a",
            b"MOVED 1 a:",
            b"MOVED 1 a:0",
            b"MOVED 1 a:65536",
            b"MOVED 1 a:70000",
            b"MOVED 1 a:-1",
            b"MOVED 1 a:6379x",
            b"MOVED 1 [::1]",
            b"MOVED 1 [::1:6380",
            b"MOVED 1 [::1]6380",
            b"MOVED 1 a\r\nb:1",
            b"MOVED 1 a\nb:1",
            b"MOVED 1 a\0:1",
            b"MOVED 1 \xff\xfe:1",
            b"MOVED 1 a:1 extra",
            long.as_bytes(),
        ];
        for line in bad {
            let e = classify(line, &cur()).expect_err(&String::from_utf8_lossy(line));
            assert!(e.0.len() < 200, "{e}");
            assert!(!e.0.contains(['\r', '\n', '\0']), "{e}");
        }
        assert!(classify(b"ASK x a:1", &cur())
            .unwrap_err()
            .0
            .starts_with("ASK"));
    }

    #[test]
    fn the_cluster_states_are_recognised_by_their_first_word() {
        assert_eq!(
            ok("TRYAGAIN Multiple keys request during rehashing of slot"),
            Some(Redirect::TryAgain)
        );
        assert_eq!(
            ok("CLUSTERDOWN The cluster is down"),
            Some(Redirect::ClusterDown)
        );
        assert_eq!(
            ok("CLUSTERDOWN Hash slot not served"),
            Some(Redirect::ClusterDown)
        );
        assert_eq!(
            ok("LOADING Redis is loading the dataset in memory"),
            Some(Redirect::Loading)
        );
        assert_eq!(
            ok("MASTERDOWN Link with MASTER is down"),
            Some(Redirect::MasterDown)
        );
        assert_eq!(
            ok("READONLY You can't write against a read only replica."),
            Some(Redirect::ReadOnly)
        );
        assert_eq!(ok("TRYAGAIN"), Some(Redirect::TryAgain));
    }

    #[test]
    fn other_errors_are_ordinary() {
        for line in [
            "ERR unknown command",
            "WRONGTYPE Operation against a key holding the wrong kind of value",
            "MOVEDX 1 a:1",
            "moved 1 a:1",
            "TRYAGAINLATER",
            " MOVED 1 a:1",
            "",
            "NOSCRIPT No matching script",
        ] {
            assert_eq!(ok(line), None, "{line}");
        }
    }

    #[test]
    fn error_code_is_the_first_word_bounded_and_lossy() {
        assert_eq!(error_code(b"ERR unknown command"), "ERR");
        assert_eq!(error_code(b"WRONGTYPE"), "WRONGTYPE");
        assert_eq!(error_code(b""), "");
        assert_eq!(error_code(b" x"), "");
        assert_eq!(error_code(&[b'A'; 100]), "A".repeat(32));
        assert_eq!(error_code(b"E\xffR x"), "E\u{fffd}R");
    }
}
