//! The node table: one multiplexed, pipelined connection per node. Requests handed to a node's
//! connection enter its FIFO at their position in reply order (replies come back in order);
//! requests for a node that is still connecting are parked and written the moment it is ready.
//! Bytes written during one driver iteration are coalesced into a single chunk per node
//! (`flush`), so a burst of commands is one write. A plain TCP connection may also carry
//! requests the JS thread wrote itself (`wire`): they hold their FIFO position from the moment
//! they were written, and the driver fills it in when it hears of them (`written`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use clustr_engine::topology::NodeAddr;
use clustr_engine::Reply;
use rustc_hash::FxHashMap;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::conn::{self, Handshake};
use crate::timers::TimerKind;
use crate::wire::{Wire, Writer};
use crate::Msg;

const ASKING: &[u8] = b"*1\r\n$6\r\nASKING\r\n";
/// Commands at least this long are handed to the writer as their own chunk, not copied.
const DIRECT_MIN: usize = 64 * 1024;

/// A request as the node table knows it: (entry key, entry generation). The generation lets the
/// driver ignore a late reply for an entry that already finished and whose key was reused.
pub(crate) type Ticket = (usize, u64);

/// A request parked until its node is ready: (ticket, precede with ASKING).
pub(crate) type Parked = (Ticket, bool);

enum State {
    Connecting,
    Ready(Writer),
    Down,
}

/// A FIFO position: a request, an ASKING (its reply is dropped), or a request the JS thread
/// wrote that the driver has not heard of yet.
#[derive(Clone, Copy, PartialEq)]
enum Slot {
    Req(Ticket),
    Asking,
    Waiting,
}

struct Node {
    gen: u64,
    state: State,
    /// Bytes of the requests in `staged`, not yet handed to the connection.
    out: BytesMut,
    /// Requests (None: an ASKING) whose bytes are in `out`: they provably never left.
    staged: Vec<Option<Ticket>>,
    /// Requests handed to the connection, in the order their replies will arrive; the front is
    /// at position `head`.
    fifo: VecDeque<Slot>,
    head: u64,
    parked: Vec<Parked>,
    task: Option<JoinHandle<()>>,
    /// Consecutive failed or dropped connections; sets the reconnect backoff.
    failures: u32,
    /// No new connection attempt before this instant.
    retry_at: Option<Instant>,
    /// A Reconnect timer is pending for this node.
    wake_armed: bool,
    /// When the connection last showed progress: a reply matched, or requests written while
    /// none was outstanding. A connection with requests outstanding and no progress for long
    /// is stalled (see `stalled`).
    progress: Instant,
}

impl Node {
    /// Queues request `key`'s bytes on this connected node (`addr`): coalesced into `out` (the
    /// node goes on `dirty`, to be handed to the writer at the end of the driver's iteration),
    /// or handed over at once when large.
    fn stage(
        &mut self,
        dirty: &mut Vec<NodeAddr>,
        addr: &NodeAddr,
        key: Ticket,
        asking: bool,
        bytes: &Bytes,
        replies: usize,
    ) {
        if self.out.is_empty() && bytes.len() < DIRECT_MIN {
            dirty.push(addr.clone());
        }
        if asking {
            // ASKING and the command go back-to-back (in one chunk, or in two chunks handed
            // over together): nothing else can come between them on this connection.
            self.out.extend_from_slice(ASKING);
            self.staged.push(None);
        }
        let replies = replies.max(1);
        for _ in 0..replies {
            self.staged.push(Some(key));
        }
        if bytes.len() >= DIRECT_MIN {
            // A large command goes to the writer as it is, sharing its bytes: copying a 1 MiB
            // value into the coalescing buffer cost a copy into fresh pages per SET.
            self.hand_over(Some((bytes, replies as u64)));
        } else {
            self.out.extend_from_slice(bytes);
        }
    }

    /// Hands what `out` has coalesced, then `direct` (a large command's own bytes and how many
    /// replies it expects, the last of `staged`), to the writer, in that order so the wire keeps
    /// the FIFO's order; every FIFO entry so far is then on its way to the server.
    fn hand_over(&mut self, direct: Option<(&Bytes, u64)>) {
        let State::Ready(w) = &self.state else {
            return;
        };
        if self.out.is_empty() && direct.is_none() {
            return;
        }
        let n = self.staged.len() as u64;
        let tail = direct.map_or(0, |(_, r)| r);
        let chunks = [
            (!self.out.is_empty()).then(|| (self.out.split().freeze(), n - tail)),
            direct.map(|(b, r)| (b.clone(), r)),
        ];
        let seq = match w {
            Writer::Wire(w) => match w.hand(chunks, |_| true) {
                Some(seq) => seq,
                // The connection just ended (its event is on the way): the staged requests stay
                // unwritten, for `failed` to send again.
                None => return,
            },
            Writer::Chan(c) => {
                for (chunk, _) in chunks.into_iter().flatten() {
                    let _ = c.send(chunk);
                }
                self.head + self.fifo.len() as u64
            }
        };
        if self.fifo.is_empty() {
            self.progress = Instant::now();
        }
        // Positions before `seq` not in the FIFO yet belong to JS-thread writes the driver has
        // not heard of: keep their places.
        let at = (seq - self.head) as usize;
        while self.fifo.len() < at {
            self.fifo.push_back(Slot::Waiting);
        }
        self.fifo.extend(
            self.staged
                .drain(..)
                .map(|t| t.map_or(Slot::Asking, Slot::Req)),
        );
    }

    /// Stops the connection's writing (it failed or is dropped). Returns the position from
    /// which no request's bytes left; with a channel writer everything handed over counts as
    /// sent.
    fn close_writer(&mut self) -> u64 {
        match std::mem::replace(&mut self.state, State::Down) {
            State::Ready(Writer::Wire(w)) => w.close(),
            _ => u64::MAX,
        }
    }

    fn new() -> Self {
        Node {
            gen: 0,
            state: State::Down,
            out: BytesMut::new(),
            staged: Vec::new(),
            fifo: VecDeque::new(),
            head: 0,
            parked: Vec::new(),
            task: None,
            failures: 0,
            retry_at: None,
            wake_armed: false,
            progress: Instant::now(),
        }
    }
}

/// What the driver must do about requests that were on a connection that failed.
pub(crate) struct Failed {
    /// Written to the socket: the server may have received them.
    pub written: Vec<Ticket>,
    /// Never written: safe to send again.
    pub unwritten: Vec<Ticket>,
}

pub(crate) struct Nodes {
    /// Looked up for every command sent: Fx, not SipHash (the keys are the cluster's own
    /// addresses, not attacker-chosen input that could be made to collide).
    nodes: FxHashMap<NodeAddr, Node>,
    dirty: Vec<NodeAddr>,
    hs: Arc<Handshake>,
    tx: mpsc::UnboundedSender<Msg>,
    next_gen: u64,
}

impl Nodes {
    pub fn new(hs: Handshake, tx: mpsc::UnboundedSender<Msg>) -> Self {
        Nodes {
            nodes: FxHashMap::default(),
            dirty: Vec::new(),
            hs: Arc::new(hs),
            tx,
            next_gen: 1,
        }
    }

    /// What a new connection sends first (shared with the subscriber connections).
    pub fn handshake(&self) -> Arc<Handshake> {
        self.hs.clone()
    }

    /// Starts connecting to `addr` unless a connection exists or is being made.
    pub fn ensure(&mut self, addr: &NodeAddr) {
        let gen = self.next_gen;
        // Looked up before inserting: `entry` would clone the address for every command sent.
        if !self.nodes.contains_key(addr) {
            self.nodes.insert(addr.clone(), Node::new());
        }
        let Some(node) = self.nodes.get_mut(addr) else {
            return;
        };
        if let State::Down = node.state {
            if let Some(at) = node.retry_at.filter(|&at| at > Instant::now()) {
                // Backing off: connect when the timer says so (requests wait parked).
                if !node.wake_armed {
                    node.wake_armed = true;
                    let (tx, addr) = (self.tx.clone(), addr.clone());
                    tokio::spawn(async move {
                        tokio::time::sleep_until(at.into()).await;
                        let _ = tx.send(Msg::Timer(TimerKind::Reconnect(addr)));
                    });
                }
                return;
            }
            self.next_gen += 1;
            node.gen = gen;
            node.state = State::Connecting;
            node.task = Some(conn::spawn(
                addr.clone(),
                gen,
                self.hs.clone(),
                self.tx.clone(),
            ));
        }
    }

    /// Writes (or parks) request `key` for `addr`.
    /// `replies` is how many replies `bytes` gets (more than one for a MULTI … EXEC block).
    pub fn send(
        &mut self,
        addr: &NodeAddr,
        key: Ticket,
        asking: bool,
        bytes: &Bytes,
        replies: usize,
    ) {
        // A connected node (nearly every command) is found with one lookup; the rest go
        // through `ensure` first, which may start connecting.
        if let Some(node) = self.nodes.get_mut(addr) {
            if matches!(node.state, State::Ready(_)) {
                node.stage(&mut self.dirty, addr, key, asking, bytes, replies);
                return;
            }
        }
        self.ensure(addr);
        let node = self.nodes.get_mut(addr).expect("ensured above");
        if !matches!(node.state, State::Ready(_)) {
            node.parked.push((key, asking));
            return;
        }
        node.stage(&mut self.dirty, addr, key, asking, bytes, replies);
    }

    /// Hands each node's coalesced bytes to its writer.
    pub fn flush(&mut self) {
        for addr in self.dirty.drain(..) {
            if let Some(node) = self.nodes.get_mut(&addr) {
                node.hand_over(None);
            }
        }
    }

    /// The backoff of `addr` ran out: connect now if requests are waiting for it.
    pub fn reconnect_due(&mut self, addr: &NodeAddr) {
        let waiting = match self.nodes.get_mut(addr) {
            Some(n) => {
                n.wake_armed = false;
                !n.parked.is_empty()
            }
            None => false,
        };
        if waiting {
            self.ensure(addr);
        }
    }

    /// A connection finished its handshake; returns the requests parked for it.
    pub fn connected(&mut self, addr: &NodeAddr, gen: u64, writer: Writer) -> Option<Vec<Parked>> {
        let node = self.nodes.get_mut(addr).filter(|n| n.gen == gen)?;
        node.state = State::Ready(writer);
        node.head = 0;
        node.failures = 0;
        node.retry_at = None;
        Some(std::mem::take(&mut node.parked))
    }

    /// A connection failed or closed; returns what was riding on it. `jitter` (any number)
    /// spreads the reconnects of clients that lost the same node at the same moment.
    pub fn failed(&mut self, addr: &NodeAddr, gen: u64, jitter: u32) -> Option<Failed> {
        let node = self.nodes.get_mut(addr).filter(|n| n.gen == gen)?;
        if let State::Down = node.state {
            // Already failed (say by the driver on a protocol error); later events of the same
            // connection change nothing.
            return None;
        }
        let unsent = node.close_writer();
        node.failures += 1;
        // The first loss reconnects at once (an idle timeout, a restart); after that 50 ms
        // doubling to 2 s, plus up to a quarter more at random.
        let base = match node.failures {
            1 => 0,
            n => (50u64 << (n - 2).min(6)).min(2_000),
        };
        let extra = if base > 0 {
            jitter as u64 % (base / 4 + 1)
        } else {
            0
        };
        node.retry_at = Some(Instant::now() + Duration::from_millis(base + extra));
        node.out.clear();
        if let Some(t) = node.task.take() {
            t.abort();
        }
        let (mut written, mut unwritten) = (Vec::new(), Vec::new());
        for (seq, slot) in (node.head..).zip(node.fifo.drain(..)) {
            if let Slot::Req(t) = slot {
                if seq < unsent {
                    &mut written
                } else {
                    &mut unwritten
                }
                .push(t);
            }
        }
        unwritten.extend(node.staged.drain(..).flatten());
        unwritten.extend(node.parked.drain(..).map(|(k, _)| k));
        // A transaction sits in the FIFO once per reply it expects: report it once.
        written.dedup();
        unwritten.dedup();
        Some(Failed { written, unwritten })
    }

    /// Matches replies to the requests at the head of the node's FIFO. Err means the server sent
    /// a reply nobody asked for: the connection can no longer be trusted.
    #[allow(clippy::type_complexity)]
    pub fn replies(
        &mut self,
        addr: &NodeAddr,
        gen: u64,
        replies: Vec<Reply>,
    ) -> Result<Vec<(Option<Ticket>, Reply)>, ()> {
        let Some(node) = self.nodes.get_mut(addr).filter(|n| n.gen == gen) else {
            return Ok(Vec::new());
        };
        // Checked before anything is matched: on a violation every request still on this
        // connection is failed as one, none is half-delivered. A position the driver has not
        // heard of cannot have a reply yet (it is told before the bytes are written).
        let answered = node.fifo.iter().take(replies.len());
        if replies.len() > node.fifo.len() || answered.into_iter().any(|s| *s == Slot::Waiting) {
            return Err(());
        }
        node.head += replies.len() as u64;
        if !replies.is_empty() {
            node.progress = Instant::now();
        }
        Ok(replies
            .into_iter()
            .map(|r| match node.fifo.pop_front() {
                Some(Slot::Req(t)) => (Some(t), r),
                _ => (None, r),
            })
            .collect())
    }

    /// The JS thread wrote request `ticket` on connection `gen` of `addr` at position `seq`.
    /// False when that connection is gone: the request may have reached the server.
    pub fn written(&mut self, addr: &NodeAddr, gen: u64, seq: u64, ticket: Ticket) -> bool {
        let Some(node) = self.nodes.get_mut(addr).filter(|n| n.gen == gen) else {
            return false;
        };
        if !matches!(node.state, State::Ready(_)) || seq < node.head {
            return false;
        }
        if node.fifo.is_empty() {
            node.progress = Instant::now();
        }
        let at = (seq - node.head) as usize;
        while node.fifo.len() <= at {
            node.fifo.push_back(Slot::Waiting);
        }
        node.fifo[at] = Slot::Req(ticket);
        true
    }

    /// Plain TCP connections the JS thread may write to: (address, connection generation,
    /// wire).
    pub fn wires(&self) -> impl Iterator<Item = (&NodeAddr, u64, &Arc<Wire>)> {
        self.nodes.iter().filter_map(|(a, n)| match &n.state {
            State::Ready(Writer::Wire(w)) => Some((a, n.gen, w)),
            _ => None,
        })
    }

    /// Ready connections that have had requests outstanding and delivered no reply for `limit`:
    /// (address, connection generation). With commandTimeout the driver closes them: everything
    /// at their head has already timed out, and a peer that trickles a reply (or a blocked
    /// command) would otherwise hold the socket and every request behind it forever.
    pub fn stalled(&self, limit: Duration) -> Vec<(NodeAddr, u64)> {
        let now = Instant::now();
        self.nodes
            .iter()
            .filter(|(_, n)| matches!(n.state, State::Ready(_)) && !n.fifo.is_empty())
            .filter(|(_, n)| now.duration_since(n.progress) >= limit)
            .map(|(a, n)| (a.clone(), n.gen))
            .collect()
    }

    /// Whether the last connection to `addr` failed and none has succeeded since.
    pub fn is_failing(&self, addr: &NodeAddr) -> bool {
        self.nodes
            .get(addr)
            .is_some_and(|n| n.failures > 0 && !matches!(n.state, State::Ready(_)))
    }

    /// Whether a connected node has requests outstanding and has made no progress for `limit`
    /// (no reply matched, nothing written while it was idle): a frozen host (SIGSTOP, a
    /// partition) keeps its connection but stops answering. An idle node is never stalled.
    pub fn is_stalled(&self, addr: &NodeAddr, now: Instant, limit: Duration) -> bool {
        self.nodes.get(addr).is_some_and(|n| {
            matches!(n.state, State::Ready(_))
                && !n.fifo.is_empty()
                && now.duration_since(n.progress) >= limit
        })
    }

    pub fn is_ready(&self, addr: &NodeAddr) -> bool {
        matches!(
            self.nodes.get(addr).map(|n| &n.state),
            Some(State::Ready(_))
        )
    }

    /// The cluster changed: takes the requests parked for nodes that are not connected (waiting
    /// out a reconnect backoff, or still connecting), in the order each node parked them, so the
    /// new map can route them again: a request for a dead master's slot would otherwise wait for
    /// that master's next reconnect (up to 2.5 s) before the promoted replica is tried. Requests
    /// after an ASK stay: their node came from the redirection, not from the map.
    pub fn unpark_unconnected(&mut self) -> Vec<Ticket> {
        let mut out = Vec::new();
        for n in self.nodes.values_mut() {
            if matches!(n.state, State::Ready(_)) || n.parked.is_empty() {
                continue;
            }
            n.parked.retain(|&(t, asking)| {
                if !asking {
                    out.push(t);
                }
                asking
            });
        }
        out
    }

    /// Closes connections to nodes outside `keep` that carry no requests.
    pub fn retain_busy_or(&mut self, keep: &[NodeAddr]) {
        self.nodes.retain(|addr, n| {
            let mut busy = !n.fifo.is_empty() || !n.parked.is_empty() || !n.staged.is_empty();
            if !busy && !keep.contains(addr) {
                // The JS thread may have written to it a moment ago: then it is busy too.
                if let State::Ready(Writer::Wire(w)) = &n.state {
                    busy = !w.close_if_known(n.head);
                }
            }
            let kept = busy || keep.contains(addr);
            if !kept {
                if let Some(t) = n.task.take() {
                    t.abort();
                }
            }
            kept
        });
    }

    /// Drops every connection (quit).
    pub fn close_all(&mut self) {
        for (_, mut n) in self.nodes.drain() {
            n.close_writer();
            if let Some(t) = n.task.take() {
                t.abort();
            }
        }
    }
}
