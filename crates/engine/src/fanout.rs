//! Keyless commands that concern the whole cluster (SPEC §2 "fan-out by command tips"): which
//! ones are sent to every master, and how their replies combine. The choice follows Redis 7's
//! command tips (request_policy all_shards/all_nodes, response_policy) for the commands where a
//! single node's answer would be wrong or dangerous — `keys` seeing a third of the keys, `dbsize`
//! counting a third, `flushall` answering OK with two thirds of the data still there. Per-node
//! diagnostics (INFO, SLOWLOG, LATENCY, MEMORY, CONFIG) keep going to one node, as in
//! redis-clustr: their replies do not add up to a cluster-wide answer.

use crate::command::{CommandSpec, ResponsePolicy};
use crate::resp::Reply;

/// How the masters' replies become one reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregate {
    /// Arrays concatenated (KEYS).
    Concat,
    /// Integers added (DBSIZE).
    Sum,
    /// The first reply when every master succeeded, else the first error (FLUSHALL, SCRIPT LOAD).
    AllOk,
    /// Arrays of 0/1 combined element-wise with AND (SCRIPT EXISTS).
    And,
    /// The first success, else the first error (SCRIPT KILL: only one node runs the script).
    OneOk,
    /// The first non-nil reply (RANDOMKEY).
    FirstNonNil,
}

/// Whether `spec` (a command, or the subcommand `resolve` found) fans out, and how.
pub fn aggregate(spec: &CommandSpec) -> Option<Aggregate> {
    const FAN_OUT: &[&str] = &[
        "keys",
        "dbsize",
        "flushall",
        "flushdb",
        "randomkey",
        "exists",
        "flush",
        "load",
        "kill",
        "delete",
        "restore",
    ];
    // Subcommand names repeat across containers ("exists", "load", ...): only the SCRIPT and
    // FUNCTION ones carry all_shards/all_nodes tips, and those tips are what is checked here.
    if !FAN_OUT.contains(&spec.name) {
        return None;
    }
    use crate::command::RequestPolicy::{AllNodes, AllShards};
    if !matches!(spec.request_policy, AllShards | AllNodes) {
        return None;
    }
    Some(match (spec.name, spec.response_policy) {
        ("randomkey", _) => Aggregate::FirstNonNil,
        (_, ResponsePolicy::AggSum) => Aggregate::Sum,
        (_, ResponsePolicy::AggLogicalAnd) => Aggregate::And,
        (_, ResponsePolicy::OneSucceeded) => Aggregate::OneOk,
        (_, ResponsePolicy::AllSucceeded) => Aggregate::AllOk,
        (_, ResponsePolicy::Default) => Aggregate::Concat,
        _ => return None,
    })
}

/// Collects one reply per master and yields the combined reply once all are in.
#[derive(Debug)]
pub struct Gather {
    agg: Aggregate,
    replies: Vec<Option<Reply>>,
    left: usize,
}

impl Gather {
    pub fn new(agg: Aggregate, masters: usize) -> Self {
        Gather {
            agg,
            replies: vec![None; masters],
            left: masters,
        }
    }

    /// Records master `i`'s reply; returns the combined reply when it was the last one.
    pub fn add(&mut self, i: usize, reply: Reply) -> Option<Reply> {
        if let Some(slot) = self.replies.get_mut(i).filter(|s| s.is_none()) {
            *slot = Some(reply);
            self.left -= 1;
        }
        (self.left == 0).then(|| combine(self.agg, self.replies.drain(..).flatten().collect()))
    }
}

fn combine(agg: Aggregate, replies: Vec<Reply>) -> Reply {
    let first_error = replies
        .iter()
        .find(|r| matches!(r, Reply::Error(_)))
        .cloned();
    match agg {
        Aggregate::OneOk => replies
            .iter()
            .find(|r| !matches!(r, Reply::Error(_)))
            .cloned()
            .or(first_error)
            .unwrap_or(Reply::Nil),
        Aggregate::FirstNonNil => match first_error {
            Some(e) => e,
            None => replies
                .into_iter()
                .find(|r| *r != Reply::Nil)
                .unwrap_or(Reply::Nil),
        },
        _ if first_error.is_some() => first_error.unwrap_or(Reply::Nil),
        Aggregate::AllOk => replies.into_iter().next().unwrap_or(Reply::Nil),
        Aggregate::Sum => Reply::Int(
            replies
                .iter()
                .map(|r| if let Reply::Int(n) = r { *n } else { 0 })
                .fold(0i64, i64::saturating_add),
        ),
        Aggregate::Concat => Reply::Array(
            replies
                .into_iter()
                .flat_map(|r| match r {
                    Reply::Array(items) => items,
                    other => vec![other],
                })
                .collect(),
        ),
        Aggregate::And => {
            let arrays: Vec<Vec<Reply>> = replies
                .into_iter()
                .map(|r| {
                    if let Reply::Array(a) = r {
                        a
                    } else {
                        Vec::new()
                    }
                })
                .collect();
            let len = arrays.iter().map(Vec::len).max().unwrap_or(0);
            Reply::Array(
                (0..len)
                    .map(|i| {
                        let all = arrays.iter().all(|a| a.get(i) == Some(&Reply::Int(1)));
                        Reply::Int(all as i64)
                    })
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{lookup, resolve};

    fn agg_of(args: &[&str]) -> Option<Aggregate> {
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        resolve(&a).and_then(aggregate)
    }

    #[test]
    fn cluster_wide_commands_fan_out_and_per_node_ones_do_not() {
        assert_eq!(agg_of(&["keys", "*"]), Some(Aggregate::Concat));
        assert_eq!(agg_of(&["dbsize"]), Some(Aggregate::Sum));
        assert_eq!(agg_of(&["FLUSHALL"]), Some(Aggregate::AllOk));
        assert_eq!(agg_of(&["flushdb"]), Some(Aggregate::AllOk));
        assert_eq!(agg_of(&["randomkey"]), Some(Aggregate::FirstNonNil));
        assert_eq!(
            agg_of(&["script", "load", "return 1"]),
            Some(Aggregate::AllOk)
        );
        assert_eq!(agg_of(&["script", "exists", "a"]), Some(Aggregate::And));
        assert_eq!(agg_of(&["script", "kill"]), Some(Aggregate::OneOk));
        for per_node in [
            &["info"][..],
            &["ping"],
            &["config", "get", "x"],
            &["slowlog", "get"],
            &["exists", "k"],
            &["get", "k"],
        ] {
            assert_eq!(agg_of(per_node), None, "{per_node:?}");
        }
        assert!(lookup(b"keys").is_some());
    }

    #[test]
    fn replies_combine_per_aggregate() {
        let mut g = Gather::new(Aggregate::Sum, 3);
        assert_eq!(g.add(0, Reply::Int(2)), None);
        assert_eq!(
            g.add(0, Reply::Int(9)),
            None,
            "a second reply from one master is ignored"
        );
        assert_eq!(g.add(1, Reply::Int(3)), None);
        assert_eq!(g.add(2, Reply::Int(4)), Some(Reply::Int(9)));

        let mut g = Gather::new(Aggregate::Concat, 2);
        g.add(0, Reply::Array(vec![Reply::Bulk("a".into())]));
        let all = g.add(1, Reply::Array(vec![Reply::Bulk("b".into())]));
        assert_eq!(
            all,
            Some(Reply::Array(vec![
                Reply::Bulk("a".into()),
                Reply::Bulk("b".into())
            ]))
        );

        let mut g = Gather::new(Aggregate::AllOk, 2);
        g.add(0, Reply::Status("OK".into()));
        let e = Reply::Error("READONLY no".into());
        assert_eq!(g.add(1, e.clone()), Some(e), "one failure is the answer");

        let mut g = Gather::new(Aggregate::And, 2);
        g.add(0, Reply::Array(vec![Reply::Int(1), Reply::Int(1)]));
        let and = g.add(1, Reply::Array(vec![Reply::Int(1), Reply::Int(0)]));
        assert_eq!(and, Some(Reply::Array(vec![Reply::Int(1), Reply::Int(0)])));

        let mut g = Gather::new(Aggregate::OneOk, 2);
        g.add(0, Reply::Error("NOTBUSY".into()));
        assert_eq!(
            g.add(1, Reply::Status("OK".into())),
            Some(Reply::Status("OK".into()))
        );

        let mut g = Gather::new(Aggregate::FirstNonNil, 2);
        g.add(0, Reply::Nil);
        assert_eq!(
            g.add(1, Reply::Bulk("k".into())),
            Some(Reply::Bulk("k".into()))
        );
    }
}
