//! CLUSTER SLOTS and CLUSTER SHARDS answers into the topology parsers: never a panic, and any map
//! they accept is complete with valid hosts and ports (`clustr_fuzz::assert_map_ok`).
//!
//! The first byte picks the input's form: 0 = raw reply bytes (captured answers from a real
//! server make the seeds), decoded, then given to both parsers; 1 = a SLOTS-shaped reply and
//! 2 = a SHARDS-shaped reply built with `arbitrary` from the rest, shaped like the real thing
//! (ranges, node arrays, key/value fields) but with every element free to be wrong, so the
//! fuzzer spends its time past the first type check.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use clustr_engine::resp::Reply;
use clustr_engine::topology::{from_cluster_shards, from_cluster_slots, NodeAddr};
use clustr_fuzz::{assert_map_ok, feed, ArbReply};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Num {
    Slot(u16),
    Port(u16),
    Any(i64),
    Text(Vec<u8>),
    Nil,
}

impl Num {
    fn reply(&self) -> Reply {
        match self {
            Num::Slot(v) => Reply::Int(i64::from(*v % 16390)),
            Num::Port(v) => Reply::Int(i64::from(*v)),
            Num::Any(v) => Reply::Int(*v),
            Num::Text(t) => Reply::Bulk(t.clone().into()),
            Num::Nil => Reply::Nil,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Host {
    Local,
    V4(u8, u8, u8, u8),
    V6([u16; 8]),
    Name(Vec<u8>),
    Empty,
    Question,
    Nil,
    Int(i64),
}

impl Host {
    fn reply(&self) -> Reply {
        let text = |s: String| Reply::Bulk(s.into_bytes().into());
        match self {
            Host::Local => text("127.0.0.1".into()),
            Host::V4(a, b, c, d) => text(format!("{a}.{b}.{c}.{d}")),
            Host::V6(p) => text(
                p.iter()
                    .map(|x| format!("{x:x}"))
                    .collect::<Vec<_>>()
                    .join(":"),
            ),
            Host::Name(n) => Reply::Bulk(n.clone().into()),
            Host::Empty => text(String::new()),
            Host::Question => text("?".into()),
            Host::Nil => Reply::Nil,
            Host::Int(i) => Reply::Int(*i),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Bounds {
    Full,
    Low(u16),
    High(u16),
    Raw(Num, Num),
}

impl Bounds {
    fn replies(&self) -> [Reply; 2] {
        match self {
            Bounds::Full => [Reply::Int(0), Reply::Int(16383)],
            Bounds::Low(k) => [Reply::Int(0), Reply::Int(i64::from(*k % 16384))],
            Bounds::High(k) => [Reply::Int(i64::from(*k % 16384)), Reply::Int(16383)],
            Bounds::Raw(a, b) => [a.reply(), b.reply()],
        }
    }
}

#[derive(Arbitrary, Debug)]
struct SlotsNode {
    host: Host,
    port: Num,
    id: Option<ArbReply>,
    meta: Option<Vec<(Vec<u8>, Host)>>,
    junk: Vec<ArbReply>,
}

#[derive(Arbitrary, Debug)]
struct SlotsRange {
    bounds: Bounds,
    nodes: Vec<SlotsNode>,
}

fn slots_reply(ranges: &[SlotsRange]) -> Reply {
    Reply::Array(
        ranges
            .iter()
            .map(|r| {
                let mut items = r.bounds.replies().to_vec();
                for n in &r.nodes {
                    let mut f = vec![n.host.reply(), n.port.reply()];
                    if let Some(id) = &n.id {
                        f.push(id.to_reply(3));
                    }
                    if let Some(meta) = &n.meta {
                        let kv = meta
                            .iter()
                            .flat_map(|(k, v)| [Reply::Bulk(k.clone().into()), v.reply()]);
                        f.push(Reply::Array(kv.collect()));
                    }
                    f.extend(n.junk.iter().map(|j| j.to_reply(3)));
                    items.push(Reply::Array(f));
                }
                Reply::Array(items)
            })
            .collect(),
    )
}

#[derive(Arbitrary, Debug)]
enum NodeField {
    Id(Vec<u8>),
    Port(Num),
    TlsPort(Num),
    Ip(Host),
    Endpoint(Host),
    Hostname(Host),
    Role(bool),
    Health(u8),
    Offset(i64),
    Other(Vec<u8>, ArbReply),
}

#[derive(Arbitrary, Debug)]
enum ShardField {
    Slots(Vec<Bounds>),
    Nodes(Vec<Vec<NodeField>>),
    Other(Vec<u8>, ArbReply),
}

fn kv(k: &str, v: Reply) -> [Reply; 2] {
    [Reply::Bulk(k.as_bytes().to_vec().into()), v]
}

fn node_reply(fields: &[NodeField]) -> Reply {
    let text = |s: &str| Reply::Bulk(s.as_bytes().to_vec().into());
    Reply::Array(
        fields
            .iter()
            .flat_map(|f| match f {
                NodeField::Id(v) => kv("id", Reply::Bulk(v.clone().into())),
                NodeField::Port(n) => kv("port", n.reply()),
                NodeField::TlsPort(n) => kv("tls-port", n.reply()),
                NodeField::Ip(h) => kv("ip", h.reply()),
                NodeField::Endpoint(h) => kv("endpoint", h.reply()),
                NodeField::Hostname(h) => kv("hostname", h.reply()),
                NodeField::Role(m) => kv("role", text(if *m { "master" } else { "replica" })),
                NodeField::Health(h) => kv(
                    "health",
                    text(["online", "failed", "loading"][*h as usize % 3]),
                ),
                NodeField::Offset(o) => kv("replication-offset", Reply::Int(*o)),
                NodeField::Other(k, v) => [Reply::Bulk(k.clone().into()), v.to_reply(3)],
            })
            .collect(),
    )
}

fn shards_reply(shards: &[Vec<ShardField>]) -> Reply {
    Reply::Array(
        shards
            .iter()
            .map(|fields| {
                Reply::Array(
                    fields
                        .iter()
                        .flat_map(|f| match f {
                            ShardField::Slots(b) => kv(
                                "slots",
                                Reply::Array(b.iter().flat_map(|b| b.replies()).collect()),
                            ),
                            ShardField::Nodes(n) => kv(
                                "nodes",
                                Reply::Array(n.iter().map(|n| node_reply(n)).collect()),
                            ),
                            ShardField::Other(k, v) => {
                                [Reply::Bulk(k.clone().into()), v.to_reply(3)]
                            }
                        })
                        .collect(),
                )
            })
            .collect(),
    )
}

fn parse_all(reply: &Reply) {
    let asked = NodeAddr::new("10.0.0.9", 7000);
    if let Ok(map) = from_cluster_slots(reply, &asked) {
        assert_map_ok(&map);
    }
    for tls in [false, true] {
        if let Ok(map) = from_cluster_shards(reply, &asked, tls) {
            assert_map_ok(&map);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            for frame in feed(rest, &[]).frames {
                parse_all(&frame);
            }
        }
        1 => {
            if let Ok(ranges) = Vec::<SlotsRange>::arbitrary_take_rest(Unstructured::new(rest)) {
                parse_all(&slots_reply(&ranges));
            }
        }
        _ => {
            if let Ok(shards) = Vec::<Vec<ShardField>>::arbitrary_take_rest(Unstructured::new(rest))
            {
                parse_all(&shards_reply(&shards));
            }
        }
    }
});
