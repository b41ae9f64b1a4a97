//! A cluster that changes while requests wait out a retry's backoff. During a failover every
//! shard answers CLUSTERDOWN until a replica is promoted; the client retries with a growing
//! backoff (25 → 250 ms) and refreshes its slot map. When the refreshed map differs, the waiting
//! requests are resent at once, their backoff back at its first step, instead of sitting out a
//! step that had grown during the outage — which could carry a command issued early in the
//! outage past its commandTimeout although the cluster was whole again (R3/R4 in the README's
//! Reliability section). Requests parked for a node that is not connected are routed again too.
//! Driven through `clustr_io::Client` against the scripted fake node.

mod common;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use clustr_engine::slot::slot;
use clustr_engine::Reply;
use clustr_io::Event;
use common::fake::{slots_reply, Flip, Hostile, HostileHarness as Harness, Server};
use common::{assert_no_io_panic, WITHIN};

fn down() -> Hostile {
    Hostile::Send(b"-CLUSTERDOWN The cluster is down\r\n".to_vec())
}

/// A CLUSTER SLOTS range: (first slot, last slot, host, port).
type Range = (i64, i64, &'static [u8], i64);

/// `trigger`'s half of the slots on `a`, the other half on `b`.
fn halves(a: &Server, b: &Server) -> (Range, Range) {
    let ((k0, k1), (m0, m1)) = if slot(b"trigger") < 8192 {
        ((0, 8191), (8192, 16383))
    } else {
        ((8192, 16383), (0, 8191))
    };
    let host: &'static [u8] = b"127.0.0.1";
    (
        (k0, k1, host, i64::from(a.port)),
        (m0, m1, host, i64::from(b.port)),
    )
}

/// The cluster changes under the waiting `trigger`: from the first map a is asked for once it
/// has served `after` commands on `trigger`, the half of the slots without it is on b (a
/// promotion elsewhere), and a's script becomes `then`. b tells the same story once known.
fn move_other_half(a: &Server, b: &Server, after: usize, then: Option<VecDeque<Hostile>>) {
    let (kept, moved) = halves(a, b);
    let changed = slots_reply(&[kept, moved]);
    b.st().slots = Some(changed.clone());
    a.st().flip = Some(Flip {
        after,
        slots: changed,
        then,
    });
}

#[tokio::test]
async fn a_changed_map_resends_the_requests_waiting_out_clusterdown_at_once() {
    let a = Server::start().await;
    let b = Server::start().await;
    // Before the change every `SET trigger` is answered CLUSTERDOWN.
    for _ in 0..64 {
        a.script(down());
    }
    // The change comes with the first map asked after the fifth CLUSTERDOWN, when the request
    // has just begun its 250 ms step. a has not caught up yet and answers CLUSTERDOWN four more
    // times.
    move_other_half(&a, &b, 5, Some([down(), down(), down(), down()].into()));
    // No periodic refresh: the retries' own refresh requests are the only ones.
    let mut h = Harness::start_with(&a, true, |c| c.slot_interval_ms = Some(60_000)).await;

    let got = h.set(b"trigger").await;
    let done = Instant::now();
    assert_eq!(got, Ok(Reply::Status("OK".into())));
    let flipped = a.st().flipped_at.expect("the map never changed");
    // Five CLUSTERDOWNs before the change, four after, then OK: each answer caused exactly one
    // send. The timer of the wait the change cut short must not send the request again.
    assert_eq!(a.served(b"trigger").len(), 10);
    // Resent at once, then 25 + 50 + 100 + 200 ms (plus up to 15 ms of jitter each): ≤ ~435 ms.
    // Without the wake it sits out the rest of its 250 ms step (≥ 150 ms: the refresh that
    // brought the change may lag the CLUSTERDOWN by its 100 ms rate limit), then four more
    // 250 ms steps: ≥ 1,150 ms. Timers never fire early, so that side cannot pass by luck.
    let after = done - flipped;
    assert!(
        after < Duration::from_millis(800),
        "the request finished {after:?} after the map changed"
    );
    assert_no_io_panic();
}

#[tokio::test]
async fn a_changed_map_leaves_a_request_waiting_out_tryagain_on_its_timer() {
    // TRYAGAIN is about one slot's keys during a migration, not about the map: a new map does
    // not cut its wait short.
    let a = Server::start().await;
    let b = Server::start().await;
    let again = || Hostile::Send(b"-TRYAGAIN Multiple keys request during rehashing\r\n".to_vec());
    for _ in 0..5 {
        a.script(again());
    }
    // The periodic refresh (every 100 ms) brings the change while the request waits.
    move_other_half(&a, &b, 2, None);
    let mut h = Harness::start_with(&a, true, |c| c.slot_interval_ms = Some(100)).await;
    let start = Instant::now();
    let got = h.set(b"trigger").await;
    assert_eq!(got, Ok(Reply::Status("OK".into())));
    assert!(a.st().flipped_at.is_some(), "the map never changed");
    assert_eq!(a.served(b"trigger").len(), 6);
    // 25 + 50 + 100 + 200 + 250 ms of backoff, all of it waited: a wake at the change (about
    // 100 ms in) would have resent it and started its backoff again from 25 ms.
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(625), "done after {took:?}");
    assert_no_io_panic();
}

#[tokio::test]
async fn a_map_that_only_lists_the_shards_in_another_order_wakes_nothing() {
    // The same owners listed in another order is a different map but no change of the cluster:
    // the request waiting out CLUSTERDOWN stays on its timer.
    let a = Server::start().await;
    let b = Server::start().await;
    for _ in 0..5 {
        a.script(down());
    }
    let (a_range, b_range) = halves(&a, &b);
    a.st().slots = Some(slots_reply(&[a_range, b_range]));
    b.st().slots = Some(slots_reply(&[b_range, a_range]));
    a.st().flip = Some(Flip {
        after: 2,
        slots: slots_reply(&[b_range, a_range]),
        then: None,
    });
    // Refreshes come only from the retries (each CLUSTERDOWN asks for one).
    let mut h = Harness::start_with(&a, true, |c| c.slot_interval_ms = Some(60_000)).await;
    let b_before = b.st().slots_served;
    let start = Instant::now();
    let got = h.set(b"trigger").await;
    assert_eq!(got, Ok(Reply::Status("OK".into())));
    // The reordered map reached the client while the request waited: from b (which has listed
    // it so from the start), or from a once it flipped; which node a refresh asks varies.
    assert!(
        a.st().flipped_at.is_some() || b.st().slots_served > b_before,
        "the reordered map was never served"
    );
    assert_eq!(a.served(b"trigger").len(), 6);
    // Every step waited: 25 + 50 + 100 + 200 + 250 ms.
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(625), "done after {took:?}");
    assert_no_io_panic();
}

#[tokio::test]
async fn a_changed_map_routes_a_request_parked_for_an_unreachable_node_at_once() {
    // Masters that accept connections and never answer (frozen hosts): a request for one's slot
    // waits parked while the client connects, up to connectTimeout (2 s here). When the map
    // gives the slot to another node, the request goes there at once. The refresh that brings
    // the map asks the connected node first: were it to ask a frozen one (three of the four
    // masters), the round would wait out the connect timeout.
    let a = Server::start().await;
    let (accepted_tx, mut accepted) = tokio::sync::mpsc::unbounded_channel();
    let mut holes = Vec::new();
    for _ in 0..3 {
        let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        holes.push(i64::from(hole.local_addr().unwrap().port()));
        let tx = accepted_tx.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = hole.accept().await {
                held.push(sock);
                let _ = tx.send(());
            }
        });
    }
    // a keeps 12288..=16383; the frozen masters hold the rest, `trigger`'s slot among it.
    let s = i64::from(slot(b"trigger"));
    assert!(s < 12288, "trigger's slot {s} must be on a frozen master");
    a.st().slots = Some(slots_reply(&[
        (0, 4095, b"127.0.0.1", holes[0]),
        (4096, 8191, b"127.0.0.1", holes[1]),
        (8192, 12287, b"127.0.0.1", holes[2]),
        (12288, 16383, b"127.0.0.1", i64::from(a.port)),
    ]));
    // The periodic refresh (every 100 ms) is what brings the change.
    let mut h = Harness::start_with(&a, true, |c| c.slot_interval_ms = Some(100)).await;
    let start = Instant::now();
    let id = h.submit(&[b"SET", b"trigger", b"v"], false);
    for _ in 0..3 {
        tokio::time::timeout(WITHIN, accepted.recv())
            .await
            .expect("the client never connected to a frozen master");
    }
    // Every slot on a from now on.
    a.st().slots = None;
    let got = h.result(id).await;
    let took = start.elapsed();
    assert_eq!(got, Ok(Reply::Status("OK".into())));
    assert_eq!(a.served(b"trigger").len(), 1);
    // Without the wake, or with a refresh that asks a frozen master first, it waits out the 2 s
    // connect timeout; with both, about one refresh period after the change.
    assert!(took < Duration::from_millis(1_000), "done after {took:?}");
    assert_no_io_panic();
}

#[tokio::test]
async fn a_refresh_asks_a_node_that_answers_before_a_frozen_one() {
    // Seven masters whose hosts froze with a command outstanding (connections up, nothing
    // answered, topology queries included) and one that answers. A refresh that asked a frozen
    // one first would wait out the 2 s query timeout; the map must come from the live one.
    let a = Server::start().await;
    let mut frozen = Vec::new();
    for _ in 0..7 {
        let m = Server::start().await;
        m.st().mute = true;
        frozen.push(m);
    }
    // a holds `trigger`'s slot (1749) and the rest of 0..=2047; each frozen master 2048 more.
    assert!(slot(b"trigger") < 2048);
    let host: &[u8] = b"127.0.0.1";
    let mut ranges: Vec<Range> = vec![(0, 2047, host, i64::from(a.port))];
    ranges.extend(frozen.iter().enumerate().map(|(i, m)| {
        let first = (i as i64 + 1) * 2048;
        (first, first + 2047, host, i64::from(m.port))
    }));
    a.st().slots = Some(slots_reply(&ranges));
    // No periodic refresh: the one below is asked for by a MOVED.
    let mut h = Harness::start_with(&a, true, |c| c.slot_interval_ms = Some(60_000)).await;
    // One GET per frozen master, never answered.
    for (i, m) in frozen.iter().enumerate() {
        let key = (0..)
            .map(|n| format!("k{n}"))
            .find(|k| usize::from(slot(k.as_bytes())) / 2048 == i + 1)
            .unwrap();
        h.submit(&[b"GET", key.as_bytes()], false);
        let start = Instant::now();
        while m.served(key.as_bytes()).is_empty() {
            assert!(
                start.elapsed() < WITHIN,
                "the GET never reached frozen master {i}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    // The client calls a connected node stalled once it has left requests unanswered for
    // 100 ms: a rule about time, so this waits out that time.
    tokio::time::sleep(Duration::from_millis(150)).await;
    // The cluster moves every slot to a, and a MOVED (to a itself) makes the client ask.
    h.pump();
    h.events.clear();
    a.st().slots = None;
    a.script(Hostile::Send(
        format!("-MOVED {} 127.0.0.1:{}\r\n", slot(b"trigger"), a.port).into_bytes(),
    ));
    let start = Instant::now();
    assert_eq!(h.set(b"trigger").await, Ok(Reply::Status("OK".into())));
    h.wait_event("Topology", |e| matches!(e, Event::Topology(..)))
        .await;
    let took = start.elapsed();
    // A round that asks a frozen master first takes at least its 2 s query timeout.
    assert!(
        took < Duration::from_millis(1_000),
        "map learnt after {took:?}"
    );
    assert_no_io_panic();
}

/// a was demoted: it refuses the write with READONLY (twice, if asked twice), and its map,
/// asked by the refresh READONLY starts, gives trigger's slot to b, but only after 80 ms (a node
/// busy with its cluster config after a failover; seen in R18). The first backoff step (25 ms)
/// ends well before: the request must wait for that round, not meet a again. `idle` is how long
/// the client has been ready when the write goes: under 100 ms the round is held back by the
/// rate limit (the discovery round was just now), over it the round starts at once.
async fn readonly_waits_for_the_round(idle: Duration) {
    let a = Server::start().await;
    let b = Server::start().await;
    let readonly =
        || Hostile::Send(b"-READONLY You can't write against a read only replica.\r\n".to_vec());
    a.script(readonly());
    a.script(readonly());
    let (kept, moved) = halves(&a, &b);
    // `halves` puts trigger's half on a: swap the owners.
    let to_b = slots_reply(&[
        (kept.0, kept.1, kept.2, moved.3),
        (moved.0, moved.1, moved.2, kept.3),
    ]);
    b.st().slots = Some(to_b.clone());
    a.st().flip = Some(Flip {
        after: 1,
        slots: to_b,
        then: None,
    });
    let mut h = Harness::start_with(&a, true, |c| c.slot_interval_ms = Some(60_000)).await;
    tokio::time::sleep(idle).await;
    let asked_before = a.st().slots_served + b.st().slots_served;
    a.st().slow_slots = Some(Duration::from_millis(80));

    let got = h.set(b"trigger").await;
    assert_eq!(got, Ok(Reply::Status("OK".into())));
    // Refused once, then written on b once the map came. Sent again at the end of its backoff,
    // it would have been refused a second time (a answers it after the late map), and that
    // refusal would have asked for another round 100 ms later.
    assert_eq!(
        a.served(b"trigger").len(),
        1,
        "a was asked again before the map came"
    );
    assert_eq!(b.served(b"trigger").len(), 1);
    // That round would come at least 100 ms after the first began (the rate limit): absent
    // 250 ms after the write, it never came.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let rounds = a.st().slots_served + b.st().slots_served - asked_before;
    assert_eq!(rounds, 1, "refresh rounds for one READONLY");
    assert_no_io_panic();
}

#[tokio::test]
async fn a_request_refused_readonly_waits_for_the_refresh_round_asking_before_it_is_sent_again() {
    readonly_waits_for_the_round(Duration::from_millis(150)).await;
}

#[tokio::test]
async fn a_request_refused_readonly_waits_for_the_refresh_round_the_rate_limit_holds_back() {
    readonly_waits_for_the_round(Duration::ZERO).await;
}
