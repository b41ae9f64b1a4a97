//! The scripted fake Redis node of the hostile-server suites (`hostile_server.rs`,
//! `hostile_transport.rs`): it listens on 127.0.0.1 (plaintext, or TLS with a given server
//! config), answers the client's handshake (AUTH, READONLY, PING) and discovery (CLUSTER SHARDS →
//! unknown subcommand, CLUSTER SLOTS → all 16384 slots on itself) like a real 7.0 server, and
//! answers commands whose key is `trigger` with scripted malformed or malicious bytes. It records
//! what each connection was asked, the AUTH arguments it saw, failed TLS handshakes and which
//! connections the client closed, so tests can check what went over which socket.
//!
//! Also the client-side wrapper those suites share (`HostileHarness`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use clustr_engine::resp::Decoder;
use clustr_engine::{Error, Reply};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use super::{assert_no_io_panic, encoded, Harness, WITHIN};

/// What the server does with the next `SET trigger …` / `GET trigger`.
pub enum Hostile {
    /// Write these bytes and keep the connection open (the client must close it if needed).
    Send(Vec<u8>),
    /// Write these bytes, then close the connection.
    SendThenClose(Vec<u8>),
    /// Write these bytes one at a time, one every `Duration`, until done or the client closes.
    Trickle(Vec<u8>, Duration),
}

#[derive(Default)]
pub struct State {
    /// The CLUSTER SLOTS answer; None means a valid one mapping every slot to this server.
    pub slots: Option<Vec<u8>>,
    /// Actions for the next commands whose key is `trigger`, in order.
    pub hostile: VecDeque<Hostile>,
    /// Every non-handshake, non-topology command served: (connection index, arguments).
    pub log: Vec<(usize, Vec<Vec<u8>>)>,
    /// The arguments of every AUTH received (after the word AUTH).
    pub auth: Vec<Vec<Vec<u8>>>,
    /// TLS handshakes that failed (the client gave up on this server's certificate).
    pub tls_failures: usize,
    /// Connections the client closed (EOF or a failed write seen by the server).
    pub closed_by_client: Vec<usize>,
    /// Per connection, a way to push unsolicited bytes.
    pub inject: Vec<mpsc::UnboundedSender<Vec<u8>>>,
    /// A change of the cluster, played once (see `Flip`).
    pub flip: Option<Flip>,
    /// When the flip was played.
    pub flipped_at: Option<Instant>,
    /// CLUSTER SLOTS queries answered.
    pub slots_served: usize,
    /// A frozen host: past the handshake (PING, AUTH, READONLY) nothing is answered, topology
    /// queries included; commands are still logged.
    pub mute: bool,
    /// CLUSTER SLOTS is answered this late, and nothing else on that connection meanwhile (a
    /// node busy saving its cluster config after a failover).
    pub slow_slots: Option<Duration>,
}

/// The cluster changes under the client: the first CLUSTER SLOTS asked once `after` commands on
/// `trigger` were served is answered with `slots` (and so is every later one), and the script
/// for `trigger` becomes `then` (stays as it is when None).
pub struct Flip {
    pub after: usize,
    pub slots: Vec<u8>,
    pub then: Option<VecDeque<Hostile>>,
}

#[derive(Clone)]
pub struct Server {
    pub port: u16,
    pub state: Arc<Mutex<State>>,
}

impl Server {
    /// A plaintext fake node.
    pub async fn start() -> Server {
        Self::start_with(None).await
    }

    /// A fake node that speaks TLS with `acceptor` (plaintext when None).
    pub async fn start_with(acceptor: Option<TlsAcceptor>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = Server {
            port,
            state: Arc::default(),
        };
        let s = server.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let idx = {
                    let mut st = s.st();
                    st.inject.push(mpsc::unbounded_channel().0);
                    st.inject.len() - 1
                };
                let (s, acceptor) = (s.clone(), acceptor.clone());
                tokio::spawn(async move {
                    match acceptor {
                        None => s.serve(sock, idx).await,
                        Some(a) => match a.accept(sock).await {
                            Ok(tls) => s.serve(tls, idx).await,
                            Err(_) => s.st().tls_failures += 1,
                        },
                    }
                });
            }
        });
        server
    }

    pub fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    pub fn script(&self, h: Hostile) {
        self.st().hostile.push_back(h);
    }

    fn good_slots(&self) -> Vec<u8> {
        slots_reply(&[(0, 16383, b"127.0.0.1", self.port as i64)])
    }

    /// Which connections served a command whose key is `key`, in order.
    pub fn served(&self, key: &[u8]) -> Vec<usize> {
        self.st()
            .log
            .iter()
            .filter(|(_, args)| args.get(1).map(Vec::as_slice) == Some(key))
            .map(|(c, _)| *c)
            .collect()
    }

    pub async fn wait_closed_by_client(&self, conn: usize) {
        let start = Instant::now();
        while !self.st().closed_by_client.contains(&conn) {
            assert!(
                start.elapsed() < WITHIN,
                "the client kept connection {conn} open"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn serve<S: AsyncRead + AsyncWrite + Send + 'static>(self, sock: S, idx: usize) {
        let (tx, mut injected) = mpsc::unbounded_channel();
        self.st().inject[idx] = tx;
        let (mut rd, mut wr) = tokio::io::split(sock);
        let mut dec = Decoder::default();
        let mut buf = BytesMut::new();
        let closed = |s: &Server| s.st().closed_by_client.push(idx);
        loop {
            tokio::select! {
                n = rd.read_buf(&mut buf) => {
                    if !matches!(n, Ok(n) if n > 0) {
                        return closed(&self);
                    }
                    while let Ok(Some(Reply::Array(cmd))) = dec.decode(&mut buf) {
                        let args: Vec<Vec<u8>> =
                            cmd.iter().map(|a| a.as_bytes().unwrap_or_default().to_vec()).collect();
                        let (out, then) = self.respond(idx, args);
                        if let Then::Late(after) = then {
                            tokio::time::sleep(after).await;
                        }
                        if wr.write_all(&out).await.is_err() {
                            return closed(&self);
                        }
                        match then {
                            Then::Stay | Then::Late(_) => {}
                            Then::Close => return,
                            Then::Trickle(bytes, every) => {
                                // One byte per tick; the client closing shows as EOF on the
                                // read side or as a failed write.
                                for b in bytes {
                                    tokio::select! {
                                        _ = tokio::time::sleep(every) => {}
                                        n = rd.read_buf(&mut buf) => {
                                            if !matches!(n, Ok(n) if n > 0) {
                                                return closed(&self);
                                            }
                                        }
                                    }
                                    if wr.write_all(&[b]).await.is_err() {
                                        return closed(&self);
                                    }
                                }
                            }
                        }
                    }
                }
                Some(bytes) = injected.recv() => {
                    if wr.write_all(&bytes).await.is_err() {
                        return closed(&self);
                    }
                }
            }
        }
    }

    /// The answer to one command, and what to do after writing it.
    fn respond(&self, conn: usize, args: Vec<Vec<u8>>) -> (Vec<u8>, Then) {
        let upper = |i: usize| {
            args.get(i)
                .map(|a| a.to_ascii_uppercase())
                .unwrap_or_default()
        };
        match (&upper(0)[..], &upper(1)[..]) {
            (b"PING", _) => (b"+PONG\r\n".to_vec(), Then::Stay),
            (b"AUTH", _) => {
                self.st().auth.push(args[1..].to_vec());
                (b"+OK\r\n".to_vec(), Then::Stay)
            }
            (b"READONLY", _) => (b"+OK\r\n".to_vec(), Then::Stay),
            _ if self.st().mute => {
                self.st().log.push((conn, args));
                (Vec::new(), Then::Stay)
            }
            (b"CLUSTER", b"SHARDS") => (
                b"-ERR unknown subcommand 'SHARDS'. Try CLUSTER HELP.\r\n".to_vec(),
                Then::Stay,
            ),
            (b"CLUSTER", b"SLOTS") => {
                let mut st = self.st();
                st.slots_served += 1;
                let served = st
                    .log
                    .iter()
                    .filter(|(_, a)| a.get(1).map(Vec::as_slice) == Some(b"trigger"))
                    .count();
                if st.flip.as_ref().is_some_and(|f| served >= f.after) {
                    let f = st.flip.take().unwrap();
                    st.slots = Some(f.slots);
                    if let Some(then) = f.then {
                        st.hostile = then;
                    }
                    st.flipped_at = Some(Instant::now());
                }
                let custom = st.slots.clone();
                let then = st.slow_slots.map_or(Then::Stay, Then::Late);
                drop(st);
                (custom.unwrap_or_else(|| self.good_slots()), then)
            }
            (cmd, _) => {
                let mut st = self.st();
                st.log.push((conn, args.clone()));
                if args.get(1).map(Vec::as_slice) == Some(b"trigger") {
                    match st.hostile.pop_front() {
                        Some(Hostile::Send(b)) => return (b, Then::Stay),
                        Some(Hostile::SendThenClose(b)) => return (b, Then::Close),
                        Some(Hostile::Trickle(b, every)) => {
                            return (Vec::new(), Then::Trickle(b, every))
                        }
                        None => {}
                    }
                }
                match cmd {
                    b"GET" => (b"$5\r\nvalue\r\n".to_vec(), Then::Stay),
                    _ => (b"+OK\r\n".to_vec(), Then::Stay),
                }
            }
        }
    }
}

enum Then {
    Stay,
    Close,
    Trickle(Vec<u8>, Duration),
    /// Written after this long (the answer, not what follows it).
    Late(Duration),
}

/// A CLUSTER SLOTS reply: one range per (start, end, host, port).
pub fn slots_reply(ranges: &[(i64, i64, &[u8], i64)]) -> Vec<u8> {
    let reply = Reply::Array(
        ranges
            .iter()
            .map(|&(start, end, host, port)| {
                Reply::Array(vec![
                    Reply::Int(start),
                    Reply::Int(end),
                    Reply::Array(vec![
                        Reply::Bulk(Bytes::copy_from_slice(host)),
                        Reply::Int(port),
                        Reply::Bulk("0123456789abcdef0123456789abcdef01234567".into()),
                    ]),
                ])
            })
            .collect(),
    );
    encoded(&reply)
}

/// The shared client harness plus the server it talks to (to ask which connection served what).
pub struct HostileHarness {
    pub h: Harness,
    pub server: Server,
}

impl std::ops::Deref for HostileHarness {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.h
    }
}

impl std::ops::DerefMut for HostileHarness {
    fn deref_mut(&mut self) -> &mut Harness {
        &mut self.h
    }
}

impl HostileHarness {
    /// A client seeded with the server; waits for its first slot map when `ready`.
    pub async fn start(server: &Server, ready: bool) -> HostileHarness {
        Self::start_with(server, ready, |_| {}).await
    }

    /// Like `start`, with the client's configuration adjusted by `tweak`.
    pub async fn start_with(
        server: &Server,
        ready: bool,
        tweak: impl FnOnce(&mut clustr_io::Config),
    ) -> HostileHarness {
        HostileHarness {
            h: Harness::start_with(server.port, ready, tweak).await,
            server: server.clone(),
        }
    }

    /// Sends `SET key v` and returns its result.
    pub async fn set(&mut self, key: &[u8]) -> Result<Reply, Error> {
        self.run(&[b"SET", key, b"v"], false).await
    }

    /// The connection of the last command with key `key` that the server saw.
    pub fn last_conn(&self, key: &[u8]) -> usize {
        *self
            .server
            .served(key)
            .last()
            .expect("the server saw the command")
    }

    /// After a broken connection: a new command succeeds, on a connection opened after
    /// `broken`, and nothing panicked.
    pub async fn next_command_succeeds_on_a_fresh_connection(&mut self, broken: usize) {
        let got = self.set(b"after").await;
        assert_eq!(got, Ok(Reply::Status("OK".into())), "the next command");
        let conn = self.last_conn(b"after");
        assert!(
            conn > broken,
            "the next command went over connection {conn}, not a fresh one after {broken}"
        );
        assert_no_io_panic();
    }
}
