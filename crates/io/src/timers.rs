//! The driver's timers: one-shot timers it sets for itself (retries, refresh rate limit,
//! topology query timeouts, reconnect backoff, redis-clustr's `wait`), the periodic safety
//! refresh, and commandTimeout deadlines, all delivered as messages to the driver loop so that
//! every state change still happens in one place. A retry's wait can also end early, when the
//! slot map changes (`wake_backoffs`, with the waits kept in `backoffs`).

use std::time::Duration;

use clustr_engine::request::{RetryCause, Target};
use clustr_engine::topology::NodeAddr;
use clustr_engine::{Error, ErrorKind};

use crate::driver::{Driver, Entry, Kind};
use crate::Msg;

/// Timers the driver sets for itself.
pub(crate) enum TimerKind {
    /// Resend entry `key` if it still waits out the backoff with this token (see `backoffs`).
    Retry(usize, u64),
    Refresh,
    /// The periodic safety refresh.
    Periodic,
    /// redis-clustr's `wait` ran out for commands queued before the first map.
    WaitExpired,
    /// A topology query (entry key, generation) got no answer in time.
    TopologyTimeout(usize, u64),
    /// A node's reconnect backoff ran out.
    Reconnect(NodeAddr),
    /// Time to fail commands past their commandTimeout.
    Deadlines,
    /// Re-make missing subscriber connections / move shard channels to their owners.
    PubSubResync,
    /// Route a WATCH session's WATCH again (after a retryable error or during a migration).
    SessionRoute(u32),
    /// A WATCH session's command (session, sequence number) reached its commandTimeout.
    SessionDeadline(u32, u64),
}

impl Driver {
    /// The timer of wait `token` of entry `key` fired: resends the entry if that wait is still
    /// on and the entry is still the request that waited. After READONLY (the node the map
    /// names as master was demoted) it waits instead for the refresh round that is asking or
    /// due: the map it has now would send it to the same node, to be refused again, and that
    /// refusal would ask for one more round. Seen in R18: the master asked for the map answered
    /// ~28 ms after a demotion, past the 25 ms first step. Other causes go at once: the same node
    /// may answer differently a moment later. The request's deadline still applies while it
    /// waits.
    fn backoff_over(&mut self, key: usize, token: u64) {
        let Some(gen) = self.backoffs.end(key, token) else {
            return;
        };
        let Some(e) = self.entry((key, gen)) else {
            return;
        };
        let readonly = matches!(e.req.retried(), Some((_, RetryCause::ReadOnly)));
        if readonly && self.refreshing() {
            self.refresh.after_round.push((key, gen));
        } else {
            self.dispatch(key);
        }
    }

    /// A slot map in which a slot moved or a node came or went was adopted: the requests waiting
    /// for the cluster to change are sent again now, routed by the new map, with their backoff
    /// back at its first step — those parked for a node that is not connected (a dead or
    /// unreachable master: `Nodes::unpark_unconnected`), then those waiting out a retry after
    /// CLUSTERDOWN, MASTERDOWN, READONLY or a lost node, in the order they began to wait.
    /// (Requests pinned to a node — a fan-out part, a topology query — are parked there again.)
    /// During a failover the whole cluster answers CLUSTERDOWN until a replica is promoted; a
    /// request that had reached the 250 ms step would otherwise sit out most of it after the
    /// promotion, and one issued early in the outage could reach its commandTimeout just after
    /// the cluster was whole again. A node that lags the change answers CLUSTERDOWN once more and
    /// is asked again 25 ms later. Only visible changes wake, and refreshes are rate-limited to
    /// one per 100 ms, so a request is sent this way at most ten times a second even while the
    /// nodes' views disagree and each refresh sees a different map; usually once per failover.
    pub(crate) fn wake_backoffs(&mut self) {
        let parked = self.nodes.unpark_unconnected();
        let woken = self.backoffs.wake();
        for ticket in parked.into_iter().chain(woken) {
            if let Some(e) = self.entry_mut(ticket) {
                e.req.rewind_backoff();
                self.dispatch(ticket.0);
            }
        }
    }

    /// Starts the periodic safety refresh and, with commandTimeout, the deadline sweep.
    pub(crate) fn start_timers(&self, periodic: Duration) {
        self.every(periodic, || TimerKind::Periodic);
        if let Some(ms) = self.cfg.command_timeout_ms {
            // Checked forty times per timeout (at least every 25 ms): a command fails at most
            // ~2.5% late, well inside the ±10% RELIABILITY allows; a few wake-ups a second cost
            // nothing next to the commands they guard.
            self.every(Duration::from_millis((ms / 40).clamp(5, 25)), || {
                TimerKind::Deadlines
            });
        }
    }

    /// Sends `make()` to the driver every `period` (first after one period) until it stops.
    fn every(&self, period: Duration, make: fn() -> TimerKind) {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tick.tick().await;
                if tx.send(Msg::Timer(make())).is_err() {
                    return;
                }
            }
        });
    }

    pub fn timer(&self, after: Duration, kind: TimerKind) {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let _ = tx.send(Msg::Timer(kind));
        });
    }

    pub(crate) fn timer_fired(&mut self, t: TimerKind) {
        match t {
            TimerKind::Retry(key, token) => self.backoff_over(key, token),
            TimerKind::Refresh => {
                self.refresh.timer_armed = false;
                self.request_refresh();
            }
            TimerKind::Periodic => self.request_refresh(),
            TimerKind::TopologyTimeout(key, gen) => {
                let node = match self.entry((key, gen)) {
                    Some(Entry {
                        kind: Kind::Topology(_),
                        req,
                        ..
                    }) => match &req.target {
                        Target::Node(n) => n.clone(),
                        _ => return,
                    },
                    _ => return,
                };
                let ms = self.cfg.connect_timeout_ms.clamp(1, 2_000);
                let why = format!("no answer to the topology query within {ms} ms");
                self.topology_failed(key, &node, ErrorKind::Timeout, &why);
            }
            TimerKind::Reconnect(addr) => self.nodes.reconnect_due(&addr),
            TimerKind::Deadlines => self.expire(),
            TimerKind::PubSubResync => self.ps_resync_due(),
            TimerKind::SessionRoute(sid) => self.session_route(sid),
            TimerKind::SessionDeadline(sid, seq) => self.session_deadline(sid, seq),
            TimerKind::WaitExpired => {
                self.wait_timer_set = false;
                if self.map.is_none() {
                    let err = self.refresh.no_map_error();
                    self.fail_awaiting(&err);
                }
            }
        }
    }

    pub(crate) fn on_timer(&mut self, t: TimerKind) {
        if !self.stopped {
            self.timer_fired(t);
        }
    }

    /// Fails every command whose commandTimeout has passed. Its ticket may still sit in a node's
    /// FIFO: the late reply then finds a dead generation and is dropped, never misdelivered.
    /// The outcome of a timed-out write is unknown: it may have been applied.
    pub(crate) fn expire(&mut self) {
        let now = self.now_ms();
        let ms = self.cfg.command_timeout_ms.unwrap_or(0);
        while let Some(&(deadline, ticket)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            if let Some(entry) = self.entry(ticket) {
                // Waiting out a failover (CLUSTERDOWN) and a server that never answered look
                // alike otherwise; the retries say which it was.
                let retried = match entry.req.retried() {
                    Some((n, cause)) => format!(
                        "; retried {n} time{}, the last after {}",
                        if n == 1 { "" } else { "s" },
                        cause.as_str()
                    ),
                    None => String::new(),
                };
                let err = Error::new(
                    ErrorKind::Timeout,
                    format!("no reply within commandTimeout ({ms} ms){retried}; a write may or may not have been applied"),
                );
                self.fail(ticket.0, err);
            }
        }
        // A connection silent for two whole timeouts while requests wait on it is closed and
        // replaced: its head request has timed out by then, and whatever holds it (a reply
        // trickling in, a blocked command, a frozen server) would hold every request behind it.
        let limit = Duration::from_millis(ms.saturating_mul(2).max(10));
        for (addr, gen) in self.nodes.stalled(limit) {
            let why = format!(
                "no reply from {addr} for {} ms while commands waited (commandTimeout {ms} ms); connection closed",
                limit.as_millis()
            );
            self.connection_lost(&addr, gen, ErrorKind::Timeout, &why);
        }
    }
}
