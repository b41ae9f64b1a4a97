//! Encoder and decoder agree: an `arbitrary` reply (binary payloads, nesting up to 32) encodes
//! to bytes that decode to the same reply with exact consumption, also when a second reply
//! follows; and a command (any binary arguments) encodes to an array of bulk strings that decodes
//! to exactly those arguments.
#![no_main]

use arbitrary::Arbitrary;
use clustr_engine::resp::{encode_command, Reply};
use clustr_fuzz::{enc, feed, ArbReply, Meaning};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    a: ArbReply,
    b: ArbReply,
    args: Vec<Vec<u8>>,
}

fuzz_target!(|input: Input| {
    let (a, b) = (input.a.to_reply(32), input.b.to_reply(32));
    let mut bytes = enc(&a);
    let first = bytes.len();
    bytes.extend_from_slice(&enc(&b));
    let m = feed(&bytes, &[]);
    assert_eq!(
        m,
        Meaning {
            frames: vec![a.clone(), b],
            error: false,
            left: 0
        }
    );
    assert_eq!(feed(&bytes[..first], &[]).frames, vec![a]);

    let mut cmd = bytes::BytesMut::new();
    encode_command(&mut cmd, &input.args);
    let m = feed(&cmd, &[]);
    let want = Reply::Array(
        input
            .args
            .iter()
            .map(|a| Reply::Bulk(a.clone().into()))
            .collect(),
    );
    assert_eq!(
        m,
        Meaning {
            frames: vec![want],
            error: false,
            left: 0
        }
    );
});
