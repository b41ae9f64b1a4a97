//! Bookkeeping for commands that travel as several: a command split across slots, and a batch
//! (`client.batch().exec()`) sent as one record. Each part travels as its own command with an id
//! from a range the shim never uses (high bit set), and its completion is folded into its
//! parent here, on the JS thread, before anything reaches JS: the caller sees one reply per split
//! command and one completion per batch. A batch's command may itself be split; its parts fold
//! into it first, then it folds into the batch.

use clustr_engine::split::{Merger, Plan};
use clustr_io::Completion;
// Ids are ours (sequential): Fx hashes them far cheaper than SipHash, with nothing to defend.
use rustc_hash::FxHashMap as HashMap;

/// Ids with this bit set belong to parts; the shim's ids stay below it.
const PART_BIT: u32 = 0x8000_0000;

enum Parent {
    Split {
        flags: u8,
        merger: Merger,
    },
    /// A batch: each command's completion in the batch's order, kept whole (flags and all)
    /// because every command converts its reply with its own flags.
    Batch {
        results: Vec<Option<Completion>>,
        left: usize,
    },
}

/// What a fold finished: an ordinary completion, or a whole batch.
pub enum Done {
    One(Completion),
    /// Every command of batch `id`, in the batch's order.
    Batch {
        id: u32,
        results: Vec<Completion>,
    },
}

#[derive(Default)]
pub struct Splits {
    next: u32,
    parents: HashMap<u32, Parent>,
    /// part id → (parent id, part index)
    parts: HashMap<u32, (u32, usize)>,
}

impl Splits {
    fn part_ids(&mut self, parent: u32, n: usize) -> Vec<u32> {
        (0..n)
            .map(|i| {
                self.next = (self.next + 1) & !PART_BIT;
                let id = self.next | PART_BIT;
                self.parts.insert(id, (parent, i));
                id
            })
            .collect()
    }

    /// Registers a split of command `parent`; returns the ids its parts must carry.
    pub fn add(&mut self, parent: u32, flags: u8, plan: &Plan) -> Vec<u32> {
        self.parents.insert(
            parent,
            Parent::Split {
                flags,
                merger: Merger::new(plan),
            },
        );
        self.part_ids(parent, plan.parts.len())
    }

    /// Registers batch `parent` of `n` commands; returns the ids its commands must carry.
    pub fn add_batch(&mut self, parent: u32, n: usize) -> Vec<u32> {
        self.parents.insert(
            parent,
            Parent::Batch {
                results: (0..n).map(|_| None).collect(),
                left: n,
            },
        );
        self.part_ids(parent, n)
    }

    pub fn is_part(id: u32) -> bool {
        id & PART_BIT != 0
    }

    /// Folds a part's completion in; returns what it finished, if anything. A client-side
    /// failure of any part of a split fails the split at once; its later parts are then dropped.
    /// A batch finishes when every one of its commands has.
    pub fn complete(&mut self, mut c: Completion) -> Option<Done> {
        // A loop, not recursion: a split command inside a batch folds twice.
        loop {
            let (parent, i) = self.parts.remove(&c.id)?;
            let done = match self.parents.get_mut(&parent)? {
                Parent::Split { flags, merger } => {
                    let result = match c.result {
                        Err(e) => Err(e),
                        Ok(reply) => Ok(merger.add(i, reply)?),
                    };
                    let flags = *flags;
                    self.parents.remove(&parent);
                    Completion {
                        id: parent,
                        flags,
                        result,
                    }
                }
                Parent::Batch { results, left } => {
                    let slot = results.get_mut(i)?;
                    if slot.is_none() {
                        *left -= 1;
                    }
                    *slot = Some(c);
                    if *left > 0 {
                        return None;
                    }
                    let Some(Parent::Batch { results, .. }) = self.parents.remove(&parent) else {
                        return None;
                    };
                    return Some(Done::Batch {
                        id: parent,
                        results: results.into_iter().flatten().collect(),
                    });
                }
            };
            if !Self::is_part(done.id) {
                return Some(Done::One(done));
            }
            c = done;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clustr_engine::Reply;

    fn ok(id: u32, v: &str) -> Completion {
        Completion {
            id,
            flags: 0,
            result: Ok(Reply::Bulk(bytes::Bytes::copy_from_slice(v.as_bytes()))),
        }
    }

    #[test]
    fn a_batch_completes_once_in_its_own_order_whatever_order_its_commands_finish_in() {
        let mut s = Splits::default();
        let ids = s.add_batch(7, 3);
        assert!(ids.iter().all(|&i| Splits::is_part(i)));
        assert!(s.complete(ok(ids[2], "c")).is_none());
        assert!(s.complete(ok(ids[0], "a")).is_none());
        let Some(Done::Batch { id, results }) = s.complete(ok(ids[1], "b")) else {
            panic!("the batch should be done");
        };
        assert_eq!(id, 7);
        let got: Vec<_> = results
            .iter()
            .map(|c| match &c.result {
                Ok(Reply::Bulk(b)) => b.clone(),
                _ => panic!("not a bulk"),
            })
            .collect();
        assert_eq!(got, vec!["a", "b", "c"]);
        assert!(s.parents.is_empty() && s.parts.is_empty());
    }

    #[test]
    fn a_split_command_inside_a_batch_folds_into_its_place() {
        let mut s = Splits::default();
        let ids = s.add_batch(9, 2);
        let args: Vec<&[u8]> = vec![b"mget", b"a", b"b"];
        let plan = clustr_engine::split::plan(&args).expect("a and b are in different slots");
        let parts = s.add(ids[1], 0, &plan);
        assert!(s.complete(ok(ids[0], "x")).is_none());
        let mut done = None;
        for (k, &p) in parts.iter().enumerate() {
            let reply = Reply::Array(vec![Reply::Bulk(bytes::Bytes::from(format!("v{k}")))]);
            done = s.complete(Completion {
                id: p,
                flags: 0,
                result: Ok(reply),
            });
        }
        let Some(Done::Batch { id, results }) = done else {
            panic!("the batch should be done after the last part");
        };
        assert_eq!(id, 9);
        assert_eq!(results.len(), 2);
        assert!(matches!(&results[1].result, Ok(Reply::Array(v)) if v.len() == 2));
    }
}
