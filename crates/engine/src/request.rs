//! The per-request state machine. The io layer asks `next_action` where to send a request, and
//! feeds back what happened (`on_reply`, `on_connection_lost`, `on_protocol_error`); each returns a decision as data.
//!
//! Rules (SPEC §4): MOVED → patch that slot, resend, refresh in the background; ASK → ASKING and
//! the command back-to-back on the target, no map change; TRYAGAIN / CLUSTERDOWN / LOADING /
//! MASTERDOWN → retry with backoff within the retry budget, then surface the server's error;
//! READONLY → refresh and retry; at most `max_redirections` MOVED/ASK hops. A write that may have
//! reached the server is never resent after a connection drop: that could apply it twice.

use std::borrow::Cow;

use crate::error::{Error, ErrorKind};
use crate::redirect::{classify, Redirect};
use crate::resp::Reply;
use crate::route::{node_for_slot, random_master, ReplicaPolicy};
use crate::topology::{NodeAddr, SlotMap};

/// Where a request is meant to go before any redirection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The owner of a hash slot.
    Slot(u16),
    /// Any master (keyless commands).
    Random,
    /// One node, whatever the map says (topology queries, per-node fan-out).
    Node(NodeAddr),
}

/// Knobs that shape retries, shared by every request of a client.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub max_redirections: u8,
    /// How long (ms since the request started) TRYAGAIN/CLUSTERDOWN/... and lost connections
    /// may be retried before the error is surfaced.
    pub budget_ms: u64,
    pub replicas: ReplicaPolicy,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_redirections: 16,
            budget_ms: 5_000,
            replicas: ReplicaPolicy::Never,
        }
    }
}

/// What to do with a request now. The node is borrowed from the slot map when it comes from
/// there (every routed command): cloning its address cost an allocation per command sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action<'m> {
    /// Write it to `node`, preceded by ASKING when `asking`.
    Send {
        node: Cow<'m, NodeAddr>,
        asking: bool,
    },
    /// No slot map covers it yet: park it until one is adopted.
    AwaitMap,
}

/// What a reply or a failure means for the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Deliver this reply (values and ordinary server errors alike) to the caller.
    Done(Reply),
    /// Ask `next_action` again now (after ASK: it answers with the ASK target).
    Resend,
    /// Patch `slot` → `addr` in the map, refresh in the background, then resend.
    Moved { slot: u16, addr: NodeAddr },
    /// Wait `delay_ms` (refreshing the map first when `refresh`), then resend.
    Retry { delay_ms: u64, refresh: bool },
    /// Give up with this error.
    Fail(Error),
}

/// What a request was last retried after: a commandTimeout error names it, so a caller can tell
/// a command that waited out a failover (CLUSTERDOWN) from one a silent server never answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryCause {
    TryAgain,
    Loading,
    ClusterDown,
    MasterDown,
    ReadOnly,
    ConnectionRefused,
    ConnectionLost,
}

impl RetryCause {
    pub fn as_str(self) -> &'static str {
        match self {
            RetryCause::TryAgain => "TRYAGAIN",
            RetryCause::Loading => "LOADING",
            RetryCause::ClusterDown => "CLUSTERDOWN",
            RetryCause::MasterDown => "MASTERDOWN",
            RetryCause::ReadOnly => "READONLY",
            RetryCause::ConnectionRefused => "a refused connection",
            RetryCause::ConnectionLost => "a lost connection",
        }
    }
}

/// One request's routing state.
#[derive(Clone, Debug)]
pub struct Request {
    pub target: Target,
    pub readonly: bool,
    started_ms: u64,
    redirections: u8,
    retries: u32,
    /// Where the next retry's delay is on its 25 → 250 ms ladder; `rewind_backoff` puts it back
    /// at the bottom. Apart from `retries`, which counts every retry for the error message.
    backoff_step: u8,
    /// One byte, in the padding: the io layer keeps one Request per command in flight.
    last_retry: Option<RetryCause>,
    /// Boxed: an ASK is rare, and the io layer keeps one Request per command in flight.
    ask: Option<Box<NodeAddr>>,
}

impl Request {
    pub fn new(target: Target, readonly: bool, now_ms: u64) -> Self {
        Request {
            target,
            readonly,
            started_ms: now_ms,
            redirections: 0,
            retries: 0,
            backoff_step: 0,
            last_retry: None,
            ask: None,
        }
    }

    /// The cluster changed while this request waited to retry (the io layer resends it at once):
    /// its next wait starts again at 25 ms. A node that has not caught up with the change yet is
    /// asked again soon, not after the longest step the failover had reached.
    pub fn rewind_backoff(&mut self) {
        self.backoff_step = 0;
    }

    pub fn redirections(&self) -> u8 {
        self.redirections
    }

    /// How many times the request was retried, and after what the last time (None: never).
    pub fn retried(&self) -> Option<(u32, RetryCause)> {
        self.last_retry.map(|c| (self.retries, c))
    }

    /// Where to send the request next. `rand` picks among replicas or masters.
    pub fn next_action<'m>(
        &mut self,
        map: Option<&'m SlotMap>,
        policy: &RetryPolicy,
        rand: u32,
    ) -> Action<'m> {
        if let Some(node) = self.ask.take() {
            return Action::Send {
                node: Cow::Owned(*node),
                asking: true,
            };
        }
        let node = match (&self.target, map) {
            // A pinned node lives in the request, not the map: the one owned case left.
            (Target::Node(n), _) => Some(Cow::Owned(n.clone())),
            (Target::Slot(s), Some(m)) => {
                node_for_slot(m, *s, self.readonly, policy.replicas, rand).map(Cow::Borrowed)
            }
            (Target::Random, Some(m)) => random_master(m, rand).map(Cow::Borrowed),
            (_, None) => None,
        };
        match node {
            Some(node) => Action::Send {
                node,
                asking: false,
            },
            None => Action::AwaitMap,
        }
    }

    /// Interprets the server's reply, received from `from` at `now_ms`.
    pub fn on_reply(
        &mut self,
        reply: Reply,
        from: &NodeAddr,
        now_ms: u64,
        policy: &RetryPolicy,
    ) -> Outcome {
        let Reply::Error(msg) = &reply else {
            return Outcome::Done(reply);
        };
        if let Target::Node(_) = self.target {
            // Pinned to one node (a node handle, a topology query): the caller asked for that
            // node's answer, redirections included, as a raw client would give it.
            return Outcome::Done(reply);
        }
        let redirect = match classify(msg, from) {
            Ok(Some(r)) => r,
            Ok(None) => return Outcome::Done(reply),
            Err(e) => {
                return Outcome::Fail(Error::new(
                    ErrorKind::Protocol,
                    format!("{from} sent a malformed redirection: {e}"),
                ))
            }
        };
        match redirect {
            Redirect::Moved { slot, addr } => match self.hop(policy, from, "MOVED") {
                Some(err) => Outcome::Fail(err),
                None => Outcome::Moved { slot, addr },
            },
            Redirect::Ask { addr, .. } => match self.hop(policy, from, "ASK") {
                Some(err) => Outcome::Fail(err),
                None => {
                    self.ask = Some(Box::new(addr));
                    Outcome::Resend
                }
            },
            Redirect::TryAgain => self.backoff(reply, now_ms, policy, RetryCause::TryAgain),
            Redirect::Loading => self.backoff(reply, now_ms, policy, RetryCause::Loading),
            Redirect::ClusterDown => self.backoff(reply, now_ms, policy, RetryCause::ClusterDown),
            Redirect::MasterDown => self.backoff(reply, now_ms, policy, RetryCause::MasterDown),
            Redirect::ReadOnly => self.backoff(reply, now_ms, policy, RetryCause::ReadOnly),
        }
    }

    /// The connection to `node` failed or dropped. `written` says whether the request's bytes may
    /// have reached the server.
    pub fn on_connection_lost(
        &mut self,
        node: &NodeAddr,
        written: bool,
        cause: &str,
        now_ms: u64,
        policy: &RetryPolicy,
    ) -> Outcome {
        if written && !self.readonly {
            return Outcome::Fail(Error::new(
                ErrorKind::ConnectionLost,
                format!(
                    "connection to {node} lost after the command was sent ({cause}); it may or may not have been applied"
                ),
            ));
        }
        let (kind, why) = if written {
            (ErrorKind::ConnectionLost, RetryCause::ConnectionLost)
        } else {
            (ErrorKind::ConnectionRefused, RetryCause::ConnectionRefused)
        };
        let err = Reply::Error(format!("{} {node}: {cause}", kind.code()).into());
        match self.backoff(err, now_ms, policy, why) {
            Outcome::Done(_) => Outcome::Fail(Error::new(
                kind,
                format!("could not reach {node} within the retry budget: {cause}"),
            )),
            other => other,
        }
    }

    /// The connection to `node` broke the framing (`cause` says how; it never quotes reply
    /// bytes) and was closed. A request that was written fails with PROTOCOL, read or write:
    /// nobody knows which reply was its own, and a server that mangled it once may mangle a
    /// resend the same way, so retrying would only spin through the retry budget. One that was
    /// never written is as safe to send again as after any other loss.
    pub fn on_protocol_error(
        &mut self,
        node: &NodeAddr,
        written: bool,
        cause: &str,
        now_ms: u64,
        policy: &RetryPolicy,
    ) -> Outcome {
        if !written {
            return self.on_connection_lost(node, false, cause, now_ms, policy);
        }
        let outcome = if self.readonly {
            "it was not retried"
        } else {
            "the command had been sent, so it may or may not have been applied"
        };
        Outcome::Fail(Error::new(
            ErrorKind::Protocol,
            format!(
                "the server at {node} sent a reply that could not be parsed ({cause}); the connection was closed and will be replaced; {outcome}"
            ),
        ))
    }

    fn hop(&mut self, policy: &RetryPolicy, from: &NodeAddr, what: &str) -> Option<Error> {
        self.redirections += 1;
        (self.redirections > policy.max_redirections).then(|| {
            Error::new(
                ErrorKind::MaxRedirections,
                format!(
                    "too many redirections ({} allowed); the last was {what} from {from}",
                    policy.max_redirections
                ),
            )
        })
    }

    fn backoff(
        &mut self,
        reply: Reply,
        now_ms: u64,
        policy: &RetryPolicy,
        cause: RetryCause,
    ) -> Outcome {
        if now_ms.saturating_sub(self.started_ms) >= policy.budget_ms {
            return Outcome::Done(reply);
        }
        // A map refresh first, unless the slot is only busy (TRYAGAIN) or its node loading.
        let refresh = !matches!(cause, RetryCause::TryAgain | RetryCause::Loading);
        self.retries += 1;
        self.last_retry = Some(cause);
        // 25, 50, 100, 200, then 250 ms: quick for a short TRYAGAIN, gentle during a failover.
        let delay_ms = (25u64 << self.backoff_step.min(4)).min(250);
        self.backoff_step = self.backoff_step.saturating_add(1);
        Outcome::Retry { delay_ms, refresh }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> SlotMap {
        let mut m = SlotMap::default();
        m.assign(
            0,
            16383,
            crate::topology::Shard {
                master: a(1),
                replicas: vec![a(2)],
            },
        );
        m
    }

    fn a(port: u16) -> NodeAddr {
        NodeAddr::new("127.0.0.1", port)
    }

    fn err(s: &str) -> Reply {
        Reply::Error(s.to_string().into())
    }

    #[test]
    fn a_value_or_an_ordinary_error_completes_the_request() {
        let p = RetryPolicy::default();
        let mut r = Request::new(Target::Slot(5), false, 0);
        assert_eq!(
            r.on_reply(Reply::Int(3), &a(1), 0, &p),
            Outcome::Done(Reply::Int(3))
        );
        let wrongtype = err("WRONGTYPE Operation against a key holding the wrong kind of value");
        assert_eq!(
            r.on_reply(wrongtype.clone(), &a(1), 0, &p),
            Outcome::Done(wrongtype)
        );
    }

    #[test]
    fn without_a_map_a_slot_request_waits_and_with_one_it_goes_to_the_owner() {
        let p = RetryPolicy::default();
        let mut r = Request::new(Target::Slot(5), false, 0);
        assert_eq!(r.next_action(None, &p, 0), Action::AwaitMap);
        assert_eq!(
            r.next_action(Some(&map()), &p, 0),
            Action::Send {
                node: Cow::Owned(a(1)),
                asking: false
            }
        );
        let mut k = Request::new(Target::Random, false, 0);
        assert_eq!(
            k.next_action(Some(&map()), &p, 9),
            Action::Send {
                node: Cow::Owned(a(1)),
                asking: false
            }
        );
        let mut n = Request::new(Target::Node(a(7)), false, 0);
        assert_eq!(
            n.next_action(None, &p, 0),
            Action::Send {
                node: Cow::Owned(a(7)),
                asking: false
            }
        );
    }

    #[test]
    fn moved_asks_for_a_patch_and_counts_a_hop() {
        let p = RetryPolicy::default();
        let mut r = Request::new(Target::Slot(3999), false, 0);
        let out = r.on_reply(err("MOVED 3999 127.0.0.1:6381"), &a(1), 0, &p);
        assert_eq!(
            out,
            Outcome::Moved {
                slot: 3999,
                addr: a(6381)
            }
        );
        assert_eq!(r.redirections(), 1);
    }

    #[test]
    fn ask_sends_once_with_asking_to_the_target_then_back_to_the_map() {
        let p = RetryPolicy::default();
        let m = map();
        let mut r = Request::new(Target::Slot(3999), false, 0);
        assert_eq!(
            r.on_reply(err("ASK 3999 127.0.0.1:6390"), &a(1), 0, &p),
            Outcome::Resend
        );
        assert_eq!(
            r.next_action(Some(&m), &p, 0),
            Action::Send {
                node: Cow::Owned(a(6390)),
                asking: true
            }
        );
        assert_eq!(
            r.next_action(Some(&m), &p, 0),
            Action::Send {
                node: Cow::Owned(a(1)),
                asking: false
            }
        );
    }

    #[test]
    fn a_request_pinned_to_a_node_gets_its_redirections_as_replies() {
        let p = RetryPolicy::default();
        let mut r = Request::new(Target::Node(a(1)), false, 0);
        let moved = err("MOVED 5 127.0.0.1:2");
        assert_eq!(
            r.on_reply(moved.clone(), &a(1), 0, &p),
            Outcome::Done(moved)
        );
        let tryagain = err("TRYAGAIN later");
        assert_eq!(
            r.on_reply(tryagain.clone(), &a(1), 0, &p),
            Outcome::Done(tryagain)
        );
    }

    #[test]
    fn the_redirection_budget_ends_a_moved_loop() {
        let p = RetryPolicy {
            max_redirections: 3,
            ..RetryPolicy::default()
        };
        let mut r = Request::new(Target::Slot(1), false, 0);
        for _ in 0..3 {
            assert!(matches!(
                r.on_reply(err("MOVED 1 127.0.0.1:2"), &a(1), 0, &p),
                Outcome::Moved { .. }
            ));
        }
        match r.on_reply(err("ASK 1 127.0.0.1:2"), &a(1), 0, &p) {
            Outcome::Fail(e) => assert_eq!(e.kind, ErrorKind::MaxRedirections),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn transient_cluster_errors_back_off_then_surface_when_the_budget_is_spent() {
        let p = RetryPolicy {
            budget_ms: 1000,
            ..RetryPolicy::default()
        };
        let mut r = Request::new(Target::Slot(1), false, 0);
        assert_eq!(r.retried(), None);
        assert_eq!(
            r.on_reply(
                err("TRYAGAIN Multiple keys request during rehashing of slot"),
                &a(1),
                10,
                &p
            ),
            Outcome::Retry {
                delay_ms: 25,
                refresh: false
            }
        );
        assert_eq!(
            r.on_reply(err("CLUSTERDOWN The cluster is down"), &a(1), 100, &p),
            Outcome::Retry {
                delay_ms: 50,
                refresh: true
            }
        );
        assert_eq!(r.retried(), Some((2, RetryCause::ClusterDown)));
        assert_eq!(
            r.on_reply(
                err("LOADING Redis is loading the dataset in memory"),
                &a(1),
                200,
                &p
            ),
            Outcome::Retry {
                delay_ms: 100,
                refresh: false
            }
        );
        assert!(matches!(
            r.on_reply(
                err("READONLY You can't write against a read only replica."),
                &a(1),
                300,
                &p
            ),
            Outcome::Retry { refresh: true, .. }
        ));
        assert_eq!(r.retried(), Some((4, RetryCause::ReadOnly)));
        let down = err("CLUSTERDOWN The cluster is down");
        assert_eq!(
            r.on_reply(down.clone(), &a(1), 1000, &p),
            Outcome::Done(down)
        );
    }

    #[test]
    fn a_rewound_backoff_starts_again_at_the_bottom_and_keeps_counting_retries() {
        let p = RetryPolicy::default();
        let mut r = Request::new(Target::Slot(1), false, 0);
        let down = || err("CLUSTERDOWN The cluster is down");
        let delays: Vec<u64> = (0..6)
            .map(|i| match r.on_reply(down(), &a(1), i * 10, &p) {
                Outcome::Retry { delay_ms, .. } => delay_ms,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(delays, [25, 50, 100, 200, 250, 250]);
        r.rewind_backoff();
        assert_eq!(
            r.on_reply(down(), &a(1), 100, &p),
            Outcome::Retry {
                delay_ms: 25,
                refresh: true
            }
        );
        assert_eq!(r.retried(), Some((7, RetryCause::ClusterDown)));
    }

    #[test]
    fn a_hostile_redirection_fails_the_request_with_a_protocol_error() {
        let p = RetryPolicy::default();
        let mut r = Request::new(Target::Slot(1), false, 0);
        match r.on_reply(err("MOVED __proto__ 127.0.0.1:2"), &a(1), 0, &p) {
            Outcome::Fail(e) => assert_eq!(e.kind, ErrorKind::Protocol),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_write_that_may_have_been_sent_is_never_retried_after_a_drop() {
        let p = RetryPolicy::default();
        let mut w = Request::new(Target::Slot(1), false, 0);
        match w.on_connection_lost(&a(1), true, "reset", 0, &p) {
            Outcome::Fail(e) => assert_eq!(e.kind, ErrorKind::ConnectionLost),
            other => panic!("{other:?}"),
        }
        // Not written yet: safe to retry, even a write.
        assert!(matches!(
            w.on_connection_lost(&a(1), false, "refused", 0, &p),
            Outcome::Retry { .. }
        ));
        // A read is retried even when it was written.
        let mut r = Request::new(Target::Slot(1), true, 0);
        assert!(matches!(
            r.on_connection_lost(&a(1), true, "reset", 0, &p),
            Outcome::Retry { .. }
        ));
        assert_eq!(r.retried(), Some((1, RetryCause::ConnectionLost)));
        match r.on_connection_lost(&a(1), false, "refused", 6000, &p) {
            Outcome::Fail(e) => assert_eq!(e.kind, ErrorKind::ConnectionRefused),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_framing_error_fails_written_requests_with_protocol_and_resends_unwritten_ones() {
        let p = RetryPolicy::default();
        for readonly in [false, true] {
            let mut r = Request::new(Target::Slot(1), readonly, 0);
            match r.on_protocol_error(&a(1), true, "protocol error: x", 0, &p) {
                Outcome::Fail(e) => {
                    assert_eq!(e.kind, ErrorKind::Protocol);
                    assert!(e.message.contains("connection was closed"), "{}", e.message);
                    let unknown = e.message.contains("may or may not have been applied");
                    assert_eq!(unknown, !readonly, "{}", e.message);
                }
                other => panic!("{other:?}"),
            }
            assert!(matches!(
                r.on_protocol_error(&a(1), false, "protocol error: x", 0, &p),
                Outcome::Retry { .. }
            ));
        }
    }
}
