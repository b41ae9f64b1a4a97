//! Reply generators, mutations and helpers for the RESP decoder's property tests
//! (`resp_properties.rs`): encoding and chunked feeding, proptest strategies for replies and
//! byte soup, and conversions to and from the redis-protocol crate used as the reference.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use clustr_engine::resp::{encode_reply, Decoder, Limits, Reply};
use proptest::prelude::*;
use redis_protocol::resp2::types::OwnedFrame;

// ---------------------------------------------------------------------------------------------
// Helpers

pub fn enc(r: &Reply) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_reply(&mut out, r);
    out.to_vec()
}

/// What a byte stream meant to a decoder once every byte was fed.
#[derive(Debug, PartialEq, Eq)]
pub struct Meaning {
    pub frames: Vec<Reply>,
    /// The stream ended in a protocol error (the caller then drops the connection).
    pub error: bool,
    /// Bytes left unconsumed at the end without an error (an incomplete frame); 0 after an
    /// error, where how much was buffered depends on the chunking and the caller drops it all.
    pub left: usize,
}

/// Feeds `bytes` to one decoder in chunks of the given sizes (cycled; 0 is read as 1), decoding
/// everything available after each chunk, and checks the per-call contract on the way: `Ok(None)`
/// and `Err` consume nothing, `Ok(Some)` consumes something, and the total consumed never exceeds
/// what was fed.
pub fn feed(bytes: &[u8], sizes: &[usize], limits: Limits) -> Meaning {
    let mut d = Decoder::new(limits);
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
        assert!(consumed <= fed, "consumed {consumed} of {fed} bytes fed");
        if fed == bytes.len() {
            return Meaning {
                frames,
                error: false,
                left: buf.len(),
            };
        }
    }
}

pub fn whole(bytes: &[u8]) -> Meaning {
    feed(bytes, &[usize::MAX], Limits::default())
}

// ---------------------------------------------------------------------------------------------
// Strategies

/// A status or error line: any bytes but CR and LF (the only ones RESP2 forbids there).
pub fn line() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(
        any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'),
        0..24,
    )
    .prop_map(Bytes::from)
}

/// Binary payloads, biased towards the bytes that matter to a RESP parser.
pub fn payload() -> impl Strategy<Value = Bytes> {
    let byte = prop_oneof![
        4 => any::<u8>(),
        1 => prop::sample::select(&b"\r\n$*:+-0\x00\xff"[..]),
    ];
    prop::collection::vec(byte, 0..48).prop_map(Bytes::from)
}

pub fn int() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => any::<i64>(),
        2 => -1000i64..1000,
        1 => prop::sample::select(vec![i64::MIN, i64::MIN + 1, i64::MAX, 0, -1, 1]),
    ]
}

pub fn leaf() -> impl Strategy<Value = Reply> {
    prop_oneof![
        line().prop_map(Reply::Status),
        line().prop_map(Reply::Error),
        int().prop_map(Reply::Int),
        payload().prop_map(Reply::Bulk),
        Just(Reply::Nil),
    ]
}

/// Any reply, nested at most 6 deep.
pub fn reply() -> impl Strategy<Value = Reply> {
    leaf().prop_recursive(6, 96, 6, |inner| {
        prop::collection::vec(inner, 0..6).prop_map(Reply::Array)
    })
}

/// Chunk sizes for feeding a stream; small ones are the interesting ones.
pub fn chunking() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![3 => 1usize..8, 1 => 8usize..300], 1..16)
}

/// Bytes built from RESP tokens and stray bytes: mostly near-valid, so the decoder's deeper
/// branches are reached far more often than with uniform noise.
pub fn resp_soup() -> impl Strategy<Value = Vec<u8>> {
    const TOKENS: &[&[u8]] = &[
        b"*",
        b"$",
        b":",
        b"+",
        b"-",
        b"\r\n",
        b"\r",
        b"\n",
        b"0",
        b"1",
        b"2",
        b"3",
        b"-1",
        b"-2",
        b"-0",
        b"007",
        b" ",
        b"4294967296",
        b"4294967295",
        b"536870913",
        b"99999999999999999999",
        b"9223372036854775807",
        b"-9223372036854775808",
        b"OK",
        b"ab",
        b"\x00",
        b"\xff",
        b"&",
        b"%",
        b"~",
        b"_",
        b"*1\r\n",
        b"*2\r\n",
        b"*0\r\n",
        b"*-1\r\n",
        b"$-1\r\n",
        b"$0\r\n\r\n",
        b"$3\r\nabc\r\n",
        b":42\r\n",
        b"+OK\r\n",
        b"-ERR x\r\n",
    ];
    let piece = prop_oneof![
        4 => prop::sample::select(TOKENS).prop_map(|t| t.to_vec()),
        1 => any::<u8>().prop_map(|b| vec![b]),
    ];
    prop::collection::vec(piece, 0..48).prop_map(|v| v.concat())
}

/// Offsets at which a frame header (type byte) plausibly starts: 0 and after every LF.
pub fn header_offsets(b: &[u8]) -> Vec<usize> {
    (0..b.len())
        .filter(|&i| (i == 0 || b[i - 1] == b'\n') && b"+-:$*".contains(&b[i]))
        .collect()
}

#[derive(Clone, Debug)]
pub enum Mutation {
    Flip { at: usize, mask: u8 },
    TypeByte { at: usize, to: u8 },
    Length { at: usize, to: &'static str },
    DropCrlf { at: usize, both: bool },
    Duplicate { at: usize, len: usize },
    Truncate { at: usize },
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    let ix = any::<prop::sample::Index>();
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        (
            any::<usize>(),
            prop::sample::select(&b"+-:$*&%~_>|#,(=!?\x00\xff \r\n0"[..])
        )
            .prop_map(|(at, to)| Mutation::TypeByte { at, to }),
        (
            any::<usize>(),
            prop::sample::select(vec![
                "0",
                "-1",
                "-2",
                "",
                "1",
                "2",
                "4294967295",
                "4294967296",
                "536870912",
                "536870913",
                "9223372036854775807",
                "99999999999999999999",
                "+3",
                " 3",
            ])
        )
            .prop_map(|(at, to)| Mutation::Length { at, to }),
        (any::<usize>(), any::<bool>()).prop_map(|(at, both)| Mutation::DropCrlf { at, both }),
        (any::<usize>(), 1usize..32).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
        ix.prop_map(|i| Mutation::Truncate {
            at: i.index(usize::MAX)
        }),
    ]
}

/// Applies `m` to `b` (positions are taken modulo whatever they index).
pub fn mutate(mut b: Vec<u8>, m: &Mutation) -> Vec<u8> {
    if b.is_empty() {
        return b;
    }
    let heads = header_offsets(&b);
    match *m {
        Mutation::Flip { at, mask } => {
            let at = at % b.len();
            b[at] ^= mask;
        }
        Mutation::TypeByte { at, to } => {
            if let Some(&h) = heads.get(at % heads.len().max(1)) {
                b[h] = to;
            }
        }
        Mutation::Length { at, to } => {
            let lens: Vec<usize> = heads
                .into_iter()
                .filter(|&i| b"$*".contains(&b[i]))
                .collect();
            if let Some(&h) = lens.get(at % lens.len().max(1)) {
                let end = b[h..]
                    .iter()
                    .position(|&c| c == b'\r')
                    .map_or(b.len(), |i| h + i);
                b.splice(h + 1..end, to.bytes());
            }
        }
        Mutation::DropCrlf { at, both } => {
            let crlfs: Vec<usize> = (0..b.len() - 1)
                .filter(|&i| &b[i..i + 2] == b"\r\n")
                .collect();
            if let Some(&i) = crlfs.get(at % crlfs.len().max(1)) {
                b.drain(i..if both { i + 2 } else { i + 1 });
            }
        }
        Mutation::Duplicate { at, len } => {
            let at = at % b.len();
            let end = (at + len).min(b.len());
            let seg = b[at..end].to_vec();
            b.splice(end..end, seg);
        }
        Mutation::Truncate { at } => b.truncate(at % b.len()),
    }
    b
}

// ---------------------------------------------------------------------------------------------
// Reference decoder (redis-protocol)

pub fn from_reference(f: OwnedFrame) -> Reply {
    match f {
        OwnedFrame::SimpleString(s) => Reply::Status(s.into()),
        OwnedFrame::Error(s) => Reply::Error(s.into_bytes().into()),
        OwnedFrame::Integer(i) => Reply::Int(i),
        OwnedFrame::BulkString(b) => Reply::Bulk(b.into()),
        OwnedFrame::Array(items) => Reply::Array(items.into_iter().map(from_reference).collect()),
        OwnedFrame::Null => Reply::Nil,
    }
}

/// The reference's frame for `r`; None when it cannot hold it (its errors must be UTF-8).
pub fn to_reference(r: &Reply) -> Option<OwnedFrame> {
    Some(match r {
        Reply::Status(s) => OwnedFrame::SimpleString(s.to_vec()),
        Reply::Error(s) => OwnedFrame::Error(String::from_utf8(s.to_vec()).ok()?),
        Reply::Int(i) => OwnedFrame::Integer(*i),
        Reply::Bulk(b) => OwnedFrame::BulkString(b.to_vec()),
        Reply::Nil => OwnedFrame::Null,
        Reply::Array(items) => {
            OwnedFrame::Array(items.iter().map(to_reference).collect::<Option<_>>()?)
        }
    })
}

pub fn reference_decode(b: &[u8]) -> Option<(Reply, usize)> {
    match redis_protocol::resp2::decode::decode(b) {
        Ok(Some((f, used))) => Some((from_reference(f), used)),
        _ => None,
    }
}

pub fn reference_encode(f: &OwnedFrame) -> Vec<u8> {
    use redis_protocol::resp2::types::Resp2Frame;
    let mut out = vec![0u8; f.encode_len(false)];
    let n = redis_protocol::resp2::encode::encode(&mut out, f, false).unwrap();
    out.truncate(n);
    out
}
