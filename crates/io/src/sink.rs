//! Where finished work waits for the embedding thread: completed commands and client events.
//! The wake callback fires only when the sink goes from empty to non-empty, so a burst of replies
//! costs one wake-up and one drain, not one per reply.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use clustr_engine::topology::{NodeAddr, SlotMap, TopologyChange};
use clustr_engine::{Error, Reply};

/// A finished command: the server's reply (errors included) or a client-side error.
#[derive(Debug)]
pub struct Completion {
    pub id: u32,
    pub flags: u8,
    pub result: Result<Reply, Error>,
}

/// Client lifecycle events, in the order they happened.
#[derive(Debug)]
pub enum Event {
    /// The first connection to any node is ready.
    Connect,
    /// The first slot map was adopted.
    Ready,
    /// Every node of the map has a ready connection.
    FullReady,
    NodeReady(NodeAddr),
    /// A node's connection failed or dropped.
    NodeDown(NodeAddr, Error),
    /// The slot map changed (`change` is relative to the previous map; all added at first).
    Topology(Arc<SlotMap>, TopologyChange),
    Error(Error),
    /// quit() finished: every connection is closed.
    End,
    /// A pub/sub message: kind is "message", "pmessage" (with its pattern) or "smessage".
    Message {
        kind: &'static str,
        pattern: Option<Bytes>,
        channel: Bytes,
        payload: Bytes,
        buffers: bool,
    },
    /// The server confirmed a (un)subscription: kind is the command's name, count the number of
    /// subscriptions the connection now holds.
    SubscriptionCount {
        kind: &'static str,
        name: Bytes,
        count: i64,
        buffers: bool,
    },
    /// Subscriptions restored on a new connection after a loss; messages published between
    /// `from_ms` and `to_ms` (wall clock) may have been missed.
    Resubscribed {
        channels: Vec<Bytes>,
        patterns: Vec<Bytes>,
        shard: Vec<Bytes>,
        from_ms: u64,
        to_ms: u64,
        node: NodeAddr,
    },
    /// createClient hook: make (or reuse) the JS client for `addr` and report it ready with
    /// `Client::link_up(id)` after sending READONLY (when `readonly`) and PING.
    LinkOpen {
        id: u32,
        addr: NodeAddr,
        readonly: bool,
        subscriber: bool,
        /// A WATCH session's link: it needs a client of its own (WATCH is connection state).
        dedicated: bool,
    },
    /// createClient hook: send these commands (argv lists, name first) on link `id`, in order.
    LinkWrite {
        id: u32,
        commands: Vec<Vec<Bytes>>,
    },
    /// createClient hook: link `id` is finished; its late replies are not wanted.
    LinkClose {
        id: u32,
    },
}

type Wake = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct Pending {
    completions: Vec<Completion>,
    events: Vec<Event>,
}

/// The hand-off point between the io thread and the embedding thread.
pub struct Sink {
    pending: Mutex<Pending>,
    /// None once released: the embedder no longer wants (or can take) wake-ups.
    wake: Mutex<Option<Wake>>,
    /// Whether anything is pending, readable without the lock (see `has_work`).
    work: AtomicBool,
}

impl Sink {
    pub fn new(wake: Wake) -> Self {
        Sink {
            pending: Mutex::new(Pending::default()),
            wake: Mutex::new(Some(wake)),
            work: AtomicBool::new(false),
        }
    }

    /// Adds finished work; wakes the consumer if it had nothing pending.
    pub fn push(&self, mut completions: Vec<Completion>, mut events: Vec<Event>) {
        if completions.is_empty() && events.is_empty() {
            return;
        }
        let was_empty = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let was_empty = p.completions.is_empty() && p.events.is_empty();
            if p.completions.is_empty() {
                std::mem::swap(&mut p.completions, &mut completions);
            } else {
                p.completions.append(&mut completions);
            }
            p.events.append(&mut events);
            self.work.store(true, Ordering::Release);
            was_empty
        };
        if was_empty {
            if let Some(wake) = self.wake.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
                wake();
            }
        }
    }

    /// Whether `take` would return anything, without taking the lock: a consumer that is awake
    /// anyway may take it before the wake-up arrives. A hint: `take` is still the truth.
    pub fn has_work(&self) -> bool {
        self.work.load(Ordering::Acquire)
    }

    /// Drops the wake callback (after `End`), so it stops keeping the embedder alive.
    pub fn release_wake(&self) {
        let wake = self.wake.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(wake);
    }

    /// Takes everything pending.
    pub fn take(&self) -> (Vec<Completion>, Vec<Event>) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        self.work.store(false, Ordering::Release);
        (
            std::mem::take(&mut p.completions),
            std::mem::take(&mut p.events),
        )
    }
}
