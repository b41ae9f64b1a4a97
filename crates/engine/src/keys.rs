//! Where the keys of a command are, and therefore which slot it routes to. Fixed positions come
//! from the command table's legacy (first, last, step) triple; the movable-keys commands of Redis
//! 7.0 have hand-written rules that mirror the server's own `*GetKeys` functions, so the client
//! routes exactly where the server will look. Nothing here allocates.

use crate::command::{lookup, resolve, CommandSpec};
use crate::error::{Error, ErrorKind};
use crate::slot::slot;

/// Where a command must be sent, judged by its keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// The command has no keys (or 0 of them, like `EVAL s 0`): any node, or per its tips.
    NoKeys,
    /// Every key hashes to this slot.
    Slot(u16),
    /// The keys span more than one slot.
    CrossSlot,
}

/// Pushes onto `out` the index into `args` (`args[0]` is the command name) of every key, in
/// argument order. `spec` is the command's spec as given by [`resolve`]; a container's spec is
/// also accepted and resolved to the subcommand named by `args[1]`. Fails with `InvalidArg` when
/// argc does not fit the arity or a key count (numkeys, STREAMS, ...) is malformed; `out` is
/// then left as it was.
pub fn key_positions(
    spec: &CommandSpec,
    args: &[&[u8]],
    out: &mut Vec<usize>,
) -> Result<(), Error> {
    let len = out.len();
    let result = visit_keys(spec, args, &mut |i| out.push(i));
    if result.is_err() {
        out.truncate(len);
    }
    result
}

/// The route of a full argv, with the spec that governs it (the subcommand's for a container).
/// Unknown commands give `(NoKeys, None)`: they still work, sent to any node.
pub fn route_of(args: &[&[u8]]) -> Result<(Route, Option<&'static CommandSpec>), Error> {
    let Some(spec) = resolve(args) else {
        return Ok((Route::NoKeys, None));
    };
    // The hot path: GET, SET, HGET, ... have exactly one key at a fixed position.
    if spec.first_key > 0 && spec.first_key == spec.last_key && !spec.has_movable_keys() {
        if !spec.arity_ok(args.len()) {
            return Err(wrong_args(spec, args));
        }
        let route = match args.get(spec.first_key as usize) {
            Some(key) => Route::Slot(slot(key)),
            None => Route::NoKeys,
        };
        return Ok((route, Some(spec)));
    }
    let mut route = Route::NoKeys;
    visit_keys(spec, args, &mut |i| {
        route = match route {
            Route::NoKeys => Route::Slot(slot(args[i])),
            Route::Slot(s) if slot(args[i]) == s => route,
            _ => Route::CrossSlot,
        }
    })?;
    Ok((route, Some(spec)))
}

/// Calls `f` with the index of every key, in argument order.
fn visit_keys(spec: &CommandSpec, args: &[&[u8]], f: &mut impl FnMut(usize)) -> Result<(), Error> {
    let spec = match args.get(1) {
        Some(sub) if !spec.subcommands.is_empty() => spec.subcommand(sub).unwrap_or(spec),
        _ => spec,
    };
    if !spec.arity_ok(args.len()) {
        return Err(wrong_args(spec, args));
    }
    if !spec.has_movable_keys() {
        return legacy_range(spec, args, f);
    }
    match spec.name {
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" => {
            numkeys_then_keys(spec, args, 2, f)
        }
        "zunionstore" | "zinterstore" | "zdiffstore" => {
            f(1);
            numkeys_then_keys(spec, args, 2, f)
        }
        "zunion" | "zinter" | "zdiff" | "zintercard" | "sintercard" | "lmpop" | "zmpop" => {
            numkeys_then_keys(spec, args, 1, f)
        }
        "blmpop" | "bzmpop" => numkeys_then_keys(spec, args, 2, f),
        "sort" => {
            f(1);
            sort_store(args, f);
            Ok(())
        }
        // SORT_RO has no STORE option.
        "sort_ro" => {
            f(1);
            Ok(())
        }
        "georadius" | "georadiusbymember" => {
            f(1);
            georadius_store(args, f);
            Ok(())
        }
        "xread" | "xreadgroup" => xread_streams(spec, args, f),
        "migrate" => migrate_keys(spec, args, f),
        // A movable command this table does not know the rules of: the legacy range is the
        // server's own best effort for old clients, so use it.
        _ => legacy_range(spec, args, f),
    }
}

fn legacy_range(
    spec: &CommandSpec,
    args: &[&[u8]],
    f: &mut impl FnMut(usize),
) -> Result<(), Error> {
    if spec.first_key <= 0 {
        return Ok(());
    }
    let argc = args.len() as isize;
    let first = spec.first_key as isize;
    let last = match spec.last_key as isize {
        l if l < 0 => argc + l,
        l => l,
    };
    let step = spec.step.max(1) as isize;
    if last >= argc || last < first {
        return Err(wrong_args(spec, args));
    }
    // A range to the end must hold whole groups: arity alone lets `MSET a 1 b` through, the
    // server rejects it, and so must a splitter.
    if spec.last_key < 0 && (last - first + 1) % step != 0 {
        return Err(wrong_args(spec, args));
    }
    let mut i = first;
    while i <= last {
        f(i as usize);
        i += step;
    }
    Ok(())
}

/// `numkeys` at `args[at]`, then that many keys right after it.
fn numkeys_then_keys(
    spec: &CommandSpec,
    args: &[&[u8]],
    at: usize,
    f: &mut impl FnMut(usize),
) -> Result<(), Error> {
    let first = at + 1;
    let Some(raw) = args.get(at) else {
        return Err(wrong_args(spec, args));
    };
    let n = match parse_int(raw) {
        Some(n) if n < 0 => return Err(invalid(spec, "negative numkeys")),
        Some(n) => n as u64,
        None => return Err(invalid(spec, "numkeys not an integer or out of range")),
    };
    if n > (args.len() - first) as u64 {
        return Err(invalid(
            spec,
            "numkeys greater than the number of arguments",
        ));
    }
    (first..first + n as usize).for_each(f);
    Ok(())
}

/// SORT's `STORE dest`. As the server does, skip the operands of LIMIT/GET/BY (a pattern may be
/// the word "store") and let the last STORE win.
fn sort_store(args: &[&[u8]], f: &mut impl FnMut(usize)) {
    let mut store = None;
    let mut i = 2;
    while i < args.len() {
        let a = args[i];
        if a.eq_ignore_ascii_case(b"limit") {
            i += 2;
        } else if a.eq_ignore_ascii_case(b"get") || a.eq_ignore_ascii_case(b"by") {
            i += 1;
        } else if a.eq_ignore_ascii_case(b"store") && i + 1 < args.len() {
            store = Some(i + 1);
        }
        i += 1;
    }
    if let Some(i) = store {
        f(i);
    }
}

/// GEORADIUS[BYMEMBER]'s `STORE dest` / `STOREDIST dest`, searched from index 5 like the server;
/// the last one wins.
fn georadius_store(args: &[&[u8]], f: &mut impl FnMut(usize)) {
    let mut store = None;
    let mut i = 5;
    while i < args.len() {
        let a = args[i];
        if (a.eq_ignore_ascii_case(b"store") || a.eq_ignore_ascii_case(b"storedist"))
            && i + 1 < args.len()
        {
            store = Some(i + 1);
            i += 1;
        }
        i += 1;
    }
    if let Some(i) = store {
        f(i);
    }
}

/// XREAD/XREADGROUP: options up to `STREAMS`, then N keys followed by N IDs. "STREAMS" may also
/// be a group, consumer or key name, so options are skipped with their operands.
fn xread_streams(
    spec: &CommandSpec,
    args: &[&[u8]],
    f: &mut impl FnMut(usize),
) -> Result<(), Error> {
    let mut streams = None;
    let mut i = 1;
    while i < args.len() {
        let a = args[i];
        if a.eq_ignore_ascii_case(b"block") || a.eq_ignore_ascii_case(b"count") {
            i += 1;
        } else if a.eq_ignore_ascii_case(b"group") {
            i += 2;
        } else if a.eq_ignore_ascii_case(b"streams") {
            streams = Some(i);
            break;
        } else if !a.eq_ignore_ascii_case(b"noack") {
            break;
        }
        i += 1;
    }
    let rest = streams.map_or(0, |s| args.len() - s - 1);
    if rest == 0 || rest % 2 != 0 {
        return Err(invalid(
            spec,
            "STREAMS not followed by keys and as many IDs",
        ));
    }
    let first = args.len() - rest;
    (first..first + rest / 2).for_each(f);
    Ok(())
}

/// MIGRATE host port key db timeout [COPY] [REPLACE] [AUTH pw | AUTH2 user pw] [KEYS k...]:
/// the key at 3, or, when it is empty, every key after KEYS. AUTH operands are skipped (a
/// password may be the word "keys").
fn migrate_keys(
    spec: &CommandSpec,
    args: &[&[u8]],
    f: &mut impl FnMut(usize),
) -> Result<(), Error> {
    let mut i = 6;
    while i < args.len() {
        let a = args[i];
        if a.eq_ignore_ascii_case(b"keys") {
            if !args[3].is_empty() {
                return Err(invalid(spec, "KEYS given with a non-empty key argument"));
            }
            (i + 1..args.len()).for_each(f);
            return Ok(());
        } else if a.eq_ignore_ascii_case(b"auth") {
            i += 1;
        } else if a.eq_ignore_ascii_case(b"auth2") {
            i += 2;
        }
        i += 1;
    }
    f(3);
    Ok(())
}

/// A decimal integer as the server's `string2ll` reads it: optional `-`, no `+`, no spaces, no
/// leading zeros.
fn parse_int(b: &[u8]) -> Option<i64> {
    let (neg, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    match digits {
        [b'0'] if !neg => return Some(0),
        [b'1'..=b'9', ..] => {}
        _ => return None,
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
    }
    Some(if neg { -n } else { n })
}

fn invalid(spec: &CommandSpec, what: &str) -> Error {
    Error::new(ErrorKind::InvalidArg, format!("{what} in '{}'", spec.name))
}

fn wrong_args(spec: &CommandSpec, args: &[&[u8]]) -> Error {
    // Names come from the table, never from the caller's bytes.
    let name = match args.first().and_then(|a| lookup(a)) {
        Some(top) if !std::ptr::eq(top, spec) => format!("{}|{}", top.name, spec.name),
        _ => spec.name.to_string(),
    };
    Error::new(
        ErrorKind::InvalidArg,
        format!("wrong number of arguments for '{name}' command"),
    )
}

#[cfg(test)]
mod tests;
