//! RESP3 replies reaching a client that negotiated RESP2 (a misconfigured proxy, a hostile
//! server): they must be refused, never misread as RESP2. The first byte picks the form: 0 = raw
//! bytes (captured RESP3 answers — HELLO 3, maps, sets, pushes — make the seeds), checked like
//! `resp2_decode`; otherwise a RESP3 frame built with `arbitrary` and encoded here: when every
//! element is a type RESP2 also has, it decodes to the same value; when any element (at any
//! depth) is RESP3-only — null `_`, boolean, double, big number, blob error, verbatim string,
//! map, set, push, attribute, streamed string or aggregate — the decoder reports an error.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use clustr_engine::resp::Reply;
use clustr_fuzz::{assert_reencodes, feed, Meaning};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum F3 {
    // Types RESP2 has too.
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Int(i64),
    Bulk(Vec<u8>),
    NilBulk,
    NilArray,
    Array(Vec<F3>),
    // RESP3 only.
    Null,
    Bool(bool),
    Double(f64),
    BigNum(Vec<u8>),
    BlobError(Vec<u8>),
    Verbatim(Vec<u8>),
    Map(Vec<(F3, F3)>),
    Set(Vec<F3>),
    Push(Vec<F3>),
    Attribute(Vec<(F3, F3)>, Box<F3>),
    StreamedBulk(Vec<Vec<u8>>),
    StreamedArray(Vec<F3>),
}

fn line(b: &[u8]) -> Vec<u8> {
    b.iter()
        .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c })
        .collect()
}

/// Encodes `f` (nesting cut at `depth`); returns the RESP2 value when the frame is RESP2-only.
fn encode(f: &F3, depth: usize, out: &mut Vec<u8>) -> Option<Reply> {
    let head = |out: &mut Vec<u8>, t: u8, n: usize| {
        out.extend_from_slice(format!("{}{n}\r\n", t as char).as_bytes())
    };
    let blob = |out: &mut Vec<u8>, t: u8, b: &[u8]| {
        head(out, t, b.len());
        out.extend_from_slice(b);
        out.extend_from_slice(b"\r\n");
    };
    let all = |out: &mut Vec<u8>, items: &[&F3]| -> Option<Vec<Reply>> {
        let mut ok = Some(Vec::new());
        for i in items {
            let r = encode(i, depth - 1, out);
            ok = ok.and_then(|mut v| {
                r.map(|r| {
                    v.push(r);
                    v
                })
            });
        }
        ok
    };
    let aggregate = matches!(
        f,
        F3::Array(_)
            | F3::Map(_)
            | F3::Set(_)
            | F3::Push(_)
            | F3::Attribute(..)
            | F3::StreamedArray(_)
    );
    if aggregate && depth == 0 {
        out.extend_from_slice(b"$-1\r\n");
        return Some(Reply::Nil);
    }
    match f {
        F3::Simple(s) => {
            let s = line(s);
            out.push(b'+');
            out.extend_from_slice(&s);
            out.extend_from_slice(b"\r\n");
            Some(Reply::Status(s.into()))
        }
        F3::Error(s) => {
            let s = line(s);
            out.push(b'-');
            out.extend_from_slice(&s);
            out.extend_from_slice(b"\r\n");
            Some(Reply::Error(s.into()))
        }
        F3::Int(i) => {
            out.extend_from_slice(format!(":{i}\r\n").as_bytes());
            Some(Reply::Int(*i))
        }
        F3::Bulk(b) => {
            blob(out, b'$', b);
            Some(Reply::Bulk(b.clone().into()))
        }
        F3::NilBulk => {
            out.extend_from_slice(b"$-1\r\n");
            Some(Reply::Nil)
        }
        F3::NilArray => {
            out.extend_from_slice(b"*-1\r\n");
            Some(Reply::Nil)
        }
        F3::Array(items) => {
            head(out, b'*', items.len());
            all(out, &items.iter().collect::<Vec<_>>()).map(Reply::Array)
        }
        F3::Null => {
            out.extend_from_slice(b"_\r\n");
            None
        }
        F3::Bool(b) => {
            out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" });
            None
        }
        F3::Double(d) => {
            out.extend_from_slice(format!(",{d}\r\n").as_bytes());
            None
        }
        F3::BigNum(digits) => {
            out.push(b'(');
            out.extend_from_slice(&line(digits));
            out.extend_from_slice(b"\r\n");
            None
        }
        F3::BlobError(b) => {
            blob(out, b'!', b);
            None
        }
        F3::Verbatim(b) => {
            let mut v = b"txt:".to_vec();
            v.extend_from_slice(b);
            blob(out, b'=', &v);
            None
        }
        F3::Map(kvs) | F3::Attribute(kvs, _) => {
            head(
                out,
                if matches!(f, F3::Map(_)) { b'%' } else { b'|' },
                kvs.len(),
            );
            let flat: Vec<&F3> = kvs.iter().flat_map(|(k, v)| [k, v]).collect();
            all(out, &flat);
            if let F3::Attribute(_, value) = f {
                encode(value, depth - 1, out);
            }
            None
        }
        F3::Set(items) | F3::Push(items) => {
            head(
                out,
                if matches!(f, F3::Set(_)) { b'~' } else { b'>' },
                items.len(),
            );
            all(out, &items.iter().collect::<Vec<_>>());
            None
        }
        F3::StreamedBulk(chunks) => {
            out.extend_from_slice(b"$?\r\n");
            for c in chunks {
                blob(out, b';', c);
            }
            out.extend_from_slice(b";0\r\n");
            None
        }
        F3::StreamedArray(items) => {
            out.extend_from_slice(b"*?\r\n");
            all(out, &items.iter().collect::<Vec<_>>());
            out.extend_from_slice(b".\r\n");
            None
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode == 0 {
        for frame in feed(rest, &[]).frames {
            assert_reencodes(&frame);
        }
        return;
    }
    let Ok(frame) = F3::arbitrary_take_rest(Unstructured::new(rest)) else {
        return;
    };
    let mut bytes = Vec::new();
    let resp2 = encode(&frame, 16, &mut bytes);
    let got = feed(&bytes, &[]);
    match resp2 {
        Some(value) => assert_eq!(
            got,
            Meaning {
                frames: vec![value],
                error: false,
                left: 0
            }
        ),
        None => assert!(
            got.error && got.frames.is_empty(),
            "a RESP3 frame was not refused: {got:?}"
        ),
    }
});
