//! The command table: what the server says about each command (arity, legacy key range, flags,
//! cluster fan-out tips, subcommands) and fast, allocation-free lookup by name. The data itself is
//! the built-in table in `command_table.rs`, generated from Redis 7.0's `COMMAND` reply by
//! `scripts/gen-command-table.js`.

use crate::command_table::COMMANDS;

/// `write`: the command may modify data.
pub const WRITE: u32 = 1 << 0;
/// `readonly`: the command only reads data (may be sent to a replica).
pub const READONLY: u32 = 1 << 1;
/// `denyoom`: refused when the server is over its memory limit.
pub const DENYOOM: u32 = 1 << 2;
/// `module`: implemented by a module.
pub const MODULE: u32 = 1 << 3;
/// `admin`: an administrative command.
pub const ADMIN: u32 = 1 << 4;
/// `pubsub`: a Pub/Sub command.
pub const PUBSUB: u32 = 1 << 5;
/// `noscript`: not allowed from scripts.
pub const NOSCRIPT: u32 = 1 << 6;
/// `blocking`: may block the connection.
pub const BLOCKING: u32 = 1 << 7;
/// `loading`: allowed while the dataset is loading.
pub const LOADING: u32 = 1 << 8;
/// `stale`: allowed on a replica with stale data.
pub const STALE: u32 = 1 << 9;
/// `skip_monitor`: not shown by MONITOR.
pub const SKIP_MONITOR: u32 = 1 << 10;
/// `skip_slowlog`: not logged in the slow log.
pub const SKIP_SLOWLOG: u32 = 1 << 11;
/// `asking`: accepted on an importing slot after ASKING.
pub const ASKING: u32 = 1 << 12;
/// `fast`: O(1) or O(log N).
pub const FAST: u32 = 1 << 13;
/// `no_auth`: allowed before authentication.
pub const NO_AUTH: u32 = 1 << 14;
/// `may_replicate`: may produce replication traffic.
pub const MAY_REPLICATE: u32 = 1 << 15;
/// `no_mandatory_keys`: all key arguments are optional (EVAL with 0 keys, ...).
pub const NO_MANDATORY_KEYS: u32 = 1 << 16;
/// `no_async_loading`: refused during async loading.
pub const NO_ASYNC_LOADING: u32 = 1 << 17;
/// `no_multi`: not allowed inside MULTI.
pub const NO_MULTI: u32 = 1 << 18;
/// `allow_busy`: allowed while a script or function is busy.
pub const ALLOW_BUSY: u32 = 1 << 19;
/// `movablekeys`: key positions depend on the arguments (see `keys.rs`).
pub const MOVABLE_KEYS: u32 = 1 << 20;

/// The `request_policy:` command tip: where a keyless or multi-key command should be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestPolicy {
    /// No tip: by key, or to any node when keyless.
    Default,
    /// To every node, masters and replicas.
    AllNodes,
    /// To every master.
    AllShards,
    /// Split by the slots of its keys.
    MultiShard,
    /// Needs command-specific handling.
    Special,
}

/// The `response_policy:` command tip: how the replies of a fanned-out command are merged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponsePolicy {
    /// No tip: arrays concatenated, otherwise the command-specific default.
    Default,
    /// The first success; an error only if all failed.
    OneSucceeded,
    /// A success only if all succeeded (the first error otherwise).
    AllSucceeded,
    /// Logical AND of the integer replies.
    AggLogicalAnd,
    /// Logical OR of the integer replies.
    AggLogicalOr,
    /// The smallest integer reply.
    AggMin,
    /// The largest integer reply.
    AggMax,
    /// The sum of the integer replies.
    AggSum,
    /// Needs command-specific handling.
    Special,
}

/// One command (or subcommand) as the server describes it in `COMMAND`.
#[derive(Debug, PartialEq, Eq)]
pub struct CommandSpec {
    /// Lowercase name; for a subcommand, without the `container|` prefix (`encoding`).
    pub name: &'static str,
    /// Exact argc (name included) when positive, minimum argc when negative.
    pub arity: i16,
    /// Index of the first key in argv, 0 when the command has no (fixed) keys.
    pub first_key: i16,
    /// Index of the last key; negative counts from the end (-1 is the last argument).
    pub last_key: i16,
    /// Distance between keys (2 for MSET's key/value pairs).
    pub step: i16,
    /// Bitset of the flag consts of this module (`READONLY | FAST`, ...).
    pub flags: u32,
    /// The `request_policy:` tip.
    pub request_policy: RequestPolicy,
    /// The `response_policy:` tip.
    pub response_policy: ResponsePolicy,
    /// Subcommands of a container command (`object`, `xinfo`, `cluster`, ...), sorted by name.
    pub subcommands: &'static [CommandSpec],
}

impl CommandSpec {
    /// Whether every bit of `flag` is set.
    #[inline]
    pub const fn has(&self, flag: u32) -> bool {
        self.flags & flag == flag
    }

    /// Flagged `readonly`.
    #[inline]
    pub const fn is_readonly(&self) -> bool {
        self.has(READONLY)
    }

    /// Flagged `write`.
    #[inline]
    pub const fn is_write(&self) -> bool {
        self.has(WRITE)
    }

    /// Flagged `movablekeys`: the legacy key range is not the whole story.
    #[inline]
    pub const fn has_movable_keys(&self) -> bool {
        self.has(MOVABLE_KEYS)
    }

    /// Flagged `pubsub`.
    #[inline]
    pub const fn is_pubsub(&self) -> bool {
        self.has(PUBSUB)
    }

    /// Flagged `blocking`.
    #[inline]
    pub const fn is_blocking(&self) -> bool {
        self.has(BLOCKING)
    }

    /// Whether argc (name included) satisfies the arity.
    #[inline]
    pub fn arity_ok(&self, argc: usize) -> bool {
        let arity = self.arity as isize;
        if arity >= 0 {
            argc as isize == arity
        } else {
            argc as isize >= -arity
        }
    }

    /// The subcommand named `name` (ASCII case-insensitive), if this is a container that has it.
    pub fn subcommand(&self, name: &[u8]) -> Option<&'static CommandSpec> {
        find(self.subcommands, name)
    }
}

/// The top-level command named `name`, ASCII case-insensitive: the built-in table, then the
/// commands learned from the server (`command_learn`).
#[inline]
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    builtin(name).or_else(|| crate::command_learn::lookup(name))
}

/// The built-in table only. Allocation-free: one hash of the name and usually a single
/// comparison.
#[inline]
pub fn builtin(name: &[u8]) -> Option<&'static CommandSpec> {
    if name.len() > MAX_NAME {
        return None;
    }
    let mut slot = hash(name) % INDEX_SLOTS;
    loop {
        let spec = COMMANDS.get(INDEX[slot] as usize)?;
        if spec.name.as_bytes().eq_ignore_ascii_case(name) {
            return Some(spec);
        }
        slot = (slot + 1) % INDEX_SLOTS;
    }
}

/// The spec that governs `args` (`args[0]` is the command name): the subcommand's spec when the
/// command is a container and `args[1]` names one of its subcommands, else the command's own.
/// `None` for an unknown command or empty `args`.
pub fn resolve(args: &[&[u8]]) -> Option<&'static CommandSpec> {
    let spec = lookup(args.first()?)?;
    if !spec.subcommands.is_empty() {
        if let Some(sub) = args.get(1).and_then(|a| spec.subcommand(a)) {
            return Some(sub);
        }
    }
    Some(spec)
}

/// Every top-level command name (lowercase), in sorted order.
pub fn names() -> impl Iterator<Item = &'static str> {
    COMMANDS.iter().map(|c| c.name)
}

/// Longer than any command or subcommand name (the longest in 7.0 has 21 bytes).
const MAX_NAME: usize = 32;

/// Open-addressing hash index over `COMMANDS`, built at compile time: slot -> table index, or
/// `EMPTY`. A power of two over 4x the table size keeps probe chains to one or two entries.
const INDEX_SLOTS: usize = 1024;
const EMPTY: u16 = u16::MAX;
static INDEX: [u16; INDEX_SLOTS] = build_index(COMMANDS);

/// FNV-1a over the ASCII-lowercased bytes.
#[inline]
const fn hash(name: &[u8]) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    let mut i = 0;
    while i < name.len() {
        h ^= name[i].to_ascii_lowercase() as u32;
        h = h.wrapping_mul(0x0100_0193);
        i += 1;
    }
    h as usize
}

const fn build_index(table: &[CommandSpec]) -> [u16; INDEX_SLOTS] {
    assert!(table.len() < INDEX_SLOTS / 2);
    let mut index = [EMPTY; INDEX_SLOTS];
    let mut i = 0;
    while i < table.len() {
        let mut slot = hash(table[i].name.as_bytes()) % INDEX_SLOTS;
        while index[slot] != EMPTY {
            slot = (slot + 1) % INDEX_SLOTS;
        }
        index[slot] = i as u16;
        i += 1;
    }
    index
}

/// Binary search of a sorted (sub)command table, ASCII case-insensitive.
fn find(table: &'static [CommandSpec], name: &[u8]) -> Option<&'static CommandSpec> {
    if name.len() > MAX_NAME {
        return None;
    }
    // Lowercase once into a stack buffer so each probe is a plain byte comparison.
    let mut buf = [0u8; MAX_NAME];
    let lower = &mut buf[..name.len()];
    for (l, b) in lower.iter_mut().zip(name) {
        *l = b.to_ascii_lowercase();
    }
    let lower = &*lower;
    table
        .binary_search_by(|spec| spec.name.as_bytes().cmp(lower))
        .ok()
        .map(|i| &table[i])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn lookup_is_case_insensitive() {
        for name in [&b"get"[..], b"GET", b"Get", b"gEt"] {
            assert_eq!(lookup(name).map(|c| c.name), Some("get"));
        }
        assert_eq!(lookup(b"ZUNIONSTORE").map(|c| c.name), Some("zunionstore"));
        assert_eq!(lookup(b"Eval_RO").map(|c| c.name), Some("eval_ro"));
    }

    #[test]
    fn unknown_names_give_none() {
        assert!(lookup(b"").is_none());
        assert!(lookup(b"nosuchcommand").is_none());
        assert!(lookup(b"ge").is_none());
        assert!(lookup(b"gett").is_none());
        assert!(lookup(b"object|encoding").is_none());
        assert!(lookup(&[0xff, 0x00]).is_none());
        assert!(lookup(&[b'a'; 1000]).is_none());
        assert!(resolve(&[]).is_none());
        assert!(resolve(&[b"nosuch", b"x"]).is_none());
    }

    #[test]
    fn flags_of_well_known_commands() {
        let get = lookup(b"get").unwrap();
        assert!(get.is_readonly() && !get.is_write() && get.has(FAST));
        assert_eq!(
            (get.arity, get.first_key, get.last_key, get.step),
            (2, 1, 1, 1)
        );
        let set = lookup(b"set").unwrap();
        assert!(set.is_write() && !set.is_readonly());
        assert!(lookup(b"eval").unwrap().has_movable_keys());
        assert!(lookup(b"blpop").unwrap().is_blocking());
        assert!(lookup(b"subscribe").unwrap().is_pubsub());
        assert!(lookup(b"flushall").unwrap().is_write());
    }

    #[test]
    fn tips_are_recorded() {
        let dbsize = lookup(b"dbsize").unwrap();
        assert_eq!(dbsize.request_policy, RequestPolicy::AllShards);
        assert_eq!(dbsize.response_policy, ResponsePolicy::AggSum);
        let mset = lookup(b"mset").unwrap();
        assert_eq!(mset.request_policy, RequestPolicy::MultiShard);
        assert_eq!(mset.response_policy, ResponsePolicy::AllSucceeded);
        assert_eq!(
            lookup(b"get").unwrap().request_policy,
            RequestPolicy::Default
        );
        let flush = resolve(&[b"script", b"flush"]).unwrap();
        assert_eq!(flush.request_policy, RequestPolicy::AllNodes);
    }

    #[test]
    fn resolve_finds_subcommands() {
        let enc = resolve(&[b"OBJECT", b"Encoding", b"k"]).unwrap();
        assert_eq!(enc.name, "encoding");
        assert!(enc.is_readonly());
        assert_eq!((enc.arity, enc.first_key, enc.last_key), (3, 2, 2));
        assert_eq!(resolve(&[b"xinfo", b"STREAM", b"s"]).unwrap().first_key, 2);
        assert_eq!(resolve(&[b"memory", b"usage", b"k"]).unwrap().name, "usage");
        assert_eq!(resolve(&[b"cluster", b"slots"]).unwrap().name, "slots");
        // Unknown or missing subcommand: the container itself.
        assert_eq!(resolve(&[b"object", b"nope"]).unwrap().name, "object");
        assert_eq!(resolve(&[b"object"]).unwrap().name, "object");
        // Not a container: args[1] is ignored.
        assert_eq!(resolve(&[b"get", b"encoding"]).unwrap().name, "get");
    }

    #[test]
    fn names_are_complete_and_unique() {
        let all: Vec<_> = names().collect();
        for n in [
            "get", "set", "eval", "cluster", "object", "xinfo", "hgetall",
        ] {
            assert!(all.contains(&n), "{n} missing");
        }
        let unique: HashSet<_> = all.iter().collect();
        assert_eq!(unique.len(), all.len());
        assert!(all
            .iter()
            .all(|n| !n.contains('|') && *n == n.to_lowercase()));
    }

    #[test]
    fn tables_are_sorted() {
        fn check(table: &[CommandSpec]) {
            for w in table.windows(2) {
                assert!(w[0].name < w[1].name, "{} !< {}", w[0].name, w[1].name);
            }
            for spec in table {
                assert_eq!(spec.name, spec.name.to_ascii_lowercase());
                assert!(spec.name.len() <= MAX_NAME, "{} is too long", spec.name);
                check(spec.subcommands);
            }
        }
        check(COMMANDS);
    }

    #[test]
    fn every_name_and_subcommand_is_found() {
        for spec in COMMANDS {
            assert!(std::ptr::eq(lookup(spec.name.as_bytes()).unwrap(), spec));
            let upper = spec.name.to_ascii_uppercase();
            assert!(std::ptr::eq(lookup(upper.as_bytes()).unwrap(), spec));
            for sub in spec.subcommands {
                let args = [spec.name.as_bytes(), sub.name.as_bytes()];
                assert!(std::ptr::eq(resolve(&args).unwrap(), sub));
            }
        }
    }

    #[test]
    fn arity_check() {
        let get = lookup(b"get").unwrap();
        assert!(get.arity_ok(2) && !get.arity_ok(1) && !get.arity_ok(3));
        let del = lookup(b"del").unwrap();
        assert!(del.arity_ok(2) && del.arity_ok(10) && !del.arity_ok(1));
    }
}
