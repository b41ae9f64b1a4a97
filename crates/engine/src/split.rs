//! Cross-slot multi-key commands: the plan that splits one command into one command per slot, and
//! the merge that puts the parts' replies back together in the shape the caller expects.
//!
//! Only commands whose meaning survives splitting are split (SPEC §2): DEL, UNLINK, EXISTS, TOUCH
//! (integer counts summed), MGET (values in the caller's key order) and MSET ('OK'). Everything
//! else that spans slots goes to one node and gets the server's CROSSSLOT, untouched.

use std::collections::HashMap;

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

/// One per-slot part: the argument indices of the original command it sends (the command name
/// first), and for `InOrder` the positions its results take in the final reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    pub slot: u16,
    pub args: Vec<usize>,
    pub positions: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub merge: Merge,
    pub parts: Vec<Part>,
    /// Number of keys in the original command (the length of an `InOrder` reply).
    pub keys: usize,
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
    let mut parts: Vec<Part> = Vec::new();
    let mut by_slot: HashMap<u16, usize> = HashMap::new();
    for (n, first) in (1..args.len()).step_by(step).enumerate() {
        let s = slot(args[first]);
        let i = *by_slot.entry(s).or_insert_with(|| {
            parts.push(Part {
                slot: s,
                args: vec![0],
                positions: Vec::new(),
            });
            parts.len() - 1
        });
        parts[i].args.extend(first..first + step);
        parts[i].positions.push(n);
    }
    (parts.len() > 1).then_some(Plan {
        merge,
        parts,
        keys: rest / step,
    })
}

/// Collects the parts' replies and yields the merged reply once all have arrived. The first
/// error reply wins: the caller learns that the command did not fully succeed.
#[derive(Debug)]
pub struct Merger {
    merge: Merge,
    positions: Vec<Vec<usize>>,
    remaining: usize,
    sum: i64,
    values: Vec<Reply>,
    error: Option<Reply>,
}

impl Merger {
    pub fn new(plan: &Plan) -> Self {
        Merger {
            merge: plan.merge,
            positions: plan.parts.iter().map(|p| p.positions.clone()).collect(),
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
                for (v, &pos) in items.iter().zip(&self.positions[i]) {
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
        assert_eq!(p.parts[0].args, vec![0, 1, 3]);
        assert_eq!(p.parts[0].positions, vec![0, 2]);
        assert_eq!(p.parts[1].args, vec![0, 2]);
        let mut m = Merger::new(&p);
        assert_eq!(m.add(1, Reply::Array(vec![Reply::Bulk("B".into())])), None);
        let merged = m.add(0, Reply::Array(vec![Reply::Bulk("A".into()), Reply::Nil]));
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
        assert_eq!(p.parts.iter().map(|x| x.args.len()).sum::<usize>(), 6);
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
