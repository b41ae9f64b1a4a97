//! Commands the built-in table does not know — a module's (`JSON.GET`, `FT.SEARCH`, …) or a newer
//! server's — learned from the server's `COMMAND INFO` reply, so that they route by their keys
//! from the first try (instead of going to a random master and paying a MOVED hop) and reads
//! can use replicas. The built-in table stays authoritative for the commands it has: it is
//! generated from the same `COMMAND` reply and carries the movable-key rules a reply cannot.
//!
//! The reply is hostile input like any other: entries that do not parse are skipped, names are
//! bounded, and at most `MAX_LEARNED` commands are kept for the life of the process (learned specs
//! are leaked once so that lookups hand out `&'static` specs like the built-in table's; a name is
//! never learned twice).

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use crate::command::{self, CommandSpec, RequestPolicy, ResponsePolicy};
use crate::resp::Reply;

/// Upper bound on learned commands per process (Redis Stack has a few hundred).
pub const MAX_LEARNED: usize = 4096;
/// Longer names are not command names.
const MAX_NAME: usize = 64;

type Learned = HashMap<Box<[u8]>, &'static CommandSpec>;

static LEARNED: OnceLock<RwLock<Learned>> = OnceLock::new();

fn table() -> &'static RwLock<Learned> {
    LEARNED.get_or_init(|| RwLock::new(HashMap::new()))
}

/// The learned spec for `name` (ASCII case-insensitive). Only consulted after the built-in
/// table missed, so the common commands never take the lock.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    if name.len() > MAX_NAME {
        return None;
    }
    let mut buf = [0u8; MAX_NAME];
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    let t = table().read().unwrap_or_else(|e| e.into_inner());
    t.get(&*lower).copied()
}

/// The names a `COMMAND LIST` reply has that neither table knows yet (lowercase).
pub fn unknown_names(list: &Reply) -> Vec<Vec<u8>> {
    let Reply::Array(items) = list else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(Reply::as_bytes)
        .filter(|n| !n.is_empty() && n.len() <= MAX_NAME && command::lookup(n).is_none())
        .map(|n| n.to_ascii_lowercase())
        .take(MAX_LEARNED)
        .collect()
}

/// Learns every well-formed entry of a `COMMAND INFO` reply that no table has yet; returns how
/// many were added.
pub fn learn(info: &Reply) -> usize {
    let Reply::Array(entries) = info else {
        return 0;
    };
    let mut t = table().write().unwrap_or_else(|e| e.into_inner());
    let mut added = 0;
    for e in entries {
        if t.len() >= MAX_LEARNED {
            break;
        }
        let Some(spec) = parse(e) else { continue };
        let key: Box<[u8]> = spec.name.as_bytes().into();
        // `builtin`, not `lookup`: lookup would take this table's lock again.
        if t.contains_key(&key) || command::builtin(&key).is_some() {
            continue;
        }
        t.insert(key, Box::leak(Box::new(spec)));
        added += 1;
    }
    added
}

/// The text elements of an array field (flags, tips); nothing for anything else.
fn words(r: Option<&Reply>) -> Vec<&[u8]> {
    match r {
        Some(Reply::Array(a)) => a.iter().filter_map(Reply::as_bytes).collect(),
        _ => Vec::new(),
    }
}

fn int(r: Option<&Reply>) -> Option<i16> {
    match r {
        Some(Reply::Int(v)) => i16::try_from(*v).ok(),
        _ => None,
    }
}

/// One entry: `[name, arity, [flags], first, last, step, [acl], [tips], …]`.
fn parse(e: &Reply) -> Option<CommandSpec> {
    let Reply::Array(f) = e else { return None };
    let name = f.first()?.as_bytes()?;
    let ok_char = |c: &u8| c.is_ascii_graphic() && *c != b'|';
    if name.is_empty() || name.len() > MAX_NAME || !name.iter().all(ok_char) {
        return None;
    }
    let (arity, first_key, last_key, step) = (
        int(f.get(1))?,
        int(f.get(3))?,
        int(f.get(4))?,
        int(f.get(5))?,
    );
    if first_key < 0 || step < 0 {
        return None;
    }
    let flags = words(f.get(2)).iter().fold(0, |acc, w| acc | flag(w));
    let (mut request_policy, mut response_policy) =
        (RequestPolicy::Default, ResponsePolicy::Default);
    for tip in words(f.get(7)) {
        if let Some(p) = tip.strip_prefix(b"request_policy:") {
            request_policy = request(p);
        } else if let Some(p) = tip.strip_prefix(b"response_policy:") {
            response_policy = response(p);
        }
    }
    let name: &'static str = Box::leak(
        String::from_utf8_lossy(name)
            .to_ascii_lowercase()
            .into_boxed_str(),
    );
    Some(CommandSpec {
        name,
        arity,
        first_key,
        last_key,
        step,
        flags,
        request_policy,
        response_policy,
        subcommands: &[],
    })
}

fn flag(w: &[u8]) -> u32 {
    match w {
        b"write" => command::WRITE,
        b"readonly" => command::READONLY,
        b"denyoom" => command::DENYOOM,
        b"module" => command::MODULE,
        b"admin" => command::ADMIN,
        b"pubsub" => command::PUBSUB,
        b"noscript" => command::NOSCRIPT,
        b"blocking" => command::BLOCKING,
        b"loading" => command::LOADING,
        b"stale" => command::STALE,
        b"fast" => command::FAST,
        b"movablekeys" => command::MOVABLE_KEYS,
        b"no_mandatory_keys" => command::NO_MANDATORY_KEYS,
        _ => 0,
    }
}

fn request(p: &[u8]) -> RequestPolicy {
    match p {
        b"all_nodes" => RequestPolicy::AllNodes,
        b"all_shards" => RequestPolicy::AllShards,
        b"multi_shard" => RequestPolicy::MultiShard,
        b"special" => RequestPolicy::Special,
        _ => RequestPolicy::Default,
    }
}

fn response(p: &[u8]) -> ResponsePolicy {
    match p {
        b"one_succeeded" => ResponsePolicy::OneSucceeded,
        b"all_succeeded" => ResponsePolicy::AllSucceeded,
        b"agg_logical_and" => ResponsePolicy::AggLogicalAnd,
        b"agg_logical_or" => ResponsePolicy::AggLogicalOr,
        b"agg_min" => ResponsePolicy::AggMin,
        b"agg_max" => ResponsePolicy::AggMax,
        b"agg_sum" => ResponsePolicy::AggSum,
        b"special" => ResponsePolicy::Special,
        _ => ResponsePolicy::Default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn s(v: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(v.as_bytes()))
    }
    fn arr(v: Vec<Reply>) -> Reply {
        Reply::Array(v)
    }
    fn entry(name: &str, arity: i64, flags: &[&str], k: (i64, i64, i64)) -> Reply {
        arr(vec![
            s(name),
            Reply::Int(arity),
            arr(flags
                .iter()
                .map(|f| Reply::Status(Bytes::copy_from_slice(f.as_bytes())))
                .collect()),
            Reply::Int(k.0),
            Reply::Int(k.1),
            Reply::Int(k.2),
            arr(vec![]),
            arr(vec![
                s("request_policy:all_shards"),
                s("response_policy:agg_sum"),
            ]),
        ])
    }

    #[test]
    fn a_module_command_is_learned_and_routes_by_its_key() {
        assert!(command::lookup(b"json.get").is_none());
        let n = learn(&arr(vec![
            entry("json.get", -2, &["readonly", "module"], (1, 1, 1)),
            entry("get", 2, &["write"], (1, 1, 1)), // built in: never overridden
            entry("bad|name", 2, &[], (1, 1, 1)),
            arr(vec![s("short")]),
            s("not an entry"),
        ]));
        assert_eq!(n, 1);
        let spec = command::lookup(b"JSON.GET").expect("learned");
        assert!(spec.is_readonly());
        assert_eq!((spec.first_key, spec.last_key, spec.step), (1, 1, 1));
        assert_eq!(spec.request_policy, RequestPolicy::AllShards);
        assert!(!command::lookup(b"get").unwrap().is_write());
        let args: [&[u8]; 3] = [b"JSON.GET", b"{u}doc", b"$"];
        let (route, _) = crate::keys::route_of(&args).unwrap();
        assert_eq!(
            route,
            crate::keys::Route::Slot(crate::slot::slot(b"{u}doc"))
        );
        assert_eq!(learn(&arr(vec![entry("json.get", -2, &[], (1, 1, 1))])), 0);
    }

    #[test]
    fn command_list_names_only_the_unknown_ones() {
        let list = arr(vec![s("get"), s("FT.SEARCH"), s(""), Reply::Int(3)]);
        assert_eq!(unknown_names(&list), vec![b"ft.search".to_vec()]);
        assert!(unknown_names(&Reply::Nil).is_empty());
    }
}
