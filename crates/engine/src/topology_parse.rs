//! Turns a CLUSTER SLOTS or CLUSTER SHARDS reply (RESP2) into a `SlotMap`, treating the reply as
//! hostile input.
//!
//! Invariants of every `Ok` map: all 16384 slots are covered exactly once (a slot listed twice,
//! an empty reply or a gap is an error, never a partial map); every port is 1..=65535; every
//! host is valid UTF-8, at most 255 bytes and free of control characters (C0 and C1), brackets
//! and whitespace (so it can never smuggle a CR/LF or NUL into a log line, a JS string or a
//! resolver call, nor read back differently from `host:port`). Error messages name what was
//! wrong and where, quoting at most `MAX_ECHO` bytes of the input, escaped.
//!
//! Host conventions (checked against Redis 7.0.15):
//! * a Nil or empty host means "the address you used to ask" (`cluster-preferred-endpoint-type
//!   unknown-endpoint`, or a node that does not know its own IP yet), so `asked.host` is used;
//! * `?` means "hostname preferred but this node announces none": the node's `ip` (SHARDS field,
//!   SLOTS metadata) is used when present, `asked.host` otherwise. Substituting the asked host
//!   for *every* such node would send them all to the seed's machine.

use std::fmt;

use crate::resp::Reply;
use crate::slot::SLOTS;
use crate::topology::{NodeAddr, Shard, SlotMap};

/// A topology reply or redirection that was refused. The message says what was wrong and where,
/// quoting at most ~64 bytes of the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopologyError(pub String);

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TopologyError {}

impl TopologyError {
    pub(crate) fn at(self, ctx: impl fmt::Display) -> Self {
        TopologyError(format!("{ctx}: {}", self.0))
    }
}

type Res<T> = Result<T, TopologyError>;

/// Returns a `TopologyError` built like `format!`.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err(TopologyError(format!($($arg)*)))
    };
}
pub(crate) use bail;

/// The most bytes of hostile input quoted in an error message.
const MAX_ECHO: usize = 64;
/// The longest host accepted (a DNS name is at most 253 characters).
const MAX_HOST: usize = 255;
/// The most nodes one range or shard may list. Real shards have a handful; the bound keeps the
/// replica de-duplication in `SlotMap::assign` (quadratic) cheap on a hostile reply.
const MAX_NODES_PER_SHARD: usize = 256;

/// `b` escaped for a message, cut to `MAX_ECHO` bytes.
pub(crate) fn excerpt(b: &[u8]) -> String {
    let mut s = b[..b.len().min(MAX_ECHO)].escape_ascii().to_string();
    if b.len() > MAX_ECHO {
        s.push_str("...");
    }
    s
}

/// Checks a host as announced by a server; empty is allowed here (callers substitute).
pub(crate) fn validate_host(raw: &[u8]) -> Res<String> {
    if raw.len() > MAX_HOST {
        bail!(
            "host of {} bytes (max {MAX_HOST}): \"{}\"",
            raw.len(),
            excerpt(raw)
        );
    }
    if raw.iter().any(|&c| c < 0x20 || c == 0x7f) {
        bail!("host contains a control character: \"{}\"", excerpt(raw));
    }
    let Ok(host) = std::str::from_utf8(raw) else {
        bail!("host is not valid UTF-8: \"{}\"", excerpt(raw));
    };
    // C1 controls (U+0080..U+009F, e.g. NEL) too: some terminals and log viewers act on them.
    if host.chars().any(char::is_control) {
        bail!("host contains a control character: \"{}\"", excerpt(raw));
    }
    // No host or IP literal contains these; allowing them made `[x]:p` ambiguous (a host `-[:1]`
    // from `MOVED 0 -[:1]:7000` prints as `[-[:1]]:7000`, which reads back differently — found
    // by the redirect_line fuzz target), and a space could never appear in a MOVED line.
    if let Some(c) = host
        .chars()
        .find(|&c| c == '[' || c == ']' || c.is_whitespace())
    {
        bail!("host contains {:?}: \"{}\"", c, excerpt(raw));
    }
    Ok(host.to_owned())
}

pub(crate) fn validate_port(p: i64) -> Res<u16> {
    match u16::try_from(p) {
        Ok(p) if p != 0 => Ok(p),
        _ => bail!("port {p} out of range 1..=65535"),
    }
}

/// The error for a value of the wrong RESP type.
fn wrong<T>(what: &str, got: &Reply, want: &str) -> Res<T> {
    let got = match got {
        Reply::Status(_) => "status",
        Reply::Error(_) => "error",
        Reply::Int(_) => "integer",
        Reply::Bulk(_) => "bulk string",
        Reply::Nil => "nil",
        Reply::Array(_) => "array",
    };
    bail!("{what} is {got} instead of {want}")
}

fn expect_array<'a>(r: &'a Reply, what: &str) -> Res<&'a [Reply]> {
    match r {
        Reply::Array(items) => Ok(items),
        other => wrong(what, other, "an array"),
    }
}

fn expect_int(r: &Reply, what: &str) -> Res<i64> {
    match r {
        Reply::Int(i) => Ok(*i),
        other => wrong(what, other, "an integer"),
    }
}

/// A string value; Nil is `None`. Errors and aggregates are wrong types.
fn expect_text<'a>(r: &'a Reply, what: &str) -> Res<Option<&'a [u8]>> {
    match r {
        Reply::Bulk(b) | Reply::Status(b) => Ok(Some(b)),
        Reply::Nil => Ok(None),
        other => wrong(what, other, "a string"),
    }
}

fn slot_of(r: &Reply, what: &str) -> Res<u16> {
    match expect_int(r, what)? {
        v @ 0..=16383 => Ok(v as u16),
        v => bail!("{what} {v} out of range 0..=16383"),
    }
}

/// A `[start, end]` pair of slot numbers (order is checked when it is assigned).
fn bounds(pair: &[Reply]) -> Res<(u16, u16)> {
    Ok((
        slot_of(&pair[0], "start slot")?,
        slot_of(&pair[1], "end slot")?,
    ))
}

/// Where a node's endpoint field points.
enum Endpoint {
    /// An address to use as is.
    Named(String),
    /// Nil or empty: connect to the address we asked.
    AsAsked,
    /// `?` or absent: use the node's IP if it has one.
    Unknown,
}

fn endpoint(raw: Option<&[u8]>) -> Res<Endpoint> {
    Ok(match raw {
        None | Some(b"") => Endpoint::AsAsked,
        Some(b"?") => Endpoint::Unknown,
        Some(h) => Endpoint::Named(validate_host(h)?),
    })
}

fn resolve(ep: Endpoint, ip: Option<String>, asked: &NodeAddr) -> String {
    match (ep, ip) {
        (Endpoint::Named(h), _) => h,
        (Endpoint::Unknown, Some(ip)) if !ip.is_empty() && ip != "?" => ip,
        _ => asked.host.clone(),
    }
}

/// The top-level array of a reply; an empty one is refused (a node reset by `del-node`, or not
/// yet met, answers with one).
fn top_level<'a>(reply: &'a Reply, cmd: &str) -> Res<&'a [Reply]> {
    match expect_array(reply, "reply").map_err(|e| e.at(cmd))? {
        [] => bail!("{cmd} reply is empty (the node owns no slots); not adopted"),
        items => Ok(items),
    }
}

/// Adds a range to `map`, refusing a slot that is already owned.
fn assign_once(map: &mut SlotMap, range: (u16, u16), shard: Shard) -> Res<()> {
    let (first, last) = range;
    if first > last {
        bail!("range start {first} is after its end {last}");
    }
    if let Some(s) = (first..=last).find(|&s| map.is_assigned(s)) {
        bail!("slot {s} is assigned more than once");
    }
    map.assign(first, last, shard);
    Ok(())
}

fn complete(map: SlotMap, cmd: &str) -> Res<SlotMap> {
    let Some(gap) = (0..SLOTS as u16).find(|&s| !map.is_assigned(s)) else {
        return Ok(map);
    };
    let covered = (0..SLOTS as u16).filter(|&s| map.is_assigned(s)).count();
    bail!("{cmd} reply covers {covered} of 16384 slots (slot {gap} unowned); not adopted")
}

/// Parses a CLUSTER SLOTS reply (RESP2) from the node at `asked` into a complete slot map.
///
/// Each range is `[start, end, master, replica...]`, each node `[host, port, id?, metadata?]`
/// (servers before 7 send fewer elements). See the module docs for the host conventions.
pub fn from_cluster_slots(reply: &Reply, asked: &NodeAddr) -> Result<SlotMap, TopologyError> {
    const CMD: &str = "CLUSTER SLOTS";
    let mut map = SlotMap::default();
    for (i, range) in top_level(reply, CMD)?.iter().enumerate() {
        slots_range(&mut map, range, asked).map_err(|e| e.at(format_args!("{CMD} range {i}")))?;
    }
    complete(map, CMD)
}

fn slots_range(map: &mut SlotMap, range: &Reply, asked: &NodeAddr) -> Res<()> {
    let items = expect_array(range, "range")?;
    match items.len() {
        n if n < 3 => bail!("{n} elements, need at least 3"),
        n if n - 2 > MAX_NODES_PER_SHARD => bail!("{} nodes (max {MAX_NODES_PER_SHARD})", n - 2),
        _ => {}
    }
    let range = bounds(items)?;
    let mut nodes = items[2..]
        .iter()
        .enumerate()
        .map(|(j, n)| slots_node(n, asked).map_err(|e| e.at(format_args!("node {j}"))));
    let master = nodes.next().expect("at least one node")?;
    let replicas = nodes.collect::<Res<Vec<_>>>()?;
    assign_once(map, range, Shard { master, replicas })
}

fn slots_node(node: &Reply, asked: &NodeAddr) -> Res<NodeAddr> {
    let f = expect_array(node, "node")?;
    if f.len() < 2 {
        bail!("{} elements, need at least host and port", f.len());
    }
    let ep = endpoint(expect_text(&f[0], "host")?)?;
    let port = validate_port(expect_int(&f[1], "port")?)?;
    // 7.0 adds a flat key/value array of the endpoints that are not the preferred one.
    let mut ip = None;
    if let Some(meta) = f.get(3) {
        for kv in expect_array(meta, "metadata")?.chunks_exact(2) {
            if expect_text(&kv[0], "metadata key")? == Some(b"ip") {
                ip = expect_text(&kv[1], "ip")?.map(validate_host).transpose()?;
            }
        }
    }
    Ok(NodeAddr::new(resolve(ep, ip, asked), port))
}

/// Parses a CLUSTER SHARDS reply (RESP2, Redis 7) from the node at `asked` into a complete slot
/// map. With `tls` the nodes' `tls-port` is used (falling back to `port`).
///
/// Replicas whose health is not `online` are left out; shards without slots (an empty master, or
/// a failed master left behind by a failover) contribute nothing.
pub fn from_cluster_shards(
    reply: &Reply,
    asked: &NodeAddr,
    tls: bool,
) -> Result<SlotMap, TopologyError> {
    const CMD: &str = "CLUSTER SHARDS";
    let mut map = SlotMap::default();
    for (i, shard) in top_level(reply, CMD)?.iter().enumerate() {
        shards_entry(&mut map, shard, asked, tls)
            .map_err(|e| e.at(format_args!("{CMD} shard {i}")))?;
    }
    complete(map, CMD)
}

/// The (key, value) pairs of a flat `[key, value, key, value...]` array.
fn pairs<'a>(items: &'a [Reply], what: &str) -> Res<Vec<(&'a [u8], &'a Reply)>> {
    if !items.len().is_multiple_of(2) {
        bail!("{what} has an odd number ({}) of elements", items.len());
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    for kv in items.chunks_exact(2) {
        match expect_text(&kv[0], "key")? {
            Some(k) => out.push((k, &kv[1])),
            None => bail!("{what} has a nil key"),
        }
    }
    Ok(out)
}

fn shards_entry(map: &mut SlotMap, shard: &Reply, asked: &NodeAddr, tls: bool) -> Res<()> {
    let (mut slots, mut nodes) = (None, None);
    for (k, v) in pairs(expect_array(shard, "shard")?, "shard")? {
        match k {
            b"slots" => slots = Some(expect_array(v, "slots")?),
            b"nodes" => nodes = Some(expect_array(v, "nodes")?),
            _ => {}
        }
    }
    let (Some(slots), Some(nodes)) = (slots, nodes) else {
        bail!("missing \"slots\" or \"nodes\"");
    };
    if !slots.len().is_multiple_of(2) {
        bail!("odd number ({}) of slot bounds", slots.len());
    }
    if nodes.len() > MAX_NODES_PER_SHARD {
        bail!("{} nodes (max {MAX_NODES_PER_SHARD})", nodes.len());
    }
    let ranges = slots.chunks_exact(2).map(bounds).collect::<Res<Vec<_>>>()?;
    // Every node is validated, even ones we then skip: a hostile value anywhere refuses the reply.
    let (mut master, mut replicas) = (None, Vec::new());
    for (j, n) in nodes.iter().enumerate() {
        match shards_node(n, asked, tls).map_err(|e| e.at(format_args!("node {j}")))? {
            // A master whose health is `fail` (7.0.15 says `fail`, not the documented `failed`)
            // is still mapped: until the failover completes it is the only owner we know of, and
            // the promotion will reach us as a MOVED or with the next refresh.
            ShardsNode::Master(a) if master.is_none() => master = Some(a),
            ShardsNode::Master(_) => bail!("more than one master"),
            ShardsNode::Replica(a) => replicas.push(a),
            ShardsNode::Skipped => {}
        }
    }
    if ranges.is_empty() {
        return Ok(());
    }
    let Some(master) = master else {
        bail!("has slots but no master");
    };
    for range in ranges {
        let (master, replicas) = (master.clone(), replicas.clone());
        assign_once(map, range, Shard { master, replicas })?;
    }
    Ok(())
}

enum ShardsNode {
    Master(NodeAddr),
    Replica(NodeAddr),
    /// A replica that is not `online` (loading, fail): not worth routing reads to.
    Skipped,
}

fn shards_node(node: &Reply, asked: &NodeAddr, tls: bool) -> Res<ShardsNode> {
    let (mut port, mut tls_port, mut ip, mut ep) = (None, None, None, Endpoint::Unknown);
    let (mut master, mut online) = (None, false);
    for (k, v) in pairs(expect_array(node, "node")?, "node")? {
        match k {
            b"port" => port = Some(validate_port(expect_int(v, "port")?)?),
            b"tls-port" => tls_port = Some(validate_port(expect_int(v, "tls-port")?)?),
            b"ip" => ip = expect_text(v, "ip")?.map(validate_host).transpose()?,
            b"endpoint" => ep = endpoint(expect_text(v, "endpoint")?)?,
            b"hostname" => drop(expect_text(v, "hostname")?.map(validate_host).transpose()?),
            b"role" => {
                master = match expect_text(v, "role")? {
                    Some(b"master") => Some(true),
                    Some(b"replica" | b"slave") => Some(false),
                    Some(r) => bail!("unknown role \"{}\"", excerpt(r)),
                    None => bail!("nil role"),
                }
            }
            b"health" => online = expect_text(v, "health")? == Some(b"online"),
            _ => {}
        }
    }
    let Some(master) = master else {
        bail!("no role");
    };
    if !master && !online {
        return Ok(ShardsNode::Skipped);
    }
    // With tls-cluster off the cluster knows no TLS ports and sends only `port`; trying it is
    // the best we can do (a TLS-terminating proxy in front of it works, anything else fails at
    // the handshake, visibly).
    let Some(port) = (if tls { tls_port.or(port) } else { port }) else {
        bail!("no {}port", if tls { "tls-port or " } else { "" });
    };
    let addr = NodeAddr::new(resolve(ep, ip, asked), port);
    Ok(if master {
        ShardsNode::Master(addr)
    } else {
        ShardsNode::Replica(addr)
    })
}

#[cfg(test)]
mod tests;
