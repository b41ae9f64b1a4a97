//! The requests waiting out a retry's backoff. Each wait ends once: by its timer, or earlier when
//! the slot map changes and the wait was for the cluster to change (CLUSTERDOWN and the like,
//! see `Driver::wake_backoffs`). A token per wait tells the timer of a wait that already ended
//! (the request was resent and may be in flight, or waiting again) from the current one, so a
//! request is never sent twice. Plain data: the driver does the resending.

use rustc_hash::FxHashMap;

/// entry key → (token of its current wait, generation of the entry, ended by a changed map).
/// A request that completes while it waits (its commandTimeout) leaves its key here until its
/// timer fires; the generation then tells it from a new request in the same slot.
#[derive(Default)]
pub(crate) struct Backoffs {
    waiting: FxHashMap<usize, (u64, u64, bool)>,
    next_token: u64,
}

impl Backoffs {
    /// Entry `key` (generation `gen`) begins a wait; returns the token for its timer.
    pub(crate) fn park(&mut self, key: usize, gen: u64, on_map_change: bool) -> u64 {
        self.next_token += 1;
        self.waiting
            .insert(key, (self.next_token, gen, on_map_change));
        self.next_token
    }

    /// The timer of wait `token` fired: the generation to resend if that wait is still on.
    pub(crate) fn end(&mut self, key: usize, token: u64) -> Option<u64> {
        match self.waiting.get(&key) {
            Some(&(t, gen, _)) if t == token => {
                self.waiting.remove(&key);
                Some(gen)
            }
            _ => None,
        }
    }

    /// The map changed: ends every wait that was for that, and returns (key, generation) of
    /// each in the order the waits began.
    pub(crate) fn wake(&mut self) -> Vec<(usize, u64)> {
        let mut woken = Vec::new();
        self.waiting
            .retain(|&key, &mut (token, gen, on_map_change)| {
                if on_map_change {
                    woken.push((token, key, gen));
                }
                !on_map_change
            });
        woken.sort_unstable();
        woken.into_iter().map(|(_, key, gen)| (key, gen)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timer_ends_only_the_wait_it_was_set_for() {
        let mut b = Backoffs::default();
        let first = b.park(3, 7, true);
        assert_eq!(b.end(3, first), Some(7));
        // Ended: the same timer cannot end it again.
        assert_eq!(b.end(3, first), None);

        let stale = b.park(3, 7, true);
        assert_eq!(b.wake(), vec![(3, 7)]);
        // Woken and resent; the cut-short wait's timer still fires later and must do nothing,
        // whether the request is in flight or already waiting again.
        assert_eq!(b.end(3, stale), None);
        let again = b.park(3, 7, true);
        assert_eq!(b.end(3, stale), None);
        assert_eq!(b.end(3, again), Some(7));
    }

    #[test]
    fn a_changed_map_wakes_the_waits_for_it_in_the_order_they_began() {
        let mut b = Backoffs::default();
        b.park(9, 1, true);
        let tryagain = b.park(4, 2, false);
        b.park(2, 3, true);
        b.park(9, 4, true); // key 9 reused by a newer request: its wait replaces the old one
        assert_eq!(b.wake(), vec![(2, 3), (9, 4)]);
        assert_eq!(b.wake(), vec![]);
        // A TRYAGAIN wait stays on its timer.
        assert_eq!(b.end(4, tryagain), Some(2));
    }
}
