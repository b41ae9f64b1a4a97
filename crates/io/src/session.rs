//! WATCH sessions: a connection of its own per optimistic transaction. WATCH is connection
//! state, and on the shared pipeline any other caller's EXEC or UNWATCH would silently drop it,
//! so `client.watch(keys)` gets a dedicated connection to the owner of the keys' slot: the WATCH,
//! the reads the caller makes next and the final MULTI … EXEC all go down it, in order.
//!
//! Only the WATCH itself is routed like an ordinary request: MOVED, ASK, TRYAGAIN, a failover or
//! a refused connection re-open the session on the right node (nothing else was sent on it yet,
//! because later commands wait until WATCH is answered). After that the session is pinned: a
//! redirection is the caller's answer, as from a raw connection (the transaction then aborts
//! with EXECABORT or a nil EXEC, and the caller retries it, as with any WATCH). A lost
//! connection ends the session: WATCH no longer holds, so nothing is resent on another one.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use clustr_engine::request::{Action, Outcome, Request, RetryPolicy, Target};
use clustr_engine::route::ReplicaPolicy;
use clustr_engine::topology::NodeAddr;
use clustr_engine::{Error, ErrorKind, Reply};
use tokio::task::JoinHandle;

use crate::conn::{self, ConnEvent};
use crate::driver::Driver;
use crate::timers::TimerKind;
use crate::{closed_error, Completion};

/// Connection generations of session connections live in their own range (below pub/sub's).
const GEN_BASE: u64 = 1 << 61;
const GEN_END: u64 = 1 << 62;

/// What the embedding layer sends about sessions.
#[derive(Clone, Debug)]
pub enum SessionOp {
    /// A command on `session`. The first one of a session is its WATCH and picks the node: the
    /// owner of `target`. `replies` is more than one for a MULTI … EXEC block.
    Cmd {
        session: u32,
        id: u32,
        flags: u8,
        target: Target,
        bytes: Bytes,
        replies: usize,
    },
    /// The caller is done: close the connection once the replies it waits for are in.
    End { session: u32 },
}

/// A command not yet written.
struct Pending {
    id: u32,
    flags: u8,
    bytes: Bytes,
    replies: usize,
    seq: u64,
}

/// A command written, waiting for `left` more replies.
struct Flight {
    id: u32,
    flags: u8,
    left: usize,
    seq: u64,
    /// For a MULTI … EXEC block: the first queued command's error, kept for the message.
    first_error: Option<Reply>,
}

enum Link {
    Down,
    Connecting,
    Ready(crate::wire::Writer),
}

struct Session {
    /// The WATCH's routing state, and its bytes for a resend on another node.
    opener: Request,
    opener_cmd: (u32, u8, Bytes),
    opened: bool,
    addr: Option<NodeAddr>,
    gen: u64,
    link: Link,
    task: Option<JoinHandle<()>>,
    queued: VecDeque<Pending>,
    fifo: VecDeque<Flight>,
    ending: bool,
    /// Set once the session cannot go on; later commands fail with it.
    dead: Option<Error>,
}

#[derive(Default)]
pub(crate) struct Sessions {
    map: HashMap<u32, Session>,
    next_gen: u64,
    next_seq: u64,
    /// Sessions whose WATCH waits for a first slot map.
    awaiting: Vec<u32>,
}

impl Sessions {
    pub fn owns(gen: u64) -> bool {
        (GEN_BASE..GEN_END).contains(&gen)
    }

    fn by_gen(&self, gen: u64) -> Option<u32> {
        self.map.iter().find(|(_, s)| s.gen == gen).map(|(&k, _)| k)
    }
}

impl Driver {
    /// The WATCH is idempotent, so unlike a write it may be resent after a lost connection; and
    /// it must reach the slot's master, whatever `slaves` says.
    fn opener_policy(&self) -> RetryPolicy {
        RetryPolicy {
            replicas: ReplicaPolicy::Never,
            ..self.cfg.retry
        }
    }

    pub(crate) fn session_ops(&mut self, ops: Vec<SessionOp>) {
        let now = self.now_ms();
        for op in ops {
            match op {
                SessionOp::Cmd {
                    session,
                    id,
                    flags,
                    target,
                    bytes,
                    replies,
                } => {
                    if self.is_closing() {
                        self.done_push(Completion {
                            id,
                            flags,
                            result: Err(closed_error()),
                        });
                        continue;
                    }
                    self.client_started();
                    self.sessions.next_seq += 1;
                    let seq = self.sessions.next_seq;
                    let s = self.sessions.map.entry(session).or_insert_with(|| Session {
                        opener: Request::new(target, true, now),
                        opener_cmd: (id, flags, bytes.clone()),
                        opened: false,
                        addr: None,
                        gen: 0,
                        link: Link::Down,
                        task: None,
                        queued: VecDeque::new(),
                        fifo: VecDeque::new(),
                        ending: false,
                        dead: None,
                    });
                    if let Some(err) = s.dead.clone() {
                        self.session_finish(id, flags, Err(err));
                        continue;
                    }
                    s.queued.push_back(Pending {
                        id,
                        flags,
                        bytes,
                        replies: replies.max(1),
                        seq,
                    });
                    let unrouted = matches!(s.link, Link::Down) && !s.opened;
                    if let Some(ms) = self.cfg.command_timeout_ms {
                        self.timer(
                            Duration::from_millis(ms),
                            TimerKind::SessionDeadline(session, seq),
                        );
                    }
                    if unrouted && !self.sessions.awaiting.contains(&session) {
                        self.session_route(session);
                    } else {
                        self.session_pump(session);
                    }
                }
                SessionOp::End { session } => {
                    if let Some(s) = self.sessions.map.get_mut(&session) {
                        s.ending = true;
                    }
                    self.session_maybe_close(session);
                }
            }
        }
    }

    /// Opens the session's connection to where its WATCH must go now.
    pub(crate) fn session_route(&mut self, sid: u32) {
        let policy = self.opener_policy();
        let rand = self.rand();
        let map = self.map.clone();
        let Some(s) = self.sessions.map.get_mut(&sid) else {
            return;
        };
        if s.dead.is_some() || s.opened {
            return;
        }
        match s.opener.next_action(map.as_deref(), &policy, rand) {
            Action::AwaitMap => self.sessions.awaiting.push(sid),
            // An ASK: the slot is migrating. A session cannot follow it (every later command
            // would need its own ASKING), so it waits for the migration to settle.
            Action::Send { asking: true, .. } => {
                self.timer(Duration::from_millis(100), TimerKind::SessionRoute(sid))
            }
            Action::Send { node, .. } => {
                let node = node.into_owned();
                self.sessions.next_gen += 1;
                let gen = GEN_BASE + self.sessions.next_gen;
                s.gen = gen;
                s.link = Link::Connecting;
                s.task = Some(conn::spawn(
                    node.clone(),
                    gen,
                    self.nodes.handshake(),
                    self.tx.clone(),
                ));
                s.addr = Some(node);
            }
        }
    }

    /// A first slot map arrived: route the sessions that waited for one.
    pub(crate) fn sessions_release(&mut self) {
        for sid in std::mem::take(&mut self.sessions.awaiting) {
            self.session_route(sid);
        }
    }

    /// Discovery failed while sessions waited for a map.
    pub(crate) fn sessions_fail_awaiting(&mut self, err: &Error) {
        for sid in std::mem::take(&mut self.sessions.awaiting) {
            self.session_kill(sid, err.clone(), err.clone());
        }
    }

    /// Writes what may go out now: only the WATCH until it is answered, then everything.
    fn session_pump(&mut self, sid: u32) {
        let Some(s) = self.sessions.map.get_mut(&sid) else {
            return;
        };
        let Link::Ready(w) = &s.link else { return };
        while s.opened || s.fifo.is_empty() {
            let Some(p) = s.queued.pop_front() else { break };
            let _ = w.send(p.bytes);
            s.fifo.push_back(Flight {
                id: p.id,
                flags: p.flags,
                left: p.replies,
                seq: p.seq,
                first_error: None,
            });
            if !s.opened {
                break;
            }
        }
    }

    pub(crate) fn session_conn_event(&mut self, ev: ConnEvent) {
        let gen = ev.gen();
        let Some(sid) = self.sessions.by_gen(gen) else {
            return;
        };
        match ev {
            ConnEvent::Connected { writer, .. } => {
                if let Some(s) = self.sessions.map.get_mut(&sid) {
                    s.link = Link::Ready(writer);
                }
                self.session_pump(sid);
            }
            ConnEvent::Failed { kind, error, .. } => self.session_lost(sid, kind, &error),
            ConnEvent::Closed { error, .. } => {
                self.session_lost(sid, ErrorKind::ConnectionLost, &error)
            }
            ConnEvent::Replies { replies, .. } => {
                for reply in replies {
                    self.session_reply(sid, reply);
                }
                self.session_pump(sid);
                self.session_maybe_close(sid);
            }
        }
    }

    fn session_reply(&mut self, sid: u32, reply: Reply) {
        let now = self.now_ms();
        let policy = self.opener_policy();
        let Some(s) = self.sessions.map.get_mut(&sid) else {
            return;
        };
        let Some(f) = s.fifo.front_mut() else {
            let why = "the server sent a reply nobody asked for";
            return self.session_lost(sid, ErrorKind::Protocol, why);
        };
        f.left -= 1;
        if f.left > 0 {
            // Inside MULTI … EXEC: QUEUED, or the error that makes EXEC answer EXECABORT.
            if matches!(reply, Reply::Error(_)) && f.first_error.is_none() {
                f.first_error = Some(reply);
            }
            return;
        }
        let f = s.fifo.pop_front().expect("front checked above");
        let reply = match (reply, f.first_error) {
            // EXECABORT alone says "previous errors": name the first one.
            (Reply::Error(exec), Some(Reply::Error(first))) if exec.starts_with(b"EXECABORT") => {
                let mut m = exec.to_vec();
                m.extend_from_slice(b" (first error: ");
                m.extend_from_slice(&first[..first.len().min(200)]);
                m.push(b')');
                Reply::Error(m.into())
            }
            (r, _) => r,
        };
        if s.opened {
            return self.session_finish(f.id, f.flags, Ok(reply));
        }
        let from = s.addr.clone().unwrap_or_else(|| NodeAddr::new("", 0));
        match s.opener.on_reply(reply, &from, now, &policy) {
            Outcome::Done(Reply::Error(e)) => {
                let why = Error::new(
                    ErrorKind::Closed,
                    "the WATCH failed, so this transaction's session ended; nothing was sent",
                );
                self.session_finish(f.id, f.flags, Ok(Reply::Error(e)));
                self.session_kill(sid, why.clone(), why);
            }
            Outcome::Done(r) => {
                s.opened = true;
                self.session_finish(f.id, f.flags, Ok(r));
            }
            other => self.session_reopen(sid, other),
        }
    }

    /// The WATCH must go elsewhere (MOVED, ASK, a retryable error, a lost connection): drop the
    /// connection and route it again, or fail the whole session.
    fn session_reopen(&mut self, sid: u32, outcome: Outcome) {
        let Some(s) = self.sessions.map.get_mut(&sid) else {
            return;
        };
        if let Some(t) = s.task.take() {
            t.abort();
        }
        s.link = Link::Down;
        s.fifo.clear();
        let (id, flags, bytes) = s.opener_cmd.clone();
        if s.queued.front().map(|p| p.id) != Some(id) {
            self.sessions.next_seq += 1;
            let seq = self.sessions.next_seq;
            let s = self.sessions.map.get_mut(&sid).expect("looked up above");
            s.queued.push_front(Pending {
                id,
                flags,
                bytes,
                replies: 1,
                seq,
            });
        }
        match outcome {
            Outcome::Moved { slot, addr } => {
                self.stats.moved += 1;
                self.patch(slot, &addr);
                self.request_refresh();
                self.session_route(sid);
            }
            Outcome::Resend => self.session_route(sid),
            Outcome::Retry { delay_ms, refresh } => {
                self.stats.retries += 1;
                if refresh {
                    self.request_refresh();
                }
                self.timer(
                    Duration::from_millis(delay_ms),
                    TimerKind::SessionRoute(sid),
                );
            }
            Outcome::Fail(err) => {
                let rest = Error::new(
                    err.kind,
                    "the WATCH failed, so this transaction's session ended; nothing was sent",
                );
                self.session_kill_opener_first(sid, err, rest);
            }
            Outcome::Done(_) => {}
        }
    }

    fn session_lost(&mut self, sid: u32, kind: ErrorKind, cause: &str) {
        let now = self.now_ms();
        let policy = self.opener_policy();
        let Some(s) = self.sessions.map.get_mut(&sid) else {
            return;
        };
        let addr = s.addr.clone().unwrap_or_else(|| NodeAddr::new("", 0));
        if !s.opened && s.dead.is_none() {
            // Only the WATCH was (maybe) sent: resend it, within the retry budget.
            let outcome = s
                .opener
                .on_connection_lost(&addr, true, cause, now, &policy);
            return self.session_reopen(sid, outcome);
        }
        let kind = if kind == ErrorKind::Protocol {
            ErrorKind::Protocol
        } else {
            ErrorKind::ConnectionLost
        };
        let sent = Error::new(
            kind,
            format!("the WATCH session's connection to {addr} was lost ({cause}); the command may or may not have been applied"),
        );
        let unsent = Error::new(
            kind,
            format!("the WATCH session's connection to {addr} was lost ({cause}) before this command was sent; WATCH no longer holds, start the transaction again"),
        );
        self.session_kill(sid, sent, unsent);
    }

    /// Fails the opener (queued first) with `first` and everything else with `rest`.
    fn session_kill_opener_first(&mut self, sid: u32, first: Error, rest: Error) {
        if let Some(s) = self.sessions.map.get_mut(&sid) {
            if let Some(p) = s.queued.pop_front() {
                self.session_finish(p.id, p.flags, Err(first));
            }
        }
        self.session_kill(sid, rest.clone(), rest);
    }

    /// Ends the session: written commands fail with `sent`, unwritten and later ones with
    /// `unsent`; the connection is closed.
    fn session_kill(&mut self, sid: u32, sent: Error, unsent: Error) {
        let Some(s) = self.sessions.map.get_mut(&sid) else {
            return;
        };
        if let Some(t) = s.task.take() {
            t.abort();
        }
        s.link = Link::Down;
        s.dead = Some(unsent.clone());
        let flights: Vec<(u32, u8)> = s.fifo.drain(..).map(|f| (f.id, f.flags)).collect();
        let queued: Vec<(u32, u8)> = s.queued.drain(..).map(|p| (p.id, p.flags)).collect();
        for (id, flags) in flights {
            self.session_finish(id, flags, Err(sent.clone()));
        }
        for (id, flags) in queued {
            self.session_finish(id, flags, Err(unsent.clone()));
        }
        self.session_maybe_close(sid);
    }

    /// commandTimeout for a session command: a late reply could no longer be matched safely,
    /// so the whole session ends.
    pub(crate) fn session_deadline(&mut self, sid: u32, seq: u64) {
        let Some(s) = self.sessions.map.get(&sid) else {
            return;
        };
        let waiting = s.fifo.iter().any(|f| f.seq == seq) || s.queued.iter().any(|p| p.seq == seq);
        if !waiting {
            return;
        }
        let ms = self.cfg.command_timeout_ms.unwrap_or(0);
        let err = Error::new(
            ErrorKind::Timeout,
            format!("no reply within commandTimeout ({ms} ms); the WATCH session was closed and a write may or may not have been applied"),
        );
        self.session_kill(sid, err.clone(), err);
    }

    fn session_maybe_close(&mut self, sid: u32) {
        let Some(s) = self.sessions.map.get_mut(&sid) else {
            return;
        };
        if s.ending && s.fifo.is_empty() && (s.queued.is_empty() || s.dead.is_some()) {
            if let Some(t) = s.task.take() {
                t.abort();
            }
            self.sessions.map.remove(&sid);
            self.sessions.awaiting.retain(|&a| a != sid);
        }
    }

    fn session_finish(&mut self, id: u32, flags: u8, result: Result<Reply, Error>) {
        self.done_push(Completion { id, flags, result });
        self.client_done();
    }

    /// quit: every session connection goes (their callers have all been answered by now).
    pub(crate) fn sessions_close_all(&mut self) {
        for (_, mut s) in self.sessions.map.drain() {
            if let Some(t) = s.task.take() {
                t.abort();
            }
        }
        self.sessions.awaiting.clear();
    }
}
