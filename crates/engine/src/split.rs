//! Cross-slot multi-key commands: the plan that splits one command into one command per slot, and
//! the merge that puts the parts' replies back together in the shape the caller expects.
//!
//! Only commands whose meaning survives splitting are split (SPEC §2): DEL, UNLINK, EXISTS, TOUCH
//! (integer counts summed), MGET (values in the caller's key order) and MSET ('OK'). Everything
//! else that spans slots goes to one node and gets the server's CROSSSLOT, untouched.

use crate::resp::Reply;
use crate::slot::slot;

/// How the parts' replies combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// Integer replies added up (DEL, UNLINK, EXISTS, TOUCH).
    Sum,
    /// Array replies placed back at their keys' positions (MGET).
    InOrder,
    /// Every part must answer OK (MSET).
    AllOk,
}

/// One per-slot part: which of the original command's keys it carries, as a range of
/// `Plan::keys_by_part` (key numbers, 0-based, in the caller's order within the part).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub slot: u16,
    pub keys: std::ops::Range<usize>,
}

/// Everything lives in two flat vectors whatever the number of parts: a 100-key MGET over 100
/// slots used to cost two vectors per part and a hash map, about 156 ns per key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub merge: Merge,
    pub parts: Vec<Part>,
    /// Key numbers grouped by part (each part's `keys` range indexes this).
    pub keys_by_part: Vec<usize>,
    /// Number of keys in the original command (the length of an `InOrder` reply).
    pub keys: usize,
    /// Arguments per key: 1, or 2 for MSET's key and value.
    pub step: usize,
}

impl Plan {
    /// Part `i`'s argument indices into the original command: the name, then each key's
    /// argument(s).
    pub fn part_args(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        let step = self.step;
        std::iter::once(0).chain(
            self.keys_by_part[self.parts[i].keys.clone()]
                .iter()
                .flat_map(move |&k| (1 + k * step)..(1 + (k + 1) * step)),
        )
    }

    /// Where part `i`'s results go in an `InOrder` reply: its key numbers.
    pub fn positions(&self, i: usize) -> &[usize] {
        &self.keys_by_part[self.parts[i].keys.clone()]
    }
}

/// Splits `args` (args[0] is the command name) when its keys span several slots and the command
/// is one that may be split; None otherwise.
pub fn plan(args: &[&[u8]]) -> Option<Plan> {
    let name = args.first()?;
    let (merge, step) = if name.eq_ignore_ascii_case(b"mget") {
        (Merge::InOrder, 1)
    } else if name.eq_ignore_ascii_case(b"mset") {
        (Merge::AllOk, 2)
    } else if [&b"del"[..], b"unlink", b"exists", b"touch"]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n))
    {
        (Merge::Sum, 1)
    } else {
        return None;
    };
    let rest = args.len() - 1;
    if rest < 2 * step || !rest.is_multiple_of(step) {
        return None;
    }
    let keys = rest / step;
    // (slot, key number), sorted: each slot's keys end up together, in the caller's order. The
    // parts then come in slot order, which changes nothing for the caller (replies are merged
    // by position).
    let mut order: Vec<(u16, usize)> = (0..keys).map(|k| (slot(args[1 + k * step]), k)).collect();
    order.sort_unstable();
    if order.first()?.0 == order.last()?.0 {
        return None;
    }
    let mut parts: Vec<Part> = Vec::new();
    let mut start = 0;
    for i in 1..=keys {
        if i == keys || order[i].0 != order[start].0 {
            parts.push(Part {
                slot: order[start].0,
                keys: start..i,
            });
            start = i;
        }
    }
    Some(Plan {
        merge,
        parts,
        keys_by_part: order.into_iter().map(|(_, k)| k).collect(),
        keys,
        step,
    })
}

/// Collects the parts' replies and yields the merged reply once all have arrived. The first
/// error reply wins: the caller learns that the command did not fully succeed.
#[derive(Debug)]
pub struct Merger {
    merge: Merge,
    /// Each part's key numbers (`Plan::keys_by_part` and the parts' ranges, copied once).
    keys_by_part: Vec<usize>,
    ranges: Vec<std::ops::Range<usize>>,
    remaining: usize,
    sum: i64,
    values: Vec<Reply>,
    error: Option<Reply>,
}

impl Merger {
    pub fn new(plan: &Plan) -> Self {
        Merger {
            merge: plan.merge,
            keys_by_part: if plan.merge == Merge::InOrder {
                plan.keys_by_part.clone()
            } else {
                Vec::new()
            },
            ranges: plan.parts.iter().map(|p| p.keys.clone()).collect(),
            remaining: plan.parts.len(),
            sum: 0,
            values: if plan.merge == Merge::InOrder {
                vec![Reply::Nil; plan.keys]
            } else {
                Vec::new()
            },
            error: None,
        }
    }

    /// Records part `i`'s reply; returns the merged reply when it was the last one.
    pub fn add(&mut self, i: usize, reply: Reply) -> Option<Reply> {
        self.remaining = self.remaining.saturating_sub(1);
        match (&reply, self.merge) {
            (Reply::Error(_), _) => {
                self.error.get_or_insert(reply);
            }
            (Reply::Int(n), Merge::Sum) => self.sum = self.sum.saturating_add(*n),
            (Reply::Array(items), Merge::InOrder) => {
                let positions = self
                    .ranges
                    .get(i)
                    .and_then(|r| self.keys_by_part.get(r.clone()))
                    .unwrap_or(&[]);
                for (v, &pos) in items.iter().zip(positions) {
                    self.values[pos] = v.clone();
                }
            }
            // A bulk "OK" too: the createClient hook's JS clients cannot tell status from bulk
            // strings, and any non-error reply to an MSET part means it was applied.
            (Reply::Status(_) | Reply::Bulk(_), Merge::AllOk) => {}
            _ => {
                self.error.get_or_insert(Reply::Error(
                    "ERR unexpected reply to a split command".into(),
                ));
            }
        }
        if self.remaining > 0 {
            return None;
        }
        Some(match self.error.take() {
            Some(e) => e,
            None => match self.merge {
                Merge::Sum => Reply::Int(self.sum),
                Merge::InOrder => Reply::Array(std::mem::take(&mut self.values)),
                Merge::AllOk => Reply::Status("OK".into()),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args<'a>(v: &[&'a str]) -> Vec<&'a [u8]> {
        v.iter().map(|s| s.as_bytes()).collect()
    }

    #[test]
    fn keys_in_one_slot_or_unsplittable_commands_are_not_split() {
        assert_eq!(plan(&args(&["mget", "{a}1", "{a}2"])), None);
        assert_eq!(plan(&args(&["msetnx", "a", "1", "b", "2"])), None);
        assert_eq!(plan(&args(&["get", "a"])), None);
        assert_eq!(
            plan(&args(&["mset", "a", "1", "b"])),
            None,
            "odd MSET is left to the server"
        );
    }

    #[test]
    fn mget_parts_remember_where_their_values_go() {
        // "a" and "{a}x" share a slot; "b" has another.
        let a = args(&["MGET", "a", "b", "{a}x"]);
        let p = plan(&a).unwrap();
        assert_eq!(p.merge, Merge::InOrder);
        assert_eq!(p.keys, 3);
        assert_eq!(p.parts.len(), 2);
        // Parts come in slot order: find each by its slot.
        let pa = p.parts.iter().position(|x| x.slot == slot(b"a")).unwrap();
        let pb = 1 - pa;
        assert_eq!(p.part_args(pa).collect::<Vec<_>>(), vec![0, 1, 3]);
        assert_eq!(p.positions(pa), &[0, 2]);
        assert_eq!(p.part_args(pb).collect::<Vec<_>>(), vec![0, 2]);
        let mut m = Merger::new(&p);
        assert_eq!(m.add(pb, Reply::Array(vec![Reply::Bulk("B".into())])), None);
        let merged = m.add(pa, Reply::Array(vec![Reply::Bulk("A".into()), Reply::Nil]));
        assert_eq!(
            merged,
            Some(Reply::Array(vec![
                Reply::Bulk("A".into()),
                Reply::Bulk("B".into()),
                Reply::Nil
            ]))
        );
    }

    #[test]
    fn counts_are_summed_and_mset_is_ok_only_when_every_part_is() {
        let d = args(&["del", "a", "b"]);
        let p = plan(&d).unwrap();
        let mut m = Merger::new(&p);
        assert_eq!(m.add(0, Reply::Int(1)), None);
        assert_eq!(m.add(1, Reply::Int(1)), Some(Reply::Int(2)));

        let s = args(&["mset", "a", "1", "b", "2"]);
        let p = plan(&s).unwrap();
        let all: Vec<usize> = (0..p.parts.len()).flat_map(|i| p.part_args(i)).collect();
        assert_eq!(all.len(), 6, "each part: the name, then its key and value");
        for i in 0..p.parts.len() {
            let a: Vec<usize> = p.part_args(i).collect();
            assert_eq!(a.len(), 3);
            assert_eq!(a[2], a[1] + 1, "a value follows its key");
        }
        let mut m = Merger::new(&p);
        // The first part answers as a createClient JS client does: "OK" as a bulk string.
        m.add(0, Reply::Bulk("OK".into()));
        assert_eq!(
            m.add(1, Reply::Status("OK".into())),
            Some(Reply::Status("OK".into()))
        );
    }

    #[test]
    fn the_first_error_is_the_merged_reply() {
        let p = plan(&args(&["exists", "a", "b"])).unwrap();
        let mut m = Merger::new(&p);
        m.add(0, Reply::Error("CLUSTERDOWN down".into()));
        assert_eq!(
            m.add(1, Reply::Int(1)),
            Some(Reply::Error("CLUSTERDOWN down".into()))
        );
    }
}
