//! What the fuzz targets share: the decode loop with the decoder's per-call contract checked on
//! every call, a RESP2 reply shape that `arbitrary` can build (mirroring `Reply`), and the
//! invariants every adopted slot map must hold.

use arbitrary::Arbitrary;
use bytes::{Bytes, BytesMut};
use clustr_engine::resp::{encode_reply, Decoder, Reply};
use clustr_engine::slot::SLOTS;
use clustr_engine::topology::{NodeAddr, SlotMap};

/// What a byte stream meant once every byte was fed.
#[derive(Debug, PartialEq, Eq)]
pub struct Meaning {
    pub frames: Vec<Reply>,
    /// The stream ended in a protocol error.
    pub error: bool,
    /// Bytes left unconsumed without an error (an incomplete frame); 0 after an error.
    pub left: usize,
}

/// Feeds `bytes` to one decoder in reads of the given sizes (cycled; 0 counts as 1; empty means
/// all at once), decoding everything after each read. Checks the contract on every call:
/// `Ok(None)` and `Err` consume nothing, `Ok(Some)` consumes at least one byte, and nothing
/// beyond what was fed is ever consumed.
pub fn feed(bytes: &[u8], sizes: &[usize]) -> Meaning {
    let mut d = Decoder::default();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let (mut fed, mut consumed) = (0usize, 0usize);
    let mut sizes = sizes.iter().copied().cycle();
    loop {
        let n = sizes.next().unwrap_or(usize::MAX).max(1);
        let upto = fed.saturating_add(n).min(bytes.len());
        buf.extend_from_slice(&bytes[fed..upto]);
        fed = upto;
        loop {
            let before = buf.len();
            match d.decode(&mut buf) {
                Ok(Some(r)) => {
                    assert!(buf.len() < before, "a decoded frame consumed nothing");
                    consumed += before - buf.len();
                    frames.push(r);
                }
                Ok(None) => {
                    assert_eq!(buf.len(), before, "Ok(None) consumed bytes");
                    break;
                }
                Err(_) => {
                    assert_eq!(buf.len(), before, "Err consumed bytes");
                    assert!(consumed <= fed);
                    return Meaning {
                        frames,
                        error: true,
                        left: 0,
                    };
                }
            }
        }
        assert!(consumed <= fed);
        if fed == bytes.len() {
            return Meaning {
                frames,
                error: false,
                left: buf.len(),
            };
        }
    }
}

/// The bytes of `r` as a server would send them.
pub fn enc(r: &Reply) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_reply(&mut out, r);
    out.to_vec()
}

/// Re-encoding a decoded frame and decoding that gives the frame back, consuming it exactly.
pub fn assert_reencodes(r: &Reply) {
    let bytes = enc(r);
    let m = feed(&bytes, &[]);
    assert_eq!(
        m,
        Meaning {
            frames: vec![r.clone()],
            error: false,
            left: 0
        },
        "re-encoding {r:?}"
    );
}

/// A RESP2 reply `arbitrary` can build. Status and error lines cannot hold CR or LF on the wire,
/// so those bytes are replaced when converting.
#[derive(Arbitrary, Debug, Clone)]
pub enum ArbReply {
    Status(Vec<u8>),
    Error(Vec<u8>),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<ArbReply>),
}

impl ArbReply {
    /// The `Reply`, with nesting cut at `depth` levels (deeper arrays become Nil), which keeps
    /// the frame within the decoder's depth limit.
    pub fn to_reply(&self, depth: usize) -> Reply {
        let line = |b: &[u8]| -> Bytes {
            b.iter()
                .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c })
                .collect::<Vec<u8>>()
                .into()
        };
        match self {
            ArbReply::Status(b) => Reply::Status(line(b)),
            ArbReply::Error(b) => Reply::Error(line(b)),
            ArbReply::Int(i) => Reply::Int(*i),
            ArbReply::Bulk(b) => Reply::Bulk(b.clone().into()),
            ArbReply::Nil => Reply::Nil,
            ArbReply::Array(_) if depth == 0 => Reply::Nil,
            ArbReply::Array(items) => {
                Reply::Array(items.iter().map(|i| i.to_reply(depth - 1)).collect())
            }
        }
    }
}

/// A host as an adopted map may hold it: valid UTF-8 (a `String` already), not empty, at most
/// 255 bytes, no control characters, whitespace or brackets.
pub fn assert_host_ok(addr: &NodeAddr) {
    let h = &addr.host;
    assert!(!h.is_empty() && h.len() <= 255, "host {h:?}");
    assert!(
        !h.chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '[' || c == ']'),
        "control character, space or bracket in host {h:?}"
    );
    assert_ne!(addr.port, 0, "port 0 for {h:?}");
}

/// The invariants of every map a parser returns `Ok`: every slot owned, every node's host and
/// port valid, counts consistent.
pub fn assert_map_ok(map: &SlotMap) {
    assert!(map.is_complete(), "an incomplete map was returned");
    for slot in 0..SLOTS as u16 {
        let shard = map
            .shard(slot)
            .expect("complete map has an owner for every slot");
        assert_host_ok(&shard.master);
        shard.replicas.iter().for_each(assert_host_ok);
    }
    let total: usize = (0..map.shards().len()).map(|i| map.slot_count(i)).sum();
    assert_eq!(total, SLOTS, "slot counts");
}
