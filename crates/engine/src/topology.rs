//! The slot map: which shard (a master and its replicas) owns each of the 16384 slots.
//!
//! Built by `topology_parse` from CLUSTER SHARDS or CLUSTER SLOTS; patched one slot at a time on
//! MOVED. A map that leaves any slot uncovered is never adopted (a node reset by `del-node`
//! answers with an empty list, and adopting that would route nothing).

use std::fmt;

use crate::slot::SLOTS;

pub use crate::topology_parse::{from_cluster_shards, from_cluster_slots, TopologyError};

/// A node's address as the cluster announces it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeAddr {
    pub host: String,
    pub port: u16,
}

impl NodeAddr {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        NodeAddr {
            host: host.into(),
            port,
        }
    }
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A master and the replicas that serve its slots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shard {
    pub master: NodeAddr,
    pub replicas: Vec<NodeAddr>,
}

/// Index meaning "no shard owns this slot".
const NONE: u16 = u16::MAX;

/// Slot → shard, as adopted from the cluster.
#[derive(Clone, PartialEq, Eq)]
pub struct SlotMap {
    shards: Vec<Shard>,
    slots: Vec<u16>,
    /// Slots owned by each shard (same index as `shards`).
    counts: Vec<u16>,
}

impl fmt::Debug for SlotMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlotMap")
            .field("shards", &self.shards)
            .field("ranges", &self.ranges())
            .finish()
    }
}

/// What changed between two maps (the `topology` event).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopologyChange {
    pub added: Vec<NodeAddr>,
    pub removed: Vec<NodeAddr>,
    /// (first slot, last slot, new master) for every range whose master changed.
    pub moved_ranges: Vec<(u16, u16, NodeAddr)>,
}

impl TopologyChange {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.moved_ranges.is_empty()
    }
}

impl Default for SlotMap {
    fn default() -> Self {
        SlotMap {
            shards: Vec::new(),
            slots: vec![NONE; SLOTS],
            counts: Vec::new(),
        }
    }
}

impl SlotMap {
    /// Assigns `first..=last` to the shard mastered by `shard.master`, merging replicas of a
    /// shard listed more than once (CLUSTER SLOTS lists a shard once per range).
    pub fn assign(&mut self, first: u16, last: u16, shard: Shard) {
        let idx = match self.shards.iter().position(|s| s.master == shard.master) {
            Some(i) => {
                for r in shard.replicas {
                    if !self.shards[i].replicas.contains(&r) {
                        self.shards[i].replicas.push(r);
                    }
                }
                i
            }
            None => {
                self.shards.push(shard);
                self.shards.len() - 1
            }
        };
        for s in first..=last {
            self.set(s, idx);
        }
    }

    fn set(&mut self, slot: u16, idx: usize) {
        if self.counts.len() < self.shards.len() {
            self.counts.resize(self.shards.len(), 0);
        }
        let old = self.slots[slot as usize];
        if old != NONE {
            self.counts[old as usize] -= 1;
        }
        self.slots[slot as usize] = idx as u16;
        self.counts[idx] += 1;
    }

    /// How many slots shard `i` owns.
    pub fn slot_count(&self, i: usize) -> usize {
        self.counts.get(i).copied().unwrap_or(0) as usize
    }

    /// Whether some slot is assigned twice is checked by the parser; this says whether all are.
    pub fn is_complete(&self) -> bool {
        self.slots.iter().all(|&i| i != NONE)
    }

    pub fn is_assigned(&self, slot: u16) -> bool {
        self.slots[slot as usize] != NONE
    }

    pub fn shard(&self, slot: u16) -> Option<&Shard> {
        self.shards.get(self.slots[slot as usize] as usize)
    }

    pub fn master(&self, slot: u16) -> Option<&NodeAddr> {
        self.shard(slot).map(|s| &s.master)
    }

    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// Every node of the map, masters first, without duplicates.
    pub fn nodes(&self) -> Vec<NodeAddr> {
        let mut out: Vec<NodeAddr> = self.shards.iter().map(|s| s.master.clone()).collect();
        for s in &self.shards {
            for r in &s.replicas {
                if !out.contains(r) {
                    out.push(r.clone());
                }
            }
        }
        out
    }

    /// MOVED: from now on `slot` is served by `addr`. If `addr` is a known master the slot joins
    /// its shard; otherwise `addr` becomes a new shard's master (replicas unknown until the next
    /// refresh).
    pub fn patch(&mut self, slot: u16, addr: &NodeAddr) {
        let idx = match self.shards.iter().position(|s| &s.master == addr) {
            Some(i) => i,
            None => {
                // A replica promoted by failover: its old shard's replicas no longer follow it.
                self.shards.push(Shard {
                    master: addr.clone(),
                    replicas: Vec::new(),
                });
                self.shards.len() - 1
            }
        };
        self.set(slot, idx);
    }

    /// Contiguous ranges as (first, last, shard index), for display and diffs.
    pub fn ranges(&self) -> Vec<(u16, u16, u16)> {
        let mut out: Vec<(u16, u16, u16)> = Vec::new();
        for (s, &i) in self.slots.iter().enumerate() {
            match out.last_mut() {
                Some(last) if last.2 == i && last.1 as usize + 1 == s => last.1 = s as u16,
                _ => out.push((s as u16, s as u16, i)),
            }
        }
        out.retain(|r| r.2 != NONE);
        out
    }

    /// What changed from `self` to `next`.
    pub fn diff(&self, next: &SlotMap) -> TopologyChange {
        let before = self.nodes();
        let after = next.nodes();
        let mut change = TopologyChange {
            added: after
                .iter()
                .filter(|n| !before.contains(n))
                .cloned()
                .collect(),
            removed: before
                .iter()
                .filter(|n| !after.contains(n))
                .cloned()
                .collect(),
            moved_ranges: Vec::new(),
        };
        let mut run: Option<(u16, u16, NodeAddr)> = None;
        for s in 0..SLOTS as u16 {
            let (old, new) = (self.master(s), next.master(s));
            let moved = match (old, new) {
                (Some(o), Some(n)) if o != n => Some(n),
                (None, Some(n)) => Some(n),
                _ => None,
            };
            match (moved, run.as_mut()) {
                (Some(n), Some(r)) if &r.2 == n && r.1 + 1 == s => r.1 = s,
                (Some(n), _) => {
                    change.moved_ranges.extend(run.take());
                    run = Some((s, s, n.clone()));
                }
                (None, _) => change.moved_ranges.extend(run.take()),
            }
        }
        change.moved_ranges.extend(run);
        change
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(port: u16, replica: u16) -> Shard {
        Shard {
            master: NodeAddr::new("127.0.0.1", port),
            replicas: vec![NodeAddr::new("127.0.0.1", replica)],
        }
    }

    fn three() -> SlotMap {
        let mut m = SlotMap::default();
        m.assign(0, 5460, shard(1, 4));
        m.assign(5461, 10922, shard(2, 5));
        m.assign(10923, 16383, shard(3, 6));
        m
    }

    #[test]
    fn a_full_map_is_complete_and_a_partial_one_is_not() {
        assert!(three().is_complete());
        let mut m = SlotMap::default();
        m.assign(0, 100, shard(1, 4));
        assert!(!m.is_complete());
        assert!(!SlotMap::default().is_complete());
    }

    #[test]
    fn patching_a_slot_moves_only_that_slot() {
        let mut m = three();
        let to = NodeAddr::new("127.0.0.1", 2);
        m.patch(7, &to);
        assert_eq!(m.master(7), Some(&to));
        assert_eq!(m.master(6).unwrap().port, 1);
        assert_eq!(m.master(8).unwrap().port, 1);
        let fresh = NodeAddr::new("127.0.0.1", 9);
        m.patch(8, &fresh);
        assert_eq!(m.master(8), Some(&fresh));
        assert!(m.shard(8).unwrap().replicas.is_empty());
    }

    #[test]
    fn diff_reports_moved_ranges_and_node_changes() {
        let a = three();
        let mut b = three();
        let to = NodeAddr::new("127.0.0.1", 2);
        for s in 10..=20 {
            b.patch(s, &to);
        }
        b.patch(30, &NodeAddr::new("127.0.0.1", 9));
        let d = a.diff(&b);
        assert_eq!(
            d.moved_ranges,
            vec![
                (10, 20, to.clone()),
                (30, 30, NodeAddr::new("127.0.0.1", 9))
            ]
        );
        assert_eq!(d.added, vec![NodeAddr::new("127.0.0.1", 9)]);
        assert!(d.removed.is_empty());
        assert!(a.diff(&a.clone()).is_empty());
    }

    #[test]
    fn shards_listed_once_per_range_merge_into_one() {
        let mut m = SlotMap::default();
        m.assign(0, 10, shard(1, 4));
        m.assign(20, 30, shard(1, 4));
        assert_eq!(m.shards().len(), 1);
        assert_eq!(m.nodes().len(), 2);
    }
}
