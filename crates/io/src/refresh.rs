//! Topology refresh: single-flight (one round at a time), rate-limited (at most one round per
//! 100 ms), trying candidates one after another: known masters, then replicas, then the seeds.
//! Each candidate is asked CLUSTER SHARDS, falling back to CLUSTER SLOTS on servers that do not
//! know it. A reply that does not parse into a complete map is never adopted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use clustr_engine::request::{Request, Target};
use clustr_engine::resp::encode_command;
use clustr_engine::topology::{self, NodeAddr, SlotMap};
use clustr_engine::{Error, ErrorKind, Reply};

use crate::driver::{Driver, Kind};
use crate::timers::TimerKind;
use crate::Event;

const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// A connected node that has answered nothing this long while requests wait on it is asked for
/// the map after the others. A healthy node under load answers within a few milliseconds.
const STALLED: Duration = Duration::from_millis(100);

/// Which topology command an internal request carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Query {
    Shards,
    Slots,
}

#[derive(Default)]
pub(crate) struct Refresh {
    in_flight: bool,
    again: bool,
    pub timer_armed: bool,
    last: Option<Instant>,
    candidates: Vec<NodeAddr>,
    /// What each candidate said this round: (address, code, message).
    causes: Vec<(String, String, String)>,
    failed_rounds: u32,
    last_error: Option<Error>,
    /// Requests (key, generation) that met READONLY and whose backoff ended while this round
    /// was still asking: sent again when the round ends (see `Driver::backoff_over`).
    pub after_round: Vec<(usize, u64)>,
}

impl Refresh {
    /// The error of the last failed round, while no round has succeeded since.
    pub fn last_failure(&self) -> Option<Error> {
        self.last_error.clone()
    }

    /// The error reported when no candidate produced a usable map.
    pub fn no_map_error(&self) -> Error {
        let not_cluster = !self.causes.is_empty()
            && self
                .causes
                .iter()
                .all(|c| c.1 == ErrorKind::NotACluster.code());
        let (kind, msg) = if not_cluster {
            (
                ErrorKind::NotACluster,
                "the seed servers answered but are not in cluster mode (cluster-enabled no)",
            )
        } else {
            (
                ErrorKind::NoSlotMap,
                "could not get a slot map from any seed; see .errors for what each one said",
            )
        };
        let mut e = Error::new(kind, msg);
        e.causes = self.causes.clone();
        e
    }
}

impl Driver {
    /// Starts a refresh round now, or as soon as the rate limit allows.
    pub(crate) fn request_refresh(&mut self) {
        if self.refresh.in_flight {
            self.refresh.again = true;
            return;
        }
        let now = Instant::now();
        if let Some(last) = self.refresh.last {
            let since = now.duration_since(last);
            if since < MIN_INTERVAL {
                if !self.refresh.timer_armed {
                    self.refresh.timer_armed = true;
                    self.timer(MIN_INTERVAL - since, TimerKind::Refresh);
                }
                return;
            }
        }
        self.refresh.in_flight = true;
        self.refresh.last = Some(now);
        self.refresh.causes.clear();
        self.stats.refreshes += 1;
        let r = self.rand() as usize;
        let mut candidates = match &self.map {
            Some(map) => {
                let mut masters: Vec<NodeAddr> =
                    map.shards().iter().map(|s| s.master.clone()).collect();
                if !masters.is_empty() {
                    let n = masters.len();
                    masters.rotate_left(r % n);
                }
                let mut all = masters;
                for n in map.nodes() {
                    if !all.contains(&n) {
                        all.push(n);
                    }
                }
                all
            }
            None => Vec::new(),
        };
        for s in &self.cfg.seeds {
            if !candidates.contains(s) {
                candidates.push(s.clone());
            }
        }
        // Connected nodes first (in the rotated order: masters before replicas), then connected
        // ones that have left requests unanswered for a while (a frozen host keeps its
        // connection but stops answering), then the ones not connected yet, then those whose
        // connection just failed. Asking a dead master first would stall the round on its
        // reconnect backoff, and a frozen one on the query timeout (2 s), exactly when a fresh
        // map matters most (failover). The sort is stable: within a group the order stays.
        candidates.sort_by_cached_key(|n| {
            if self.nodes.is_failing(n) {
                3
            } else if !self.nodes.is_ready(n) {
                2
            } else if self.nodes.is_stalled(n, now, STALLED) {
                1
            } else {
                0
            }
        });
        candidates.reverse();
        self.refresh.candidates = candidates;
        self.try_next_candidate();
    }

    fn try_next_candidate(&mut self) {
        match self.refresh.candidates.pop() {
            Some(node) => self.ask_topology(node, Query::Shards),
            None => self.round_failed(),
        }
    }

    fn ask_topology(&mut self, node: NodeAddr, q: Query) {
        let mut bytes = BytesMut::new();
        let sub: &[u8] = match q {
            Query::Shards => b"SHARDS",
            Query::Slots => b"SLOTS",
        };
        encode_command(&mut bytes, &[b"CLUSTER", sub]);
        let req = Request::new(Target::Node(node), true, self.now_ms());
        let key = self.insert(Kind::Topology(q), req, bytes.freeze());
        let gen = self.gen_of(key);
        self.dispatch(key);
        // A node that accepts but never answers (paused, black-holed) must not stall discovery.
        // Candidates are asked one by one, so each gets at most 2 s (less if connect_timeout is
        // shorter): a paused master must not hold up the map that would route around it.
        let ms = self.cfg.connect_timeout_ms.clamp(1, 2_000);
        self.timer(
            Duration::from_millis(ms),
            TimerKind::TopologyTimeout(key, gen),
        );
    }

    fn cause(&mut self, node: &NodeAddr, kind: &str, msg: String) {
        self.refresh
            .causes
            .push((node.to_string(), kind.to_string(), msg));
    }

    /// An internal topology request got its reply.
    pub(crate) fn topology_reply(&mut self, key: usize, q: Query, from: &NodeAddr, reply: Reply) {
        self.complete(key, Ok(Reply::Nil));
        if let Reply::Error(msg) = &reply {
            let text = String::from_utf8_lossy(&msg[..msg.len().min(256)]).into_owned();
            if text.contains("cluster support disabled") {
                self.cause(from, ErrorKind::NotACluster.code(), text);
            } else if q == Query::Shards {
                // Servers before 7.0 do not know CLUSTER SHARDS.
                return self.ask_topology(from.clone(), Query::Slots);
            } else {
                let code = text.split(' ').next().unwrap_or("ERR").to_string();
                self.cause(from, &code, text);
            }
            return self.try_next_candidate();
        }
        let parsed = match q {
            // Redis 7.0 lists both `port` and `tls-port` here, whatever the connection.
            Query::Shards => topology::from_cluster_shards(&reply, from, self.cfg.tls.is_some()),
            Query::Slots => topology::from_cluster_slots(&reply, from),
        };
        match parsed {
            Ok(map) => self.adopt(map),
            Err(e) => {
                self.cause(from, "BAD_TOPOLOGY", e.to_string());
                self.try_next_candidate();
            }
        }
    }

    /// The connection carrying a topology request failed.
    pub(crate) fn topology_failed(
        &mut self,
        key: usize,
        node: &NodeAddr,
        kind: ErrorKind,
        cause: &str,
    ) {
        self.complete(key, Ok(Reply::Nil));
        self.cause(node, kind.code(), cause.to_string());
        self.try_next_candidate();
    }

    /// Whether a refresh round is asking the nodes now, or one is due (held back by the rate
    /// limit, or by the pause after a round that failed).
    pub(crate) fn refreshing(&self) -> bool {
        self.refresh.in_flight || self.refresh.timer_armed
    }

    fn finish_round(&mut self) {
        self.refresh.in_flight = false;
        self.send_after_round();
        if std::mem::take(&mut self.refresh.again) {
            self.request_refresh();
        }
    }

    /// The round ended (with a map, the same or a new one, or with none): the requests held for
    /// it go out, routed by whatever map the client has now.
    fn send_after_round(&mut self) {
        for ticket in std::mem::take(&mut self.refresh.after_round) {
            if self.entry(ticket).is_some() {
                self.dispatch(ticket.0);
            }
        }
    }

    fn round_failed(&mut self) {
        self.refresh.in_flight = false;
        self.send_after_round();
        self.refresh.again = false;
        self.refresh.failed_rounds += 1;
        if self.map.is_none() {
            let err = self.refresh.no_map_error();
            self.refresh.last_error = Some(err.clone());
            self.discovery_failed(err);
        }
        // Back off between failed rounds: 200 ms doubling up to 5 s.
        let delay = 200u64 << self.refresh.failed_rounds.min(5);
        self.timer(Duration::from_millis(delay.min(5_000)), TimerKind::Refresh);
        self.refresh.timer_armed = true;
    }

    fn adopt(&mut self, next: SlotMap) {
        self.refresh.failed_rounds = 0;
        self.refresh.last_error = None;
        let first = self.map.is_none();
        // A map can differ without a visible change (shards listed in another order after a
        // MOVED patch, a replica re-attached): adopt it silently then. The diff (a walk over
        // every slot) is only worked out when the map changed: most refreshes find the same map.
        if first || self.map.as_deref() != Some(&next) {
            let change = match &self.map {
                Some(old) => old.diff(&next),
                None => SlotMap::default().diff(&next),
            };
            // Only a visible change (a slot moved, a node came or went) can end a wait for the
            // cluster: a map that differs only in the order of its shards, or in which shard a
            // replica is listed under, must not resend anything.
            let changed = !first && !change.is_empty();
            let map = Arc::new(next);
            self.map = Some(map.clone());
            if first || !change.is_empty() {
                self.events.push(Event::Topology(map.clone(), change));
            }
            let nodes = map.nodes();
            for n in &nodes {
                self.nodes.ensure(n);
            }
            // Before the table is pruned: a node outside the new map kept only by requests
            // parked for it would otherwise stay until the next change.
            if changed {
                self.wake_backoffs();
            }
            self.nodes.retain_busy_or(&nodes);
            if first {
                self.events.push(Event::Ready);
                if let Some(m) = nodes.first() {
                    self.learn_commands(m.clone());
                }
            }
        }
        self.finish_round();
        self.release_awaiting();
        if first {
            self.ps_map_adopted();
        } else {
            self.ps_resync();
        }
        self.check_full_ready();
    }
}
