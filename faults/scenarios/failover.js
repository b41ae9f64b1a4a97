// Role changes: R2 manual failover (CLUSTER FAILOVER on a replica, every shard in turn), R3 SIGKILL
// of a master (promotion, then the old master restarts as a replica), R4 SIGSTOP of a master
// (stale primary: promotion while it sleeps, then it wakes), R11 the same with DEBUG SLEEP 8,
// R12 CLUSTERDOWN (two of three masters paused: the survivor is in the minority).
'use strict';

const c = require('../cluster');
const { window } = require('../checker');
const { cpuMeter } = require('../monitor');
const { firstMasterWillFailOver } = require('../harness');

// Waits until the client's own slot map names node `port` as the owner of `slot` (over TLS the
// client knows the node by its TLS port).
const clientFollows = (ctx, slot, port, what) =>
  c.until(() => {
    const s = ctx.client.slots[slot];
    return s && s[0] && s[0].port === ctx.clientPort(port);
  }, { timeout: 10000, what });

const R2 = {
  id: 'R2',
  summary: (f) => `${f.okWrites} acked writes, lost ${f.lost}, fail/info ${f.fail}/${f.info}, max ${f.maxMs} ms, refreshes per failover ${(f.failovers || []).map((x) => x.refreshes).join('/')}`,
  title: 'manual failover',
  fault: '`CLUSTER FAILOVER` on a replica of each master in turn (t = 8, 16, 24 s)',
  must: 'follow MOVED transparently; refresh the map once per event',
  passFigure: 'N ≥ 40,000 acked writes, 0 lost, 0 fail, 0 info; max latency ≤ 2 s; ≤ 3 refreshes per failover',
  quick: true,
  tls: true,
  // Periodic refresh off (60 s) so that the refreshes counted per failover are the event-driven
  // ones the pass figure is about (with a 1 s period every window would hold ~8 periodic ones).
  client: { slotInterval: 60000 },
  async run(ctx) {
    const masters = await ctx.cluster.masters();
    const shards = ctx.quick ? masters.slice(0, 1) : masters;
    const promoted = new Map(shards.map((m) => [m.port, m.replicas[0]]));
    ctx.expectMasters = masters.map((m) => promoted.get(m.port) || m.port);
    const ranges = shards.flatMap((m) => m.slots);
    ctx.affected = c.inRanges(ranges);
    ctx.figures.failovers = [];
    for (let i = 0; i < shards.length; i++) {
      const m = shards[i];
      const replica = promoted.get(m.port);
      await c.replicasInSync(ctx.cluster, m.port);
      await ctx.at((ctx.quick ? 5000 : 8000) + i * 8000);
      const before = ctx.mon.statsDelta().refreshes;
      const tF = Date.now();
      if (i === 0) ctx.faultAt = tF;
      await c.sendCommand(replica, ['CLUSTER', 'FAILOVER']);
      await c.promoted(replica, 10000);
      const promotedMs = Date.now() - tF;
      await clientFollows(ctx, m.slots[0][0], replica, `the client to route shard ${m.port} to ${replica}`);
      const followedMs = Date.now() - tF;
      await c.healthy(ctx.cluster);
      // Refreshes this event caused: counted until just before the next event, or for the last
      // one until t = 16 s (quick) / 27 s, which also gives the run its ≥ 40,000 acked writes.
      await ctx.at(i + 1 < shards.length ? 8000 + (i + 1) * 8000 - 200 : ctx.quick ? 16000 : 27000);
      ctx.figures.failovers.push({ shard: m.port, promotedMs, followedMs, refreshes: ctx.mon.statsDelta().refreshes - before });
    }
  },
  check(ctx, f) {
    if (f.okWrites < 40000) ctx.fail(`${f.okWrites} acked writes (must be ≥ 40,000)`);
    if (f.lost) ctx.fail(`lost = ${f.lost} (must be 0)`);
    if (f.fail || f.info) ctx.fail(`${f.fail} fail / ${f.info} info (must be 0)`);
    if (f.maxMs > 2000) ctx.fail(`max latency ${f.maxMs} ms (must be ≤ 2000)`);
    for (const fo of f.failovers || []) if (fo.refreshes > 3) ctx.fail(`failover of ${fo.shard}: ${fo.refreshes} refreshes (must be ≤ 3)`);
  },
};

// When the masters at `ports` refuse every key (cluster_state:fail) after the fault: polled
// every 20 ms until stop() returns the [from, to] windows (ms timestamps) in which at least one
// of them said so; a poll that none answers ends a window (the strict side). A master fails
// the whole cluster from when it flags the victim FAIL until a replica is promoted, since a slot
// is then uncovered (cluster-require-full-coverage, the default): a command on an untouched shard
// sent then gets CLUSTERDOWN, and one sent early in a window longer than its commandTimeout can
// only time out, whatever the client does.
function clusterDownWatch(ports) {
  const windows = [];
  let open = null;
  let stopped = false;
  const poll = async () => {
    while (!stopped) {
      const t = Date.now();
      let down = false;
      for (const port of ports) {
        try {
          if ((await c.clusterState(port, 200)) === 'fail') down = true;
        } catch (_) {
          // no answer: no evidence either way
        }
      }
      if (down && !open) open = [t, t];
      else if (down) open[1] = Date.now();
      else if (open) {
        windows.push(open);
        open = null;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const running = poll();
  return async () => {
    stopped = true;
    await running;
    if (open) windows.push(open);
    return windows;
  };
}

// SIGKILL / SIGSTOP / DEBUG SLEEP of the first master, then heal; shared by R3, R4 and R11.
// `signal` 'SLEEP' puts the master in `DEBUG SLEEP <sleepS>` instead (R11): it wakes by itself.
async function killMaster(ctx, { signal, healAt, faultAt = 10000, sleepS = 0 }) {
  const { masters, victim, replica } = await firstMasterWillFailOver(ctx);
  ctx.affected = c.inRanges(victim.slots);
  await c.replicasInSync(ctx.cluster, victim.port);
  await ctx.at(faultAt);
  // The fault counts from when it is in force (killNode resolves once a SIGKILLed node exited),
  // so an op issued in between and still served is not taken for a recovery.
  let sleeping = null;
  if (signal === 'SLEEP') {
    // Deferred: the reply comes when the node wakes; nothing waits for it until then.
    sleeping = c.sendCommand(victim.port, ['DEBUG', 'SLEEP', String(sleepS)], { timeoutMs: sleepS * 1000 + 10000 }).catch((e) => e);
    await c.until(async () => {
      try {
        await c.sendCommand(victim.port, ['PING'], { timeoutMs: 100 });
        return false;
      } catch (_) {
        return true; // no answer within 100 ms: it sleeps
      }
    }, { timeout: 2000, interval: 10, what: `${victim.port} to fall asleep` });
  } else await ctx.cluster.killNode(victim.port, signal);
  ctx.faultAt = Date.now();
  const others = masters.slice(1).map((m) => m.port);
  const stopWatch = clusterDownWatch(others);
  try {
    await c.promoted(replica);
    ctx.figures.promotionMs = Date.now() - ctx.faultAt;
    await c.until(async () => {
      for (const port of others) {
        if ((await c.clusterState(port)) !== 'ok') return false;
      }
      return true;
    }, { timeout: 10000, interval: 20, what: 'the untouched masters to report cluster_state:ok' });
  } finally {
    // Stopped whatever happens: it must not poll ports a later scenario's cluster may reuse.
    ctx.clusterDown = await stopWatch();
  }
  await ctx.at(healAt);
  ctx.healAt = Date.now();
  if (signal === 'SIGKILL') await ctx.cluster.restartNode(victim.port);
  else if (signal === 'SLEEP') await sleeping;
  else await ctx.cluster.killNode(victim.port, 'SIGCONT');
  await c.backAsReplica(victim.port);
  await c.healthy(ctx.cluster);
  return victim;
}

// How long before its deadline the cluster must have been whole again for a command that waited
// out CLUSTERDOWN to be expected to succeed: the client learns of the promotion by a refresh
// (rate-limited to one per 100 ms), then resends at once.
const HEALED_MARGIN_MS = 200;

// Errors on slots the fault does not touch (keyless ECHO excluded: it may land on the victim).
// A TIMEOUT after CLUSTERDOWN whose deadline came while the untouched masters still reported
// cluster_state:fail, or within HEALED_MARGIN_MS after they stopped, is the cluster's (counted
// as unaffectedClusterDown, not an error): no client could have had an answer in time.
function unaffectedErrors(ctx, f) {
  const unaffected = (o) => o.s >= 0 && !ctx.affected(o.s);
  const down = ctx.clusterDown || [];
  f.clusterDownMs = down.map(([a, b]) => `+${a - ctx.faultAt}..+${b - ctx.faultAt}`);
  const clusters = (o) =>
    o.code === 'TIMEOUT' && /after CLUSTERDOWN/.test(o.why || '') && down.some(([a, b]) => a <= o.t1 && b >= o.t1 - HEALED_MARGIN_MS);
  const failed = ctx.wl.ops.filter((o) => o.t0 >= ctx.faultAt && o.st !== 'ok' && unaffected(o));
  f.unaffectedClusterDown = failed.filter(clusters).length;
  const w = window(ctx.wl, ctx.faultAt, Infinity, (o) => unaffected(o) && !clusters(o));
  f.unaffectedErrors = w.fail + w.info;
  if (f.unaffectedErrors) {
    f.unaffectedCodes = w.codes;
    // Which ops, when (ms after the fault) and how long they took, to tell a stall from a misroute.
    f.unaffectedSamples = failed
      .filter((o) => !clusters(o))
      .slice(0, 5)
      .map((o) => `${o.k} slot ${o.s} at +${o.t0 - ctx.faultAt} ms took ${o.t1 - o.t0} ms: ${o.code}${o.why ? ` (${o.why})` : ''}`);
  }
}

const R3 = {
  id: 'R3',
  summary: (f) => `promotion ${f.promotionMs} ms, first ok ${f.recoveryMs} ms after the kill, info ${f.info}, lost ${f.lost} (durable ${f.lostDetail && f.lostDetail.durable}), unaffected-shard errors ${f.unaffectedErrors} (timeouts inside the CLUSTERDOWN window ${f.unaffectedClusterDown})`,
  title: 'SIGKILL master',
  fault: '`kill -9` a master at t = 10 s (replicas in sync, `WAIT 1 5000` first); restart it at t = 20 s',
  must: 'fail fast on refused connects, keep other shards at full speed, find the promoted replica, re-add the restarted node',
  passFigure: 'first ok on affected slots ≤ 6 s after the kill; 0 lost W4 durable writes; unaffected shards 0 errors (lost among ok writes reported)',
  async run(ctx) {
    await killMaster(ctx, { signal: 'SIGKILL', healAt: 20000 });
  },
  check(ctx, f) {
    unaffectedErrors(ctx, f);
    if (f.recoveryMs === null || f.recoveryMs > 6000) ctx.fail(`first ok on affected slots ${f.recoveryMs} ms after the kill (must be ≤ 6000)`);
    if (f.lostDetail.durable) ctx.fail(`${f.lostDetail.durable} WAIT-durable writes lost (must be 0)`);
    if (f.unaffectedErrors) ctx.fail(`${f.unaffectedErrors} errors on unaffected shards (must be 0): ${JSON.stringify(f.unaffectedCodes)}`);
  },
};

const R4 = {
  id: 'R4',
  summary: (f) => `promotion ${f.promotionMs} ms, re-routed ${f.recoveryMs} ms after the STOP, timeouts ${f.timeoutMinMs}–${f.timeoutMaxMs} ms, lost ${f.lost}, wrong ${f.wrong}`,
  title: 'SIGSTOP master (stale primary)',
  fault: '`kill -STOP` a master at t = 10 s, `kill -CONT` at t = 22 s',
  must: 'time out in-flight requests at 1 s (info), refresh from other nodes, route to the new master, drop the old one\'s late replies',
  passFigure: 'timeouts settle at 1.0 s ± 10%; re-routing ≤ 8 s after the STOP; 0 lost among ok writes; 0 wrong',
  async run(ctx) {
    await killMaster(ctx, { signal: 'SIGSTOP', healAt: 22000 });
  },
  check: stalePrimaryCheck,
};

// R4 and R11: a stale primary's pass figures.
function stalePrimaryCheck(ctx, f) {
  unaffectedErrors(ctx, f);
  const timeouts = ctx.wl.ops.filter((o) => o.code === 'TIMEOUT').map((o) => o.t1 - o.t0);
  f.timeouts = timeouts.length;
  f.timeoutMinMs = timeouts.length ? Math.min(...timeouts) : null;
  f.timeoutMaxMs = timeouts.length ? Math.max(...timeouts) : null;
  if (timeouts.length && (f.timeoutMinMs < 900 || f.timeoutMaxMs > 1100)) {
    ctx.fail(`timeouts settled after ${f.timeoutMinMs}-${f.timeoutMaxMs} ms (must be 1000 ± 10%)`);
  }
  if (f.recoveryMs === null || f.recoveryMs > 8000) ctx.fail(`re-routed ${f.recoveryMs} ms after the STOP (must be ≤ 8000)`);
  if (f.lost) ctx.fail(`lost = ${f.lost} among ok writes (must be 0)`);
  if (f.unaffectedErrors) ctx.fail(`${f.unaffectedErrors} errors on unaffected shards: ${JSON.stringify(f.unaffectedCodes)}`);
}

const R11 = {
  id: 'R11',
  summary: (f) => `promotion ${f.promotionMs} ms, re-routed ${f.recoveryMs} ms after the sleep began, timeouts ${f.timeoutMinMs}–${f.timeoutMaxMs} ms, lost ${f.lost}, wrong ${f.wrong}`,
  title: 'DEBUG SLEEP long',
  fault: '`DEBUG SLEEP 8` on a master at t = 10 s (deferred side connection); it wakes as a stale primary',
  must: 'same as R4',
  passFigure: 'same as R4',
  async run(ctx) {
    await killMaster(ctx, { signal: 'SLEEP', sleepS: 8, healAt: 0 });
  },
  check: stalePrimaryCheck,
};

const R12 = {
  id: 'R12',
  summary: (f) => `down ${f.downAfterMs} ms after the STOP; CPU ${f.cpuWhileDown} core, ${f.retriesPerSecWhileDown} retries/s while down; max settle ${f.maxMs} ms; first ok ${f.recoveryMs} ms after CONT; codes ${JSON.stringify(f.codes)}`,
  title: 'CLUSTERDOWN',
  fault: 'SIGSTOP two of three masters at t = 8 s (the third is in the minority), SIGCONT at t = 20 s',
  must: 'back off, surface CLUSTERDOWN after the retry budget, no busy loop; recover when the nodes return',
  passFigure: 'CPU < 50% of a core while down; each request settles ≤ 6 s; first ok ≤ node timeout + 3 s after SIGCONT',
  // One deadline above the retry budget, so CLUSTERDOWN (definite) surfaces from the budget and
  // only requests to the paused nodes end as TIMEOUT. 5.8 s, not 6: the client may fire a
  // deadline up to a tenth of a second late (its sweep period), and the bound is 6 s.
  client: { commandTimeout: 5800, retryBudget: 5000 },
  async run(ctx) {
    const masters = await ctx.cluster.masters();
    const paused = masters.slice(0, 2);
    await ctx.at(8000);
    const stopAt = Date.now();
    for (const m of paused) await ctx.cluster.killNode(m.port, 'SIGSTOP');
    // The survivor declares the cluster down once it sees the others unreachable (node timeout).
    await c.until(async () => (await c.clusterState(masters[2].port)) === 'fail', {
      timeout: 10000,
      what: 'the surviving master to report cluster_state:fail',
    });
    ctx.figures.downAfterMs = Date.now() - stopAt;
    const cpu = cpuMeter();
    const retries0 = ctx.mon.statsDelta().retries;
    const downFrom = Date.now();
    await ctx.at(20000);
    ctx.figures.cpuWhileDown = Math.round(cpu() * 100) / 100;
    ctx.figures.retriesPerSecWhileDown = Math.round(((ctx.mon.statsDelta().retries - retries0) * 1000) / (Date.now() - downFrom));
    ctx.downWindow = [downFrom, Date.now()];
    for (const m of paused) await ctx.cluster.killNode(m.port, 'SIGCONT');
    // Recovery is measured from SIGCONT: first ok issued after it.
    ctx.faultAt = Date.now();
    await c.healthy(ctx.cluster);
  },
  check(ctx, f) {
    const w = window(ctx.wl, ctx.downWindow[0], ctx.downWindow[1]);
    f.whileDown = w;
    if (f.cpuWhileDown >= 0.5) ctx.fail(`CPU ${f.cpuWhileDown} of a core while down (must be < 0.5)`);
    if (f.maxMs > 6000) ctx.fail(`a request took ${f.maxMs} ms to settle (must be ≤ 6000)`);
    if (f.recoveryMs === null || f.recoveryMs > 5000) ctx.fail(`first ok ${f.recoveryMs} ms after SIGCONT (must be ≤ 5000)`);
  },
};

module.exports = [R2, R3, R4, R11, R12];
