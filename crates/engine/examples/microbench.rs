//! Engine micro-benchmarks (issue 7): what the pure core costs per operation, with no I/O in
//! the way — slot calculation, command lookup and key extraction, routing, splitting a
//! cross-slot MGET, RESP encode and decode, and parsing a CLUSTER SLOTS reply. A plain harness
//! (no criterion): each case runs for about 300 ms after a warm-up and prints ns per operation.
//!
//!     cargo run --release -p clustr-engine --example microbench
//!
//! Figures are for comparison between commits on one machine, not absolute truths.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use clustr_engine::request::{Request, RetryPolicy, Target};
use clustr_engine::resp::{encode_command, encode_reply, Decoder, Limits};
use clustr_engine::topology::{from_cluster_slots, NodeAddr};
use clustr_engine::{command, keys, slot, split, Reply};

fn bench(name: &str, mut f: impl FnMut()) {
    for _ in 0..10_000 {
        f();
    }
    let mut n: u64 = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(300) {
        for _ in 0..1_000 {
            f();
        }
        n += 1_000;
    }
    let ns = start.elapsed().as_nanos() as f64 / n as f64;
    println!("| {name:<44} | {ns:>9.1} |");
}

fn bulk(s: &[u8]) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(s))
}

/// A 3-master CLUSTER SLOTS reply, as the local test cluster answers it.
fn cluster_slots() -> Reply {
    let range = |a: i64, b: i64, port: i64| {
        Reply::Array(vec![
            Reply::Int(a),
            Reply::Int(b),
            Reply::Array(vec![
                bulk(b"127.0.0.1"),
                Reply::Int(port),
                bulk(&[b'a'; 40]),
            ]),
            Reply::Array(vec![
                bulk(b"127.0.0.1"),
                Reply::Int(port + 3),
                bulk(&[b'b'; 40]),
            ]),
        ])
    };
    Reply::Array(vec![
        range(0, 5460, 7000),
        range(5461, 10922, 7001),
        range(10923, 16383, 7002),
    ])
}

fn main() {
    println!("| operation | ns/op |\n|---|---:|");
    bench("slot(\"user:1000:profile\")", || {
        black_box(slot::slot(black_box(b"user:1000:profile")));
    });
    bench("slot(\"{user:1000}:profile\") (hash tag)", || {
        black_box(slot::slot(black_box(b"{user:1000}:profile")));
    });
    // The byte-at-a-time CRC that slot() used before it went eight bytes at a time.
    bench("crc16 crate, \"user:1000:profile\" (reference)", || {
        black_box(crc16::State::<crc16::XMODEM>::calculate(black_box(
            b"user:1000:profile",
        )));
    });
    bench("command::lookup(\"GET\")", || {
        black_box(command::lookup(black_box(b"GET")));
    });
    let get: [&[u8]; 2] = [b"GET", b"user:1000"];
    bench("keys::route_of(GET key)", || {
        black_box(keys::route_of(black_box(&get)).ok());
    });
    let eval: [&[u8]; 6] = [b"EVAL", b"return 1", b"2", b"{a}1", b"{a}2", b"x"];
    bench("keys::route_of(EVAL script 2 k1 k2 arg)", || {
        black_box(keys::route_of(black_box(&eval)).ok());
    });
    let names: Vec<Vec<u8>> = (0..100).map(|i| format!("key:{i}").into_bytes()).collect();
    let mut mget: Vec<&[u8]> = vec![b"MGET"];
    mget.extend(names.iter().map(Vec::as_slice));
    // Random keys: the second one is already in another slot, and route_of stops hashing there.
    bench("keys::route_of(MGET 100 keys, cross-slot)", || {
        black_box(keys::route_of(black_box(&mget)).ok());
    });
    bench("split::plan(MGET 100 keys across slots)", || {
        black_box(split::plan(black_box(&mget)));
    });
    let map = from_cluster_slots(&cluster_slots(), &NodeAddr::new("127.0.0.1", 7000)).unwrap();
    let policy = RetryPolicy::default();
    bench("Request::next_action (slot → master)", || {
        let mut r = Request::new(Target::Slot(black_box(1234)), false, 0);
        black_box(r.next_action(Some(&map), &policy, 7));
    });
    let reply = cluster_slots();
    let asked = NodeAddr::new("127.0.0.1", 7000);
    bench("from_cluster_slots (3 masters + 3 replicas)", || {
        black_box(from_cluster_slots(black_box(&reply), &asked).ok());
    });
    let mut out = BytesMut::with_capacity(1 << 16);
    let set: [&[u8]; 3] = [b"SET", b"user:1000", &[b'v'; 100]];
    bench("encode_command(SET key 100-byte value)", || {
        encode_command(&mut out, black_box(&set));
        black_box(out.split());
    });
    let mut wire = BytesMut::new();
    encode_reply(&mut wire, &bulk(&[b'v'; 100]));
    let one = wire.clone().freeze();
    let mut dec = Decoder::new(Limits::default());
    bench("decode a 100-byte bulk reply", || {
        let mut b = BytesMut::from(&one[..]);
        black_box(dec.decode(&mut b).ok());
    });
    let mut wire = BytesMut::new();
    encode_reply(
        &mut wire,
        &Reply::Array((0..100).map(|_| bulk(&[b'v'; 16])).collect()),
    );
    let arr = wire.freeze();
    bench("decode an MGET reply of 100 × 16 bytes", || {
        let mut b = BytesMut::from(&arr[..]);
        black_box(dec.decode(&mut b).ok());
    });
}
