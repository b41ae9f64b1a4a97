//! What comes back from the command connections: connection events (ready, failed, closed),
//! replies matched to their requests, and the engine's verdict on each (done, redirect, retry,
//! fail), including the reply sequence of a MULTI … EXEC block. Subscriber connections are
//! handed to the pub/sub module.

use std::sync::Arc;
use std::time::Duration;

use clustr_engine::request::Outcome;
use clustr_engine::topology::NodeAddr;
use clustr_engine::{Error, ErrorKind, Reply};

use crate::conn::ConnEvent;
use crate::driver::{Driver, Kind};
use crate::timers::TimerKind;
use crate::Event;

fn is_redirect_or_retry(err: &[u8]) -> bool {
    [
        &b"MOVED "[..],
        b"ASK ",
        b"TRYAGAIN",
        b"CLUSTERDOWN",
        b"LOADING",
        b"MASTERDOWN",
    ]
    .iter()
    .any(|p| err.starts_with(p))
}

impl Driver {
    pub(crate) fn conn_event(&mut self, ev: ConnEvent) {
        let gen = ev.gen();
        if crate::session::Sessions::owns(gen) {
            return self.session_conn_event(ev);
        }
        if self.ps.owns(gen) {
            return match ev {
                ConnEvent::Connected { writer, .. } => self.ps_connected(gen, writer),
                ConnEvent::Failed { .. } | ConnEvent::Closed { .. } => self.ps_lost(gen),
                ConnEvent::Replies { replies, .. } => self.ps_frames(gen, replies),
            };
        }
        match ev {
            ConnEvent::Connected { addr, gen, writer } => {
                let Some(parked) = self.nodes.connected(&addr, gen, writer) else {
                    return;
                };
                if !self.connected_once {
                    self.connected_once = true;
                    self.events.push(Event::Connect);
                }
                self.events.push(Event::NodeReady(addr.clone()));
                for (ticket, asking) in parked {
                    if self.entry(ticket).is_some() {
                        self.send_entry(&addr, ticket.0, asking);
                    }
                }
                self.check_full_ready();
            }
            ConnEvent::Failed {
                addr,
                gen,
                kind,
                error,
            } => self.connection_lost(&addr, gen, kind, &error),
            ConnEvent::Closed {
                addr,
                gen,
                kind,
                error,
            } => self.connection_lost(&addr, gen, kind, &error),
            ConnEvent::Replies { addr, gen, replies } => {
                match self.nodes.replies(&addr, gen, replies) {
                    Ok(pairs) => {
                        for (ticket, reply) in pairs {
                            if let Some(t) = ticket.filter(|&t| self.entry(t).is_some()) {
                                self.on_reply(t.0, reply, &addr);
                            }
                        }
                    }
                    Err(()) => {
                        let why = "the server sent a reply nobody asked for";
                        self.connection_lost(&addr, gen, ErrorKind::Protocol, why)
                    }
                }
            }
        }
    }

    pub(crate) fn connection_lost(
        &mut self,
        addr: &NodeAddr,
        gen: u64,
        kind: ErrorKind,
        cause: &str,
    ) {
        let jitter = self.rand();
        let Some(failed) = self.nodes.failed(addr, gen, jitter) else {
            return;
        };
        self.events.push(Event::NodeDown(
            addr.clone(),
            Error::new(kind, cause.to_string()),
        ));
        let now = self.now_ms();
        let lost = failed
            .written
            .into_iter()
            .map(|k| (k, true))
            .chain(failed.unwritten.into_iter().map(|k| (k, false)));
        for ((key, gen), written) in lost {
            let Some(e) = self.entries[key].as_mut().filter(|e| e.gen == gen) else {
                continue;
            };
            if let Kind::Topology(_) = e.kind {
                self.topology_failed(key, addr, kind, cause);
                continue;
            }
            let policy = &self.cfg.retry;
            let outcome = if kind == ErrorKind::Protocol {
                e.req.on_protocol_error(addr, written, cause, now, policy)
            } else {
                e.req.on_connection_lost(addr, written, cause, now, policy)
            };
            self.apply(key, outcome);
        }
        if self.map.is_some() {
            self.request_refresh();
        }
    }

    pub(crate) fn on_reply(&mut self, key: usize, reply: Reply, from: &NodeAddr) {
        let now = self.now_ms();
        let Some(e) = self.entries[key].as_mut() else {
            return;
        };
        if let Kind::Topology(q) = e.kind {
            self.topology_reply(key, q, from, reply);
            return;
        }
        if let Kind::Learn(step) = e.kind {
            return self.learn_reply(key, step, from, reply);
        }
        let reply = match e.tx.as_mut() {
            None => reply,
            Some(tx) => {
                tx.left = tx.left.saturating_sub(1);
                if tx.left > 0 {
                    if matches!(reply, Reply::Error(_)) && tx.first_error.is_none() {
                        tx.first_error = Some(reply);
                    }
                    return;
                }
                match (reply, tx.first_error.take()) {
                    (Reply::Error(exec), Some(queued)) if exec.starts_with(b"EXECABORT") => {
                        // Nothing ran: let the queued command's redirection or retryable error
                        // decide (the block is then sent again whole); any other error is the
                        // caller's answer as EXECABORT.
                        match &queued {
                            Reply::Error(q) if is_redirect_or_retry(q) => queued,
                            _ => Reply::Error(exec),
                        }
                    }
                    (r, _) => r,
                }
            }
        };
        let outcome = e.req.on_reply(reply, from, now, &self.cfg.retry);
        self.apply(key, outcome);
    }

    pub(crate) fn apply(&mut self, key: usize, outcome: Outcome) {
        match outcome {
            Outcome::Done(r) => self.complete(key, Ok(r)),
            Outcome::Fail(err) => self.fail(key, err),
            Outcome::Resend => {
                self.stats.ask += 1;
                self.dispatch(key);
            }
            Outcome::Moved { slot, addr } => {
                self.stats.moved += 1;
                self.patch(slot, &addr);
                self.request_refresh();
                self.dispatch(key);
            }
            Outcome::Retry { delay_ms, refresh } => {
                self.stats.retries += 1;
                if refresh {
                    self.request_refresh();
                }
                let gen = self.gen_of(key);
                // The retries that refresh the map wait for the cluster to change: a new map
                // ends their wait early (`wake_backoffs`).
                let token = self.backoffs.park(key, gen, refresh);
                // Jitter spreads the retries of many requests that failed together.
                let jitter = (self.rand() % 16) as u64;
                self.timer(
                    Duration::from_millis(delay_ms + jitter),
                    TimerKind::Retry(key, token),
                );
            }
        }
    }

    pub(crate) fn patch(&mut self, slot: u16, addr: &NodeAddr) {
        let Some(map) = self.map.as_mut() else { return };
        if map.master(slot) == Some(addr) {
            return;
        }
        let before = map.clone();
        Arc::make_mut(map).patch(slot, addr);
        self.stats.slot_patches += 1;
        let change = before.diff(map);
        self.events.push(Event::Topology(map.clone(), change));
    }
}
