//! One connection to one node: connect, handshake (AUTH, READONLY), then its write side (a
//! plain socket's `Wire`, written inline while nothing is queued; a channel to a writer loop
//! for TLS) and a reader that decodes every complete reply in each read and hands them to the
//! driver in one message. Replies are matched to requests by the driver (FIFO), never here. Any
//! framing error closes the connection: after one, nobody knows which reply belongs to which
//! request.
//!
//! With TLS configured every connection is wrapped in TLS right after the TCP connect, before a
//! single byte of the handshake (which carries the password) is written.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use clustr_engine::resp::{encode_command, Decoder, Limits};
use clustr_engine::topology::NodeAddr;
use clustr_engine::{ErrorKind, Reply};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::tls::{is_tls_error, tls_hint, Tls};
use crate::wire::{Wire, Writer};
use crate::Msg;

/// The two halves of a plain or TLS stream. Boxed so one reader and one writer loop serve both;
/// a plain socket keeps tokio's lock-free owned halves, only TLS pays for `tokio::io::split`.
type ReadHalf = Box<dyn AsyncRead + Send + Unpin>;
type WriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// What a connection task reports to the driver. `gen` tells stale connections apart.
pub(crate) enum ConnEvent {
    Connected {
        addr: NodeAddr,
        gen: u64,
        writer: Writer,
    },
    Failed {
        addr: NodeAddr,
        gen: u64,
        kind: ErrorKind,
        error: String,
    },
    Replies {
        addr: NodeAddr,
        gen: u64,
        replies: Vec<Reply>,
    },
    /// The connection ended. `kind` is PROTOCOL when the reader met bytes it could not parse
    /// (the socket is already closed then), CONNECTION_LOST otherwise.
    Closed {
        addr: NodeAddr,
        gen: u64,
        kind: ErrorKind,
        error: String,
    },
}

impl ConnEvent {
    /// The generation of the connection the event is about.
    pub(crate) fn gen(&self) -> u64 {
        match self {
            ConnEvent::Connected { gen, .. }
            | ConnEvent::Failed { gen, .. }
            | ConnEvent::Closed { gen, .. }
            | ConnEvent::Replies { gen, .. } => *gen,
        }
    }
}

/// What every new connection sends before it carries traffic.
#[derive(Clone, Debug, Default)]
pub(crate) struct Handshake {
    pub username: Option<String>,
    pub password: Option<String>,
    pub readonly: bool,
    pub connect_timeout: Duration,
    /// Set when the caller configured TLS: then every connection uses it.
    pub tls: Option<Tls>,
    /// natMap: where to dial each announced address (see `Config::nat_map`).
    pub nat: crate::NatMap,
    /// Set with the createClient hook: every link is a JS link (`link`), no socket is opened.
    pub js: Option<Arc<crate::link::JsLinks>>,
}

/// Starts a connection task; returns its handle so quit can stop it.
pub(crate) fn spawn(
    addr: NodeAddr,
    gen: u64,
    hs: Arc<Handshake>,
    tx: mpsc::UnboundedSender<Msg>,
) -> tokio::task::JoinHandle<()> {
    if let Some(links) = &hs.js {
        let kind = (
            crate::pubsub::is_subscriber_gen(gen),
            crate::session::Sessions::owns(gen),
        );
        return crate::link::spawn(addr, gen, links.clone(), hs.readonly, kind, tx);
    }
    tokio::spawn(async move {
        let report = |e: ConnEvent| {
            let _ = tx.send(Msg::Conn(e));
        };
        let (reader, writer) = match open(&addr, &hs).await {
            Ok(pair) => pair,
            Err((kind, error)) => {
                return report(ConnEvent::Failed {
                    addr,
                    gen,
                    kind,
                    error,
                })
            }
        };
        let (writer, writer_task) = match writer {
            Out::Plain(w) => (
                Writer::Wire(Wire::start(w, tx.clone(), addr.clone(), gen)),
                None,
            ),
            Out::Boxed(w) => {
                let (wtx, wrx) = mpsc::unbounded_channel();
                let task = tokio::spawn(write_loop(w, wrx, tx.clone(), addr.clone(), gen));
                (Writer::Chan(wtx), Some(task))
            }
        };
        let wire = match &writer {
            Writer::Wire(w) => Some(Arc::downgrade(w)),
            Writer::Chan(_) => None,
        };
        report(ConnEvent::Connected {
            addr: addr.clone(),
            gen,
            writer,
        });
        let (kind, error) = read_loop(reader, &addr, gen, &tx).await;
        // Dropping the reader and closing the writer closes the socket before the driver hears
        // of it: after a framing error nothing more is read from or written to this stream.
        if let Some(t) = writer_task {
            t.abort();
        }
        if let Some(w) = wire.and_then(|w| w.upgrade()) {
            w.stop();
        }
        report(ConnEvent::Closed {
            addr,
            gen,
            kind,
            error,
        });
    })
}

/// A connection's write half: a plain socket's own (written inline, see `wire`) or a boxed one.
enum Out {
    Plain(tokio::net::tcp::OwnedWriteHalf),
    Boxed(WriteHalf),
}

impl Out {
    async fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Out::Plain(w) => w.write_all(b).await,
            Out::Boxed(w) => {
                w.write_all(b).await?;
                w.flush().await
            }
        }
    }
}

async fn open(addr: &NodeAddr, hs: &Handshake) -> Result<(Reader, Out), (ErrorKind, String)> {
    let refused = |e: String| (ErrorKind::ConnectionRefused, e);
    // Messages name the announced address (what the slot map and node handles show) and, when
    // natMap rewrote it, the address actually dialled.
    let mapped = match tokio::time::timeout(hs.connect_timeout, hs.nat.dial(addr)).await {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => return Err((ErrorKind::InvalidArg, format!("natMap for {addr}: {e}"))),
        Err(_) => return Err(refused(format!("natMap gave no answer for {addr} in time"))),
    };
    let (dial, via) = match &mapped {
        Some(to) => (to, format!(" (natMap: dialled {to})")),
        None => (addr, String::new()),
    };
    let target = (dial.host.as_str(), dial.port);
    let stream = match tokio::time::timeout(hs.connect_timeout, TcpStream::connect(target)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(refused(format!("connect to {addr}{via} failed: {e}"))),
        Err(_) => {
            return Err(refused(format!(
                "connect to {addr}{via} timed out after {} ms",
                hs.connect_timeout.as_millis()
            )))
        }
    };
    let _ = stream.set_nodelay(true);
    // A peer that vanished without a FIN (host gone, partition) is noticed in about half a
    // minute instead of the kernel's default of hours.
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(15))
        .with_interval(Duration::from_secs(5));
    let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
    let (rd, mut wr): (ReadHalf, Out) = match &hs.tls {
        None => {
            let (rd, wr) = stream.into_split();
            (Box::new(rd), Out::Plain(wr))
        }
        Some(tls) => {
            // The certificate must match the host actually dialled (the public name behind
            // the NAT), unless `servername` overrides it.
            let connecting = tls.connect(stream, &dial.host);
            let stream = match tokio::time::timeout(hs.connect_timeout, connecting).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    let hint = tls_hint(&e);
                    let msg = format!("TLS handshake with {addr} failed: {e}{hint}");
                    return Err((ErrorKind::Tls, msg));
                }
                Err(_) => {
                    return Err((
                        ErrorKind::Timeout,
                        format!(
                            "TLS handshake with {addr} timed out after {} ms",
                            hs.connect_timeout.as_millis()
                        ),
                    ))
                }
            };
            let (rd, wr) = tokio::io::split(stream);
            (Box::new(rd), Out::Boxed(Box::new(wr)))
        }
    };
    let mut reader = Reader {
        rd,
        buf: BytesMut::with_capacity(64 * 1024),
        decoder: Decoder::new(Limits::default()),
    };
    let mut hello = BytesMut::new();
    let mut expected = 0;
    if let Some(pw) = &hs.password {
        match &hs.username {
            Some(user) => encode_command(&mut hello, &[b"AUTH", user.as_bytes(), pw.as_bytes()]),
            None => encode_command(&mut hello, &[&b"AUTH"[..], pw.as_bytes()]),
        }
        expected += 1;
    }
    if hs.readonly {
        encode_command(&mut hello, &[b"READONLY"]);
        expected += 1;
    }
    // PING last: a connection counts as ready only once the server process has answered (the
    // kernel accepts connections for a paused process too).
    encode_command(&mut hello, &[b"PING"]);
    expected += 1;
    {
        let io = async {
            wr.write_all(&hello).await?;
            for _ in 0..expected {
                match reader.next().await? {
                    Reply::Error(e) => {
                        // The server's words, which never contain the password we sent.
                        let text = String::from_utf8_lossy(&e[..e.len().min(512)]).into_owned();
                        return Err(std::io::Error::other(text));
                    }
                    _ => continue,
                }
            }
            Ok(())
        };
        match tokio::time::timeout(hs.connect_timeout, io).await {
            Ok(Ok(())) => {}
            // With TLS 1.3 the server judges the client certificate after the client considers
            // the TLS handshake done, so a missing or rejected certificate shows up here, as
            // an alert on the first read.
            Ok(Err(e)) if is_tls_error(&e) => {
                let hint = tls_hint(&e.to_string());
                return Err((
                    ErrorKind::Tls,
                    format!("TLS session with {addr} failed: {e}{hint}"),
                ));
            }
            Ok(Err(e)) => {
                return Err((
                    ErrorKind::HandshakeFailed,
                    format!("handshake (AUTH/READONLY/PING) with {addr} failed: {e}"),
                ))
            }
            Err(_) => {
                return Err((
                    ErrorKind::Timeout,
                    format!("handshake with {addr} timed out"),
                ))
            }
        }
    }
    Ok((reader, wr))
}

/// The most a reader reserves ahead for a bulk reply still arriving (see `Reader::fill`).
const MAX_AHEAD: usize = 16 * 1024 * 1024;

struct Reader {
    rd: ReadHalf,
    buf: BytesMut,
    decoder: Decoder,
}

impl Reader {
    /// Reads one reply (used during the handshake only).
    async fn next(&mut self) -> std::io::Result<Reply> {
        loop {
            if let Some(r) = self
                .decoder
                .decode(&mut self.buf)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?
            {
                return Ok(r);
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> std::io::Result<()> {
        // Room for the rest of a large bulk at once: grown 64 KiB at a time (doubling), a 1 MiB
        // reply cost about as much copying again as reading it, in freshly faulted pages. The
        // look-ahead is capped so a header alone (up to proto-max-bulk-len) reserves little.
        let ahead = self.decoder.need().saturating_sub(self.buf.len());
        let want = ahead.clamp(16 * 1024, MAX_AHEAD);
        if self.buf.capacity() - self.buf.len() < want {
            self.buf.reserve(want.max(64 * 1024));
        }
        match self.rd.read_buf(&mut self.buf).await {
            Ok(0) => Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed by the server",
            )),
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Decodes replies until the connection ends; returns why it ended. A framing error ends it at
/// once (PROTOCOL): the decoder is never reset to carry on on the same socket.
async fn read_loop(
    mut reader: Reader,
    addr: &NodeAddr,
    gen: u64,
    tx: &mpsc::UnboundedSender<Msg>,
) -> (ErrorKind, String) {
    loop {
        let mut replies = Vec::new();
        loop {
            match reader.decoder.decode(&mut reader.buf) {
                Ok(Some(r)) => replies.push(r),
                Ok(None) => break,
                Err(e) => {
                    if !replies.is_empty() {
                        let _ = tx.send(Msg::Conn(ConnEvent::Replies {
                            addr: addr.clone(),
                            gen,
                            replies,
                        }));
                    }
                    return (ErrorKind::Protocol, e.to_string());
                }
            }
        }
        if !replies.is_empty() {
            let msg = Msg::Conn(ConnEvent::Replies {
                addr: addr.clone(),
                gen,
                replies,
            });
            if tx.send(msg).is_err() {
                return (ErrorKind::ConnectionLost, "client stopped".into());
            }
        }
        if let Err(e) = reader.fill().await {
            return (ErrorKind::ConnectionLost, e.to_string());
        }
    }
}

async fn write_loop(
    mut wr: WriteHalf,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    tx: mpsc::UnboundedSender<Msg>,
    addr: NodeAddr,
    gen: u64,
) {
    while let Some(chunk) = rx.recv().await {
        // flush: TLS may keep encrypted bytes buffered when the socket was full (a no-op for a
        // plain socket); without it they would wait for the next chunk.
        let written = async {
            wr.write_all(&chunk).await?;
            wr.flush().await
        };
        if let Err(e) = written.await {
            // Report it: the read side of a half-open socket may never fail on its own, and the
            // requests on this connection would wait forever.
            let error = format!("write to {addr} failed: {e}");
            let kind = ErrorKind::ConnectionLost;
            let closed = ConnEvent::Closed {
                addr,
                gen,
                kind,
                error,
            };
            let _ = tx.send(Msg::Conn(closed));
            return;
        }
    }
    // The driver dropped us (quit or node removed): half-close so the server ends the socket.
    let _ = wr.shutdown().await;
}
