//! `redisOptions.prefix`, with node_redis's meaning: which arguments of a command get the prefix.
//! Every key position the command table and the movable-keys rules of `keys.rs` find (so routing
//! hashes the prefixed key, exactly as the server will store it), plus SORT's `BY` / `GET`
//! patterns, which name keys the server reads. Channels (also sharded ones, which the table lists
//! as keys) and every other argument — values, `ARGV`, stream IDs, SCAN/KEYS patterns — are left
//! alone, and so are replies. Nothing here allocates beyond `out`.

use crate::command::resolve;
use crate::error::Error;
use crate::keys::key_positions;

/// Pushes onto `out`, in ascending order and without repeats, the index into `args` (`args[0]`
/// is the command name) of every argument to prefix. An unknown command gets none (it is sent as
/// given); a malformed one fails as [`key_positions`] does, with `out` left as it was.
pub fn prefix_positions(args: &[&[u8]], out: &mut Vec<usize>) -> Result<(), Error> {
    let Some(spec) = resolve(args) else {
        return Ok(());
    };
    // SPUBLISH / SSUBSCRIBE carry a shard channel in a key position: a channel, not a key, and
    // node_redis never prefixes channels.
    if spec.is_pubsub() {
        return Ok(());
    }
    let start = out.len();
    key_positions(spec, args, out)?;
    if spec.name == "sort" || spec.name == "sort_ro" {
        sort_patterns(args, out);
        out[start..].sort_unstable();
        // STORE's operand is never a pattern, so no index appears twice; dedup guards it anyway.
        let mut w = start;
        for r in start..out.len() {
            if w == start || out[w - 1] != out[r] {
                out[w] = out[r];
                w += 1;
            }
        }
        out.truncate(w);
    }
    Ok(())
}

/// SORT's `BY pattern` and `GET pattern` operands (not `GET #`, the element itself), skipping
/// LIMIT's operands the way the server's parser does.
fn sort_patterns(args: &[&[u8]], out: &mut Vec<usize>) {
    let mut i = 2;
    while i < args.len() {
        let a = args[i];
        if a.eq_ignore_ascii_case(b"limit") {
            i += 2;
        } else if a.eq_ignore_ascii_case(b"by") || a.eq_ignore_ascii_case(b"get") {
            if let Some(p) = args.get(i + 1) {
                if *p != b"#" {
                    out.push(i + 1);
                }
            }
            i += 1;
        } else if a.eq_ignore_ascii_case(b"store") {
            i += 1;
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Vec<usize> {
        let args: Vec<&[u8]> = s.split(' ').map(str::as_bytes).collect();
        let mut out = Vec::new();
        prefix_positions(&args, &mut out).unwrap_or_else(|e| panic!("{s}: {e}"));
        out
    }

    #[test]
    fn keys_are_prefixed_and_nothing_else() {
        assert_eq!(at("GET k"), [1]);
        assert_eq!(at("SET k v EX 10"), [1]);
        assert_eq!(at("MSET a 1 b 2"), [1, 3]);
        assert_eq!(at("DEL a b c"), [1, 2, 3]);
        assert_eq!(at("EVAL s 2 a b x y"), [3, 4]);
        assert_eq!(at("EVALSHA s 0 x"), [] as [usize; 0]);
        assert_eq!(at("XREAD COUNT 1 STREAMS a b 0 0"), [4, 5]);
        assert_eq!(at("ZUNIONSTORE d 2 a b WEIGHTS 1 2"), [1, 3, 4]);
        assert_eq!(at("OBJECT ENCODING k"), [2]);
        assert_eq!(at("MIGRATE h 1  0 5000 KEYS a b"), [7, 8]);
    }

    #[test]
    fn patterns_channels_and_keyless_commands_are_not() {
        assert_eq!(at("SCAN 0 MATCH user:*"), [] as [usize; 0]);
        assert_eq!(at("KEYS user:*"), [] as [usize; 0]);
        assert_eq!(at("PUBLISH ch msg"), [] as [usize; 0]);
        assert_eq!(at("SPUBLISH ch msg"), [] as [usize; 0]);
        assert_eq!(at("SSUBSCRIBE a b"), [] as [usize; 0]);
        assert_eq!(at("PUBSUB SHARDNUMSUB a"), [] as [usize; 0]);
        assert_eq!(at("PING"), [] as [usize; 0]);
        assert_eq!(at("NOSUCHCMD a b"), [] as [usize; 0]);
    }

    #[test]
    fn sort_patterns_name_keys() {
        assert_eq!(at("SORT k"), [1]);
        assert_eq!(at("SORT k BY w_* GET o_* GET # STORE d"), [1, 3, 5, 9]);
        assert_eq!(at("sort k limit 0 10 get store store d"), [1, 6, 8]);
        assert_eq!(at("SORT_RO k GET o_*->f"), [1, 3]);
    }

    #[test]
    fn malformed_commands_fail_and_leave_out_alone() {
        let args: Vec<&[u8]> = "EVAL s 5 a".split(' ').map(str::as_bytes).collect();
        let mut out = vec![7];
        assert!(prefix_positions(&args, &mut out).is_err());
        assert_eq!(out, [7]);
    }
}
