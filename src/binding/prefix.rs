//! Applies `redisOptions.prefix` to one command's argv, in the same native pass that routes and
//! encodes it: the engine says which arguments are keys (`clustr_engine::prefix`), and only those
//! are copied with the prefix in front. Everything else stays borrowed from the shim's batch, so
//! a large value is never copied for this.

use std::borrow::Cow;

use clustr_engine::prefix::prefix_positions;

/// The argv with the prefix applied, or `None` when nothing changes (no keys, an unknown command,
/// or a malformed one — routing then reports the same error on the unprefixed argv).
pub fn apply<'a>(prefix: &[u8], args: &[&'a [u8]]) -> Option<Vec<Cow<'a, [u8]>>> {
    let mut pos = Vec::new();
    prefix_positions(args, &mut pos).ok()?;
    if pos.is_empty() {
        return None;
    }
    let mut out: Vec<Cow<'a, [u8]>> = args.iter().map(|&a| Cow::Borrowed(a)).collect();
    for i in pos {
        let mut key = Vec::with_capacity(prefix.len() + args[i].len());
        key.extend_from_slice(prefix);
        key.extend_from_slice(args[i]);
        out[i] = Cow::Owned(key);
    }
    Some(out)
}

/// A borrowed view of an argv built by [`apply`].
pub fn view<'b>(args: &'b [Cow<'_, [u8]>]) -> Vec<&'b [u8]> {
    args.iter().map(|a| a.as_ref()).collect()
}
