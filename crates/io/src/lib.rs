//! The tokio side of redis-clustr-native: it carries out the engine's decisions over real
//! connections. One dedicated thread runs a current-thread tokio runtime with a single driver
//! task that owns all client state (slot map, nodes, in-flight requests), so there are no locks on
//! the hot path; connection tasks only move bytes.
//!
//! The embedding layer talks to it through two things: `Client::submit` (a batch of encoded
//! commands in, one channel send per batch) and a `Sink` (completed replies and events out, with
//! one wake-up call when the sink goes from empty to non-empty).

mod backoffs;
mod conn;
mod direct;
mod driver;
mod incoming;
mod learn;
mod link;
mod nodes;
mod pubsub;
mod pubsub_frames;
mod refresh;
mod session;
mod sink;
mod slab;
mod timers;
mod tls;
mod wire;

use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use clustr_engine::request::{RetryPolicy, Target};
use clustr_engine::topology::NodeAddr;
use clustr_engine::{Error, ErrorKind};
use tokio::sync::mpsc;

pub use link::JsLinks;
pub use pubsub::{PsKind, PubSubOp};
pub use session::SessionOp;
pub use sink::{Completion, Event, Sink};
pub use tls::TlsConfig;

/// Everything the io layer needs to know about the cluster and the caller's options.
/// `Debug` is written by hand below: it must never print the password or the TLS key.
#[derive(Clone)]
pub struct Config {
    pub seeds: Vec<NodeAddr>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub connect_timeout_ms: u64,
    pub retry: RetryPolicy,
    /// Periodic refresh interval; a slow safety refresh runs when unset.
    pub slot_interval_ms: Option<u64>,
    /// redis-clustr's maxQueueLength / queueShift: commands waiting for the first slot map.
    pub max_queue_length: Option<usize>,
    pub queue_shift: bool,
    /// redis-clustr's `wait`: how long queued commands wait for a first slot map after discovery
    /// failed; None fails them as soon as a discovery round has failed on every seed.
    pub wait_ms: Option<u64>,
    /// One deadline per command over queueing, redirections and retries (TIMEOUT after it).
    pub command_timeout_ms: Option<u64>,
    /// TLS for every connection (seeds, discovered nodes, subscribers); None is plaintext. Also
    /// makes topology use the nodes' announced TLS ports.
    pub tls: Option<TlsConfig>,
    /// natMap: the address to dial for an address the cluster announces (NAT, Docker, k8s).
    /// Node identity stays the announced address (slot map, MOVED, node handles); only the
    /// connect target changes, so one map serves command and subscriber connections alike.
    pub nat_map: NatMap,
    /// The createClient hook: every node link is a JS link (see `link`) instead of a socket.
    pub js_links: bool,
}

/// What a natMap resolver answers for an announced address: where to dial, `None` to dial the
/// announced address itself, or an error message (the caller's function threw or answered
/// something that is not an address).
pub type NatFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Option<NodeAddr>, String>> + Send>>;

/// natMap given as a function: asked once per new connection, on the io thread's behalf.
pub type NatResolver = Arc<dyn Fn(&NodeAddr) -> NatFuture + Send + Sync>;

/// Announced address → address to dial: a fixed table, or a resolver consulted for addresses
/// the table lacks. Empty: dial what the cluster announces.
#[derive(Clone, Default)]
pub struct NatMap {
    pub table: std::collections::HashMap<NodeAddr, NodeAddr>,
    pub resolver: Option<NatResolver>,
}

impl NatMap {
    /// Where to dial `addr`: Ok(None) means the announced address itself.
    pub(crate) async fn dial(&self, addr: &NodeAddr) -> Result<Option<NodeAddr>, String> {
        if let Some(to) = self.table.get(addr) {
            return Ok(Some(to.clone()));
        }
        match &self.resolver {
            Some(f) => f(addr).await,
            None => Ok(None),
        }
    }
}

impl std::fmt::Debug for NatMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatMap")
            .field("table", &self.table)
            .field("resolver", &self.resolver.is_some())
            .finish()
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("seeds", &self.seeds)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("retry", &self.retry)
            .field("slot_interval_ms", &self.slot_interval_ms)
            .field("max_queue_length", &self.max_queue_length)
            .field("queue_shift", &self.queue_shift)
            .field("wait_ms", &self.wait_ms)
            .field("command_timeout_ms", &self.command_timeout_ms)
            .field("tls", &self.tls)
            .field("nat_map", &self.nat_map)
            .field("js_links", &self.js_links)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seeds: Vec::new(),
            username: None,
            password: None,
            connect_timeout_ms: 10_000,
            retry: RetryPolicy::default(),
            slot_interval_ms: None,
            max_queue_length: None,
            queue_shift: true,
            wait_ms: None,
            command_timeout_ms: None,
            tls: None,
            nat_map: NatMap::default(),
            js_links: false,
        }
    }
}

/// A command ready to route: where it goes, whether it only reads, and its RESP bytes.
#[derive(Clone, Debug)]
pub struct Command {
    /// The caller's id, echoed in its `Completion`. Never 0 (reserved).
    pub id: u32,
    /// Opaque to the io layer; echoed in the completion (reply conversion options).
    pub flags: u8,
    pub target: Target,
    pub readonly: bool,
    /// Sent to every master and combined this way (keys, dbsize, flushall, ...).
    pub fanout: Option<clustr_engine::fanout::Aggregate>,
    /// A MULTI … EXEC block: `bytes` holds all of it and gets several replies.
    pub tx: Option<TxBytes>,
    pub bytes: Bytes,
}

/// The wire form of a transaction: how many replies `bytes` (MULTI … EXEC) gets. After an ASK
/// one ASKING before MULTI is enough: the server keeps the asking flag for the whole block.
#[derive(Clone, Debug)]
pub struct TxBytes {
    pub replies: usize,
}

/// Counters a test or a dashboard can read.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub moved: u64,
    pub ask: u64,
    pub retries: u64,
    pub refreshes: u64,
    pub slot_patches: u64,
}

pub(crate) enum Msg {
    Submit(Vec<Command>),
    /// The caller's thread wrote commands itself (see `direct`): take them now.
    Wake,
    PubSub(Vec<PubSubOp>),
    Session(Vec<SessionOp>),
    Quit,
    Stats(std::sync::mpsc::Sender<Stats>),
    Conn(conn::ConnEvent),
    Timer(timers::TimerKind),
}

/// Handle to a running client. Dropping it asks the driver to quit.
pub struct Client {
    tx: mpsc::UnboundedSender<Msg>,
    sink: Arc<Sink>,
    thread: Option<JoinHandle<()>>,
    /// With the createClient hook: the JS links the embedder serves.
    links: Option<Arc<JsLinks>>,
    /// Where a lone command can be written from the caller's thread (see `direct`).
    direct: Arc<direct::Direct>,
}

impl Client {
    /// Starts the io thread and begins discovering the cluster from the seeds.
    pub fn start(config: Config, sink: Arc<Sink>) -> std::io::Result<Client> {
        let (tx, rx) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let driver_tx = tx.clone();
        let driver_sink = sink.clone();
        let links = config
            .js_links
            .then(|| Arc::new(JsLinks::new(sink.clone())));
        let driver_links = links.clone();
        let direct = direct::Direct::new(config.command_timeout_ms.is_some());
        let driver_direct = direct.clone();
        let thread = std::thread::Builder::new()
            .name("redis-clustr-io".into())
            .spawn(move || {
                runtime.block_on(driver::run(
                    config,
                    driver_tx,
                    rx,
                    driver_sink,
                    driver_links,
                    driver_direct,
                ));
            })?;
        Ok(Client {
            tx,
            sink,
            thread: Some(thread),
            links,
            direct,
        })
    }

    /// createClient hook: the JS client of link `id` is ready for commands.
    pub fn link_up(&self, id: u32) {
        if let Some(l) = &self.links {
            link::send(&self.tx, l.up(id));
        }
    }

    /// createClient hook: RESP-encoded replies for link `id`, in command order.
    pub fn link_replies(&self, id: u32, data: &[u8]) {
        if let Some(l) = &self.links {
            link::send(&self.tx, l.replies(id, data));
        }
    }

    /// createClient hook: the JS client of link `id` failed or could not be made; `kind` is
    /// what a command that cannot be sent because of it will report.
    pub fn link_down(&self, id: u32, kind: ErrorKind, error: String) {
        if let Some(l) = &self.links {
            link::send(&self.tx, l.down(id, kind, error));
        }
    }

    /// Hands a batch of commands to the driver. After quit they fail with CLOSED.
    pub fn submit(&self, commands: Vec<Command>) {
        if let Err(mpsc::error::SendError(Msg::Submit(commands))) =
            self.tx.send(Msg::Submit(commands))
        {
            let closed = commands
                .into_iter()
                .map(|c| Completion {
                    id: c.id,
                    flags: c.flags,
                    result: Err(closed_error()),
                })
                .collect();
            self.sink.push(closed, Vec::new());
        }
    }

    /// Writes one command from this thread when its route is simple and its node's connection
    /// is up (see `direct`); hands it back otherwise, for `submit`. Meant for a caller with
    /// nothing else in flight: it may overtake commands submitted earlier.
    pub fn direct(&self, cmd: Command) -> Result<(), Command> {
        direct::send(&self.direct, &self.tx, cmd)
    }

    /// Subscription changes; after quit they fail with CLOSED.
    pub fn pubsub(&self, ops: Vec<PubSubOp>) {
        if let Err(mpsc::error::SendError(Msg::PubSub(ops))) = self.tx.send(Msg::PubSub(ops)) {
            let closed = ops
                .into_iter()
                .map(|o| Completion {
                    id: o.id,
                    flags: o.flags,
                    result: Err(closed_error()),
                })
                .collect();
            self.sink.push(closed, Vec::new());
        }
    }

    /// WATCH-session commands and ends; after quit the commands fail with CLOSED.
    pub fn session(&self, ops: Vec<SessionOp>) {
        if let Err(mpsc::error::SendError(Msg::Session(ops))) = self.tx.send(Msg::Session(ops)) {
            let closed = ops
                .into_iter()
                .filter_map(|o| match o {
                    SessionOp::Cmd { id, flags, .. } => Some(Completion {
                        id,
                        flags,
                        result: Err(closed_error()),
                    }),
                    SessionOp::End { .. } => None,
                })
                .collect();
            self.sink.push(closed, Vec::new());
        }
    }

    /// Drains in-flight commands, closes every connection, then emits `Event::End`.
    pub fn quit(&self) {
        let _ = self.tx.send(Msg::Quit);
    }

    /// A snapshot of the driver's counters (None once it has stopped).
    pub fn stats(&self) -> Option<Stats> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.tx.send(Msg::Stats(tx)).ok()?;
        rx.recv().ok()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Quit);
        // Detach: joining here could block the JS thread while sockets drain.
        drop(self.thread.take());
    }
}

pub(crate) fn closed_error() -> Error {
    Error::new(
        ErrorKind::Closed,
        "the client was closed by quit(); no more commands are accepted",
    )
}
