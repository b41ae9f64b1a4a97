//! JS links: the second kind of node link, for redis-clustr's `createClient` hook (SPEC §5).
//!
//! A JS link looks to the driver exactly like a TCP connection (`conn`): it reports `Connected`
//! with a writer channel, `Replies` in FIFO order, and `Failed`/`Closed`. Only the transport
//! differs: the bytes the driver writes are decoded back into argv lists and handed to the
//! embedder as `Event::LinkWrite`, whose JS side calls the factory client's `send_command`; the
//! replies come back through `Client::link_replies` as RESP the embedder encoded from the JS
//! values. So every decision — routing, MOVED/ASK (ASKING travels in the same chunk as its
//! command, so it reaches the JS client right before it), retries, split/merge, fan-out,
//! pub/sub bookkeeping — stays in the driver, unchanged, in both modes.
//!
//! Each link has a small id (u32, so it is exact in a JS number) that maps to the driver's
//! (address, generation); the map lives here, shared by the io thread and the embedder's thread.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use clustr_engine::resp::{Decoder, Limits};
use clustr_engine::topology::NodeAddr;
use clustr_engine::{ErrorKind, Reply};
use tokio::sync::mpsc;

use crate::conn::ConnEvent;
use crate::{Event, Msg, Sink};

struct Link {
    addr: NodeAddr,
    gen: u64,
    /// Handed to the driver when the embedder reports the link ready.
    writer: Option<mpsc::UnboundedSender<Bytes>>,
    up: bool,
}

/// The registry of open JS links (shared by the io thread and the embedder).
pub struct JsLinks {
    sink: Arc<Sink>,
    next_id: AtomicU32,
    links: Mutex<HashMap<u32, Link>>,
}

impl std::fmt::Debug for JsLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsLinks")
    }
}

impl JsLinks {
    pub(crate) fn new(sink: Arc<Sink>) -> Self {
        JsLinks {
            sink,
            next_id: AtomicU32::new(1),
            links: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Link>> {
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The embedder's client for link `id` is ready (its handshake answered): the driver may
    /// write. None when the link is gone (closed meanwhile) or was already up.
    pub(crate) fn up(&self, id: u32) -> Option<ConnEvent> {
        let mut links = self.lock();
        let l = links.get_mut(&id).filter(|l| !l.up)?;
        l.up = true;
        Some(ConnEvent::Connected {
            addr: l.addr.clone(),
            gen: l.gen,
            writer: crate::wire::Writer::Chan(l.writer.take()?),
        })
    }

    /// Replies for link `id`, RESP-encoded by the embedder in the order of the commands. A
    /// malformed buffer (a bug on the JS side) ends the link like a framing error on a socket.
    pub(crate) fn replies(&self, id: u32, data: &[u8]) -> Option<ConnEvent> {
        let (addr, gen) = self.lock().get(&id).map(|l| (l.addr.clone(), l.gen))?;
        let mut buf = BytesMut::from(data);
        let mut decoder = Decoder::new(Limits::default());
        let mut replies = Vec::new();
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(r)) => replies.push(r),
                Ok(None) if buf.is_empty() => break,
                Ok(None) => {
                    return Some(ConnEvent::Closed {
                        addr,
                        gen,
                        kind: ErrorKind::Protocol,
                        error: "the createClient link sent an incomplete reply".into(),
                    })
                }
                Err(e) => {
                    return Some(ConnEvent::Closed {
                        addr,
                        gen,
                        kind: ErrorKind::Protocol,
                        error: format!("the createClient link sent a malformed reply: {e}"),
                    })
                }
            }
        }
        Some(ConnEvent::Replies { addr, gen, replies })
    }

    /// The embedder's client for link `id` failed (before it was up: `Failed` with `kind`;
    /// after: `Closed`, which the driver treats as a lost connection).
    pub(crate) fn down(&self, id: u32, kind: ErrorKind, error: String) -> Option<ConnEvent> {
        let links = self.lock();
        let l = links.get(&id)?;
        let (addr, gen) = (l.addr.clone(), l.gen);
        Some(if l.up {
            ConnEvent::Closed {
                addr,
                gen,
                kind: ErrorKind::ConnectionLost,
                error,
            }
        } else {
            ConnEvent::Failed {
                addr,
                gen,
                kind,
                error,
            }
        })
    }
}

/// Removes the link and tells the embedder, however the link task ends (aborted by the driver
/// on a failure, a node removal or quit; or its writer dropped).
struct Guard {
    links: Arc<JsLinks>,
    id: u32,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.links.lock().remove(&self.id);
        self.links
            .sink
            .push(Vec::new(), vec![Event::LinkClose { id: self.id }]);
    }
}

/// Opens a JS link to `addr`: asks the embedder for a client, then forwards every chunk the
/// driver writes as argv lists. `subscriber` links carry pub/sub (their replies are pushes).
pub(crate) fn spawn(
    addr: NodeAddr,
    gen: u64,
    links: Arc<JsLinks>,
    readonly: bool,
    (subscriber, dedicated): (bool, bool),
    tx: mpsc::UnboundedSender<Msg>,
) -> tokio::task::JoinHandle<()> {
    let id = loop {
        // 0 is never used: the embedder may treat it as "no link".
        let id = links.next_id.fetch_add(1, Ordering::Relaxed);
        if id != 0 && !links.lock().contains_key(&id) {
            break id;
        }
    };
    let (wtx, mut wrx) = mpsc::unbounded_channel::<Bytes>();
    links.lock().insert(
        id,
        Link {
            addr: addr.clone(),
            gen,
            writer: Some(wtx),
            up: false,
        },
    );
    links.sink.push(
        Vec::new(),
        vec![Event::LinkOpen {
            id,
            addr,
            readonly,
            subscriber,
            dedicated,
        }],
    );
    tokio::spawn(async move {
        let guard = Guard { links, id };
        let mut decoder = Decoder::new(Limits::default());
        let mut buf = BytesMut::new();
        while let Some(chunk) = wrx.recv().await {
            buf.extend_from_slice(&chunk);
            // Everything already queued goes out as one event: a burst is one JS call.
            while let Ok(more) = wrx.try_recv() {
                buf.extend_from_slice(&more);
            }
            let mut commands = Vec::new();
            // The driver writes whole commands it encoded itself, so this stops only at the end
            // of the buffer; a command past the decoder's limits (a bulk over 512 MiB, which the
            // server would refuse too) ends the link instead of stalling everything behind it.
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(Reply::Array(items))) => commands.push(
                        items
                            .into_iter()
                            .filter_map(|a| match a {
                                Reply::Bulk(b) => Some(b),
                                _ => None,
                            })
                            .collect::<Vec<Bytes>>(),
                    ),
                    Ok(None) => break,
                    Ok(Some(_)) | Err(_) => {
                        let (addr, gen) = match guard.links.lock().get(&id) {
                            Some(l) => (l.addr.clone(), l.gen),
                            None => return,
                        };
                        let error = "a command could not be passed to the createClient link".into();
                        let kind = ErrorKind::ConnectionLost;
                        let ev = ConnEvent::Closed {
                            addr,
                            gen,
                            kind,
                            error,
                        };
                        let _ = tx.send(Msg::Conn(ev));
                        return;
                    }
                }
            }
            if !commands.is_empty() {
                guard
                    .links
                    .sink
                    .push(Vec::new(), vec![Event::LinkWrite { id, commands }]);
            }
        }
    })
}

/// What the embedder reports about a link, turned into the driver's message.
pub(crate) fn send(tx: &mpsc::UnboundedSender<Msg>, ev: Option<ConnEvent>) {
    if let Some(ev) = ev {
        let _ = tx.send(Msg::Conn(ev));
    }
}
