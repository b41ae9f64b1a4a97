//! Choosing the node for a request: the slot's master, or one of its replicas for read-only
//! commands under the `slaves` policy. Randomness is passed in so routing stays deterministic.

use crate::topology::{NodeAddr, SlotMap};

/// redis-clustr's `slaves` option: where read-only commands go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReplicaPolicy {
    /// Masters only (the original's default).
    #[default]
    Never,
    /// Masters and replicas alike.
    Share,
    /// Replicas when the shard has any, else the master.
    Always,
}

impl ReplicaPolicy {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "never" => Some(ReplicaPolicy::Never),
            "share" => Some(ReplicaPolicy::Share),
            "always" => Some(ReplicaPolicy::Always),
            _ => None,
        }
    }
}

/// The node that should serve `slot`, or None when no shard owns it (no map yet).
pub fn node_for_slot(
    map: &SlotMap,
    slot: u16,
    readonly: bool,
    policy: ReplicaPolicy,
    rand: u32,
) -> Option<&NodeAddr> {
    let shard = map.shard(slot)?;
    if !readonly || shard.replicas.is_empty() {
        return Some(&shard.master);
    }
    match policy {
        ReplicaPolicy::Never => Some(&shard.master),
        ReplicaPolicy::Always => Some(&shard.replicas[rand as usize % shard.replicas.len()]),
        ReplicaPolicy::Share => {
            let i = rand as usize % (shard.replicas.len() + 1);
            Some(if i == 0 {
                &shard.master
            } else {
                &shard.replicas[i - 1]
            })
        }
    }
}

/// A master chosen at random among those serving slots, for keyless commands. (A master whose
/// slots all moved away by MOVED patches stays in the map until the next refresh.)
pub fn random_master(map: &SlotMap, rand: u32) -> Option<&NodeAddr> {
    // Two passes instead of collecting: this runs for every keyless command.
    let serving = |(i, _): &(usize, &crate::topology::Shard)| map.slot_count(*i) > 0;
    let n = map.shards().iter().enumerate().filter(serving).count();
    if n == 0 {
        return None;
    }
    let pick = rand as usize % n;
    map.shards()
        .iter()
        .enumerate()
        .filter(serving)
        .nth(pick)
        .map(|(_, s)| &s.master)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Shard;

    fn map() -> SlotMap {
        let mut m = SlotMap::default();
        let n = |p| NodeAddr::new("h", p);
        m.assign(
            0,
            8191,
            Shard {
                master: n(1),
                replicas: vec![n(3)],
            },
        );
        m.assign(
            8192,
            16383,
            Shard {
                master: n(2),
                replicas: vec![],
            },
        );
        m
    }

    #[test]
    fn writes_always_go_to_the_master() {
        for p in [
            ReplicaPolicy::Never,
            ReplicaPolicy::Share,
            ReplicaPolicy::Always,
        ] {
            assert_eq!(node_for_slot(&map(), 5, false, p, 1).unwrap().port, 1);
        }
    }

    #[test]
    fn reads_follow_the_replica_policy() {
        let m = map();
        assert_eq!(
            node_for_slot(&m, 5, true, ReplicaPolicy::Never, 1)
                .unwrap()
                .port,
            1
        );
        assert_eq!(
            node_for_slot(&m, 5, true, ReplicaPolicy::Always, 7)
                .unwrap()
                .port,
            3
        );
        let share: Vec<u16> = (0..2)
            .map(|r| {
                node_for_slot(&m, 5, true, ReplicaPolicy::Share, r)
                    .unwrap()
                    .port
            })
            .collect();
        assert_eq!(share, vec![1, 3]);
        // A shard without replicas serves reads from its master even under 'always'.
        assert_eq!(
            node_for_slot(&m, 9000, true, ReplicaPolicy::Always, 0)
                .unwrap()
                .port,
            2
        );
    }

    #[test]
    fn keyless_commands_skip_a_master_whose_slots_all_moved_away() {
        let mut m = map();
        let to = NodeAddr::new("h", 1);
        for s in 8192..=16383 {
            m.patch(s, &to);
        }
        for r in 0..8 {
            assert_eq!(random_master(&m, r).unwrap().port, 1);
        }
    }

    #[test]
    fn an_empty_map_routes_nowhere() {
        assert!(node_for_slot(&SlotMap::default(), 0, false, ReplicaPolicy::Never, 0).is_none());
        assert!(random_master(&SlotMap::default(), 0).is_none());
        assert_eq!(random_master(&map(), 1).unwrap().port, 2);
    }
}
