//! Write-safe retries (issue 6 item 2, RELIABILITY.md §3 "I/O error before write vs after
//! write"): a scripted fake Redis node on 127.0.0.1 answers the client's handshake (PING) and
//! discovery (CLUSTER SHARDS → unknown subcommand, CLUSTER SLOTS → all 16384 slots on itself)
//! like a real 7.0 server, and drops chosen connections at chosen moments. Driven through
//! `clustr_io::Client`, the tests prove that:
//!
//! * a write the server has read when its connection drops fails with `CONNECTION_LOST`
//!   (outcome unknown) and is never sent again: the server sees it exactly once;
//! * a read dropped the same way is retried on a fresh connection and gets that connection's
//!   answer;
//! * a write that provably never left the client (still queued, or parked on a node that is
//!   connecting) is sent once a connection works and succeeds, with exactly one arrival — even
//!   when the connection attempt it was parked on fails;
//! * bytes handed to the kernel count as written (`wire.rs`, `Wire::close`): a write the server's
//!   kernel received but the server never read is reported `CONNECTION_LOST` and not resent.
//!   The client cannot tell "in the peer's socket buffer" from "executed", so it errs on the
//!   side of never duplicating;
//! * an ordinary server error (`-ERR …`, `-WRONGTYPE …`) is the answer: delivered once, never
//!   retried;
//! * commands the caller's thread wrote itself (`Client::direct`) follow the same rules, and
//!   share a connection with the driver's writes without mixing up their replies.
//!
//! "Exactly once" is counted over every connection the server accepted, after a later probe
//! command has completed on the same node and the longest retry backoff (250 ms) has passed.
//!
//! The client side comes from `common/`; the fake server is this suite's own: `hostile_server.rs`
//! scripts malformed replies, this one scripts connection drops (per connection and per key).

mod common;

use common::{assert_no_io_panic, encoded, expect_err, WITHIN};

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use clustr_engine::resp::Decoder;
use clustr_engine::Reply;
use clustr_io::Event;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// Longer than the engine's largest retry delay (250 ms) plus jitter and a reconnect backoff:
/// a resend, if the client were going to make one, would have arrived by then.
const QUIET: Duration = Duration::from_millis(400);

// ---------------------------------------------------------------------------------------------
// The fake server

/// How the server treats one connection (by accept order, 0 first).
enum Plan {
    /// Answer everything (subject to the per-key actions).
    Normal,
    /// On the handshake PING: wait for the gate, then close without answering. The client's
    /// connection attempt fails, so nothing is ever written on it.
    RefuseHandshake(Arc<Notify>),
    /// Answer the handshake and discovery, then stop reading: whatever the client writes
    /// afterwards stays unread in the server's socket buffer until the connection is killed,
    /// which then resets it.
    DeafAfterDiscovery,
}

/// What the server does with the next command on a given key.
enum Action {
    /// Read the command (it counts as arrived), then close the connection without a reply.
    CloseWithoutReply,
    /// Answer with these bytes.
    Reply(Vec<u8>),
}

#[derive(Default)]
struct State {
    plans: HashMap<usize, Plan>,
    actions: HashMap<Vec<u8>, VecDeque<Action>>,
    /// Every non-handshake, non-topology command the server read: (connection, arguments).
    log: Vec<(usize, Vec<Vec<u8>>)>,
    /// Connections whose handshake PING arrived.
    pings: Vec<usize>,
    /// Deaf connections that have unread client bytes waiting in their socket buffer.
    unread: Vec<usize>,
    /// Per connection: notified to make the server drop it.
    kill: Vec<Arc<Notify>>,
}

#[derive(Clone)]
struct Server {
    port: u16,
    state: Arc<Mutex<State>>,
}

impl Server {
    async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = Server {
            port,
            state: Arc::default(),
        };
        let s = server.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (idx, plan, kill) = {
                    let mut st = s.state.lock().unwrap();
                    let kill = Arc::new(Notify::new());
                    st.kill.push(kill.clone());
                    let idx = st.kill.len() - 1;
                    (idx, st.plans.remove(&idx).unwrap_or(Plan::Normal), kill)
                };
                tokio::spawn(s.clone().serve(sock, idx, plan, kill));
            }
        });
        server
    }

    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    fn plan(&self, conn: usize, plan: Plan) {
        self.st().plans.insert(conn, plan);
    }

    fn on(&self, key: &[u8], action: Action) {
        self.st()
            .actions
            .entry(key.to_vec())
            .or_default()
            .push_back(action);
    }

    /// Makes the server drop connection `conn` (at once, or as soon as it is accepted).
    fn kill(&self, conn: usize) {
        self.st().kill[conn].notify_one();
    }

    fn connections(&self) -> usize {
        self.st().kill.len()
    }

    /// On which connections the server read a command whose key is `key`, in order.
    fn arrivals(&self, key: &[u8]) -> Vec<usize> {
        self.st()
            .log
            .iter()
            .filter(|(_, args)| args.get(1).map(Vec::as_slice) == Some(key))
            .map(|(c, _)| *c)
            .collect()
    }

    async fn wait_until(&self, what: &str, cond: impl Fn(&State) -> bool) {
        let start = Instant::now();
        while !cond(&self.st()) {
            assert!(start.elapsed() < WITHIN, "the server never saw {what}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    async fn serve(self, sock: TcpStream, idx: usize, plan: Plan, kill: Arc<Notify>) {
        let (mut rd, mut wr) = sock.into_split();
        let mut dec = Decoder::default();
        let mut buf = BytesMut::new();
        loop {
            tokio::select! {
                _ = kill.notified() => return,
                n = rd.read_buf(&mut buf) => {
                    if !matches!(n, Ok(n) if n > 0) {
                        return;
                    }
                    while let Ok(Some(Reply::Array(cmd))) = dec.decode(&mut buf) {
                        let args: Vec<Vec<u8>> =
                            cmd.iter().map(|a| a.as_bytes().unwrap_or_default().to_vec()).collect();
                        let upper = |i: usize| {
                            args.get(i).map(|a| a.to_ascii_uppercase()).unwrap_or_default()
                        };
                        let (cmd, sub) = (upper(0), upper(1));
                        if cmd == b"PING" {
                            self.st().pings.push(idx);
                            if let Plan::RefuseHandshake(gate) = &plan {
                                gate.notified().await;
                                return;
                            }
                        }
                        let Some(out) = self.respond(idx, args) else {
                            return; // CloseWithoutReply
                        };
                        if wr.write_all(&out).await.is_err() {
                            return;
                        }
                        if matches!(plan, Plan::DeafAfterDiscovery)
                            && cmd == b"CLUSTER"
                            && sub == b"SLOTS"
                        {
                            return self.deaf(rd, wr, idx, &kill).await;
                        }
                    }
                }
            }
        }
    }

    /// Reads nothing more: notes when an INCR is waiting unread (other commands, such as the
    /// client learning the command table, may arrive first), then, once killed, closes the
    /// socket with it still unread (the kernel answers with a reset).
    async fn deaf(&self, mut rd: OwnedReadHalf, wr: OwnedWriteHalf, idx: usize, kill: &Notify) {
        let mut probe = vec![0u8; 64 * 1024];
        loop {
            tokio::select! {
                _ = kill.notified() => return,
                n = rd.peek(&mut probe) => {
                    let Ok(n @ 1..) = n else { return };
                    if probe[..n].windows(4).any(|w| w == b"INCR") {
                        self.st().unread.push(idx);
                        break;
                    }
                }
            }
            // Peeking again at once would spin on the same bytes until more arrive.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        kill.notified().await;
        // Reunited, so the drop is a plain close (no orderly write shutdown first).
        drop(rd.reunite(wr));
    }

    /// The answer to one command; None to close the connection without one.
    fn respond(&self, conn: usize, args: Vec<Vec<u8>>) -> Option<Vec<u8>> {
        let upper = |i: usize| {
            args.get(i)
                .map(|a| a.to_ascii_uppercase())
                .unwrap_or_default()
        };
        match (&upper(0)[..], &upper(1)[..]) {
            (b"PING", _) => return Some(b"+PONG\r\n".to_vec()),
            (b"AUTH" | b"READONLY", _) => return Some(b"+OK\r\n".to_vec()),
            (b"CLUSTER", b"SHARDS") => {
                return Some(b"-ERR unknown subcommand 'SHARDS'. Try CLUSTER HELP.\r\n".to_vec())
            }
            (b"CLUSTER", b"SLOTS") => return Some(self.slots()),
            _ => {}
        }
        let mut st = self.st();
        st.log.push((conn, args.clone()));
        let key = args.get(1).cloned().unwrap_or_default();
        match st.actions.get_mut(&key).and_then(VecDeque::pop_front) {
            Some(Action::CloseWithoutReply) => return None,
            Some(Action::Reply(bytes)) => return Some(bytes),
            None => {}
        }
        Some(match &upper(0)[..] {
            // The number of INCRs of this key the server has read (each arrival counts).
            b"INCR" => {
                let n = st
                    .log
                    .iter()
                    .filter(|(_, a)| a[0].eq_ignore_ascii_case(b"INCR") && a.get(1) == Some(&key))
                    .count();
                format!(":{n}\r\n").into_bytes()
            }
            // Names the connection that served it.
            b"GET" => encoded(&Reply::Bulk(format!("v@{conn}").into())),
            _ => b"+OK\r\n".to_vec(),
        })
    }

    /// All 16384 slots on this server.
    fn slots(&self) -> Vec<u8> {
        encoded(&Reply::Array(vec![Reply::Array(vec![
            Reply::Int(0),
            Reply::Int(16383),
            Reply::Array(vec![
                Reply::Bulk("127.0.0.1".into()),
                Reply::Int(self.port as i64),
                Reply::Bulk("0123456789abcdef0123456789abcdef01234567".into()),
            ]),
        ])]))
    }
}

// ---------------------------------------------------------------------------------------------
// The client side

/// The shared client harness, with what these tests add to it.
struct Harness(common::Harness);

impl std::ops::Deref for Harness {
    type Target = common::Harness;
    fn deref(&self) -> &common::Harness {
        &self.0
    }
}

impl std::ops::DerefMut for Harness {
    fn deref_mut(&mut self) -> &mut common::Harness {
        &mut self.0
    }
}

impl Harness {
    /// A client seeded with the server, once it has adopted its first slot map.
    async fn start(server: &Server) -> Harness {
        Harness(common::Harness::start(server.port, true).await)
    }

    /// The driver's retry counter. The request goes through the same channel as `submit`, so
    /// the answer also proves every earlier submit has been handled.
    fn retries(&self) -> u64 {
        self.client.stats().expect("the client is running").retries
    }

    /// Lets a resend, if one were coming, arrive: a probe command completes on the node (over
    /// a working connection), then the longest retry backoff passes. Nothing else may settle
    /// meanwhile.
    async fn settle(&mut self) {
        let got = self.run(&[b"SET", b"probe", b"v"], false).await;
        assert_eq!(got, Ok(Reply::Status("OK".into())), "the probe");
        tokio::time::sleep(QUIET).await;
        self.pump();
        assert!(self.done.is_empty(), "stray completions: {:?}", self.done);
        assert_no_io_panic();
    }
}

// ---------------------------------------------------------------------------------------------
// After the server read the request

/// A write the server read before the connection dropped may have been applied: the client
/// reports CONNECTION_LOST (outcome unknown) and never resends it.
#[tokio::test]
async fn a_write_dropped_after_the_server_read_it_fails_as_connection_lost_and_is_never_resent() {
    let server = Server::start().await;
    let mut h = Harness::start(&server).await;
    server.on(b"k", Action::CloseWithoutReply);
    let retries = h.retries();
    let got = h.run(&[b"INCR", b"k"], false).await;
    let err = expect_err(got, "CONNECTION_LOST", "INCR dropped after it was read");
    assert!(
        err.message.contains("may or may not have been applied"),
        "{}",
        err.message
    );
    h.settle().await;
    assert_eq!(
        server.arrivals(b"k"),
        vec![0],
        "the INCR reached the server once, on the connection that dropped, and never again"
    );
    assert_eq!(h.retries(), retries, "no retry was scheduled for the write");
    assert!(
        server.arrivals(b"probe")[0] > 0,
        "the probe ran on a new connection"
    );
}

/// A read dropped the same way is safe to send again: it is retried on a fresh connection and
/// the caller gets that connection's answer, not an error.
#[tokio::test]
async fn a_read_dropped_after_the_server_read_it_is_retried_on_a_fresh_connection() {
    let server = Server::start().await;
    let mut h = Harness::start(&server).await;
    server.on(b"k", Action::CloseWithoutReply);
    let got = h.run(&[b"GET", b"k"], true).await;
    assert_eq!(
        got,
        Ok(Reply::Bulk("v@1".into())),
        "the answer of the second connection"
    );
    h.settle().await;
    assert_eq!(
        server.arrivals(b"k"),
        vec![0, 1],
        "read on the dropped connection, then once on its replacement"
    );
}

// ---------------------------------------------------------------------------------------------
// Before the server read the request

/// The server closes the idle connection right after discovery; the client notices before the
/// write is submitted, so the write is sent on the next connection only and succeeds.
#[tokio::test]
async fn a_write_after_the_connection_dropped_is_sent_on_the_next_connection_once() {
    let server = Server::start().await;
    let mut h = Harness::start(&server).await;
    server.kill(0);
    h.wait_event("NodeDown", |e| matches!(e, Event::NodeDown(..)))
        .await;
    let retries = h.retries();
    let got = h.run(&[b"INCR", b"k"], false).await;
    assert_eq!(got, Ok(Reply::Int(1)));
    h.settle().await;
    let arrivals = server.arrivals(b"k");
    assert_eq!(arrivals.len(), 1, "exactly one arrival: {arrivals:?}");
    assert!(arrivals[0] >= 1, "not on the dropped connection 0");
    assert_eq!(h.retries(), retries, "nothing had to be retried");
}

/// A write parked on a node that is still connecting is provably unwritten. When that
/// connection attempt fails (the server closes it before answering the handshake PING), the
/// write is retried, not failed, and goes out on the next connection: one arrival, success.
#[tokio::test]
async fn a_write_parked_on_a_failed_connection_attempt_is_sent_once_on_the_next_one() {
    let server = Server::start().await;
    let gate = Arc::new(Notify::new());
    server.plan(1, Plan::RefuseHandshake(gate.clone()));
    let mut h = Harness::start(&server).await;
    // Drop the only connection: the client reconnects at once (for its topology refresh) and
    // the server holds that attempt's handshake PING unanswered.
    server.kill(0);
    server
        .wait_until("the handshake PING of connection 1", |st| {
            st.pings.contains(&1)
        })
        .await;
    let retries = h.retries();
    let id = h.submit(&[b"INCR", b"k"], false);
    // `retries()` round-trips through the driver: the INCR is now parked on connection 1.
    assert_eq!(h.retries(), retries);
    gate.notify_one();
    let got = h.result(id).await;
    assert_eq!(got, Ok(Reply::Int(1)), "the parked write succeeded");
    h.settle().await;
    assert_eq!(
        server.arrivals(b"k"),
        vec![2],
        "exactly once, on the connection after the refused one"
    );
    assert!(
        h.retries() > retries,
        "the write went through the not-written retry path"
    );
    assert!(server.connections() >= 3);
}

/// The limit of what the client can know: bytes handed to the kernel count as written
/// (`wire.rs`, `Wire::close`). Here the server's kernel received the INCR but the server never
/// read it, then the connection was reset. From the client's side that looks exactly like a
/// server that ran the INCR and died before answering, so the client reports CONNECTION_LOST
/// (outcome unknown) and does not resend: an "unknown" for a write that in fact never ran, in
/// exchange for never a duplicate. Only commands still in the node's buffer or parked on a
/// connecting node (the tests above) are known to be unwritten and are resent.
#[tokio::test]
async fn a_write_handed_to_the_socket_but_never_read_is_reported_unknown_not_resent() {
    let server = Server::start().await;
    server.plan(0, Plan::DeafAfterDiscovery);
    let mut h = Harness::start(&server).await;
    let id = h.submit(&[b"INCR", b"k"], false);
    server
        .wait_until("the INCR's bytes in its socket buffer", |st| {
            st.unread.contains(&0)
        })
        .await;
    server.kill(0);
    let got = h.result(id).await;
    expect_err(
        got,
        "CONNECTION_LOST",
        "INCR handed to the socket, never read",
    );
    h.settle().await;
    assert_eq!(
        server.arrivals(b"k"),
        Vec::<usize>::new(),
        "the server never read it, and the client never resent it"
    );
}

// ---------------------------------------------------------------------------------------------
// Server errors

/// An ordinary server error is the command's answer: delivered once as the error reply, never
/// retried, for a write and for a read alike.
#[tokio::test]
async fn a_non_retryable_server_error_is_delivered_once_and_not_retried() {
    let server = Server::start().await;
    let mut h = Harness::start(&server).await;
    server.on(
        b"w",
        Action::Reply(b"-ERR something went wrong\r\n".to_vec()),
    );
    server.on(
        b"r",
        Action::Reply(
            b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n".to_vec(),
        ),
    );
    let retries = h.retries();
    let got = h.run(&[b"INCR", b"w"], false).await;
    assert_eq!(
        got,
        Ok(Reply::Error("ERR something went wrong".into())),
        "the write's error reply"
    );
    let got = h.run(&[b"GET", b"r"], true).await;
    assert_eq!(
        got,
        Ok(Reply::Error(
            "WRONGTYPE Operation against a key holding the wrong kind of value".into()
        )),
        "the read's error reply"
    );
    h.settle().await;
    assert_eq!(server.arrivals(b"w"), vec![0], "the write was sent once");
    assert_eq!(server.arrivals(b"r"), vec![0], "the read was sent once");
    assert_eq!(h.retries(), retries, "nothing was retried");
    assert_eq!(server.connections(), 1, "and the connection stayed up");
}

// ---------------------------------------------------------------------------------------------
// Written from the caller's thread (`Client::direct`)

/// Waits until the client writes commands directly (its routes are published once the node's
/// connection is up), with a harmless probe.
async fn until_direct(h: &mut Harness) {
    let start = Instant::now();
    loop {
        let (id, direct) = h.submit_direct(&[b"SET", b"probe", b"v"], false);
        assert_eq!(h.result(id).await, Ok(Reply::Status("OK".into())));
        if direct {
            return;
        }
        assert!(start.elapsed() < WITHIN, "never written directly");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A write the caller's thread wrote itself follows the same rule as one the driver wrote:
/// read by the server, then dropped, it is CONNECTION_LOST and never sent again.
#[tokio::test]
async fn a_direct_write_dropped_after_the_server_read_it_is_connection_lost_and_not_resent() {
    let server = Server::start().await;
    let mut h = Harness::start(&server).await;
    until_direct(&mut h).await;
    server.on(b"k", Action::CloseWithoutReply);
    let (id, direct) = h.submit_direct(&[b"INCR", b"k"], false);
    assert!(direct, "the INCR was written from the caller's thread");
    expect_err(
        h.result(id).await,
        "CONNECTION_LOST",
        "direct INCR dropped after it was read",
    );
    h.settle().await;
    assert_eq!(
        server.arrivals(b"k"),
        vec![0],
        "the INCR arrived once, and was never resent"
    );
}

/// A read written directly and dropped the same way is retried on a fresh connection.
#[tokio::test]
async fn a_direct_read_dropped_after_the_server_read_it_is_retried() {
    let server = Server::start().await;
    let mut h = Harness::start(&server).await;
    until_direct(&mut h).await;
    server.on(b"k", Action::CloseWithoutReply);
    let (id, direct) = h.submit_direct(&[b"GET", b"k"], true);
    assert!(direct, "the GET was written from the caller's thread");
    assert_eq!(h.result(id).await, Ok(Reply::Bulk("v@1".into())));
    h.settle().await;
    assert_eq!(
        server.arrivals(b"k"),
        vec![0, 1],
        "read on the dropped connection, then its replacement"
    );
}

/// Commands written directly and commands the driver writes share one connection: each gets
/// its own reply (the server answers each key with its own name), whichever path it took.
#[tokio::test]
async fn direct_and_driver_writes_on_one_connection_each_get_their_own_reply() {
    let server = Server::start().await;
    let mut h = Harness::start(&server).await;
    until_direct(&mut h).await;
    let keys: Vec<Vec<u8>> = (0..300).map(|i| format!("key:{i}").into_bytes()).collect();
    for k in &keys {
        server.on(k, Action::Reply(encoded(&Reply::Bulk(k.clone().into()))));
    }
    let mut ids = Vec::new();
    let mut direct = 0;
    for (i, k) in keys.iter().enumerate() {
        if i % 3 == 0 {
            ids.push(h.submit(&[b"GET", k], true));
        } else {
            let (id, d) = h.submit_direct(&[b"GET", k], true);
            direct += d as usize;
            ids.push(id);
        }
    }
    assert!(direct >= 150, "only {direct} of 200 were written directly");
    for (id, k) in ids.into_iter().zip(&keys) {
        assert_eq!(h.result(id).await, Ok(Reply::Bulk(k.clone().into())));
    }
}
