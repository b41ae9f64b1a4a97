//! Pub/Sub, the receiving side: every frame a subscriber connection delivers — messages,
//! (un)subscription confirmations, the node's own SUNSUBSCRIBE when a shard channel's slot moves
//! away, and error replies (MOVED on SSUBSCRIBE) — turned into events, completed callers and
//! restored subscriptions. The sending side and the connections are in `pubsub`.

use bytes::Bytes;
use clustr_engine::redirect::{classify, Redirect};
use clustr_engine::Reply;

use crate::driver::Driver;
use crate::pubsub::{wall_ms, PsKind, Restore};
use crate::{Completion, Event};

impl Driver {
    /// Frames from a subscriber connection.
    pub(crate) fn ps_frames(&mut self, gen: u64, frames: Vec<Reply>) {
        for f in frames {
            match f {
                Reply::Array(items) => self.ps_push(gen, items),
                Reply::Error(e) => self.ps_error(gen, e),
                _ => {}
            }
        }
    }

    pub(crate) fn ps_push(&mut self, gen: u64, items: Vec<Reply>) {
        let mut it = items.into_iter().map(|r| match r {
            Reply::Bulk(b) | Reply::Status(b) => Some(b),
            Reply::Int(i) => Some(Bytes::from(i.to_string())),
            _ => None,
        });
        let Some(Some(word)) = it.next() else { return };
        let rest: Vec<Option<Bytes>> = it.collect();
        let get = |i: usize| rest.get(i).cloned().flatten().unwrap_or_default();
        match &word[..] {
            b"message" | b"smessage" => {
                let fam = if &word[..] == b"message" { 0 } else { 2 };
                let channel = get(0);
                let buffers = self.ps.sets[fam].get(&channel).copied().unwrap_or(false);
                let kind = if fam == 0 { "message" } else { "smessage" };
                self.events.push(Event::Message {
                    kind,
                    pattern: None,
                    channel,
                    payload: get(1),
                    buffers,
                });
            }
            b"pmessage" => {
                let pattern = get(0);
                let buffers = self.ps.sets[1].get(&pattern).copied().unwrap_or(false);
                self.events.push(Event::Message {
                    kind: "pmessage",
                    pattern: Some(pattern),
                    channel: get(1),
                    payload: get(2),
                    buffers,
                });
            }
            w => {
                let Some(kind) = PsKind::parse(w) else { return };
                let name = get(0);
                let count: i64 = std::str::from_utf8(&get(1))
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                self.ps_confirmation(gen, kind, name, count);
            }
        }
    }

    pub(crate) fn ps_confirmation(&mut self, gen: u64, kind: PsKind, name: Bytes, count: i64) {
        let mut solicited = false;
        if let Some((_, c, _)) = self.ps.conn_mut(gen) {
            if let Some(head) = c.sent.front_mut().filter(|h| h.0 == kind) {
                solicited = true;
                head.1 -= 1;
                if head.1 == 0 {
                    c.sent.pop_front();
                }
            }
        }
        if !solicited && kind == PsKind::SUnsubscribe {
            // The node gave the channel up: its slot moved. Follow it to the new owner.
            if self.ps.sets[2].contains_key(&name) {
                self.ps.home.remove(&name);
                self.ps.shard_lost.entry(name).or_insert_with(wall_ms);
                self.request_refresh();
                self.ps_schedule_resync();
            }
            return;
        }
        let fam = kind.family();
        let restoring = kind.adds()
            && self
                .ps
                .restores
                .iter_mut()
                .any(|r| r.left.remove(&(fam, name.clone())));
        self.ps_finish_restores();
        if !restoring {
            let buffers = self.ps.sets[fam].get(&name).copied().unwrap_or(false);
            self.events.push(Event::SubscriptionCount {
                kind: kind.name(),
                name: name.clone(),
                count,
                buffers,
            });
        }
        self.ps_confirm(kind, &name);
    }

    pub(crate) fn ps_finish_restores(&mut self) {
        let now = wall_ms();
        let (done, open): (Vec<Restore>, Vec<Restore>) = std::mem::take(&mut self.ps.restores)
            .into_iter()
            .partition(|r| r.left.is_empty());
        self.ps.restores = open;
        for r in done {
            let [channels, patterns, shard] = r.names;
            self.events.push(Event::Resubscribed {
                channels,
                patterns,
                shard,
                from_ms: r.from_ms,
                to_ms: now,
                node: r.node,
            });
        }
    }

    /// An error reply on a subscriber connection answers the oldest command still unconfirmed.
    pub(crate) fn ps_error(&mut self, gen: u64, err: Bytes) {
        let Some((addr, c, _)) = self.ps.conn_mut(gen) else {
            return;
        };
        let Some((kind, _, names)) = c.sent.pop_front() else {
            return;
        };
        if let Ok(Some(Redirect::Moved { slot, addr: to })) = classify(&err, &addr) {
            // The map was stale for a shard channel: patch it and subscribe on the owner.
            self.patch(slot, &to);
            self.request_refresh();
            for n in &names {
                self.ps.home.remove(n);
            }
            return self.ps_resync();
        }
        let fam = kind.family();
        for n in &names {
            if kind.adds() {
                self.ps.sets[fam].shift_remove(n);
                self.ps.home.remove(n);
            }
        }
        let failed: Vec<usize> = (0..self.ps.waiters.len())
            .filter(|&i| {
                let w = &self.ps.waiters[i];
                w.kind == kind && names.iter().any(|n| w.left.contains(n))
            })
            .collect();
        for i in failed.into_iter().rev() {
            let w = self.ps.waiters.remove(i);
            self.ps_done(w.id, w.flags, Ok(Reply::Error(err.clone())));
        }
    }

    pub(crate) fn ps_confirm(&mut self, kind: PsKind, name: &Bytes) {
        let mut finished = Vec::new();
        self.ps.waiters.retain_mut(|w| {
            if w.kind == kind && w.left.remove(name) && w.left.is_empty() {
                finished.push((w.id, w.flags, w.last.take()));
                return false;
            }
            true
        });
        for (id, flags, last) in finished {
            self.ps_done(id, flags, Ok(last.map_or(Reply::Nil, Reply::Bulk)));
        }
    }

    pub(crate) fn ps_confirm_all(&mut self, kind: PsKind) {
        let names: Vec<Bytes> = self
            .ps
            .waiters
            .iter()
            .filter(|w| w.kind == kind)
            .flat_map(|w| w.left.iter().cloned())
            .collect();
        for n in names {
            self.ps_confirm(kind, &n);
        }
    }

    pub(crate) fn ps_done(
        &mut self,
        id: u32,
        flags: u8,
        result: Result<Reply, clustr_engine::Error>,
    ) {
        self.done_push(Completion { id, flags, result });
    }
}
