//! Unit tests of `topology_parse.rs`, kept in their own file so that one stays readable.

use super::*;

// Reply builders, kept one per line so the test tables below stay readable.
#[rustfmt::skip]
mod fixtures {
    use super::*;
    pub fn b(s: &str) -> Reply { Reply::Bulk(s.as_bytes().to_vec().into()) }
    pub fn i(v: i64) -> Reply { Reply::Int(v) }
    pub fn a(v: Vec<Reply>) -> Reply { Reply::Array(v) }
    pub fn asked() -> NodeAddr { NodeAddr::new("10.0.0.9", 7000) }
    pub fn at(host: &str, port: u16) -> NodeAddr { NodeAddr::new(host, port) }

    /// A CLUSTER SLOTS node as 7.0 sends it with the default `ip` endpoint type.
    pub fn sn(host: Reply, port: i64) -> Reply {
        a(vec![host, i(port), b("4374d1a43db68dcdb9e3ab15e84c7cf5df98fd12"), a(vec![])])
    }
    pub fn srange(first: i64, last: i64, nodes: Vec<Reply>) -> Reply {
        a([vec![i(first), i(last)], nodes].concat())
    }
    pub fn pair(first: i64, last: i64, m: &str, r: &str) -> Reply {
        srange(first, last, vec![sn(b(m), 6379), sn(b(r), 6379)])
    }
    pub fn slots3() -> Vec<Reply> {
        vec![
            pair(0, 5460, "10.0.0.1", "10.0.0.4"),
            pair(5461, 10922, "10.0.0.2", "10.0.0.5"),
            pair(10923, 16383, "10.0.0.3", "10.0.0.6"),
        ]
    }
    pub fn slots(r: Vec<Reply>) -> Result<SlotMap, TopologyError> { from_cluster_slots(&a(r), &asked()) }

    /// A CLUSTER SHARDS node as 7.0.15 sends it (no TLS, no hostname).
    pub fn node(ip: &str, port: i64, role: &str, health: &str) -> Vec<Reply> {
        vec![
            b("id"), b("7b758c4646a229d5ca2c04e87b172c3c3af448c0"), b("port"), i(port),
            b("ip"), b(ip), b("endpoint"), b(ip), b("role"), b(role),
            b("replication-offset"), i(14), b("health"), b(health),
        ]
    }
    pub fn shard(slots: &[i64], nodes: Vec<Vec<Reply>>) -> Reply {
        let slots = a(slots.iter().map(|&s| i(s)).collect());
        a(vec![b("slots"), slots, b("nodes"), a(nodes.into_iter().map(a).collect())])
    }
    pub fn master(ip: &str) -> Vec<Reply> { node(ip, 6379, "master", "online") }
    pub fn replica(ip: &str, health: &str) -> Vec<Reply> { node(ip, 6379, "replica", health) }
    pub fn shards3() -> Vec<Reply> {
        let s = |m: &str, r: &str| vec![master(m), replica(r, "online")];
        vec![
            shard(&[5461, 10922], s("10.0.0.2", "10.0.0.5")),
            shard(&[10923, 16383], s("10.0.0.3", "10.0.0.6")),
            shard(&[0, 5460], s("10.0.0.1", "10.0.0.4")),
        ]
    }
    pub fn shards(r: Vec<Reply>) -> Result<SlotMap, TopologyError> {
        from_cluster_shards(&a(r), &asked(), false)
    }
    pub fn replicas(m: &SlotMap, slot: u16) -> &[NodeAddr] { &m.shard(slot).unwrap().replicas }
}
use fixtures::*;

fn assert_three(m: &SlotMap) {
    assert_eq!(m.master(0), Some(&at("10.0.0.1", 6379)));
    assert_eq!(m.master(5461), Some(&at("10.0.0.2", 6379)));
    assert_eq!(m.master(16383), Some(&at("10.0.0.3", 6379)));
    assert_eq!(m.shard(16383).unwrap().replicas, vec![at("10.0.0.6", 6379)]);
    assert_eq!(m.shards().len(), 3);
    assert_eq!(m.nodes().len(), 6);
}

#[test]
fn three_masters_with_replicas_parse_from_both_commands() {
    assert_three(&slots(slots3()).unwrap());
    assert_three(&shards(shards3()).unwrap());
    // Servers before 7 send no metadata, 3.0 not even the id.
    let mut r = slots3();
    r[0] = srange(0, 5460, vec![a(vec![b("10.0.0.1"), i(6379)])]);
    assert_eq!(slots(r).unwrap().master(0), Some(&at("10.0.0.1", 6379)));
}

#[test]
fn unknown_hosts_in_cluster_slots_resolve_to_the_asked_node_or_the_ip() {
    let mut r = slots3();
    r[0] = srange(0, 5460, vec![sn(b(""), 7001), sn(Reply::Nil, 7004)]);
    let meta = a(vec![b("ip"), b("10.0.0.2")]);
    let with_ip = a(vec![b("?"), i(7002), b("id"), meta]);
    r[1] = srange(5461, 10922, vec![with_ip, sn(b("?"), 7005)]);
    let m = slots(r).unwrap();
    assert_eq!(m.master(0), Some(&at("10.0.0.9", 7001)));
    assert_eq!(replicas(&m, 0), [at("10.0.0.9", 7004)]);
    assert_eq!(m.master(5461), Some(&at("10.0.0.2", 7002)));
    assert_eq!(replicas(&m, 5461), [at("10.0.0.9", 7005)]);
}

#[test]
fn unknown_endpoints_in_cluster_shards_resolve_to_the_asked_node_or_the_ip() {
    let mut r = shards3();
    let mut m = master("10.0.0.2");
    m[7] = b("?"); // hostname preferred, none announced: use the ip
    let mut rep = replica("10.0.0.5", "online");
    rep[7] = b(""); // unknown-endpoint: use the address we asked
    r[0] = shard(&[5461, 10922], vec![m, rep]);
    let mut m = master("?");
    m[5] = b(""); // no usable ip either: the asked host
    let mut rep = node("10.0.0.6", 6380, "replica", "online");
    rep.drain(6..8); // no endpoint field at all: the ip
    r[1] = shard(&[10923, 16383], vec![m, rep]);
    let map = shards(r).unwrap();
    assert_eq!(map.master(5461), Some(&at("10.0.0.2", 6379)));
    assert_eq!(replicas(&map, 5461), [at("10.0.0.9", 6379)]);
    assert_eq!(map.master(10923), Some(&at("10.0.0.9", 6379)));
    assert_eq!(replicas(&map, 10923), [at("10.0.0.6", 6380)]);
}

#[test]
fn replicas_that_are_not_online_are_skipped_but_a_failed_master_is_kept() {
    let mut r = shards3();
    let mut m = master("10.0.0.2");
    m[13] = b("fail");
    let reps = ["loading", "failed", "fail", "online"].map(|h| replica(h, h));
    r[0] = shard(&[5461, 10922], [vec![m], reps.to_vec()].concat());
    let m = shards(r).unwrap();
    assert_eq!(m.master(5461), Some(&at("10.0.0.2", 6379)));
    assert_eq!(replicas(&m, 5461), [at("online", 6379)]);
}

#[test]
fn slotless_shards_are_ignored_and_split_shards_merge() {
    let mut r = shards3();
    // An empty master, and a failed-over old master left in a shard of its own (7.0.15).
    r.push(shard(&[], vec![master("10.0.0.7")]));
    r.push(shard(&[], vec![node("10.0.0.8", 6379, "master", "fail")]));
    let nodes = vec![master("10.0.0.1"), replica("10.0.0.4", "online")];
    r[2] = shard(&[0, 100, 101, 5000, 5001, 5460], nodes);
    assert_three(&shards(r).unwrap());
    let mut r = slots3();
    r[0] = pair(0, 99, "10.0.0.1", "10.0.0.4");
    r.push(pair(100, 5460, "10.0.0.1", "10.0.0.4"));
    assert_three(&slots(r).unwrap());
}

#[test]
fn tls_uses_the_tls_port_and_falls_back_to_port() {
    let mut r = shards3();
    let mut m = master("10.0.0.2");
    m.extend([b("tls-port"), i(16379)]);
    r[0] = shard(&[5461, 10922], vec![m]);
    let map = from_cluster_shards(&a(r.clone()), &asked(), true).unwrap();
    assert_eq!(map.master(5461), Some(&at("10.0.0.2", 16379)));
    assert_eq!(map.master(0), Some(&at("10.0.0.1", 6379)));
    assert_eq!(shards(r).unwrap().master(5461), Some(&at("10.0.0.2", 6379)));
}

#[test]
fn empty_non_array_and_partial_replies_are_refused() {
    for r in [
        a(vec![]),
        b("OK"),
        Reply::Nil,
        i(3),
        Reply::Error("ERR".into()),
    ] {
        assert!(from_cluster_slots(&r, &asked()).is_err(), "{r:?}");
        assert!(from_cluster_shards(&r, &asked(), false).is_err(), "{r:?}");
    }
    let mut r = slots3();
    r.pop();
    assert!(slots(r).unwrap_err().0.contains("slot 10923 unowned"));
    let mut r = slots3();
    r[1] = pair(5461, 10921, "10.0.0.2", "10.0.0.5");
    assert!(slots(r).unwrap_err().0.contains("slot 10922 unowned"));
    let mut r = shards3();
    r.remove(1);
    assert!(shards(r).unwrap_err().0.contains("covers 10923 of 16384"));
}

fn check(e: TopologyError, want: &str) {
    assert!(e.0.contains(want), "wanted {want:?} in {e}");
    assert!(e.0.len() < 300, "message too long: {e}");
    assert!(!e.0.contains(['\n', '\r', '\0']), "{e}");
}

/// Each case replaces the first range; the error must be the one named.
#[test]
#[rustfmt::skip]
fn hostile_cluster_slots_replies_are_refused() {
    let x = |port| sn(b("x"), port);
    let host = |h: &[u8]| srange(0, 5460, vec![sn(Reply::Bulk(h.to_vec().into()), 1)]);
    let long = vec![b'h'; 4096];
    let cases: Vec<(Reply, &str)> = vec![
        (srange(-1, 5460, vec![x(1)]), "start slot -1 out of range"),
        (srange(0, 16384, vec![x(1)]), "end slot 16384 out of range"),
        (srange(5460, 0, vec![x(1)]), "start 5460 is after its end 0"),
        (srange(0, 5461, vec![x(1)]), "slot 5461 is assigned more than once"),
        (srange(0, 5460, vec![x(0)]), "port 0 out of range"),
        (srange(0, 5460, vec![x(70000)]), "port 70000 out of range"),
        (srange(0, 5460, vec![x(-1)]), "port -1 out of range"),
        (host(b"a\r\nb"), "control character: \"a\\r\\nb\""),
        (host(b"a\nb"), "control character"),
        (host(b"a\0b"), "control character"),
        (host(&long), "host of 4096 bytes"),
        (host(b"\xff\xfe"), "not valid UTF-8: \"\\xff\\xfe\""),
        (srange(0, 5460, vec![x(1), x(2), sn(b("bad\r"), 3)]), "node 2: host contains"),
        (srange(0, 5460, vec![a(vec![b("?"), i(1), b("id"), a(vec![b("ip"), b("a\nb")])])]), "control"),
        (srange(0, 5460, vec![a(vec![b("x"), i(1), b("id"), b("not-a-map")])]), "metadata is bulk string"),
        (a(vec![b("0"), i(5460), x(1)]), "start slot is bulk string instead of an integer"),
        (a(vec![i(0), i(5460), b("x")]), "node 0: node is bulk string instead of an array"),
        (a(vec![i(0), i(5460), a(vec![b("x"), b("6379")])]), "port is bulk string"),
        (a(vec![i(0), i(5460), a(vec![a(vec![]), i(1)])]), "host is array"),
        (a(vec![i(0), i(5460), a(vec![b("x")])]), "need at least host and port"),
        (a(vec![i(0), i(5460)]), "2 elements, need at least 3"),
        (b("range"), "range is bulk string"),
        (srange(0, 5460, (1..=300).map(x).collect()), "300 nodes (max 256)"),
    ];
    for (case, want) in cases {
        let mut r = slots3();
        r[0] = case;
        check(slots(r).unwrap_err(), want);
    }
}

/// Each case replaces the shard owning 0..=5460; the error must be the one named.
#[test]
#[rustfmt::skip]
fn hostile_cluster_shards_replies_are_refused() {
    let ok = || master("10.0.0.1");
    let with = |k: usize, v: Reply| {
        let mut n = ok();
        n[k] = v;
        n
    };
    let on = |n: Vec<Reply>| shard(&[0, 5460], vec![n]);
    let long = b(&"h".repeat(4096));
    let cases: Vec<(Reply, &str)> = vec![
        (shard(&[-1, 5460], vec![ok()]), "start slot -1 out of range"),
        (shard(&[0, 16384], vec![ok()]), "end slot 16384 out of range"),
        (shard(&[5460, 0], vec![ok()]), "start 5460 is after its end 0"),
        (shard(&[0, 5461], vec![ok()]), "slot 5461 is assigned more than once"),
        (shard(&[0, 5460, 5460, 5460], vec![ok()]), "slot 5460 is assigned more than once"),
        (shard(&[0], vec![ok()]), "odd number (1) of slot bounds"),
        (on(with(3, i(0))), "port 0 out of range"),
        (on(with(3, i(70000))), "port 70000 out of range"),
        (on(with(3, b("6379"))), "port is bulk string instead of an integer"),
        (on(with(7, b("a\r\nb"))), "control character"),
        (on(with(5, b("a\0b"))), "control character"),
        (on(with(7, long)), "host of 4096 bytes"),
        (on(with(7, Reply::Bulk(b"\xc3\x28".to_vec().into()))), "not valid UTF-8"),
        (on(with(7, a(vec![]))), "endpoint is array"),
        (on(with(9, b("leader"))), "unknown role \"leader\""),
        (on(with(8, i(1))), "key is integer"),
        (on(ok()[..13].to_vec()), "odd number (13) of elements"),
        (on(ok()[2..8].to_vec()), "no role"),
        (on(ok()[4..].to_vec()), "no port"),
        (on(replica("10.0.0.4", "online")), "has slots but no master"),
        (shard(&[0, 5460], vec![ok(), master("10.0.0.4")]), "more than one master"),
        // Validated even though the shard or node would be skipped.
        (shard(&[], vec![with(3, i(0))]), "port 0"),
        (shard(&[], vec![replica("x\n", "loading")]), "control character"),
        (a(vec![b("slots"), a(vec![i(0), i(5460)])]), "missing \"slots\" or \"nodes\""),
        (a(vec![b("slots"), a(vec![b("0"), b("5460")]), b("nodes"), a(vec![a(ok())])]), "start slot is bulk"),
        (a(vec![b("slots"), i(0), b("nodes"), a(vec![a(ok())])]), "slots is integer"),
        (a(vec![b("slots"), a(vec![i(0), i(5460)]), b("nodes"), a(vec![b("x")])]), "node is bulk string"),
        (a(vec![Reply::Nil, a(vec![])]), "nil key"),
        (i(0), "shard is integer"),
        (shard(&[0, 5460], (1..=300).map(|p| node("x", p, "replica", "online")).collect()), "300 nodes"),
    ];
    for (case, want) in cases {
        let mut r = shards3();
        r[2] = case;
        check(shards(r).unwrap_err(), want);
    }
}

#[test]
fn errors_quote_little_of_the_input() {
    let e = validate_host("é\r\n".repeat(100).as_bytes()).unwrap_err();
    assert!(e.0.len() < 300 && e.0.ends_with("...\""), "{e}");
    assert_eq!(validate_host(b"").unwrap(), "");
    assert_eq!(validate_host(&[b'h'; 255]).unwrap().len(), 255);
    assert!(validate_host(&[b'h'; 256]).is_err());
}

#[test]
fn hosts_with_c1_controls_brackets_or_spaces_are_refused() {
    for bad in [
        "a\u{85}b", "a\u{9b}b", "-[:12]", "a]b", "my host", "a\u{a0}b",
    ] {
        assert!(validate_host(bad.as_bytes()).is_err(), "{bad:?}");
    }
    for good in [
        "127.0.0.1",
        "::1",
        "fe80::1%eth0",
        "redis-1.example",
        "ünïcode.example",
    ] {
        assert_eq!(validate_host(good.as_bytes()).unwrap(), good);
    }
}
