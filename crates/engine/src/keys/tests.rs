//! Unit tests of `keys.rs`, kept in their own file so that one stays readable.

use super::*;

fn argv(s: &str) -> Vec<&[u8]> {
    s.split(' ').map(str::as_bytes).collect()
}

fn keys(s: &str) -> Result<Vec<usize>, Error> {
    let args = argv(s);
    let spec = resolve(&args).expect("known command");
    let mut out = Vec::new();
    key_positions(spec, &args, &mut out).map(|_| out)
}

fn ok(s: &str) -> Vec<usize> {
    keys(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn err(s: &str) -> String {
    let e = keys(s).expect_err(s);
    assert_eq!(e.kind, ErrorKind::InvalidArg);
    e.message
}

fn route(s: &str) -> Route {
    route_of(&argv(s)).unwrap().0
}

#[test]
fn fixed_positions() {
    assert_eq!(ok("GET k"), [1]);
    assert_eq!(ok("set k v EX 10"), [1]);
    assert_eq!(ok("MSET a 1 b 2 c 3"), [1, 3, 5]);
    assert_eq!(ok("DEL a b c"), [1, 2, 3]);
    assert_eq!(ok("BLPOP a b 0"), [1, 2]);
    assert_eq!(ok("RENAME a b"), [1, 2]);
    assert_eq!(ok("PING"), [] as [usize; 0]);
    assert_eq!(ok("PUBLISH ch msg"), [] as [usize; 0]);
    assert_eq!(ok("SPUBLISH ch msg"), [1]);
}

#[test]
fn arity_is_checked() {
    assert_eq!(err("GET"), "wrong number of arguments for 'get' command");
    assert_eq!(
        err("GET a b"),
        "wrong number of arguments for 'get' command"
    );
    err("DEL");
    err("MSET a");
    err("MSET a 1 b");
    err("EVAL s");
    assert_eq!(
        err("OBJECT ENCODING"),
        "wrong number of arguments for 'object|encoding' command"
    );
    let e = route_of(&argv("GET")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArg);
}

#[test]
fn scripts_and_functions() {
    for cmd in [
        "EVAL",
        "evalsha",
        "EVAL_RO",
        "EVALSHA_RO",
        "FCALL",
        "fcall_ro",
    ] {
        assert_eq!(ok(&format!("{cmd} s 2 a b x y")), [3, 4]);
        assert_eq!(ok(&format!("{cmd} s 0")), [] as [usize; 0]);
        assert_eq!(ok(&format!("{cmd} s 0 x")), [] as [usize; 0]);
        err(&format!("{cmd} s 3 a b"));
        err(&format!("{cmd} s -1 a"));
        err(&format!("{cmd} s two a b"));
        err(&format!("{cmd} s 01 a"));
        err(&format!("{cmd} s +1 a"));
        err(&format!("{cmd} s 99999999999999999999 a"));
    }
}

#[test]
fn numkeys_commands() {
    for cmd in ["ZUNIONSTORE", "zinterstore", "ZDIFFSTORE"] {
        assert_eq!(ok(&format!("{cmd} d 2 a b WEIGHTS 1 2")), [1, 3, 4]);
        err(&format!("{cmd} d 3 a b"));
        err(&format!("{cmd} d x a b"));
    }
    for cmd in ["ZUNION", "ZINTER", "zdiff", "ZINTERCARD", "SINTERCARD"] {
        assert_eq!(ok(&format!("{cmd} 2 a b WITHSCORES")), [2, 3]);
        err(&format!("{cmd} 3 a b"));
        err(&format!("{cmd} -2 a b"));
    }
    assert_eq!(ok("LMPOP 2 a b LEFT COUNT 3"), [2, 3]);
    assert_eq!(ok("ZMPOP 1 a MIN"), [2]);
    assert_eq!(ok("BLMPOP 0.5 2 a b RIGHT"), [3, 4]);
    assert_eq!(ok("BZMPOP 0 1 a MAX COUNT 2"), [3]);
    err("BLMPOP 0 5 a b LEFT");
    err("LMPOP x a LEFT");
}

#[test]
fn sort_store() {
    assert_eq!(ok("SORT k"), [1]);
    assert_eq!(ok("SORT k LIMIT 0 10 STORE d"), [1, 6]);
    assert_eq!(ok("sort k by store get store store d"), [1, 7]);
    assert_eq!(ok("SORT k STORE d1 STORE d2"), [1, 5]);
    assert_eq!(ok("SORT k ALPHA STORE"), [1]);
    assert_eq!(ok("SORT_RO k BY w_* GET o_*"), [1]);
}

#[test]
fn georadius_store() {
    assert_eq!(ok("GEORADIUS k 15 37 200 km"), [1]);
    assert_eq!(ok("GEORADIUS k 15 37 200 km WITHDIST STORE d"), [1, 8]);
    assert_eq!(ok("GEORADIUS k 15 37 200 km STOREDIST d"), [1, 7]);
    assert_eq!(ok("GEORADIUSBYMEMBER k store 200 km STORE d"), [1, 6]);
    assert_eq!(
        ok("georadiusbymember k m 200 km storedist d1 store d2"),
        [1, 8]
    );
    assert_eq!(ok("GEORADIUS_RO k 15 37 200 km"), [1]);
}

#[test]
fn xread_streams() {
    assert_eq!(ok("XREAD STREAMS a b 0 0"), [2, 3]);
    assert_eq!(ok("XREAD COUNT 2 BLOCK 0 STREAMS a 0"), [6]);
    assert_eq!(ok("XREAD STREAMS streams 0"), [2]);
    assert_eq!(
        ok("XREADGROUP GROUP streams c COUNT 1 NOACK STREAMS a b > >"),
        [8, 9]
    );
    err("XREAD STREAMS a b 0");
    err("XREAD COUNT 2 a 0");
    err("XREADGROUP GROUP g c STREAMS");
    err("XREAD BOGUS STREAMS a 0");
}

#[test]
fn migrate_keys() {
    assert_eq!(ok("MIGRATE h 6379 k 0 5000"), [3]);
    assert_eq!(ok("MIGRATE h 6379 k 0 5000 COPY REPLACE"), [3]);
    assert_eq!(ok("MIGRATE h 6379  0 5000 REPLACE KEYS a b c"), [8, 9, 10]);
    assert_eq!(ok("MIGRATE h 6379  0 5000 AUTH keys KEYS a"), [9]);
    assert_eq!(ok("MIGRATE h 6379  0 5000 AUTH2 u keys KEYS a b"), [10, 11]);
    err("MIGRATE h 6379 k 0 5000 KEYS a b");
    err("MIGRATE h 6379 k 0");
}

#[test]
fn subcommand_keys() {
    assert_eq!(ok("OBJECT ENCODING k"), [2]);
    assert_eq!(ok("object freq k"), [2]);
    assert_eq!(ok("MEMORY USAGE k SAMPLES 5"), [2]);
    assert_eq!(ok("XINFO STREAM s FULL"), [2]);
    assert_eq!(ok("XINFO GROUPS s"), [2]);
    assert_eq!(ok("XINFO CONSUMERS s g"), [2]);
    assert_eq!(ok("OBJECT HELP"), [] as [usize; 0]);
    assert_eq!(ok("CLUSTER SLOTS"), [] as [usize; 0]);
    assert_eq!(ok("OBJECT NOSUCH k"), [] as [usize; 0]);
    // The container's spec resolves the subcommand by itself.
    let args = argv("OBJECT ENCODING k");
    let mut out = Vec::new();
    key_positions(lookup(b"object").unwrap(), &args, &mut out).unwrap();
    assert_eq!(out, [2]);
}

#[test]
fn positions_are_appended() {
    let args = argv("MGET a b");
    let mut out = vec![42];
    key_positions(lookup(b"mget").unwrap(), &args, &mut out).unwrap();
    assert_eq!(out, [42, 1, 2]);
    let args = argv("ZUNIONSTORE d 9 a");
    assert!(key_positions(resolve(&args).unwrap(), &args, &mut out).is_err());
    assert_eq!(out, [42, 1, 2]);
}

#[test]
fn routes() {
    assert_eq!(route("GET foo"), Route::Slot(slot(b"foo")));
    assert_eq!(route("get 123456789"), Route::Slot(12739));
    assert_eq!(route("PING"), Route::NoKeys);
    assert_eq!(route("INFO server"), Route::NoKeys);
    assert_eq!(route("CLUSTER NODES"), Route::NoKeys);
    assert_eq!(route("EVAL s 0"), Route::NoKeys);
    assert_eq!(route("EVAL s 1 foo"), Route::Slot(slot(b"foo")));
    assert_eq!(route("MGET a b"), Route::CrossSlot);
    assert_eq!(route("MGET {u}a {u}b"), Route::Slot(slot(b"u")));
    assert_eq!(route("MSET {u}a 1 {u}b 2"), Route::Slot(slot(b"u")));
    assert_eq!(route("MSET {u}a 1 b 2"), Route::CrossSlot);
    assert_eq!(route("DEL x x x"), Route::Slot(slot(b"x")));
    assert_eq!(
        route("ZUNIONSTORE {t}d 2 {t}a {t}b"),
        Route::Slot(slot(b"t"))
    );
    assert_eq!(route("ZUNIONSTORE d 2 a b"), Route::CrossSlot);
    assert_eq!(route("SORT {t}k STORE {t}d"), Route::Slot(slot(b"t")));
    assert_eq!(route("SORT k STORE d"), Route::CrossSlot);
    assert_eq!(route("OBJECT ENCODING {t}x"), Route::Slot(slot(b"t")));
    assert_eq!(route("MEMORY USAGE k"), Route::Slot(slot(b"k")));
}

#[test]
fn route_returns_the_governing_spec() {
    let (r, spec) = route_of(&argv("XINFO STREAM s")).unwrap();
    assert_eq!(r, Route::Slot(slot(b"s")));
    assert_eq!(spec.unwrap().name, "stream");
    let (_, spec) = route_of(&argv("get k")).unwrap();
    assert!(spec.unwrap().is_readonly());
    assert_eq!(
        route_of(&argv("NOSUCHCMD a b")).unwrap(),
        (Route::NoKeys, None)
    );
    assert_eq!(route_of(&[]).unwrap(), (Route::NoKeys, None));
    assert!(route_of(&argv("EVAL s 5 a")).is_err());
}

#[test]
fn binary_keys_route_by_their_bytes() {
    let key: &[u8] = &[0xff, b'{', 0x00, b'}', 0xfe];
    let args: [&[u8]; 2] = [b"GET", key];
    assert_eq!(route_of(&args).unwrap().0, Route::Slot(slot(&[0x00])));
}

#[test]
fn every_movable_command_has_a_rule() {
    let ruled = [
        "eval",
        "evalsha",
        "eval_ro",
        "evalsha_ro",
        "fcall",
        "fcall_ro",
        "zunionstore",
        "zinterstore",
        "zdiffstore",
        "zunion",
        "zinter",
        "zdiff",
        "zintercard",
        "sintercard",
        "lmpop",
        "zmpop",
        "blmpop",
        "bzmpop",
        "sort",
        "sort_ro",
        "georadius",
        "georadiusbymember",
        "xread",
        "xreadgroup",
        "migrate",
    ];
    for name in crate::command::names() {
        let spec = lookup(name.as_bytes()).unwrap();
        assert!(
            !spec.has_movable_keys() || ruled.contains(&name),
            "no key rule for movable command {name}"
        );
        for sub in spec.subcommands {
            assert!(
                !sub.has_movable_keys(),
                "movable subcommand {name}|{}",
                sub.name
            );
        }
    }
}

#[test]
fn parse_int_is_strict() {
    assert_eq!(parse_int(b"0"), Some(0));
    assert_eq!(parse_int(b"12"), Some(12));
    assert_eq!(parse_int(b"-3"), Some(-3));
    for bad in [
        &b""[..],
        b"-",
        b"-0",
        b"+1",
        b"01",
        b" 1",
        b"1 ",
        b"1a",
        b"99999999999999999999",
    ] {
        assert_eq!(parse_int(bad), None, "{:?}", bad);
    }
}
