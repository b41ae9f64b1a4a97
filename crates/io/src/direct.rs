//! Commands written from the caller's thread. When a caller has nothing else in flight (one
//! GET at a time, the common shape of request-handling code), waking the io thread to write its
//! command costs more than the write itself. The driver publishes where each slot's master is
//! and that node's plain TCP connection (`Routes`); `Client::direct` writes a lone command
//! there and tells the driver (through a side queue, see `Direct`), which from then on treats
//! it like any command it sent: reply, redirection, retry, timeout and connection loss all take
//! the usual path.
//!
//! Only the simple case goes direct: one command, one slot, its master (no replica reads), a
//! plain TCP connection that is up. Anything else goes through the driver as before.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use clustr_engine::request::{Request, Target};
use clustr_engine::route::ReplicaPolicy;
use clustr_engine::topology::{NodeAddr, SlotMap};
use rustc_hash::FxHashMap;
use tokio::sync::mpsc;

use crate::driver::{Driver, Kind};
use crate::wire::Wire;
use crate::{Command, Event, Msg};

/// What the caller's thread needs to write a command itself.
pub(crate) struct Routes {
    map: Arc<SlotMap>,
    wires: FxHashMap<NodeAddr, (u64, Arc<Wire>)>,
}

/// A command the caller's thread wrote: on connection `gen` of `addr`, at reply position `seq`.
pub(crate) struct Written {
    cmd: Command,
    addr: NodeAddr,
    gen: u64,
    seq: u64,
}

/// Shared by the driver and the caller's thread.
pub(crate) struct Direct {
    /// As last published by the driver (None: write nothing directly).
    routes: Mutex<Option<Arc<Routes>>>,
    /// Commands written and not yet taken by the driver. They are not sent over the driver's
    /// channel: that would wake the io thread for each, to compete for the CPU with the server
    /// that is answering; the driver takes them before it handles anything else (`take`), and
    /// their replies, coming after their bytes, reach it only through that same loop.
    written: Mutex<Vec<Written>>,
    any: AtomicBool,
    /// With commandTimeout the driver is woken anyway, so a command's deadline starts at once.
    wake: bool,
}

impl Direct {
    pub fn new(wake: bool) -> Arc<Direct> {
        Arc::new(Direct {
            routes: Mutex::new(None),
            written: Mutex::new(Vec::new()),
            any: AtomicBool::new(false),
            wake,
        })
    }
}

/// Writes `cmd` on its slot's master connection from this thread, or hands it back.
pub(crate) fn send(
    direct: &Direct,
    tx: &mpsc::UnboundedSender<Msg>,
    cmd: Command,
) -> Result<(), Command> {
    let Target::Slot(slot) = cmd.target else {
        return Err(cmd);
    };
    if cmd.fanout.is_some() || cmd.tx.is_some() {
        return Err(cmd);
    }
    let routes = direct
        .routes
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let Some(routes) = routes else {
        return Err(cmd);
    };
    let Some((addr, (gen, wire))) = routes
        .map
        .master(slot)
        .and_then(|a| routes.wires.get_key_value(a))
    else {
        return Err(cmd);
    };
    let bytes = cmd.bytes.clone();
    let mut cmd = Some(cmd);
    // Runs under the wire's lock, before the bytes can leave: the driver learns of the command
    // before any reply to it can reach it.
    let announce = |seq| {
        let written = Written {
            cmd: cmd.take().expect("announced once"),
            addr: addr.clone(),
            gen: *gen,
            seq,
        };
        direct
            .written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(written);
        direct.any.store(true, Ordering::Release);
        true
    };
    if wire.hand([Some((bytes, 1)), None], announce).is_none() {
        // The connection is closing: the caller sends it the usual way, which reports what
        // becomes of it.
        if let Some(c) = cmd {
            return Err(c);
        }
    }
    if direct.wake {
        let _ = tx.send(Msg::Wake);
    }
    Ok(())
}

impl Driver {
    /// Takes the commands the caller's thread wrote since last time.
    pub(crate) fn take_written(&mut self) {
        if !self.direct.any.load(Ordering::Acquire) {
            return;
        }
        let written = {
            let mut w = self
                .direct
                .written
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            self.direct.any.store(false, Ordering::Relaxed);
            std::mem::take(&mut *w)
        };
        for w in written {
            if self.stopped {
                // Cannot happen (every wire is closed before the driver stops): CLOSED if it did.
                self.submit(vec![w.cmd]);
            } else {
                self.written(w.cmd, w.addr, w.gen, w.seq);
            }
        }
    }

    /// The caller's thread wrote `cmd` on connection `gen` of `addr`, at reply position `seq`.
    fn written(&mut self, cmd: Command, addr: NodeAddr, gen: u64, seq: u64) {
        let now = self.now_ms();
        self.clients += 1;
        let req = Request::new(cmd.target, cmd.readonly, now);
        let key = self.insert(Kind::Client(cmd.id, cmd.flags), req, cmd.bytes);
        let ticket = (key, self.gen_of(key));
        if let Some(ms) = self.cfg.command_timeout_ms {
            self.deadlines.push_back((now + ms, ticket));
        }
        if !self.nodes.written(&addr, gen, seq, ticket) {
            // The connection failed before the driver heard of the command: it may have
            // reached the server, so it counts as sent on a lost connection.
            let Some(e) = self.entries[key].as_mut() else {
                return;
            };
            let cause = "the connection closed";
            let outcome = e
                .req
                .on_connection_lost(&addr, true, cause, now, &self.cfg.retry);
            self.apply(key, outcome);
        }
    }

    /// Publishes the routes again when the map or a connection changed in this iteration.
    pub(crate) fn publish_routes(&mut self) {
        let changed = self.events.iter().any(|e| {
            matches!(
                e,
                Event::Topology(..) | Event::NodeReady(_) | Event::NodeDown(..) | Event::End
            )
        });
        if !changed {
            return;
        }
        let routes = match &self.map {
            Some(map) if !self.stopped && self.cfg.retry.replicas == ReplicaPolicy::Never => {
                let wires = self
                    .nodes
                    .wires()
                    .map(|(a, gen, w)| (a.clone(), (gen, w.clone())))
                    .collect();
                Some(Arc::new(Routes {
                    map: map.clone(),
                    wires,
                }))
            }
            _ => None,
        };
        *self.direct.routes.lock().unwrap_or_else(|e| e.into_inner()) = routes;
    }
}
