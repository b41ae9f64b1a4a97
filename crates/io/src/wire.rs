//! The write side of a connection, as the driver, the pub/sub and session code, and (for plain
//! TCP) the JS thread see it. A plain TCP connection's bytes are written inline by whoever hands
//! them over while nothing is queued: a lone command written straight from the JS thread reaches
//! the server without first waking the io thread (a thread hand-off cost ~12 µs of a ~80 µs
//! round trip on the 2-core test VM). Whatever cannot be written at once waits, in order, for
//! the connection's writer task. TLS connections and createClient links keep a channel to
//! their writer loop and are never written from the JS thread.
//!
//! Every request handed over gets a position (`seq`) in the order its reply will arrive; the
//! driver's FIFO for the node is indexed by it (see `nodes`). The JS thread tells the driver of a
//! request (through `direct`'s side queue) before its bytes can reach the server, so the driver
//! always hears of it before its reply.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use bytes::Bytes;
use clustr_engine::topology::NodeAddr;
use clustr_engine::ErrorKind;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, Notify};

use crate::conn::ConnEvent;
use crate::Msg;

/// How a connection's bytes reach its socket.
#[derive(Clone)]
pub(crate) enum Writer {
    /// A writer loop fed by a channel (TLS, createClient links).
    Chan(mpsc::UnboundedSender<Bytes>),
    /// Plain TCP: written inline when nothing is queued (see `Wire`).
    Wire(Arc<Wire>),
}

impl Writer {
    /// Sends `bytes` with no reply bookkeeping (pub/sub and session connections).
    pub fn send(&self, bytes: Bytes) -> Result<(), ()> {
        match self {
            Writer::Chan(c) => c.send(bytes).map_err(drop),
            Writer::Wire(w) => w
                .hand([Some((bytes, 0)), None], |_| true)
                .map(drop)
                .ok_or(()),
        }
    }
}

pub(crate) struct Wire {
    sock: OwnedWriteHalf,
    inner: Mutex<Inner>,
    /// Wakes the writer task: something was queued, or the wire was closed or dropped.
    notify: Arc<Notify>,
}

struct Inner {
    /// Chunks for the writer task: (bytes, seq of the first request in them, already partly
    /// written). Only the front can be partly written: nothing is written inline while anything
    /// is queued.
    queue: VecDeque<(Bytes, u64, bool)>,
    /// The writer task is writing a chunk it took from the queue.
    writing: bool,
    /// The position of the next request handed over.
    next_seq: u64,
    /// Closed by the driver, or a write failed: nothing more is accepted.
    dead: bool,
}

impl Wire {
    /// Wraps a plain TCP write half and starts its writer task, which reports a failed write to
    /// the driver as the connection closing.
    pub fn start(
        sock: OwnedWriteHalf,
        tx: mpsc::UnboundedSender<Msg>,
        addr: NodeAddr,
        gen: u64,
    ) -> Arc<Wire> {
        let notify = Arc::new(Notify::new());
        let wire = Arc::new(Wire {
            sock,
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                writing: false,
                next_seq: 0,
                dead: false,
            }),
            notify: notify.clone(),
        });
        tokio::spawn(write_loop(Arc::downgrade(&wire), notify, tx, addr, gen));
        wire
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands over `chunks` (in order), each with the number of requests it carries (each
    /// expecting one reply). `announce` runs first, under the wire's lock, with the first
    /// request's position: when it answers false nothing is written. Returns that position, or
    /// None when the wire is closed or `announce` declined.
    pub fn hand(
        &self,
        chunks: [Option<(Bytes, u64)>; 2],
        announce: impl FnOnce(u64) -> bool,
    ) -> Option<u64> {
        let mut inner = self.lock();
        if inner.dead {
            return None;
        }
        let seq = inner.next_seq;
        if !announce(seq) {
            return None;
        }
        for (chunk, n) in chunks.into_iter().flatten() {
            // Each chunk is queued under its own first request's position: `close` must not
            // count the requests of a chunk already written as unsent because a later chunk
            // of the same hand-over is.
            let first = inner.next_seq;
            inner.next_seq += n;
            self.write_or_queue(&mut inner, chunk, first);
        }
        Some(seq)
    }

    fn write_or_queue(&self, inner: &mut Inner, chunk: Bytes, seq: u64) {
        if chunk.is_empty() {
            return;
        }
        if inner.queue.is_empty() && !inner.writing {
            match self.sock.try_write(&chunk) {
                Ok(all) if all == chunk.len() => return,
                Ok(part) => {
                    inner.queue.push_back((chunk.slice(part..), seq, part > 0));
                    self.notify.notify_one();
                    return;
                }
                // Full (or an error, which the writer task meets again and reports).
                Err(_) => {}
            }
        }
        inner.queue.push_back((chunk, seq, false));
        self.notify.notify_one();
    }

    /// Closes the wire (the connection failed or is dropped). Returns the position of the first
    /// request none of whose bytes were written: everything from there on never left.
    pub fn close(&self) -> u64 {
        let mut inner = self.lock();
        inner.dead = true;
        let unsent = inner
            .queue
            .iter()
            .find(|(_, _, started)| !started)
            .map_or(inner.next_seq, |(_, seq, _)| *seq);
        // A chunk that was partly written is counted written from its first request to the
        // next chunk's: find() skipped it.
        inner.queue.clear();
        self.notify.notify_one();
        unsent
    }

    /// Stops all writing (the connection ended) but keeps the queue, so the driver's `close`
    /// can still tell which requests never left.
    pub fn stop(&self) {
        self.lock().dead = true;
        self.notify.notify_one();
    }

    /// Closes the wire unless requests were handed over beyond `known` (the driver has not
    /// heard of them yet): then the connection is busy and stays. Returns whether it closed.
    pub fn close_if_known(&self, known: u64) -> bool {
        let mut inner = self.lock();
        if inner.next_seq != known {
            return false;
        }
        inner.dead = true;
        inner.queue.clear();
        self.notify.notify_one();
        true
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        // The writer task holds only a weak reference: wake it so it sees the wire is gone.
        self.notify.notify_one();
    }
}

/// Writes queued chunks in order until the wire is closed or dropped (dropping the write half
/// then half-closes the socket, so the server ends it).
async fn write_loop(
    wire: Weak<Wire>,
    notify: Arc<Notify>,
    tx: mpsc::UnboundedSender<Msg>,
    addr: NodeAddr,
    gen: u64,
) {
    loop {
        let (w, chunk) = loop {
            let Some(w) = wire.upgrade() else { return };
            let next = {
                let mut inner = w.lock();
                if inner.dead {
                    return;
                }
                let next = inner.queue.pop_front();
                inner.writing = next.is_some();
                next
            };
            match next {
                Some((chunk, _, _)) => break (w, chunk),
                None => {
                    drop(w);
                    notify.notified().await;
                }
            }
        };
        if let Err(e) = write_all(&w.sock, &chunk).await {
            w.lock().dead = true;
            // Reported: the read side of a half-open socket may never fail on its own, and the
            // requests on this connection would wait forever.
            let error = format!("write to {addr} failed: {e}");
            let closed = ConnEvent::Closed {
                addr,
                gen,
                kind: ErrorKind::ConnectionLost,
                error,
            };
            let _ = tx.send(Msg::Conn(closed));
            return;
        }
    }
}

async fn write_all(sock: &OwnedWriteHalf, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        sock.writable().await?;
        match sock.try_write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_chunk_partly_written_counts_as_sent_though_the_next_chunk_of_its_hand_over_is_not() {
        // A peer that never reads: the first chunk (three requests) is too large for the socket
        // buffers and is partly written; the second (one request) cannot start.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (sock, _peer) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        let (_rd, wr) = sock.unwrap().into_split();
        let (tx, _rx) = mpsc::unbounded_channel();
        let wire = Wire::start(wr, tx, NodeAddr::new("127.0.0.1", addr.port()), 1);
        let big = Bytes::from(vec![b'x'; 64 << 20]);
        let seq = wire.hand(
            [Some((big, 3)), Some((Bytes::from_static(b"y"), 1))],
            |_| true,
        );
        assert_eq!(seq, Some(0));
        // Requests 0-2 may have reached the server; only request 3 surely did not.
        assert_eq!(wire.close(), 3);
    }
}
