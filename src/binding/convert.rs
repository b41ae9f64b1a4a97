//! Rust → JS values, built in one pass on the JS thread with raw N-API calls (one call per value;
//! no intermediate JSON or per-value wrapper objects).
//!
//! Arrays are made by calling the shim's `collect` (`(...xs) => xs`) with their elements as the
//! arguments: N-API has no call that fills an array at once, and `napi_set_element` goes through
//! V8's generic property lookup for each element (5 % of the client's CPU samples in the
//! batch benchmark), where a call copies the arguments in one go. Past `MAX_ARGS` elements (they
//! go on the JS stack) an array is filled element by element as before.
//!
//! `drain` returns one flat array: for each event `0, [name, ...args]`; for each completion
//! `id, reply` on success or `-id, [code, message, causes]` on failure. Reply values follow
//! node_redis: status → string, integer → number, bulk → string (Buffer when the command's flags
//! ask for buffers), nil → null, array → array, an error nested in an array → Error with `.code`.
//! A large bulk reply becomes a Buffer (or, when ASCII, a string: see `external`) over the
//! reply's own bytes (no copy): copying 64 MiB into fresh memory here blocked the event loop for
//! about 50 ms.

use std::cell::Cell;
use std::ptr;

use clustr_engine::topology::{NodeAddr, SlotMap, TopologyChange};
use clustr_engine::{Error, Reply};
use clustr_io::{Completion, Event};

use super::external::{self, release_bytes};
use super::splits::Done;
use napi::bindgen_prelude::{FromNapiValue, ToNapiValue, TypeName, ValueType};
use napi::sys::{self, napi_env, napi_value};

/// Flag bit: bulk replies become Buffers.
pub const FLAG_BUFFERS: u8 = 1;

/// Bulk replies at least this long are handed to JS without a copy (as a Buffer, or as a string
/// when ASCII). Smaller ones are copied: an external value costs a finalizer, and a small slice
/// would keep its whole read buffer alive.
const EXTERNAL_MIN: usize = 1024 * 1024;

pub struct Drained {
    pub done: Vec<Done>,
    pub events: Vec<Event>,
    /// The shim's `collect` function, valid for the drain call (see the module comment).
    pub collect: Collector,
}

/// A JS function `(...xs) => xs`, passed by the shim to `drain`.
pub struct Collector(napi_value);

impl TypeName for Collector {
    fn type_name() -> &'static str {
        "Function"
    }
    fn value_type() -> ValueType {
        ValueType::Function
    }
}

impl FromNapiValue for Collector {
    unsafe fn from_napi_value(env: napi_env, v: napi_value) -> napi::Result<Self> {
        let mut t = 0;
        check(unsafe { sys::napi_typeof(env, v, &mut t) }, "typeof")?;
        // Anything else is ignored (arrays are then filled element by element).
        Ok(Collector(if t == sys::ValueType::napi_function {
            v
        } else {
            ptr::null_mut()
        }))
    }
}

/// The most elements passed to `collect` in one call.
const MAX_ARGS: usize = 4096;

impl TypeName for Drained {
    fn type_name() -> &'static str {
        "Array"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

type R = napi::Result<napi_value>;

fn check(status: sys::napi_status, what: &str) -> napi::Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::from_reason(format!(
            "N-API call failed: {what}"
        )))
    }
}

/// The env, the collector (see the module comment), and the string "OK" once made: the status
/// reply of every SET, made once per drain rather than once per reply.
struct Js(napi_env, napi_value, Cell<napi_value>);

impl Js {
    /// An array of `items`, in one call to the collector when it can.
    fn list(&self, items: &[napi_value]) -> R {
        if self.1.is_null() || items.len() > MAX_ARGS {
            let arr = self.array(items.len())?;
            for (i, v) in items.iter().enumerate() {
                self.set(arr, i, *v)?;
            }
            return Ok(arr);
        }
        let mut out = ptr::null_mut();
        // The collector ignores `this`: passing itself spares a napi_get_undefined per array.
        let this = self.1;
        let argv = if items.is_empty() {
            ptr::null()
        } else {
            items.as_ptr()
        };
        check(
            unsafe { sys::napi_call_function(self.0, this, self.1, items.len(), argv, &mut out) },
            "collect",
        )?;
        Ok(out)
    }
    fn array(&self, len: usize) -> R {
        let mut v = ptr::null_mut();
        check(
            unsafe { sys::napi_create_array_with_length(self.0, len, &mut v) },
            "array",
        )?;
        Ok(v)
    }
    fn set(&self, arr: napi_value, i: usize, v: napi_value) -> napi::Result<()> {
        check(
            unsafe { sys::napi_set_element(self.0, arr, i as u32, v) },
            "set",
        )
    }
    fn string(&self, s: &[u8]) -> R {
        let mut v = ptr::null_mut();
        // ASCII (most replies) is copied as Latin-1, which skips V8's UTF-8 decoder; otherwise
        // invalid UTF-8 becomes U+FFFD, as Buffer#toString does in node_redis.
        let status = if s.is_ascii() {
            unsafe {
                sys::napi_create_string_latin1(self.0, s.as_ptr().cast(), s.len() as isize, &mut v)
            }
        } else {
            unsafe {
                sys::napi_create_string_utf8(self.0, s.as_ptr().cast(), s.len() as isize, &mut v)
            }
        };
        check(status, "string")?;
        Ok(v)
    }
    /// A status reply: "OK" is made once per drain (a string value can be shared).
    fn status(&self, s: &[u8]) -> R {
        if s != b"OK" {
            return self.string(s);
        }
        if self.2.get().is_null() {
            self.2.set(self.string(s)?);
        }
        Ok(self.2.get())
    }
    /// A bulk reply as a string: a large ASCII one over the reply's own bytes (see `external`).
    fn bulk_string(&self, b: &bytes::Bytes) -> R {
        if b.len() >= EXTERNAL_MIN {
            if let Some(v) = external::ascii_string(self.0, b) {
                return Ok(v);
            }
        }
        self.string(b)
    }
    /// A Buffer of a bulk reply's bytes: shared with the reply when it is large, else copied.
    fn bulk_buffer(&self, b: &bytes::Bytes) -> R {
        if b.len() < EXTERNAL_MIN {
            return self.buffer(b);
        }
        // The Buffer points into the reply's allocation, which it keeps alive through `owner`.
        // The bytes are this reply's alone, so writes through the Buffer change nothing else.
        let owner = Box::into_raw(Box::new(b.clone()));
        let mut v = ptr::null_mut();
        let status = unsafe {
            sys::napi_create_external_buffer(
                self.0,
                b.len(),
                b.as_ptr() as *mut std::ffi::c_void,
                Some(release_bytes),
                owner.cast(),
                &mut v,
            )
        };
        if status == sys::Status::napi_ok {
            return Ok(v);
        }
        if status == sys::Status::napi_no_external_buffers_allowed {
            // A V8 sandbox (Electron) forbids them; Node returns before taking the finalizer.
            drop(unsafe { Box::from_raw(owner) });
            return self.buffer(b);
        }
        // Any other failure may or may not have run the finalizer already (Node runs it when
        // it cannot make the Buffer), so `owner` is left alone: a leak, never a double free.
        // Bulk replies are capped at 512 MiB, far below Node's Buffer limit, so this is not
        // expected to happen.
        check(status, "external buffer")?;
        Ok(v)
    }
    fn buffer(&self, s: &[u8]) -> R {
        let mut v = ptr::null_mut();
        let mut data = ptr::null_mut();
        check(
            unsafe {
                sys::napi_create_buffer_copy(self.0, s.len(), s.as_ptr().cast(), &mut data, &mut v)
            },
            "buffer",
        )?;
        Ok(v)
    }
    fn number(&self, n: f64) -> R {
        let mut v = ptr::null_mut();
        check(
            unsafe { sys::napi_create_double(self.0, n, &mut v) },
            "number",
        )?;
        Ok(v)
    }
    fn boolean(&self, b: bool) -> R {
        let mut v = ptr::null_mut();
        check(
            unsafe { sys::napi_get_boolean(self.0, b, &mut v) },
            "boolean",
        )?;
        Ok(v)
    }
    /// A command argument for a JS client: a string when the bytes are UTF-8 (node_redis writes
    /// strings fastest and they round-trip exactly), a Buffer otherwise (binary-safe).
    fn arg(&self, b: &[u8]) -> R {
        if std::str::from_utf8(b).is_ok() {
            self.string(b)
        } else {
            self.buffer(b)
        }
    }
    fn null(&self) -> R {
        let mut v = ptr::null_mut();
        check(unsafe { sys::napi_get_null(self.0, &mut v) }, "null")?;
        Ok(v)
    }
    fn error(&self, code: &[u8], msg: &[u8]) -> R {
        let (c, m) = (self.string(code)?, self.string(msg)?);
        let mut v = ptr::null_mut();
        check(
            unsafe { sys::napi_create_error(self.0, c, m, &mut v) },
            "error",
        )?;
        Ok(v)
    }
    fn addr(&self, a: &NodeAddr) -> R {
        self.string(a.to_string().as_bytes())
    }

    fn reply(&self, r: &Reply, buffers: bool) -> R {
        match r {
            Reply::Status(s) => self.status(s),
            Reply::Int(i) => self.number(*i as f64),
            Reply::Bulk(b) if buffers => self.bulk_buffer(b),
            Reply::Bulk(b) => self.bulk_string(b),
            Reply::Nil => self.null(),
            Reply::Error(e) => self.error(first_word(e), e),
            Reply::Array(items) => {
                let values = items
                    .iter()
                    .map(|item| self.reply(item, buffers))
                    .collect::<napi::Result<Vec<_>>>()?;
                self.list(&values)
            }
        }
    }

    fn failure(&self, e: &Error) -> R {
        let causes = e
            .causes
            .iter()
            .map(|(a, c, m)| {
                self.list(&[
                    self.string(a.as_bytes())?,
                    self.string(c.as_bytes())?,
                    self.string(m.as_bytes())?,
                ])
            })
            .collect::<napi::Result<Vec<_>>>()?;
        self.list(&[
            self.string(e.kind.code().as_bytes())?,
            self.string(e.message.as_bytes())?,
            self.list(&causes)?,
        ])
    }

    /// `(id, reply)` on success, `(-id, [code, message, causes])` on failure.
    fn completion(&self, c: &Completion) -> napi::Result<(f64, napi_value)> {
        let converted = match &c.result {
            Ok(r) => self
                .reply(r, c.flags & FLAG_BUFFERS != 0)
                .map(|v| (c.id as f64, v)),
            Err(e) => self.failure(e).map(|v| (-(c.id as f64), v)),
        };
        // One reply V8 cannot hold (a bulk over its string limit, say) fails its own
        // command, not every other completion of this drain.
        match converted {
            Ok(pair) => Ok(pair),
            Err(_) => Ok((-(c.id as f64), self.failure(&too_large())?)),
        }
    }

    /// A batch's completions as `[values, failed]`: `values[i]` is command i's reply, or its
    /// `[code, message, causes]` when i is listed in `failed` (null when none failed).
    fn batch(&self, results: &[Completion]) -> R {
        let mut values = Vec::with_capacity(results.len());
        let mut failed = Vec::new();
        for (i, c) in results.iter().enumerate() {
            let (id, v) = self.completion(c)?;
            if id < 0.0 {
                failed.push(self.number(i as f64)?);
            }
            values.push(v);
        }
        let failed = if failed.is_empty() {
            self.null()?
        } else {
            self.list(&failed)?
        };
        self.list(&[self.list(&values)?, failed])
    }

    fn topology(&self, map: &SlotMap, change: &TopologyChange) -> napi::Result<Vec<napi_value>> {
        let ranges = map.ranges();
        let mut shards = Vec::new();
        for (i, s) in map.shards().iter().enumerate() {
            let mut flat = Vec::new();
            for r in ranges.iter().filter(|r| r.2 as usize == i) {
                flat.push(self.number(r.0 as f64)?);
                flat.push(self.number(r.1 as f64)?);
            }
            let replicas = s
                .replicas
                .iter()
                .map(|r| self.addr(r))
                .collect::<napi::Result<Vec<_>>>()?;
            shards.push(self.list(&[
                self.addr(&s.master)?,
                self.list(&replicas)?,
                self.list(&flat)?,
            ])?);
        }
        let addrs = |v: &[NodeAddr]| -> R {
            self.list(
                &v.iter()
                    .map(|a| self.addr(a))
                    .collect::<napi::Result<Vec<_>>>()?,
            )
        };
        let moved = change
            .moved_ranges
            .iter()
            .map(|(f, l, a)| {
                self.list(&[
                    self.number(*f as f64)?,
                    self.number(*l as f64)?,
                    self.addr(a)?,
                ])
            })
            .collect::<napi::Result<Vec<_>>>()?;
        Ok(vec![
            self.string(b"topology")?,
            self.list(&shards)?,
            addrs(&change.added)?,
            addrs(&change.removed)?,
            self.list(&moved)?,
        ])
    }

    fn event(&self, e: &Event) -> R {
        let name = |n: &str| self.string(n.as_bytes());
        let items = match e {
            Event::Connect => vec![name("connect")?],
            Event::Ready => vec![name("ready")?],
            Event::FullReady => vec![name("fullReady")?],
            Event::End => vec![name("end")?],
            Event::NodeReady(a) => vec![name("nodeReady")?, self.addr(a)?],
            Event::NodeDown(a, err) => vec![name("nodeDown")?, self.addr(a)?, self.failure(err)?],
            Event::Error(err) => vec![name("error")?, self.failure(err)?],
            Event::Topology(map, change) => self.topology(map, change)?,
            Event::Message {
                kind,
                pattern,
                channel,
                payload,
                buffers,
            } => {
                let text = |b: &[u8]| {
                    if *buffers {
                        self.buffer(b)
                    } else {
                        self.string(b)
                    }
                };
                let mut items = vec![name(kind)?];
                if let Some(p) = pattern {
                    items.push(text(p)?);
                }
                items.push(text(channel)?);
                items.push(text(payload)?);
                items
            }
            Event::SubscriptionCount {
                kind,
                name: channel,
                count,
                buffers,
            } => vec![
                name(kind)?,
                if *buffers {
                    self.buffer(channel)?
                } else {
                    self.string(channel)?
                },
                self.number(*count as f64)?,
            ],
            Event::Resubscribed {
                channels,
                patterns,
                shard,
                from_ms,
                to_ms,
                node,
            } => {
                let names = |v: &[bytes::Bytes]| -> R {
                    self.list(
                        &v.iter()
                            .map(|n| self.string(n))
                            .collect::<napi::Result<Vec<_>>>()?,
                    )
                };
                vec![
                    name("resubscribed")?,
                    names(channels)?,
                    names(patterns)?,
                    names(shard)?,
                    self.number(*from_ms as f64)?,
                    self.number(*to_ms as f64)?,
                    self.addr(node)?,
                ]
            }
            Event::LinkOpen {
                id,
                addr,
                readonly,
                subscriber,
                dedicated,
            } => vec![
                name("linkOpen")?,
                self.number(*id as f64)?,
                self.string(addr.host.as_bytes())?,
                self.number(addr.port as f64)?,
                self.boolean(*readonly)?,
                self.boolean(*subscriber)?,
                self.boolean(*dedicated)?,
            ],
            Event::LinkWrite { id, commands } => {
                let cmds = self.array(commands.len())?;
                for (i, argv) in commands.iter().enumerate() {
                    let arr = self.array(argv.len())?;
                    for (j, a) in argv.iter().enumerate() {
                        self.set(arr, j, self.arg(a)?)?;
                    }
                    self.set(cmds, i, arr)?;
                }
                vec![name("linkWrite")?, self.number(*id as f64)?, cmds]
            }
            Event::LinkClose { id } => vec![name("linkClose")?, self.number(*id as f64)?],
        };
        self.list(&items)
    }
}

fn too_large() -> Error {
    Error::new(
        clustr_engine::ErrorKind::Protocol,
        "the reply could not be turned into a JS value (too large for a string? try return_buffers)",
    )
}

/// The error code of a server error: its first word.
fn first_word(e: &[u8]) -> &[u8] {
    let end = e.iter().position(|&c| c == b' ').unwrap_or(e.len()).min(64);
    &e[..end]
}

impl ToNapiValue for Drained {
    unsafe fn to_napi_value(env: napi_env, val: Self) -> R {
        let js = Js(env, val.collect.0, Cell::new(ptr::null_mut()));
        let mut out = Vec::with_capacity(2 * (val.events.len() + val.done.len()));
        for e in &val.events {
            out.push(js.number(0.0)?);
            out.push(js.event(e)?);
        }
        for d in &val.done {
            let (id, v) = match d {
                Done::One(c) => js.completion(c)?,
                Done::Batch { id, results } => (*id as f64, js.batch(results)?),
            };
            out.push(js.number(id)?);
            out.push(v);
        }
        js.list(&out)
    }
}
