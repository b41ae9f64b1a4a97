//! Parses the shim's command batch and prepares each command for the driver: validated, routed to
//! a slot, and encoded as RESP. This runs on the JS thread inside the one native call per tick.
//!
//! Batch format (little-endian), one record per command:
//! `id: u32 | flags: u8 | [session: u32 when flags has FLAG_SESSION] | [len: u32 | "host:port"
//! when flags has FLAG_NODE] | argc: u32 | argc × (len: u32 | bytes)`; args[0] is the command
//! name. A FLAG_SESSION record with argc 0 ends that WATCH session. A length of `LARGE_REF`
//! stands for a large byte argument passed beside the batch: `LARGE_REF | index: u32` is
//! `large[index]` (lib/encoder.js), read here directly so a big value is copied once, into the
//! wire bytes. A length with `BLOB_BIT` set stands for a string argument kept in the blob, a
//! second buffer after the records: `BLOB_BIT | n` is the blob's next n bytes (the shim joins
//! short strings and encodes them once per flush, see lib/encoder.js). A FLAG_TX record holds a
//! transaction's commands, a FLAG_BATCH record a batch's (see `Parser::batch`).

use bytes::BytesMut;
use clustr_engine::command::CommandSpec;
use clustr_engine::fanout::{self, Aggregate};
use clustr_engine::keys::{self, Route};
use clustr_engine::request::Target;
use clustr_engine::resp::encode_command;
use clustr_engine::split;
use clustr_engine::topology::NodeAddr;
use clustr_engine::{command, Error, ErrorKind, Reply};
use clustr_io::{Command, Completion, PsKind, PubSubOp, SessionOp, TxBytes};

use super::splits::Splits;

/// Commands that change a connection's state. On a connection shared by every caller they would
/// leak into other callers' commands, so they are refused with a pointer to the right API.
const CONNECTION_STATE: &[(&str, &str)] = &[
    ("multi", "use batch() / multi() from the client instead"),
    ("exec", "use batch() / multi() from the client instead"),
    ("discard", "use batch() / multi() from the client instead"),
    (
        "watch",
        "use client.watch(keys, cb), which gives the transaction a connection of its own",
    ),
    (
        "unwatch",
        "call unwatch() on the session client.watch() gave you",
    ),
    ("select", "Redis Cluster only has database 0"),
    ("monitor", "MONITOR would take over a shared connection"),
    ("hello", "the client negotiates the protocol itself"),
    ("reset", "RESET would clear the shared connection's state"),
    ("quit", "call quit() on the client"),
    ("auth", "pass redisOptions.password instead"),
    ("readonly", "use the slaves option instead"),
    ("readwrite", "use the slaves option instead"),
    (
        "asking",
        "the client sends ASKING itself when following ASK",
    ),
];

/// In place of an argument's length: the argument is the large one at the next u32's index.
const LARGE_REF: u32 = u32::MAX;
/// Set in an argument's length: the argument is that many bytes of the blob, in order.
const BLOB_BIT: u32 = 0x8000_0000;

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
    large: &'a [&'a [u8]],
    /// The blob, and how much of it the arguments read so far took.
    blob: &'a [u8],
    blob_pos: usize,
}

impl<'a> Cursor<'a> {
    fn u32(&mut self) -> Option<u32> {
        let v = self.b.get(self.pos..self.pos + 4)?;
        self.pos += 4;
        Some(u32::from_le_bytes([v[0], v[1], v[2], v[3]]))
    }
    fn u8(&mut self) -> Option<u8> {
        let v = *self.b.get(self.pos)?;
        self.pos += 1;
        Some(v)
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let v = self.b.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(v)
    }
    /// One argument: inline bytes, the blob's next bytes, or a reference to a large one.
    fn arg(&mut self) -> Option<&'a [u8]> {
        match self.u32()? {
            LARGE_REF => {
                let i = self.u32()?;
                self.large.get(i as usize).copied()
            }
            n if n & BLOB_BIT != 0 => {
                let end = self.blob_pos.checked_add((n & !BLOB_BIT) as usize)?;
                let v = self.blob.get(self.blob_pos..end)?;
                self.blob_pos = end;
                Some(v)
            }
            n => self.bytes(n as usize),
        }
    }
}

/// What one batch turns into.
#[derive(Default)]
pub struct Parsed {
    pub commands: Vec<Command>,
    pub pubsub: Vec<PubSubOp>,
    pub sessions: Vec<SessionOp>,
    pub rejected: Vec<Completion>,
}

/// Commands handed to the driver at a time while a large batch is still being parsed.
const CHUNK: usize = 4096;

/// Splits a batch into commands for the driver, subscription changes and immediate rejections.
/// `blob` holds the string arguments its records take in order, `large` the large arguments they
/// refer to. Every `CHUNK` commands, what has been parsed so far goes to `hand` (the driver
/// starts sending it while the rest is parsed, and 100,000 commands in one tick never sit in one
/// vector); the remainder is returned.
pub fn parse(
    batch: &[u8],
    blob: &[u8],
    prefix: Option<&[u8]>,
    large: &[&[u8]],
    splits: &mut Splits,
    hand: &mut dyn FnMut(Parsed),
) -> Parsed {
    let mut p = Parser {
        parsed: Parsed::default(),
        out: BytesMut::with_capacity(batch.len() + blob.len() + (batch.len() + blob.len()) / 2),
        prefix,
        splits,
    };
    let mut args: Vec<&[u8]> = Vec::with_capacity(8);
    let mut c = Cursor {
        b: batch,
        pos: 0,
        large,
        blob,
        blob_pos: 0,
    };
    while c.pos < batch.len() {
        let (Some(id), Some(flags)) = (c.u32(), c.u8()) else {
            break;
        };
        let session = if flags & FLAG_SESSION != 0 {
            match c.u32() {
                Some(s) => Some(s),
                None => break,
            }
        } else {
            None
        };
        if flags & FLAG_TX != 0 {
            match read_tx(&mut c) {
                Some(cmds) => p.transaction(id, flags, session, &cmds),
                None => break,
            }
            continue;
        }
        if flags & FLAG_BATCH != 0 {
            if p.batch(id, &mut c).is_none() {
                break;
            }
            continue;
        }
        let node = if flags & FLAG_NODE != 0 {
            match c.u32().and_then(|n| c.bytes(n as usize)) {
                Some(a) => Some(a),
                None => break,
            }
        } else {
            None
        };
        let Some(argc) = c.u32() else { break };
        if let (Some(session), 0) = (session, argc) {
            p.parsed.sessions.push(SessionOp::End { session });
            continue;
        }
        if read_args(&mut c, argc, &mut args).is_none() {
            break;
        }
        p.command(id, flags, node, session, &args);
        if p.parsed.commands.len() >= CHUNK {
            hand(std::mem::take(&mut p.parsed));
        }
    }
    p.parsed
}

/// Reads `argc` arguments into `args` (cleared first).
fn read_args<'a>(c: &mut Cursor<'a>, argc: u32, args: &mut Vec<&'a [u8]>) -> Option<()> {
    args.clear();
    for _ in 0..argc {
        args.push(c.arg()?);
    }
    Some(())
}

struct Parser<'s> {
    parsed: Parsed,
    /// Every command's wire bytes are split off this one buffer.
    out: BytesMut,
    prefix: Option<&'s [u8]>,
    splits: &'s mut Splits,
}

impl Parser<'_> {
    fn reject(&mut self, id: u32, flags: u8, result: Result<Reply, Error>) {
        self.parsed.rejected.push(Completion { id, flags, result });
    }

    /// A batch record: `n: u32 | n × (flags: u8 | argc: u32 | args)`. Each command travels on
    /// its own (routed, split, retried like any other) under an id of the batch's; the batch
    /// completes once, with every reply in its order (see `splits`). None: the record is cut.
    fn batch<'a>(&mut self, id: u32, c: &mut Cursor<'a>) -> Option<()> {
        let n = c.u32()? as usize;
        // Cap what an impossible count could make us reserve: every command takes 5+ bytes.
        if n > c.b.len() / 5 {
            return None;
        }
        let ids = self.splits.add_batch(id, n);
        let mut args: Vec<&[u8]> = Vec::with_capacity(8);
        for part in ids {
            let flags = c.u8()?;
            let argc = c.u32()?;
            read_args(c, argc, &mut args)?;
            if args.first().is_some_and(|n| PsKind::parse(n).is_some()) {
                // The shim sends a batch with subscriptions command by command.
                self.reject(
                    part,
                    flags,
                    Ok(Reply::Error(
                        "ERR subscriptions cannot be part of a batch".into(),
                    )),
                );
                continue;
            }
            self.command(part, flags & FLAG_BUFFERS_ONLY, None, None, &args);
        }
        Some(())
    }

    fn transaction(&mut self, id: u32, flags: u8, session: Option<u32>, cmds: &[Vec<&[u8]>]) {
        match transaction(cmds, self.prefix, &mut self.out) {
            Ok(cmd) => match session {
                Some(session) => self.parsed.sessions.push(SessionOp::Cmd {
                    session,
                    id,
                    flags,
                    target: cmd.target,
                    replies: cmd.tx.map_or(1, |t| t.replies),
                    bytes: cmd.bytes,
                }),
                None => self.parsed.commands.push(Command { id, flags, ..cmd }),
            },
            Err(reply) => self.reject(id, flags, Ok(reply)),
        }
    }

    /// One command: a (un)subscription, a session's command, a split, or a routed command.
    fn command(
        &mut self,
        id: u32,
        flags: u8,
        node: Option<&[u8]>,
        session: Option<u32>,
        args: &[&[u8]],
    ) {
        if let Some(kind) = args
            .first()
            .and_then(|n| PsKind::parse(n))
            .filter(|_| node.is_none() && session.is_none())
        {
            match subscription(kind, args) {
                Ok(names) => self.parsed.pubsub.push(PubSubOp {
                    id,
                    flags,
                    kind,
                    names,
                }),
                Err(reply) => self.reject(id, flags, Ok(reply)),
            }
            return;
        }
        // The prefix goes on the keys only (not on channels, which took the branch above); the
        // command is then routed by its prefixed keys, as the server will store them.
        let prefixed = self.prefix.and_then(|p| super::prefix::apply(p, args));
        let view;
        let argv: &[&[u8]] = match &prefixed {
            Some(p) => {
                view = super::prefix::view(p);
                &view
            }
            None => args,
        };
        let prepared = prepare(argv, session.is_some()).and_then(|p| match node {
            Some(n) => Ok(Prepared {
                target: Target::Node(parse_addr(n)?),
                cross_slot: false,
                fanout: None,
                ..p
            }),
            None => Ok(p),
        });
        let p = match prepared {
            Ok(p) => p,
            // Argument-count and numkeys mistakes: answer as the server would (code ERR), which
            // is what node_redis users got before.
            Err(e) if e.kind == ErrorKind::InvalidArg && e.message.starts_with("wrong number") => {
                self.reject(
                    id,
                    flags,
                    Ok(Reply::Error(format!("ERR {}", e.message).into())),
                );
                return;
            }
            Err(e) => {
                self.reject(id, flags, Err(e));
                return;
            }
        };
        let out = &mut self.out;
        if let Some(session) = session {
            // Pinned to the session's connection: never split or fanned out.
            encode_command(out, argv);
            self.parsed.sessions.push(SessionOp::Cmd {
                session,
                id,
                flags,
                target: p.target,
                bytes: out.split().freeze(),
                replies: 1,
            });
            return;
        }
        // Keys over several slots, in a command that keeps its meaning when split.
        if let Some(plan) = p.cross_slot.then(|| split::plan(argv)).flatten() {
            let ids = self.splits.add(id, flags, &plan);
            let mut part_args: Vec<&[u8]> = Vec::new();
            for (i, (part, part_id)) in plan.parts.iter().zip(ids).enumerate() {
                part_args.clear();
                part_args.extend(plan.part_args(i).map(|a| argv[a]));
                encode_command(out, &part_args);
                self.parsed.commands.push(Command {
                    id: part_id,
                    flags,
                    target: Target::Slot(part.slot),
                    readonly: p.readonly,
                    fanout: None,
                    tx: None,
                    bytes: out.split().freeze(),
                });
            }
            return;
        }
        encode_command(out, argv);
        self.parsed.commands.push(Command {
            id,
            flags,
            target: p.target,
            readonly: p.readonly,
            fanout: p.fanout,
            tx: None,
            bytes: out.split().freeze(),
        });
    }
}

/// The names of a (un)subscription; subscribing needs at least one, as the server requires.
fn subscription(kind: PsKind, args: &[&[u8]]) -> Result<Vec<bytes::Bytes>, Reply> {
    let names: Vec<bytes::Bytes> = args[1..]
        .iter()
        .map(|a| bytes::Bytes::copy_from_slice(a))
        .collect();
    if names.is_empty()
        && matches!(
            kind,
            PsKind::Subscribe | PsKind::PSubscribe | PsKind::SSubscribe
        )
    {
        return Err(Reply::Error(
            format!(
                "ERR wrong number of arguments for '{}' command",
                kind.name()
            )
            .into(),
        ));
    }
    Ok(names)
}

/// Flag bit: the command is pinned to one node (a `connections[...]` handle).
const FLAG_NODE: u8 = 2;
/// Flag bit: the record is a transaction: `ncmds: u32 | ncmds × (argc: u32 | args)`.
const FLAG_TX: u8 = 4;
/// Flag bit: the record belongs to a WATCH session (its own connection).
const FLAG_SESSION: u8 = 8;
/// Flag bit: the record is a batch: `n: u32 | n × (flags: u8 | argc: u32 | args)`.
const FLAG_BATCH: u8 = 16;
/// The one flag a batch's command may carry itself: bulk replies as Buffers.
const FLAG_BUFFERS_ONLY: u8 = super::convert::FLAG_BUFFERS;

fn read_tx<'a>(c: &mut Cursor<'a>) -> Option<Vec<Vec<&'a [u8]>>> {
    let n = c.u32()?;
    let mut cmds = Vec::with_capacity((n as usize).min(1024));
    for _ in 0..n {
        let argc = c.u32()?;
        let mut args = Vec::with_capacity((argc as usize).min(64));
        for _ in 0..argc {
            args.push(c.arg()?);
        }
        cmds.push(args);
    }
    Some(cmds)
}

/// A MULTI … EXEC block for one slot's owner; CROSSSLOT (as the server would answer) when the
/// commands' keys span slots, since a transaction runs on one node.
fn transaction(
    cmds: &[Vec<&[u8]>],
    prefix: Option<&[u8]>,
    out: &mut BytesMut,
) -> Result<Command, Reply> {
    // Each command's keys get the prefix before the slots are compared.
    let prefixed: Vec<_> = cmds
        .iter()
        .map(|args| prefix.and_then(|p| super::prefix::apply(p, args)))
        .collect();
    let views: Vec<Vec<&[u8]>> = cmds
        .iter()
        .zip(&prefixed)
        .map(|(args, p)| {
            p.as_deref()
                .map_or_else(|| args.clone(), super::prefix::view)
        })
        .collect();
    let cmds = &views[..];
    let mut slot = None;
    for args in cmds {
        let p =
            prepare(args, false).map_err(|e| Reply::Error(format!("ERR {}", e.message).into()))?;
        if let Some(name) = args.first() {
            if PsKind::parse(name).is_some() {
                return Err(Reply::Error(
                    "ERR subscriptions cannot be part of a transaction".into(),
                ));
            }
        }
        let s = match p.target {
            Target::Slot(s) if !p.cross_slot => Some(s),
            Target::Slot(_) => return Err(crossslot()),
            _ => None,
        };
        match (slot, s) {
            (Some(a), Some(b)) if a != b => return Err(crossslot()),
            (None, Some(b)) => slot = Some(b),
            _ => {}
        }
    }
    encode_command(out, &[b"MULTI"]);
    for args in cmds {
        encode_command(out, args);
    }
    encode_command(out, &[b"EXEC"]);
    let bytes = out.split().freeze();
    Ok(Command {
        id: 0,
        flags: 0,
        target: slot.map_or(Target::Random, Target::Slot),
        readonly: false,
        fanout: None,
        tx: Some(TxBytes {
            replies: cmds.len() + 2,
        }),
        bytes,
    })
}

fn crossslot() -> Reply {
    Reply::Error("CROSSSLOT Keys in request don't hash to the same slot".into())
}

fn parse_addr(a: &[u8]) -> Result<NodeAddr, Error> {
    let bad = || Error::new(ErrorKind::InvalidArg, "node address must be \"host:port\"");
    let s = std::str::from_utf8(a).map_err(|_| bad())?;
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().map_err(|_| bad())?;
    Ok(NodeAddr::new(host, port))
}

/// Where a command goes, whether it only reads, and whether its keys span slots.
struct Prepared {
    target: Target,
    readonly: bool,
    cross_slot: bool,
    fanout: Option<Aggregate>,
}

/// `session`: the command runs on a WATCH session's own connection, where WATCH and UNWATCH
/// are what the connection is for.
fn prepare(args: &[&[u8]], session: bool) -> Result<Prepared, Error> {
    let Some(name) = args.first() else {
        return Err(Error::new(ErrorKind::InvalidArg, "empty command"));
    };
    let watching = |n: &str| session && (n == "watch" || n == "unwatch");
    if let Some((_, why)) = CONNECTION_STATE
        .iter()
        .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name) && !watching(n))
    {
        return Err(Error::new(
            ErrorKind::InvalidArg,
            format!("{} is not allowed on a cluster client: {why}", upper(name)),
        ));
    }
    // CLIENT REPLY OFF|SKIP silences replies: on a shared, FIFO-matched connection every later
    // reply would go to the wrong caller.
    if name.eq_ignore_ascii_case(b"client")
        && args
            .get(1)
            .is_some_and(|a| a.eq_ignore_ascii_case(b"reply"))
    {
        return Err(Error::new(
            ErrorKind::InvalidArg,
            "CLIENT REPLY is not allowed on a cluster client: replies are matched to callers in order",
        ));
    }
    let spec = command::resolve(args);
    if let Some(s) = spec {
        if s.first_key > 0 && !s.has_movable_keys() && args.len() <= s.first_key as usize {
            return Err(Error::new(
                ErrorKind::NoKey,
                format!("{} needs a key and none was given", upper(name)),
            ));
        }
    }
    let readonly = spec.is_some_and(CommandSpec::is_readonly);
    let (route, _) = keys::route_of(args)?;
    let target = match route {
        Route::Slot(s) => Target::Slot(s),
        Route::NoKeys => Target::Random,
        // Unless split, the first key's owner answers with CROSSSLOT, as the server would.
        Route::CrossSlot => Target::Slot(first_key_slot(spec, args)),
    };
    Ok(Prepared {
        target,
        readonly,
        cross_slot: route == Route::CrossSlot,
        fanout: spec
            .filter(|_| route == Route::NoKeys)
            .and_then(fanout::aggregate),
    })
}

fn first_key_slot(spec: Option<&'static CommandSpec>, args: &[&[u8]]) -> u16 {
    let mut pos = Vec::new();
    if let Some(s) = spec {
        let _ = keys::key_positions(s, args, &mut pos);
    }
    pos.first()
        .map_or(0, |&i| clustr_engine::slot::slot(args[i]))
}

fn upper(name: &[u8]) -> String {
    String::from_utf8_lossy(&name[..name.len().min(64)]).to_ascii_uppercase()
}
