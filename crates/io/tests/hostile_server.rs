//! Hostile-server tests (RELIABILITY.md §4): the scripted fake node of `common::fake` answers the
//! client's handshake and discovery like a real 7.0 server, then answers one chosen command with
//! malformed or malicious bytes. Driven through `clustr_io::Client`, each case proves that:
//!
//! * the process survives: no panic on the client's io thread (a panic hook counts them);
//! * the affected request fails with the exact code the client gives — `PROTOCOL` for every
//!   request written to a connection that broke the framing (a write's outcome is then unknown:
//!   the server did get it) and for an untrustworthy MOVED/ASK, `NO_SLOT_MAP` for a topology that
//!   is refused — within 3 s (RELIABILITY asks for 1 s), and never with a made-up reply; the
//!   message quotes none of the bytes the server sent;
//! * after a framing error the client closes that connection (the server sees EOF) instead of
//!   resynchronising on it, and the next command succeeds on a fresh connection;
//! * headers that announce huge sizes (`$1073741824`, `*4294967296`) and 100,000-deep nesting are
//!   refused at once, without allocating in proportion (a counting global allocator records the
//!   largest single allocation of the whole test binary).
//!
//! The trickled reply (case 9) and redirection to a capture server (case 16) are in
//! `hostile_transport.rs`.

mod common;

use common::fake::{slots_reply, Hostile, HostileHarness as Harness, Server};
use common::{assert_no_io_panic, encoded, expect_err, WITHIN};

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use bytes::Bytes;
use clustr_engine::request::Target;
use clustr_engine::resp::encode_command;
use clustr_engine::{ErrorKind, Reply};
use clustr_io::{Command, Event};

// ---------------------------------------------------------------------------------------------
// Largest single allocation, for the "no allocation in proportion to a header" checks.

struct Counting;

static LARGEST_ALLOC: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOC.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOC.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST_ALLOC.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Checks a PROTOCOL error's message: it names the cause, says the connection was closed and
/// (for a write) that the outcome is unknown, and quotes nothing the server sent beyond
/// what `cause` says (the 1 MiB `-ERR xxx…` line must not come back).
fn assert_protocol_message(name: &str, err: &clustr_engine::Error, cause: &str, write: bool) {
    let m = &err.message;
    assert!(m.contains(cause), "{name}: should say \"{cause}\": {m}");
    assert!(m.contains("could not be parsed"), "{name}: {m}");
    assert!(m.contains("connection was closed"), "{name}: {m}");
    assert_eq!(
        m.contains("may or may not have been applied"),
        write,
        "{name}: {m}"
    );
    assert!(m.len() < 400, "{name}: {} bytes of message", m.len());
    for quoted in ["xxxx", "garbage", "EXTRA", "abXY"] {
        assert!(!m.contains(quoted), "{name}: reply bytes in {m}");
    }
}

/// One framing-error case: the trigger `SET` fails with PROTOCOL naming the protocol error,
/// quickly; the client closes the connection; the next command succeeds on a new one.
async fn framing_error_case(name: &str, bytes: Vec<u8>, cause: &str) {
    let server = Server::start().await;
    let mut h = Harness::start(&server, true).await;
    server.script(Hostile::Send(bytes));
    let started = Instant::now();
    let got = h.set(b"trigger").await;
    let took = started.elapsed();
    let err = expect_err(got, "PROTOCOL", name);
    assert_protocol_message(name, &err, cause, true);
    assert!(took < WITHIN, "{name}: settled after {took:?}");
    let conn = h.last_conn(b"trigger");
    server.wait_closed_by_client(conn).await;
    h.wait_event(
        "NodeDown naming the cause",
        |e| matches!(e, Event::NodeDown(_, err) if err.message.contains(cause)),
    )
    .await;
    h.next_command_succeeds_on_a_fresh_connection(conn).await;
}

// ---------------------------------------------------------------------------------------------
// Cases

/// §4.1 and §4.12: `&`, NUL, 0xff and the RESP3-only type bytes (RESP2 was negotiated), sent
/// alone with no line end, or with one.
#[tokio::test]
async fn an_unknown_type_byte_fails_the_request_and_replaces_the_connection() {
    for bytes in [
        &b"&"[..],
        b"\x00",
        b"\xff",
        b"&x\r\n",
        b"%4611686018427387904\r\n",
        b"~3\r\n",
        b">1\r\n",
        b"|1\r\n",
        b"$?\r\n",
        b"_\r\n",
    ] {
        let name = format!("{:?}", bytes.escape_ascii().to_string());
        let cause = if bytes == b"$?\r\n" {
            "protocol error: invalid integer"
        } else {
            "protocol error: unknown type byte"
        };
        framing_error_case(&name, bytes.to_vec(), cause).await;
    }
}

/// §4.2: negative lengths other than -1, a length with no digits, spaces or a `+`.
#[tokio::test]
async fn an_invalid_length_fails_the_request_and_replaces_the_connection() {
    for (bytes, cause) in [
        (
            &b"$-2\r\n"[..],
            "protocol error: bulk length -2 out of range",
        ),
        (b"*-2\r\n", "protocol error: array length -2 out of range"),
        (b"$\r\n", "protocol error: invalid integer"),
        (b"$ 3\r\nabc\r\n", "protocol error: invalid integer"),
        (b"$+3\r\nabc\r\n", "protocol error: invalid integer"),
        (b":1 2\r\n", "protocol error: invalid integer"),
    ] {
        framing_error_case(&bytes.escape_ascii().to_string(), bytes.to_vec(), cause).await;
    }
}

/// §4.3: integers and lengths beyond i64.
#[tokio::test]
async fn an_overflowing_integer_fails_the_request_and_replaces_the_connection() {
    for (bytes, cause) in [
        (
            &b":99999999999999999999\r\n"[..],
            "protocol error: invalid integer",
        ),
        (
            b":9223372036854775808\r\n",
            "protocol error: integer overflow",
        ),
        (
            b":-9223372036854775809\r\n",
            "protocol error: integer overflow",
        ),
        (
            b"$99999999999999999999\r\n",
            "protocol error: invalid integer",
        ),
        (
            b"*9223372036854775808\r\n",
            "protocol error: integer overflow",
        ),
    ] {
        framing_error_case(&bytes.escape_ascii().to_string(), bytes.to_vec(), cause).await;
    }
}

/// §4.4 and §4.5: a bulk header above the 512 MiB limit and an array header above 2^32-1 are
/// refused at the header (the server sends nothing after it, so waiting for the body would hang)
/// and nothing in the process allocates in proportion to what they announce.
#[tokio::test]
async fn huge_size_headers_are_refused_at_once_without_allocating() {
    for (bytes, cause) in [
        (
            &b"$1073741824\r\n"[..],
            "bulk length 1073741824 out of range",
        ),
        (b"$536870913\r\n", "bulk length 536870913 out of range"),
        (b"*4294967296\r\n", "array length 4294967296 out of range"),
        (
            b"*2\r\n*4294967296\r\n",
            "array length 4294967296 out of range",
        ),
    ] {
        framing_error_case(&bytes.escape_ascii().to_string(), bytes.to_vec(), cause).await;
    }
    let largest = LARGEST_ALLOC.load(Ordering::Relaxed);
    assert!(
        largest < 32 << 20,
        "some allocation in this test binary took {largest} bytes"
    );
}

/// §4.6: 100,000 nested one-element arrays are refused at the depth limit (128), with no stack
/// overflow (which would abort the whole process, not just fail a test).
#[tokio::test]
async fn nesting_100000_deep_is_refused_without_a_stack_overflow() {
    framing_error_case(
        "100000 x *1",
        b"*1\r\n".repeat(100_000),
        "protocol error: nesting too deep",
    )
    .await;
}

/// §4.7: a CR not followed by LF, a bare LF, and a bulk whose payload is not followed by CRLF.
#[tokio::test]
async fn broken_line_endings_fail_the_request_and_replace_the_connection() {
    for (bytes, cause) in [
        (&b"+OK\rX"[..], "protocol error: CR without LF"),
        (b"+OK\n", "protocol error: LF without CR"),
        (
            b"$2\r\nabXY",
            "protocol error: bulk string not terminated by CRLF",
        ),
    ] {
        framing_error_case(&bytes.escape_ascii().to_string(), bytes.to_vec(), cause).await;
    }
}

/// §4.13: a 1 MiB error line is refused at the 64 KiB line limit, not buffered whole.
#[tokio::test]
async fn a_1_mib_error_line_is_refused_at_the_line_limit() {
    let mut line = b"-ERR ".to_vec();
    line.resize(1 << 20, b'x');
    line.extend_from_slice(b"\r\n");
    framing_error_case("1 MiB -ERR", line, "protocol error: line too long").await;
}

/// §4.8 (the RESP2 reading): status and error lines are bytes; invalid UTF-8 in them is
/// delivered as it came, and the connection stays usable.
#[tokio::test]
async fn invalid_utf8_in_status_and_error_lines_is_delivered_as_bytes() {
    let server = Server::start().await;
    let mut h = Harness::start(&server, true).await;
    server.script(Hostile::Send(b"+\xff\xfe ok\r\n".to_vec()));
    server.script(Hostile::Send(b"-ERR \xc3\x28 bad\r\n".to_vec()));
    let got = h.set(b"trigger").await;
    assert_eq!(got, Ok(Reply::Status(Bytes::from_static(b"\xff\xfe ok"))));
    let got = h.set(b"trigger").await;
    assert_eq!(
        got,
        Ok(Reply::Error(Bytes::from_static(b"ERR \xc3\x28 bad")))
    );
    let got = h.set(b"after").await;
    assert_eq!(got, Ok(Reply::Status("OK".into())));
    assert_eq!(
        server.served(b"after"),
        vec![0],
        "same connection, nothing was wrong"
    );
    assert_no_io_panic();
}

/// §4.10: two replies for one request. Both arrive in one segment, so the client sees more
/// replies than requests on the connection: it must not hand the extra one to anybody, must
/// drop the connection (reported as a PROTOCOL NodeDown), and must not deliver `+EXTRA`.
#[tokio::test]
async fn two_replies_for_one_request_drop_the_connection_and_misdeliver_nothing() {
    let server = Server::start().await;
    let mut h = Harness::start(&server, true).await;
    server.script(Hostile::Send(b"+OK\r\n+EXTRA\r\n".to_vec()));
    let got = h.set(b"trigger").await;
    match &got {
        // Normal case: both replies decoded from one read; every request on the connection
        // fails as one (none half-delivered).
        Err(e) => {
            assert_eq!(e.kind, ErrorKind::Protocol, "{e:?}");
            assert_protocol_message("+EXTRA", e, "nobody asked for", true);
        }
        // Only if the kernel split the 14 bytes: the first reply was the SET's own.
        Ok(r) => assert_eq!(r, &Reply::Status("OK".into())),
    }
    h.wait_event(
        "NodeDown(PROTOCOL)",
        |e| matches!(e, Event::NodeDown(_, err) if err.kind == ErrorKind::Protocol),
    )
    .await;
    server.wait_closed_by_client(0).await;
    h.next_command_succeeds_on_a_fresh_connection(0).await;
}

/// §4.10: a reply while no request is outstanding (after discovery, the connection is idle).
#[tokio::test]
async fn a_reply_before_any_request_drops_the_connection() {
    let server = Server::start().await;
    let mut h = Harness::start(&server, true).await;
    assert_eq!(server.st().inject.len(), 1, "one connection so far");
    server.st().inject[0]
        .send(b"+SURPRISE\r\n".to_vec())
        .unwrap();
    h.wait_event("NodeDown(PROTOCOL)", |e| {
        matches!(e, Event::NodeDown(_, err) if err.kind == ErrorKind::Protocol
            && err.message.contains("nobody asked for"))
    })
    .await;
    server.wait_closed_by_client(0).await;
    h.next_command_succeeds_on_a_fresh_connection(0).await;
}

/// §4.11: the server closes the connection in the middle of a bulk and of an aggregate; the
/// partial frame is never delivered and the write fails as outcome-unknown.
#[tokio::test]
async fn a_connection_closed_mid_reply_fails_the_request_and_reconnects() {
    for bytes in [&b"$10\r\nabc"[..], b"*3\r\n:1\r\n$2\r\nx"] {
        let name = bytes.escape_ascii().to_string();
        let server = Server::start().await;
        let mut h = Harness::start(&server, true).await;
        server.script(Hostile::SendThenClose(bytes.to_vec()));
        let got = h.set(b"trigger").await;
        let err = expect_err(got, ErrorKind::ConnectionLost.code(), &name);
        assert!(
            err.message.contains("connection closed by the server"),
            "{name}: {}",
            err.message
        );
        h.next_command_succeeds_on_a_fresh_connection(0).await;
    }
}

/// Every request written to a connection that broke the framing fails with PROTOCOL, reads
/// included (a server that mangled a reply once may mangle a resend the same way), and none is
/// sent again: here a write, a read and another write go out in one batch, the first one's
/// reply is garbage, and all three fail as one.
#[tokio::test]
async fn every_request_on_a_connection_that_broke_the_framing_fails_with_protocol() {
    let server = Server::start().await;
    let mut h = Harness::start(&server, true).await;
    server.script(Hostile::Send(b"&garbage\r\n".to_vec()));
    let batch: [(&[&[u8]], bool); 3] = [
        (&[b"SET", b"trigger", b"v"], false),
        (&[b"GET", b"r1"], true),
        (&[b"SET", b"w2", b"v"], false),
    ];
    // One submit: the three go out in one write, so all three were sent when the garbage comes.
    let commands = batch
        .iter()
        .enumerate()
        .map(|(i, (args, readonly))| {
            let mut bytes = bytes::BytesMut::new();
            encode_command(&mut bytes, args);
            Command {
                id: 1000 + i as u32,
                flags: 0,
                target: Target::Slot(clustr_engine::slot::slot(args[1])),
                readonly: *readonly,
                fanout: None,
                tx: None,
                bytes: bytes.freeze(),
            }
        })
        .collect();
    let started = Instant::now();
    h.client.submit(commands);
    for (i, (args, readonly)) in batch.iter().enumerate() {
        let name = String::from_utf8_lossy(args[0]).into_owned();
        let err = expect_err(h.result(1000 + i as u32).await, "PROTOCOL", &name);
        assert_protocol_message(&name, &err, "unknown type byte", !readonly);
        assert_eq!(
            server.served(args[1]),
            vec![0],
            "{name}: sent once, never resent"
        );
    }
    assert!(
        started.elapsed() < WITHIN,
        "settled after {:?}",
        started.elapsed()
    );
    server.wait_closed_by_client(0).await;
    h.next_command_succeeds_on_a_fresh_connection(0).await;
    let got = h.run(&[b"GET", b"r1"], true).await;
    assert_eq!(got, Ok(Reply::Bulk("value".into())), "a read afterwards");
}

/// A hostile CLUSTER SLOTS answer for a server listening on `port`.
fn hostile_slots(name: &str, port: i64) -> Vec<u8> {
    let node = |host: &str, port: i64| {
        Reply::Array(vec![Reply::Bulk(host.to_string().into()), Reply::Int(port)])
    };
    let one_range = |items: Vec<Reply>| encoded(&Reply::Array(vec![Reply::Array(items)]));
    let local: &[u8] = b"127.0.0.1";
    match name {
        "slot 16384" => slots_reply(&[(0, 16384, local, port)]),
        "slot -1" => slots_reply(&[(-1, 16383, local, port)]),
        "start > end" => slots_reply(&[(16383, 0, local, port)]),
        "overlapping ranges" => slots_reply(&[(0, 16383, local, port), (100, 200, local, port)]),
        "a gap" => slots_reply(&[(0, 16382, local, port)]),
        "port 0" => slots_reply(&[(0, 16383, local, 0)]),
        "port 70000" => slots_reply(&[(0, 16383, local, 70000)]),
        "port -1" => slots_reply(&[(0, 16383, local, -1)]),
        "host with CR/LF" => slots_reply(&[(0, 16383, b"127.0.0.1\r\nPING", port)]),
        "host with NUL" => slots_reply(&[(0, 16383, b"127.0.0.1\0", port)]),
        "host of 4 KiB" => slots_reply(&[(0, 16383, &[b'h'; 4096], port)]),
        "an empty array" => b"*0\r\n".to_vec(),
        "not an array" => b"+OK\r\n".to_vec(),
        "nil" => b"*-1\r\n".to_vec(),
        "slot as a string" => one_range(vec![
            Reply::Bulk("0".into()),
            Reply::Int(16383),
            node("127.0.0.1", port),
        ]),
        "host as an integer" => one_range(vec![
            Reply::Int(0),
            Reply::Int(16383),
            Reply::Array(vec![Reply::Int(127), Reply::Int(port)]),
        ]),
        "no node" => one_range(vec![Reply::Int(0), Reply::Int(16383)]),
        other => unreachable!("{other}"),
    }
}

/// §4.14: hostile CLUSTER SLOTS answers are refused: the client never becomes ready with such
/// a map, a command fails with NO_SLOT_MAP naming the refusal, and once the server answers
/// sensibly the client becomes ready and commands succeed.
#[tokio::test]
async fn hostile_cluster_slots_answers_are_never_adopted() {
    for name in [
        "slot 16384",
        "slot -1",
        "start > end",
        "overlapping ranges",
        "a gap",
        "port 0",
        "port 70000",
        "port -1",
        "host with CR/LF",
        "host with NUL",
        "host of 4 KiB",
        "an empty array",
        "not an array",
        "nil",
        "slot as a string",
        "host as an integer",
        "no node",
    ] {
        let server = Server::start().await;
        server.st().slots = Some(hostile_slots(name, server.port as i64));
        let mut h = Harness::start(&server, false).await;
        let got = h.set(b"k").await;
        let err = expect_err(got, ErrorKind::NoSlotMap.code(), name);
        assert!(
            err.causes.iter().any(|c| c.1 == "BAD_TOPOLOGY"),
            "{name}: the refusal should be among the causes: {:?}",
            err.causes
        );
        h.pump();
        assert!(
            !h.events
                .iter()
                .any(|e| matches!(e, Event::Ready | Event::Topology(..))),
            "{name}: a hostile map was adopted: {:?}",
            h.events
        );
        assert!(
            server.served(b"k").is_empty(),
            "{name}: the command was sent somewhere"
        );
        // Now the server behaves: a later discovery round adopts its map.
        server.st().slots = None;
        h.wait_event("Ready", |e| matches!(e, Event::Ready)).await;
        let got = h.set(b"k").await;
        assert_eq!(
            got,
            Ok(Reply::Status("OK".into())),
            "{name}: after recovery"
        );
        assert_no_io_panic();
    }
}

/// §4.15: MOVED/ASK lines that cannot be trusted fail the command with PROTOCOL (no guess, no
/// map change, no hop), and a valid `:port` MOVED (7.0's unknown-endpoint form) is followed.
#[tokio::test]
async fn malformed_redirections_fail_with_protocol_and_a_valid_one_is_followed() {
    let server = Server::start().await;
    let mut h = Harness::start(&server, true).await;
    let p = server.port;
    let bad = [
        format!("-MOVED __proto__ 127.0.0.1:{p}\r\n"),
        format!("-MOVED length 127.0.0.1:{p}\r\n"),
        format!("-MOVED 16384 127.0.0.1:{p}\r\n"),
        format!("-MOVED -1 127.0.0.1:{p}\r\n"),
        format!("-MOVED 1e3 127.0.0.1:{p}\r\n"),
        "-MOVED 3999 127.0.0.1\r\n".to_string(),
        "-MOVED 3999 127.0.0.1:\r\n".to_string(),
        "-MOVED 3999\r\n".to_string(),
        "-MOVED 3999 127.0.0.1:0\r\n".to_string(),
        "-MOVED 3999 127.0.0.1:70000\r\n".to_string(),
        format!("-MOVED 3999 127.0.0.1:{p} extra\r\n"),
        format!("-ASK __proto__ 127.0.0.1:{p}\r\n"),
        format!("-ASK 16384 127.0.0.1:{p}\r\n"),
    ];
    for line in &bad {
        server.script(Hostile::Send(line.clone().into_bytes()));
        let sent_before = server.served(b"trigger").len();
        let got = h.set(b"trigger").await;
        let err = expect_err(got, ErrorKind::Protocol.code(), line.trim_end());
        assert!(
            err.message.contains("malformed redirection"),
            "{line:?}: {}",
            err.message
        );
        assert_eq!(
            server.served(b"trigger").len(),
            sent_before + 1,
            "{line:?}: the command must not be resent anywhere"
        );
    }
    // `:port` means "the node that answered": followed, the command runs again there.
    server.script(Hostile::Send(format!("-MOVED 3999 :{p}\r\n").into_bytes()));
    let before = server.served(b"trigger").len();
    let got = h.set(b"trigger").await;
    assert_eq!(got, Ok(Reply::Status("OK".into())));
    assert_eq!(
        server.served(b"trigger").len(),
        before + 2,
        "sent, MOVED, sent again"
    );
    // A malformed redirection is the peer's fault, not the connection's framing: it stays open.
    assert_eq!(
        server.served(b"trigger").iter().max(),
        Some(&0),
        "everything on the first connection"
    );
    assert_no_io_panic();
}

#[tokio::test]
async fn a_command_timed_out_while_retrying_says_what_it_retried_after() {
    // A command that waits out CLUSTERDOWN until commandTimeout must not read like one a silent
    // server never answered: the TIMEOUT names its retries and the last cause.
    let server = Server::start().await;
    let mut h = Harness::start_with(&server, true, |c| c.command_timeout_ms = Some(400)).await;
    for _ in 0..64 {
        server.script(Hostile::Send(
            b"-CLUSTERDOWN The cluster is down\r\n".to_vec(),
        ));
    }
    let err = expect_err(
        h.set(b"trigger").await,
        ErrorKind::Timeout.code(),
        "CLUSTERDOWN until the deadline",
    );
    assert!(
        err.message.contains("the last after CLUSTERDOWN"),
        "{}",
        err.message
    );
    // One retry per CLUSTERDOWN answer; the deadline may fall before or after the last resend.
    let retries: usize = err
        .message
        .split("; retried ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no retry count in {:?}", err.message));
    let sent = server.served(b"trigger").len();
    assert!(
        retries >= 1 && (sent - 1..=sent).contains(&retries),
        "{sent} sends, {retries} retries: {}",
        err.message
    );
    assert_no_io_panic();
}
