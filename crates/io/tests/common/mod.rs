//! The client side shared by the scripted-server test suites (`hostile_server.rs`,
//! `write_safety.rs`): a `clustr_io::Client` seeded with a fake node, fed commands one by one,
//! with its completions and events collected from the sink, and a panic hook that counts panics
//! on the client's io thread (one there would otherwise only show up as a hang). The hostile
//! suites share the fake node in `fake`; `write_safety.rs` scripts its own.

// Each test binary includes this module and uses only part of it.
#![allow(dead_code)]

pub mod fake;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use clustr_engine::request::Target;
use clustr_engine::resp::{encode_command, encode_reply};
use clustr_engine::topology::NodeAddr;
use clustr_engine::{Error, Reply};
use clustr_io::{Client, Command, Config, Event, Sink};

/// How long any single expectation may take (RELIABILITY asks for 1 s; a loaded 2-core box
/// gets slack).
pub const WITHIN: Duration = Duration::from_secs(3);

static IO_PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_io_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some("redis-clustr-io") {
                IO_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            default(info)
        }));
    });
}

pub fn assert_no_io_panic() {
    assert_eq!(
        IO_PANICS.load(Ordering::SeqCst),
        0,
        "the client's io thread panicked"
    );
}

/// A reply as a server would put it on the wire.
pub fn encoded(r: &Reply) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_reply(&mut out, r);
    out.to_vec()
}

/// The error `got` must be, by client code ("CONNECTION_LOST", "PROTOCOL", …).
pub fn expect_err(got: Result<Reply, Error>, code: &str, what: &str) -> Error {
    match got {
        Err(e) if e.kind.code() == code => e,
        other => panic!("{what}: expected a {code} error, got {other:?}"),
    }
}

pub struct Harness {
    pub client: Client,
    sink: Arc<Sink>,
    pub events: Vec<Event>,
    pub done: HashMap<u32, Result<Reply, Error>>,
    next_id: u32,
}

impl Harness {
    /// A client seeded with the fake node on `port`; waits for its first slot map when `ready`.
    pub async fn start(port: u16, ready: bool) -> Harness {
        Self::start_with(port, ready, |_| {}).await
    }

    /// Like `start`, with the configuration adjusted by `tweak` (TLS, password, timeouts).
    pub async fn start_with(port: u16, ready: bool, tweak: impl FnOnce(&mut Config)) -> Harness {
        count_io_panics();
        let sink = Arc::new(Sink::new(Box::new(|| {})));
        let mut config = Config {
            seeds: vec![NodeAddr::new("127.0.0.1", port)],
            connect_timeout_ms: 2_000,
            ..Config::default()
        };
        tweak(&mut config);
        let client = Client::start(config, sink.clone()).unwrap();
        let mut h = Harness {
            client,
            sink,
            events: Vec::new(),
            done: HashMap::new(),
            next_id: 1,
        };
        if ready {
            h.wait_event("Ready", |e| matches!(e, Event::Ready)).await;
        }
        h
    }

    pub fn pump(&mut self) {
        let (completions, events) = self.sink.take();
        for c in completions {
            assert!(
                self.done.insert(c.id, c.result).is_none(),
                "command {} completed twice",
                c.id
            );
        }
        self.events.extend(events);
    }

    /// Submits a command routed by its first argument's slot; returns its id.
    pub fn submit(&mut self, args: &[&[u8]], readonly: bool) -> u32 {
        let (id, cmd) = self.command(args, readonly);
        self.client.submit(vec![cmd]);
        id
    }

    /// Like `submit`, but written from this thread when the client can (`Client::direct`);
    /// returns its id and whether it was.
    pub fn submit_direct(&mut self, args: &[&[u8]], readonly: bool) -> (u32, bool) {
        let (id, cmd) = self.command(args, readonly);
        match self.client.direct(cmd) {
            Ok(()) => (id, true),
            Err(cmd) => {
                self.client.submit(vec![cmd]);
                (id, false)
            }
        }
    }

    fn command(&mut self, args: &[&[u8]], readonly: bool) -> (u32, Command) {
        let id = self.next_id;
        self.next_id += 1;
        let mut bytes = BytesMut::new();
        encode_command(&mut bytes, args);
        let slot = clustr_engine::slot::slot(args.get(1).copied().unwrap_or(b""));
        let cmd = Command {
            id,
            flags: 0,
            target: Target::Slot(slot),
            readonly,
            fanout: None,
            tx: None,
            bytes: bytes.freeze(),
        };
        (id, cmd)
    }

    /// The result of command `id`, which must arrive within `WITHIN`.
    pub async fn result(&mut self, id: u32) -> Result<Reply, Error> {
        let start = Instant::now();
        loop {
            self.pump();
            if let Some(r) = self.done.remove(&id) {
                return r;
            }
            assert!(
                start.elapsed() < WITHIN,
                "command {id} not settled within {WITHIN:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub async fn run(&mut self, args: &[&[u8]], readonly: bool) -> Result<Reply, Error> {
        let id = self.submit(args, readonly);
        self.result(id).await
    }

    pub async fn wait_event(&mut self, what: &str, pred: impl Fn(&Event) -> bool) {
        let start = Instant::now();
        loop {
            self.pump();
            if self.events.iter().any(&pred) {
                return;
            }
            assert!(
                start.elapsed() < WITHIN,
                "no {what} event within {WITHIN:?}; events: {:?}",
                self.events
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}
