//! Pub/Sub: classic channels and patterns on one subscriber connection, shard channels on one
//! subscriber connection per owning master. The subscription set is the truth: whenever a
//! subscriber connection is (re)made it subscribes to everything the set holds for it, so a
//! killed connection, a dead node, a failover or a slot move is repaired by the same code, and a
//! `Resubscribed` event reports the window in which messages may have been missed.
//!
//! Subscriber connections carry no request/reply FIFO: every frame is a push. Confirmations are
//! matched to what was sent (`sent`, in order) only to tell our own SUNSUBSCRIBE from the one a
//! node sends when a shard channel's slot moves away, and to attribute an error reply.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use clustr_engine::resp::encode_command;
use clustr_engine::route::random_master;
use clustr_engine::slot::slot;
use clustr_engine::topology::NodeAddr;
use clustr_engine::Reply;
use indexmap::IndexMap;

use crate::conn;
use crate::driver::Driver;
use crate::timers::TimerKind;

/// The subscription commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PsKind {
    Subscribe,
    Unsubscribe,
    PSubscribe,
    PUnsubscribe,
    SSubscribe,
    SUnsubscribe,
}

const KINDS: [(PsKind, &str); 6] = [
    (PsKind::Subscribe, "subscribe"),
    (PsKind::Unsubscribe, "unsubscribe"),
    (PsKind::PSubscribe, "psubscribe"),
    (PsKind::PUnsubscribe, "punsubscribe"),
    (PsKind::SSubscribe, "ssubscribe"),
    (PsKind::SUnsubscribe, "sunsubscribe"),
];

impl PsKind {
    /// The kind a command name (any case) or a confirmation push names.
    pub fn parse(name: &[u8]) -> Option<PsKind> {
        KINDS
            .iter()
            .find(|(_, n)| n.as_bytes().eq_ignore_ascii_case(name))
            .map(|(k, _)| *k)
    }

    pub fn name(self) -> &'static str {
        KINDS
            .iter()
            .find(|(k, _)| *k == self)
            .map_or("", |(_, n)| n)
    }

    pub(crate) fn adds(self) -> bool {
        matches!(
            self,
            PsKind::Subscribe | PsKind::PSubscribe | PsKind::SSubscribe
        )
    }

    fn is_shard(self) -> bool {
        matches!(self, PsKind::SSubscribe | PsKind::SUnsubscribe)
    }

    /// The set this kind adds to or removes from: 0 channels, 1 patterns, 2 shard channels.
    pub(crate) fn family(self) -> usize {
        match self {
            PsKind::Subscribe | PsKind::Unsubscribe => 0,
            PsKind::PSubscribe | PsKind::PUnsubscribe => 1,
            PsKind::SSubscribe | PsKind::SUnsubscribe => 2,
        }
    }

    fn subscribe_of(family: usize) -> PsKind {
        [PsKind::Subscribe, PsKind::PSubscribe, PsKind::SSubscribe][family]
    }
}

/// A subscription change asked for by the caller; `names` empty means "all" for the removals.
#[derive(Debug)]
pub struct PubSubOp {
    pub id: u32,
    pub flags: u8,
    pub kind: PsKind,
    pub names: Vec<Bytes>,
}

/// Flag bit (shared with the binding): deliver this subscription's messages as Buffers.
const FLAG_BUFFERS: u8 = 1;

pub(crate) struct SubConn {
    pub(crate) gen: u64,
    pub(crate) writer: Option<crate::wire::Writer>,
    /// What was sent and still awaits confirmations: (kind, confirmations left).
    pub(crate) sent: VecDeque<(PsKind, usize, Vec<Bytes>)>,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

/// A caller waiting for the confirmation of every name it asked for.
pub(crate) struct Waiter {
    pub(crate) id: u32,
    pub(crate) flags: u8,
    pub(crate) kind: PsKind,
    pub(crate) left: BTreeSet<Bytes>,
    pub(crate) last: Option<Bytes>,
}

/// Subscriptions being restored after a loss: reported once all are confirmed again.
pub(crate) struct Restore {
    pub(crate) node: NodeAddr,
    pub(crate) from_ms: u64,
    pub(crate) left: BTreeSet<(usize, Bytes)>,
    pub(crate) names: [Vec<Bytes>; 3],
}

#[derive(Default)]
pub(crate) struct PubSub {
    /// name → deliver as Buffers, per family (channels, patterns, shard channels), in the order
    /// they were subscribed: a rebuilt connection subscribes them in that order again.
    pub(crate) sets: [IndexMap<Bytes, bool>; 3],
    pub(crate) classic: Option<(NodeAddr, SubConn)>,
    pub(crate) shards: HashMap<NodeAddr, SubConn>,
    /// Shard channel → the node it is subscribed on (or being subscribed on).
    pub(crate) home: HashMap<Bytes, NodeAddr>,
    pub(crate) waiters: Vec<Waiter>,
    pub(crate) restores: Vec<Restore>,
    /// When the classic subscriptions were lost; shard channels lost, with when.
    pub(crate) classic_lost: Option<u64>,
    pub(crate) shard_lost: HashMap<Bytes, u64>,
    /// Ops that arrived before the first slot map.
    pub(crate) early: Vec<PubSubOp>,
    pub(crate) next_gen: u64,
    pub(crate) resync_armed: bool,
}

/// Generations of subscriber connections live above this, apart from the node table's.
const GEN_BASE: u64 = 1 << 62;

/// Whether a connection generation belongs to a subscriber connection.
pub(crate) fn is_subscriber_gen(gen: u64) -> bool {
    gen >= GEN_BASE
}

pub(crate) fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn command(kind: PsKind, names: &[Bytes]) -> Bytes {
    let mut out = BytesMut::new();
    let mut args: Vec<&[u8]> = vec![kind.name().as_bytes()];
    args.extend(names.iter().map(|n| &n[..]));
    encode_command(&mut out, &args);
    out.freeze()
}

impl PubSub {
    pub fn owns(&self, gen: u64) -> bool {
        is_subscriber_gen(gen)
    }

    pub(crate) fn conn_mut(&mut self, gen: u64) -> Option<(NodeAddr, &mut SubConn, bool)> {
        if let Some((addr, c)) = self.classic.as_mut().filter(|(_, c)| c.gen == gen) {
            return Some((addr.clone(), c, false));
        }
        self.shards
            .iter_mut()
            .find(|(_, c)| c.gen == gen)
            .map(|(a, c)| (a.clone(), c, true))
    }

    /// Stops every subscriber connection (quit).
    pub fn close_all(&mut self) {
        if let Some((_, c)) = self.classic.take() {
            c.task.abort();
        }
        for (_, c) in self.shards.drain() {
            c.task.abort();
        }
    }
}

impl Driver {
    /// Subscription changes from the caller.
    pub(crate) fn pubsub(&mut self, ops: Vec<PubSubOp>) {
        if self.map.is_none() {
            self.ps.early.extend(ops);
            return;
        }
        for op in ops {
            self.ps_apply(op);
        }
    }

    fn ps_apply(&mut self, op: PubSubOp) {
        let fam = op.kind.family();
        let buffers = op.flags & FLAG_BUFFERS != 0;
        let names: Vec<Bytes> = if op.names.is_empty() && !op.kind.adds() {
            self.ps.sets[fam].keys().cloned().collect()
        } else {
            op.names.clone()
        };
        if op.kind.adds() {
            for n in &names {
                self.ps.sets[fam].insert(n.clone(), buffers);
            }
        } else {
            for n in &names {
                self.ps.sets[fam].shift_remove(n);
            }
        }
        if names.is_empty() {
            return self.ps_done(op.id, op.flags, Ok(Reply::Nil));
        }
        self.ps.waiters.push(Waiter {
            id: op.id,
            flags: op.flags,
            kind: op.kind,
            left: names.iter().cloned().collect(),
            last: names.last().cloned(),
        });
        if op.kind.is_shard() {
            self.ps_shard_change(op.kind, names);
        } else if !self.ps_send_classic(op.kind, names) && !op.kind.adds() {
            // No live subscriber connection: nothing to unsubscribe from.
            self.ps_confirm_all(op.kind);
        }
    }

    /// Sends on the classic connection if it is ready (else its connect will subscribe the set).
    fn ps_send_classic(&mut self, kind: PsKind, names: Vec<Bytes>) -> bool {
        self.ps_ensure_classic();
        let Some((_, c)) = self.ps.classic.as_mut() else {
            return false;
        };
        let Some(w) = c.writer.as_ref() else {
            return false;
        };
        let _ = w.send(command(kind, &names));
        c.sent.push_back((kind, names.len(), names));
        true
    }

    fn ps_shard_change(&mut self, kind: PsKind, names: Vec<Bytes>) {
        if kind.adds() {
            return self.ps_resync();
        }
        let mut by_home: HashMap<NodeAddr, Vec<Bytes>> = HashMap::new();
        for n in names {
            match self.ps.home.remove(&n) {
                Some(h) => by_home.entry(h).or_default().push(n),
                None => self.ps_confirm(PsKind::SUnsubscribe, &n),
            }
        }
        for (home, names) in by_home {
            self.ps_send_shard(&home, PsKind::SUnsubscribe, names.clone());
            let live = self
                .ps
                .shards
                .get(&home)
                .is_some_and(|c| c.writer.is_some());
            if !live {
                for n in &names {
                    self.ps_confirm(PsKind::SUnsubscribe, n);
                }
            }
        }
    }

    /// SSUBSCRIBE/SUNSUBSCRIBE must name channels of one slot: one command per slot.
    fn ps_send_shard(&mut self, node: &NodeAddr, kind: PsKind, names: Vec<Bytes>) {
        let Some(c) = self.ps.shards.get_mut(node) else {
            return;
        };
        let Some(w) = c.writer.as_ref() else { return };
        // Grouped by slot, groups in the order of their first name: the caller's order.
        let mut by_slot: Vec<(u16, Vec<Bytes>)> = Vec::new();
        for n in names {
            let s = slot(&n);
            match by_slot.iter_mut().find(|g| g.0 == s) {
                Some(g) => g.1.push(n),
                None => by_slot.push((s, vec![n])),
            }
        }
        for (_, group) in by_slot {
            let _ = w.send(command(kind, &group));
            c.sent.push_back((kind, group.len(), group));
        }
    }

    fn ps_new_conn(&mut self, addr: &NodeAddr) -> SubConn {
        self.ps.next_gen += 1;
        let gen = GEN_BASE + self.ps.next_gen;
        SubConn {
            gen,
            writer: None,
            sent: VecDeque::new(),
            task: conn::spawn(addr.clone(), gen, self.nodes.handshake(), self.tx.clone()),
        }
    }

    fn ps_ensure_classic(&mut self) {
        if self.ps.classic.is_some() || (self.ps.sets[0].is_empty() && self.ps.sets[1].is_empty()) {
            return;
        }
        // Any node hears every classic message; prefer a master whose connection is healthy.
        let rand = self.rand();
        let Some(map) = self.map.clone() else { return };
        let healthy: Vec<NodeAddr> = map
            .shards()
            .iter()
            .map(|s| s.master.clone())
            .filter(|m| !self.nodes.is_failing(m))
            .collect();
        let node = match healthy.len() {
            0 => random_master(&map, rand).cloned(),
            n => Some(healthy[rand as usize % n].clone()),
        };
        if let Some(node) = node {
            let c = self.ps_new_conn(&node);
            self.ps.classic = Some((node, c));
        }
    }

    /// Puts every shard channel on its slot's current owner, moving those whose owner changed.
    pub(crate) fn ps_resync(&mut self) {
        self.ps_ensure_classic();
        let Some(map) = self.map.clone() else { return };
        let mut moves: HashMap<NodeAddr, Vec<Bytes>> = HashMap::new();
        for name in self.ps.sets[2].keys() {
            let Some(owner) = map.master(slot(name)) else {
                continue;
            };
            if self.ps.home.get(name) != Some(owner) {
                moves.entry(owner.clone()).or_default().push(name.clone());
            }
        }
        for (owner, names) in moves {
            for n in &names {
                if let Some(old) = self.ps.home.insert(n.clone(), owner.clone()) {
                    // Still subscribed on the old owner (a move we noticed first): leave it.
                    self.ps_send_shard(&old, PsKind::SUnsubscribe, vec![n.clone()]);
                    self.ps.shard_lost.entry(n.clone()).or_insert_with(wall_ms);
                }
            }
            match self.ps.shards.get(&owner) {
                Some(c) if c.writer.is_some() => {
                    self.ps_restore_shard(&owner, names.clone());
                    self.ps_send_shard(&owner, PsKind::SSubscribe, names);
                }
                Some(_) => {}
                None => {
                    let c = self.ps_new_conn(&owner);
                    self.ps.shards.insert(owner, c);
                }
            }
        }
    }

    /// Tracks shard channels being subscribed again after a loss, for `Resubscribed`.
    fn ps_restore_shard(&mut self, node: &NodeAddr, names: Vec<Bytes>) {
        let lost: Vec<(Bytes, u64)> = names
            .iter()
            .filter_map(|n| self.ps.shard_lost.remove(n).map(|t| (n.clone(), t)))
            .collect();
        if let Some(from_ms) = lost.iter().map(|l| l.1).min() {
            self.ps.restores.push(Restore {
                node: node.clone(),
                from_ms,
                left: lost.iter().map(|(n, _)| (2, n.clone())).collect(),
                names: [
                    Vec::new(),
                    Vec::new(),
                    lost.into_iter().map(|l| l.0).collect(),
                ],
            });
        }
    }

    /// A subscriber connection finished its handshake: subscribe it to its part of the set.
    pub(crate) fn ps_connected(&mut self, gen: u64, writer: crate::wire::Writer) {
        let Some((addr, c, shard)) = self.ps.conn_mut(gen) else {
            return;
        };
        c.writer = Some(writer);
        if shard {
            let names: Vec<Bytes> = self.ps.sets[2]
                .keys()
                .filter(|n| self.ps.home.get(*n) == Some(&addr))
                .cloned()
                .collect();
            self.ps_restore_shard(&addr, names.clone());
            self.ps_send_shard(&addr, PsKind::SSubscribe, names);
            return;
        }
        let sets: [Vec<Bytes>; 2] = [0, 1].map(|f| self.ps.sets[f].keys().cloned().collect());
        if let Some(from_ms) = self.ps.classic_lost.take() {
            self.ps.restores.push(Restore {
                node: addr.clone(),
                from_ms,
                left: (0..2)
                    .flat_map(|f| sets[f].iter().map(move |n| (f, n.clone())))
                    .collect(),
                names: [sets[0].clone(), sets[1].clone(), Vec::new()],
            });
        }
        for (f, names) in sets.into_iter().enumerate() {
            if !names.is_empty() {
                self.ps_send_classic(PsKind::subscribe_of(f), names);
            }
        }
    }

    /// A subscriber connection failed or closed: remember the loss and rebuild it.
    pub(crate) fn ps_lost(&mut self, gen: u64) {
        let now = wall_ms();
        if self.ps.classic.as_ref().is_some_and(|(_, c)| c.gen == gen) {
            self.ps.classic = None;
            self.ps.classic_lost.get_or_insert(now);
            // Unsubscribes waiting on that connection are done: the connection took them along.
            self.ps_confirm_all(PsKind::Unsubscribe);
            self.ps_confirm_all(PsKind::PUnsubscribe);
        } else if let Some(addr) = self
            .ps
            .shards
            .iter()
            .find(|(_, c)| c.gen == gen)
            .map(|(a, _)| a.clone())
        {
            self.ps.shards.remove(&addr);
            let names: Vec<Bytes> = self
                .ps
                .home
                .iter()
                .filter(|(_, h)| **h == addr)
                .map(|(n, _)| n.clone())
                .collect();
            for n in names {
                self.ps.home.remove(&n);
                self.ps.shard_lost.entry(n).or_insert(now);
            }
            self.ps_confirm_all(PsKind::SUnsubscribe);
        } else {
            return;
        }
        self.request_refresh();
        self.ps_schedule_resync();
    }

    pub(crate) fn ps_schedule_resync(&mut self) {
        if !self.ps.resync_armed {
            self.ps.resync_armed = true;
            self.timer(Duration::from_millis(100), TimerKind::PubSubResync);
        }
    }

    pub(crate) fn ps_resync_due(&mut self) {
        self.ps.resync_armed = false;
        self.ps_resync();
        let missing = (self.ps.classic.is_none()
            && !(self.ps.sets[0].is_empty() && self.ps.sets[1].is_empty()))
            || self.ps.sets[2]
                .keys()
                .any(|n| !self.ps.home.contains_key(n));
        if missing {
            self.ps_schedule_resync();
        }
    }

    /// The first slot map arrived: act on what was asked before it.
    pub(crate) fn ps_map_adopted(&mut self) {
        let early = std::mem::take(&mut self.ps.early);
        for op in early {
            self.ps_apply(op);
        }
        self.ps_resync();
    }

    /// quit(): subscriptions end with the client; callers still waiting hear CLOSED.
    pub(crate) fn ps_shutdown(&mut self) {
        self.ps.close_all();
        for w in std::mem::take(&mut self.ps.waiters) {
            self.ps_done(w.id, w.flags, Err(crate::closed_error()));
        }
        for op in std::mem::take(&mut self.ps.early) {
            self.ps_done(op.id, op.flags, Err(crate::closed_error()));
        }
    }
}
