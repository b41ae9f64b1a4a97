//! `NativeCluster`, the one class JS sees. Its methods are named after what they do and stay
//! small: the work is in `submit` (JS → Rust commands), `convert` (Rust → JS values) and `options`.

mod convert;
mod external;
mod options;
mod panics;
mod prefix;
mod spin;
mod splits;
mod submit;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use clustr_engine::ErrorKind;
use clustr_io::{Client, Sink};
use napi::bindgen_prelude::{BufferSlice, Function};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status};
use napi_derive::napi;

use convert::{Collector, Drained};
use options::Options;
use splits::{Done, Splits};

/// A JS function the io thread calls (with no arguments) when replies or events are waiting.
type Wake = ThreadsafeFunction<(), (), (), Status, false>;

/// natMap as a function, wrapped by the shim: `"host:port"` → `{host, port}` or null. Weak: it
/// must not keep the process alive by itself.
type NatFn = ThreadsafeFunction<String, Option<options::Seed>, String, Status, false, true>;

#[napi]
pub struct NativeCluster {
    client: Client,
    sink: Arc<Sink>,
    /// Only touched on the JS thread (submit, drain); the lock is uncontended.
    splits: Mutex<Splits>,
    /// `redisOptions.prefix`, put in front of every key argument (see `prefix`).
    prefix: Option<Vec<u8>>,
    /// Keeps this thread awake after a lone direct write (see `spin`); None when off.
    spin: Option<Arc<spin::Spin>>,
}

#[napi]
impl NativeCluster {
    /// Starts discovering the cluster. `wake` is called whenever `drain` has something to return:
    /// by the io thread (through a threadsafe function), or by the spin after a lone write.
    #[napi(constructor)]
    pub fn new(
        env: Env,
        mut options: Options,
        wake: Function<(), ()>,
        nat: Option<NatFn>,
    ) -> napi::Result<Self> {
        panics::install_counter();
        let spin_us = options
            .spin_micros
            .map_or(spin::DEFAULT_US, |us| us.min(spin::MAX_US as f64) as u32);
        let prefix = options
            .prefix
            .take()
            .map(|p| p.to_vec())
            .filter(|p| !p.is_empty());
        let mut config = options.into_config()?;
        if let Some(f) = nat {
            config.nat_map.resolver = Some(options::nat_resolver(f));
        }
        let tsfn: Wake = wake.build_threadsafe_function().build()?;
        let sink = Arc::new(Sink::new(Box::new(move || {
            tsfn.call((), ThreadsafeFunctionCallMode::NonBlocking);
        })));
        let spin = spin::Spin::start(env.raw(), spin_us, sink.clone(), &wake);
        let client = Client::start(config, sink.clone())
            .map_err(|e| napi::Error::from_reason(format!("could not start the io thread: {e}")))?;
        Ok(NativeCluster {
            client,
            sink,
            splits: Mutex::new(Splits::default()),
            prefix,
            spin,
        })
    }

    /// Routes and sends every command encoded in `batch` (the shim's format, see `submit`): its
    /// first `len` bytes are the records, the `blob_len` bytes after them the blob; `large`
    /// holds the large byte arguments its records refer to, read (copied) in this call.
    /// Commands rejected here complete with their error through `drain`, like any other.
    /// `idle`: the caller has nothing else in flight, so a lone command may be written from this
    /// thread (see clustr_io's `direct`) without overtaking any of its others.
    #[napi]
    pub fn submit(
        &self,
        batch: BufferSlice,
        len: u32,
        blob_len: u32,
        large: Option<Vec<BufferSlice>>,
        idle: Option<bool>,
    ) {
        let len = (len as usize).min(batch.len());
        let blob_end = len.saturating_add(blob_len as usize).min(batch.len());
        let large: Vec<&[u8]> = large.iter().flatten().map(|b| &b[..]).collect();
        let mut splits = self.splits.lock().unwrap_or_else(|e| e.into_inner());
        let mut hand = |parsed| self.hand(parsed);
        let mut rest = submit::parse(
            &batch[..len],
            &batch[len..blob_end],
            self.prefix.as_deref(),
            &large,
            &mut splits,
            &mut hand,
        );
        let lone = rest.commands.len() == 1
            && rest.rejected.is_empty()
            && rest.pubsub.is_empty()
            && rest.sessions.is_empty();
        if idle == Some(true) && lone {
            if let Some(cmd) = rest.commands.pop() {
                match self.client.direct(cmd) {
                    Ok(()) => {
                        if let Some(spin) = &self.spin {
                            spin.arm();
                        }
                        return;
                    }
                    Err(cmd) => rest.commands.push(cmd),
                }
            }
        }
        self.hand(rest);
    }

    /// Passes on what `submit` parsed: rejections to the sink, the rest to the io thread.
    fn hand(&self, parsed: submit::Parsed) {
        if !parsed.rejected.is_empty() {
            self.sink.push(parsed.rejected, Vec::new());
        }
        if !parsed.pubsub.is_empty() {
            self.client.pubsub(parsed.pubsub);
        }
        if !parsed.sessions.is_empty() {
            self.client.session(parsed.sessions);
        }
        if !parsed.commands.is_empty() {
            self.client.submit(parsed.commands);
        }
    }

    /// Everything finished since the last call: `[event..., id, reply, ...]` (see `convert`).
    /// `collect` is `(...xs) => xs`: arrays are made by calling it (see `convert`).
    #[napi(ts_args_type = "collect: (...xs: unknown[]) => unknown[]")]
    pub fn drain(&self, collect: Collector) -> Drained {
        let (completions, events) = self.sink.take();
        let mut done = Vec::with_capacity(completions.len());
        let mut splits = None;
        for c in completions {
            if !Splits::is_part(c.id) {
                done.push(Done::One(c));
                continue;
            }
            let splits =
                splits.get_or_insert_with(|| self.splits.lock().unwrap_or_else(|e| e.into_inner()));
            if let Some(d) = splits.complete(c) {
                done.push(d);
            }
        }
        Drained {
            done,
            events,
            collect,
        }
    }

    /// Finishes in-flight commands, then closes every connection; `end` follows.
    #[napi]
    pub fn quit(&self) {
        self.client.quit();
    }

    /// Stops wake-ups so the process can exit; called by the shim after `end`.
    #[napi]
    pub fn close(&self) {
        self.sink.release_wake();
        if let Some(spin) = &self.spin {
            spin.close();
        }
    }

    /// createClient hook: link `id`'s JS client answered its handshake; commands may flow.
    #[napi]
    pub fn link_up(&self, id: u32) {
        self.client.link_up(id);
    }

    /// createClient hook: `len` bytes of RESP replies for link `id`, in command order.
    #[napi]
    pub fn link_replies(&self, id: u32, data: BufferSlice, len: u32) {
        let len = (len as usize).min(data.len());
        self.client.link_replies(id, &data[..len]);
    }

    /// createClient hook: link `id`'s JS client failed (or could not be made). `code` is one of
    /// the client error codes; an unknown one counts as a lost connection.
    #[napi]
    pub fn link_down(&self, id: u32, code: String, message: String) {
        let kind = ErrorKind::from_code(&code).unwrap_or(ErrorKind::ConnectionLost);
        self.client.link_down(id, kind, message);
    }

    /// Counters: MOVED and ASK followed, retries, topology refreshes, slot patches.
    #[napi]
    pub fn stats(&self) -> Vec<f64> {
        let s = self.client.stats().unwrap_or_default();
        vec![
            s.moved as f64,
            s.ask as f64,
            s.retries as f64,
            s.refreshes as f64,
            s.slot_patches as f64,
            self.spin
                .as_ref()
                .map_or(0.0, |x| x.hits.load(Relaxed) as f64),
            self.spin
                .as_ref()
                .map_or(0.0, |x| x.misses.load(Relaxed) as f64),
        ]
    }
}

impl Drop for NativeCluster {
    // Collected without close(): the handle goes now (finalizers run on the loop's thread).
    fn drop(&mut self) {
        if let Some(spin) = &self.spin {
            spin.close();
        }
    }
}

/// Every top-level command name the command table knows (lowercase), for the shim's methods.
#[napi]
pub fn command_names() -> Vec<String> {
    clustr_engine::command::names()
        .map(str::to_string)
        .collect()
}

/// The slot of a key's bytes, as the client routes it.
#[napi]
pub fn key_slot(key: BufferSlice) -> u32 {
    clustr_engine::slot::slot(&key) as u32
}
