//! Bookkeeping for commands split across slots: each part travels as its own command with an id
//! from a range the shim never uses (high bit set), and its completion is folded into the parent's
//! `Merger` here, on the JS thread, before anything reaches JS. The caller sees one reply.

use std::collections::HashMap;

use clustr_engine::split::{Merger, Plan};
use clustr_io::Completion;

/// Ids with this bit set belong to split parts; the shim's ids stay below it.
const PART_BIT: u32 = 0x8000_0000;

struct Parent {
    flags: u8,
    merger: Merger,
}

#[derive(Default)]
pub struct Splits {
    next: u32,
    parents: HashMap<u32, Parent>,
    /// part id → (parent id, part index)
    parts: HashMap<u32, (u32, usize)>,
}

impl Splits {
    /// Registers a split of command `parent`; returns the ids its parts must carry.
    pub fn add(&mut self, parent: u32, flags: u8, plan: &Plan) -> Vec<u32> {
        self.parents.insert(
            parent,
            Parent {
                flags,
                merger: Merger::new(plan),
            },
        );
        (0..plan.parts.len())
            .map(|i| {
                self.next = (self.next + 1) & !PART_BIT;
                let id = self.next | PART_BIT;
                self.parts.insert(id, (parent, i));
                id
            })
            .collect()
    }

    pub fn is_part(id: u32) -> bool {
        id & PART_BIT != 0
    }

    /// Folds a part's completion in; returns the parent's completion once it is decided. A
    /// client-side failure of any part fails the parent at once; later parts are then dropped.
    pub fn complete(&mut self, c: Completion) -> Option<Completion> {
        let (parent, i) = self.parts.remove(&c.id)?;
        let entry = self.parents.get_mut(&parent)?;
        let result = match c.result {
            Err(e) => Err(e),
            Ok(reply) => Ok(entry.merger.add(i, reply)?),
        };
        let p = self.parents.remove(&parent)?;
        Some(Completion {
            id: parent,
            flags: p.flags,
            result,
        })
    }
}
