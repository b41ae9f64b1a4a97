//! The driver: a single task that owns the client's state and carries out the engine's decisions.
//! Each loop iteration handles every message already queued (submits, replies, connection events,
//! timers), then flushes one coalesced write per node and one batch of completions to the sink.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clustr_engine::fanout::{Aggregate, Gather};
use clustr_engine::request::{Action, Request, Target};
use clustr_engine::topology::{NodeAddr, SlotMap};
use clustr_engine::{Error, ErrorKind, Reply};
use tokio::sync::mpsc;

use crate::backoffs::Backoffs;
use crate::conn::Handshake;
use crate::nodes::{Nodes, Ticket};
use crate::pubsub::PubSub;
use crate::refresh::{Query, Refresh};
use crate::session::Sessions;
use crate::slab::Pages;
use crate::timers::TimerKind;
use crate::{closed_error, Command, Completion, Config, Event, Msg, Sink, Stats, TxBytes};

pub(crate) enum Kind {
    Client(u32, u8),
    /// A caller's command for every master, not yet sent (no map yet).
    Fanout(u32, u8, Aggregate),
    /// A fanned-out command whose parts are in flight.
    Gathering(u32, u8, Box<Gather>),
    /// One master's part of a fanned-out command: (parent, index among the masters).
    Part(Ticket, usize),
    Topology(Query),
    /// Learning commands the built-in table lacks (see `learn`).
    Learn(crate::learn::Learn),
}

pub(crate) struct Entry {
    pub kind: Kind,
    pub gen: u64,
    pub req: Request,
    pub bytes: Bytes,
    /// Boxed: a transaction is rare, and one Entry is kept per command in flight.
    pub tx: Option<Box<Tx>>,
}

/// A MULTI … EXEC block in flight: its replies arrive one per command, EXEC's last.
pub(crate) struct Tx {
    pub wire: TxBytes,
    /// Replies still expected for the copy on the wire.
    pub left: usize,
    /// The first error a queued command got (MOVED, ASK, TRYAGAIN, …): when EXEC then answers
    /// EXECABORT, nothing ran, and that error decides where the whole block goes next.
    pub first_error: Option<Reply>,
}

pub(crate) struct Driver {
    pub cfg: Config,
    pub tx: mpsc::UnboundedSender<Msg>,
    sink: Arc<Sink>,
    pub map: Option<Arc<SlotMap>>,
    pub nodes: Nodes,
    pub(crate) entries: Pages<Entry>,
    free: Vec<usize>,
    next_gen: u64,
    /// Caller commands not yet completed (quit ends when it reaches 0).
    pub(crate) clients: usize,
    /// Shared with the caller's thread (see `direct`).
    pub(crate) direct: Arc<crate::direct::Direct>,
    /// Commands waiting for a first slot map (tickets: a timed-out one is skipped).
    awaiting_map: VecDeque<Ticket>,
    /// (deadline in ms since start, ticket) of every client command, in submit order, when
    /// commandTimeout is set: one deadline covers queueing, redirections and retries.
    pub(crate) deadlines: VecDeque<(u64, Ticket)>,
    /// Requests waiting out a retry's backoff (see `timers`).
    pub(crate) backoffs: Backoffs,
    pub refresh: Refresh,
    pub(crate) ps: PubSub,
    pub(crate) sessions: Sessions,
    done: Vec<Completion>,
    pub events: Vec<Event>,
    started: Instant,
    /// `now_ms` as read once for the message being handled: reading the clock for every reply
    /// was about 1 % of the io thread's time. Cleared before each message.
    clock: std::cell::Cell<Option<u64>>,
    rng: u64,
    pub stats: Stats,
    closing: bool,
    pub(crate) stopped: bool,
    pub(crate) connected_once: bool,
    full_ready: bool,
    pub(crate) wait_timer_set: bool,
}

pub(crate) async fn run(
    cfg: Config,
    tx: mpsc::UnboundedSender<Msg>,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    sink: Arc<Sink>,
    js: Option<Arc<crate::link::JsLinks>>,
    direct: Arc<crate::direct::Direct>,
) {
    let hs = Handshake {
        js,
        username: cfg.username.clone(),
        password: cfg.password.clone(),
        readonly: cfg.retry.replicas != clustr_engine::route::ReplicaPolicy::Never,
        connect_timeout: Duration::from_millis(cfg.connect_timeout_ms),
        tls: cfg.tls.as_ref().map(crate::tls::Tls::new),
        nat: cfg.nat_map.clone(),
    };
    let periodic = Duration::from_millis(cfg.slot_interval_ms.unwrap_or(10_000).max(100));
    let mut d = Driver {
        nodes: Nodes::new(hs, tx.clone()),
        cfg,
        tx,
        sink,
        map: None,
        entries: Pages::default(),
        free: Vec::new(),
        next_gen: 0,
        clients: 0,
        direct,
        awaiting_map: VecDeque::new(),
        deadlines: VecDeque::new(),
        backoffs: Backoffs::default(),
        refresh: Refresh::default(),
        ps: PubSub::default(),
        sessions: Sessions::default(),
        done: Vec::new(),
        events: Vec::new(),
        started: Instant::now(),
        clock: std::cell::Cell::new(None),
        rng: seed(),
        stats: Stats::default(),
        closing: false,
        stopped: false,
        connected_once: false,
        full_ready: false,
        wait_timer_set: false,
    };
    d.start_timers(periodic);
    d.request_refresh();
    d.flush();
    while let Some(msg) = rx.recv().await {
        d.handle(msg);
        // Take everything already queued before writing: this is what coalesces a burst.
        for _ in 0..4096 {
            match rx.try_recv() {
                Ok(m) => d.handle(m),
                Err(_) => break,
            }
        }
        d.flush();
        if d.stopped {
            break;
        }
    }
    // Anything submitted after the end was decided still gets an answer.
    rx.close();
    d.clock.set(None);
    d.take_written();
    while let Ok(msg) = rx.try_recv() {
        match msg {
            Msg::Submit(cmds) => d.submit(cmds),
            Msg::Session(ops) => d.session_ops(ops),
            _ => {}
        }
    }
    d.flush();
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    t | 1
}

impl Driver {
    fn handle(&mut self, msg: Msg) {
        self.clock.set(None);
        // Commands the caller's thread wrote come first: a reply in `msg` may be theirs.
        self.take_written();
        match msg {
            Msg::Submit(cmds) => self.submit(cmds),
            Msg::Wake => {}
            Msg::PubSub(ops) => self.pubsub(ops),
            Msg::Session(ops) => self.session_ops(ops),
            Msg::Quit => self.quit(),
            Msg::Stats(reply) => {
                let _ = reply.send(self.stats);
            }
            Msg::Conn(ev) => self.conn_event(ev),
            Msg::Timer(t) => self.on_timer(t),
        }
    }

    fn flush(&mut self) {
        self.nodes.flush();
        self.publish_routes();
        let done = std::mem::take(&mut self.done);
        let events = std::mem::take(&mut self.events);
        self.sink.push(done, events);
    }

    pub fn now_ms(&self) -> u64 {
        if let Some(t) = self.clock.get() {
            return t;
        }
        let t = self.started.elapsed().as_millis() as u64;
        self.clock.set(Some(t));
        t
    }

    pub fn rand(&mut self) -> u32 {
        // xorshift64: routing only needs spread, not cryptographic quality.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 32) as u32
    }

    pub(crate) fn submit(&mut self, cmds: Vec<Command>) {
        let now = self.now_ms();
        for c in cmds {
            if self.closing {
                self.done.push(Completion {
                    id: c.id,
                    flags: c.flags,
                    result: Err(closed_error()),
                });
                continue;
            }
            self.clients += 1;
            let req = Request::new(c.target, c.readonly, now);
            let kind = match c.fanout {
                Some(agg) => Kind::Fanout(c.id, c.flags, agg),
                None => Kind::Client(c.id, c.flags),
            };
            let key = self.insert(kind, req, c.bytes);
            if let Some(wire) = c.tx {
                if let Some(e) = self.entries[key].as_mut() {
                    e.tx = Some(Box::new(Tx {
                        wire,
                        left: 0,
                        first_error: None,
                    }));
                }
            }
            if let Some(ms) = self.cfg.command_timeout_ms {
                self.deadlines
                    .push_back((now + ms, (key, self.gen_of(key))));
            }
            self.dispatch(key);
        }
    }

    pub fn insert(&mut self, kind: Kind, req: Request, bytes: Bytes) -> usize {
        self.next_gen += 1;
        let entry = Entry {
            kind,
            gen: self.next_gen,
            req,
            bytes,
            tx: None,
        };
        match self.free.pop() {
            Some(k) => {
                self.entries[k] = Some(entry);
                k
            }
            None => {
                self.entries.push(entry);
                self.entries.len() - 1
            }
        }
    }

    pub fn gen_of(&self, key: usize) -> u64 {
        self.entries
            .get(key)
            .and_then(|e| e.as_ref())
            .map_or(0, |e| e.gen)
    }

    /// The entry a ticket refers to, if it is still that request.
    pub fn entry(&self, (key, gen): Ticket) -> Option<&Entry> {
        self.entries.get(key)?.as_ref().filter(|e| e.gen == gen)
    }

    /// Like `entry`, for changing it.
    pub fn entry_mut(&mut self, (key, gen): Ticket) -> Option<&mut Entry> {
        self.entries.get_mut(key)?.as_mut().filter(|e| e.gen == gen)
    }

    fn take(&mut self, key: usize) -> Option<Entry> {
        let e = self.entries.get_mut(key)?.take()?;
        self.free.push(key);
        Some(e)
    }

    /// Routes entry `key` and writes or parks it.
    pub fn dispatch(&mut self, key: usize) {
        let rand = self.rand();
        let Some(e) = self.entries[key].as_mut() else {
            return;
        };
        if let Kind::Fanout(id, flags, agg) = e.kind {
            return match self.map.clone() {
                Some(map) => {
                    let masters: Vec<NodeAddr> = map
                        .shards()
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| map.slot_count(*i) > 0)
                        .map(|(_, s)| s.master.clone())
                        .collect();
                    e.kind = Kind::Gathering(id, flags, Box::new(Gather::new(agg, masters.len())));
                    let (parent, readonly, bytes) = ((key, e.gen), e.req.readonly, e.bytes.clone());
                    let now = self.now_ms();
                    for (i, m) in masters.into_iter().enumerate() {
                        let req = Request::new(Target::Node(m), readonly, now);
                        let part = self.insert(Kind::Part(parent, i), req, bytes.clone());
                        self.dispatch(part);
                    }
                }
                None => self.await_map(key),
            };
        }
        // The map's Arc is cloned (not the address) so the node can stay borrowed from it while
        // the entry is sent.
        let map = self.map.clone();
        match e.req.next_action(map.as_deref(), &self.cfg.retry, rand) {
            Action::Send { node, asking } => self.send_entry(&node, key, asking),
            Action::AwaitMap => self.await_map(key),
        }
    }

    /// Writes (or parks) entry `key` to `node`; a transaction goes as one block.
    pub(crate) fn send_entry(&mut self, node: &NodeAddr, key: usize, asking: bool) {
        let Some(e) = self.entries[key].as_mut() else {
            return;
        };
        let replies = match e.tx.as_mut() {
            None => 1,
            Some(tx) => {
                tx.left = tx.wire.replies;
                tx.first_error = None;
                tx.wire.replies
            }
        };
        self.nodes
            .send(node, (key, e.gen), asking, &e.bytes, replies);
    }

    fn await_map(&mut self, key: usize) {
        if self.cfg.wait_ms.is_none() {
            if let Some(err) = self.refresh.last_failure() {
                // Discovery already failed on every seed: say so now instead of after the next
                // (backed-off) round; that round still runs and may bring the map.
                self.fail(key, err);
                self.request_refresh();
                return;
            }
        }
        if let Some(max) = self.cfg.max_queue_length {
            self.awaiting_map.retain(|&t| {
                self.entries
                    .get(t.0)
                    .and_then(|e| e.as_ref())
                    .is_some_and(|e| e.gen == t.1)
            });
            if self.awaiting_map.len() >= max {
                let victim = if self.cfg.queue_shift {
                    self.awaiting_map.pop_front().map(|t| t.0)
                } else {
                    Some(key)
                };
                if let Some(v) = victim {
                    self.fail(
                        v,
                        Error::new(
                            ErrorKind::QueueFull,
                            format!(
                                "{max} commands are already waiting for the cluster's slot map (maxQueueLength)"
                            ),
                        ),
                    );
                }
                if !self.cfg.queue_shift {
                    return;
                }
            }
        }
        let ticket = (key, self.gen_of(key));
        self.awaiting_map.push_back(ticket);
    }

    /// Completes entry `key` with `result` (client entries only reach the caller).
    pub fn complete(&mut self, key: usize, result: Result<Reply, Error>) {
        let Some(e) = self.take(key) else { return };
        match e.kind {
            Kind::Client(id, flags)
            | Kind::Fanout(id, flags, _)
            | Kind::Gathering(id, flags, _) => {
                self.done.push(Completion { id, flags, result });
                self.clients -= 1;
                if self.closing && self.clients == 0 {
                    self.shutdown();
                }
            }
            Kind::Part(parent, index) => {
                let Some(Some(p)) = self.entries.get_mut(parent.0) else {
                    return;
                };
                let Kind::Gathering(_, _, gather) = &mut p.kind else {
                    return;
                };
                if p.gen != parent.1 {
                    return;
                }
                // A client-side failure of one master (say, its connection dropped after a
                // FLUSHALL was sent) is the answer: the whole command did not surely succeed.
                let merged = match result {
                    Ok(reply) => gather.add(index, reply).map(Ok),
                    Err(err) => Some(Err(err)),
                };
                if let Some(r) = merged {
                    self.complete(parent.0, r);
                }
            }
            Kind::Topology(_) | Kind::Learn(_) => {}
        }
    }

    pub fn done_push(&mut self, c: Completion) {
        self.done.push(c);
    }

    pub fn fail(&mut self, key: usize, err: Error) {
        self.complete(key, Err(err));
    }

    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// A caller's command that is not an entry (a WATCH session's) started.
    pub(crate) fn client_started(&mut self) {
        self.clients += 1;
    }

    /// A caller's command that is not an entry was answered: quit may be waiting for it.
    pub(crate) fn client_done(&mut self) {
        self.clients -= 1;
        if self.closing && self.clients == 0 {
            self.shutdown();
        }
    }

    /// Fails every command waiting for a first slot map.
    pub fn fail_awaiting(&mut self, err: &Error) {
        self.sessions_fail_awaiting(err);
        while let Some(t) = self.awaiting_map.pop_front() {
            if self.entry(t).is_some() {
                self.fail(t.0, err.clone());
            }
        }
    }

    /// A new map was adopted: send what was waiting for one.
    pub fn release_awaiting(&mut self) {
        self.sessions_release();
        let waiting: Vec<Ticket> = self.awaiting_map.drain(..).collect();
        for t in waiting {
            if self.entry(t).is_some() {
                self.dispatch(t.0);
            }
        }
    }

    /// A discovery round failed on every candidate while no map exists.
    pub fn discovery_failed(&mut self, err: Error) {
        self.events.push(Event::Error(err.clone()));
        match self.cfg.wait_ms {
            None => self.fail_awaiting(&err),
            Some(ms) if !self.wait_timer_set => {
                self.wait_timer_set = true;
                self.timer(Duration::from_millis(ms), TimerKind::WaitExpired);
            }
            Some(_) => {}
        }
        if self.closing && self.clients == 0 {
            self.shutdown();
        }
    }

    pub fn check_full_ready(&mut self) {
        if self.full_ready {
            return;
        }
        let Some(map) = self.map.as_ref() else { return };
        if map.nodes().iter().all(|n| self.nodes.is_ready(n)) {
            self.full_ready = true;
            self.events.push(Event::FullReady);
        }
    }

    fn quit(&mut self) {
        if self.closing {
            return;
        }
        // Commands waiting for the first map still go out when it arrives (`set(); quit()` at
        // start-up must not lose the set); a failed discovery fails them as usual.
        self.closing = true;
        if self.clients == 0 {
            self.shutdown();
        }
    }

    fn shutdown(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        self.nodes.close_all();
        self.sessions_close_all();
        self.ps_shutdown();
        self.events.push(Event::End);
    }
}
