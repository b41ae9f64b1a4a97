// Stale routes to a master that is no longer one.
//
// R4b, the stale primary made deterministic: a master is SIGSTOPped until its replica is
// promoted and the client has re-routed; then writes are pinned to the old master through its
// node handle, followed by WAIT, and the old master is continued. Whatever the old master
// acknowledges then is lost when it rejoins as a replica (server behaviour): WAIT must come back
// as an error, so such a write is never reported durable, and the cluster client (not pinned)
// must not send a single write to the old master once it re-routed.
'use strict';

const c = require('../cluster');
const RedisClustr = require('../..');
const { NodeHandle } = require('../../lib/node');
const { firstMasterWillFailOver } = require('../harness');

const cb2p = (fn) => new Promise((resolve) => fn((err, value) => resolve({ err, value })));

function keyIn(affected, prefix) {
  for (let i = 0; ; i++) if (affected(RedisClustr.keySlot(`${prefix}${i}`))) return `${prefix}${i}`;
}

const R4b = {
  id: 'R4b',
  title: 'stale primary, deterministic',
  fault: 'SIGSTOP a master, wait for promotion and re-routing, pipeline 5 INCRs + `WAIT 1 2000` pinned to it, SIGCONT',
  must: "surface WAIT's error as an error; never report such a write as durable",
  passFigure: "WAIT result is an error; the cluster client's writes after re-routing all reach the new master (0 to the old one)",
  summary: (f) =>
    `${f.pinnedAcks} of 5 pinned INCRs acked by the old master (server behaviour), WAIT → ${f.waitResult}; ` +
    `${f.clusterWritesOk}/20 cluster INCRs ok before SIGCONT, final ${f.clusterFinal}; re-routed ${f.reroutedMs} ms after the STOP`,
  // No deadline: the pinned commands must wait for the old master to wake.
  client: { commandTimeout: undefined },
  workload: false,
  async run(ctx) {
    const { client, figures } = ctx;
    const { victim, replica } = await firstMasterWillFailOver(ctx);
    const affected = c.inRanges(victim.slots);
    const kp = keyIn(affected, 'r4b:pinned:');
    const kc = keyIn(affected, 'r4b:cluster:');
    const addr = `${c.HOST}:${victim.port}`;
    await c.replicasInSync(ctx.cluster, victim.port);
    await ctx.cluster.killNode(victim.port, 'SIGSTOP');
    const stopAt = Date.now();
    await c.promoted(replica);
    await c.until(() => {
      const s = client.slots[RedisClustr.keySlot(kc)];
      return s && s[0] && s[0].port === replica;
    }, { timeout: 10000, what: 'the client to re-route to the promoted replica' });
    figures.reroutedMs = Date.now() - stopAt;

    // The cluster client's writes, all issued after re-routing: they must complete while the old
    // master is still stopped (a single one sent there would hang until SIGCONT).
    const writes = [];
    for (let i = 0; i < 20; i++) writes.push(cb2p((cb) => client.incr(kc, cb)));
    const clusterResults = await Promise.race([
      Promise.all(writes),
      new Promise((r) => setTimeout(() => r(null), 3000)),
    ]);
    figures.clusterWritesOk = clusterResults ? clusterResults.filter((r) => !r.err).length : 0;

    // Pinned to the old master (its handle, or a new one for that address if the map dropped it).
    const handle = client.connections[addr] || new NodeHandle(client, addr);
    figures.handleInMap = !!client.connections[addr];
    const pinned = [];
    for (let i = 0; i < 5; i++) pinned.push(cb2p((cb) => handle.incr(kp, cb)));
    const wait = cb2p((cb) => handle.send_command('wait', ['1', '2000'], cb));
    await ctx.cluster.killNode(victim.port, 'SIGCONT');
    const results = await Promise.all(pinned);
    figures.pinnedAcks = results.filter((r) => !r.err).length;
    figures.pinnedErrors = results.filter((r) => r.err).map((r) => r.err.code);
    const w = await wait;
    figures.waitResult = w.err ? `error ${w.err.code}` : JSON.stringify(w.value);
    figures.waitDurable = !w.err && Number.isInteger(w.value) && w.value >= 1;

    await c.backAsReplica(victim.port);
    await c.healthy(ctx.cluster);
    const final = await cb2p((cb) => client.get(kc, cb));
    figures.clusterFinal = final.err ? final.err.code : Number(final.value);
    const lostPinned = await cb2p((cb) => client.get(kp, cb));
    figures.pinnedOnNewMaster = lostPinned.err ? lostPinned.err.code : lostPinned.value;
  },
  check(ctx, f) {
    if (!/^error /.test(f.waitResult)) ctx.fail(`WAIT after the pinned writes answered ${f.waitResult} (must be an error)`);
    if (f.waitDurable) ctx.fail('a write the old master acknowledged was reported durable by WAIT');
    if (f.clusterWritesOk !== 20) ctx.fail(`${f.clusterWritesOk} of 20 cluster writes completed before SIGCONT (a write sent to the stopped old master hangs)`);
    if (f.clusterFinal !== 20) ctx.fail(`the new master holds ${f.clusterFinal} for the cluster counter (want 20)`);
  },
};

// R18: a write reaches a demoted master through a stale map and is answered READONLY. With
// replica reads on (`slaves: 'share'`) every connection of the client is in READONLY mode. A
// demoted master answers MOVED for a command the server flags as a write, but it runs an EVAL
// (not flagged as a write) for a slot its own master serves, and the script's SET is refused
// with READONLY: nothing ran, a definite failure. The client must refresh once and run the script
// on the new master. The periodic refresh is off, so the map is still the old one when the EVAL is
// sent (checked: no refresh between the failover and the EVAL). The old master must count exactly
// one READONLY: right after a demotion the master asked for the map answered 26–33 ms after the
// EVAL in runs on the 2-core VM (~2 ms when the EVAL came 300 ms later), past the first 25 ms
// backoff step, and a client that resent then met the old route again and asked for a second
// round (crates/io/src/timers.rs `backoff_over`).
const SET_SCRIPT = "return redis.call('SET', KEYS[1], ARGV[1])";

async function readonlyErrors(port) {
  const info = c.parseInfo(await c.sendCommand(port, ['INFO', 'errorstats'], { timeoutMs: 2000 }));
  const m = /count=(\d+)/.exec(info.errorstat_READONLY || '');
  return m ? Number(m[1]) : 0;
}

const R18 = {
  id: 'R18',
  title: 'READONLY',
  fault: "`CLUSTER FAILOVER` with the periodic refresh off, then an EVAL that writes, sent by the stale map to the demoted master over a READONLY connection (`slaves: 'share'`)",
  must: 'refresh and retry (definite failure)',
  passFigure: 'exactly 1 refresh; write succeeds',
  quick: true,
  summary: (f) =>
    `old master answered READONLY ${f.readonlyErrors}×, refreshes for the write ${f.writeRefreshes}, new map after ${f.mapMs} ms, ` +
    `EVAL → ${f.evalResult} after ${f.evalMs} ms, new master holds ${f.newMasterValue}`,
  client: { slaves: 'share', slotInterval: 60000, commandTimeout: 5000 },
  workload: false,
  async run(ctx) {
    const { client, figures } = ctx;
    const { victim, replica } = await firstMasterWillFailOver(ctx);
    const key = keyIn(c.inRanges(victim.slots), 'r18:');
    const slot = RedisClustr.keySlot(key);
    // The client routes the key to the victim and holds a connection to it.
    const first = await cb2p((cb) => client.eval(SET_SCRIPT, 1, key, 'before', cb));
    if (first.err) throw new Error(`EVAL before the failover failed: ${first.err.message}`);
    await c.replicasInSync(ctx.cluster, victim.port);

    const before = client.stats().refreshes;
    await c.sendCommand(replica, ['CLUSTER', 'FAILOVER'], { timeoutMs: 5000 });
    // Both sides agree: the replica is master, and the old master runs as its replica and knows
    // the slot's new owner (before that it would still accept the write itself).
    const replicaId = await c.nodeId(replica);
    await c.until(async () => {
      const r = await c.role(victim.port);
      if (r.role !== 'slave' || Number(r.master_port) !== replica) return false;
      const nodes = String(await c.sendCommand(victim.port, ['CLUSTER', 'NODES'], { timeoutMs: 1000 }));
      return nodes.split('\n').some((l) => l.startsWith(replicaId) && / master /.test(l) && / connected \d/.test(l));
    }, { timeout: 15000, what: `${victim.port} demoted under ${replica}` });

    figures.refreshesBeforeWrite = client.stats().refreshes - before;
    figures.staleMap = client.slots[slot][0].port === victim.port;
    const errorsBefore = await readonlyErrors(victim.port);
    const sentAt = process.hrtime.bigint();
    const sinceSent = () => Math.round(Number(process.hrtime.bigint() - sentAt) / 1e5) / 10;
    client.once('topology', () => {
      figures.mapMs = sinceSent();
    });
    const r = await cb2p((cb) => client.eval(SET_SCRIPT, 1, key, 'after', cb));
    figures.evalMs = sinceSent();
    figures.evalResult = r.err ? `error ${r.err.code}: ${r.err.message}` : JSON.stringify(r.value);
    // A refresh asked for while a round is on runs when it ends, at least 100 ms after the
    // round began (the rate limit): wait that out so a second one would be counted.
    await new Promise((res) => setTimeout(res, 300));
    figures.writeRefreshes = client.stats().refreshes - before - figures.refreshesBeforeWrite;
    figures.readonlyErrors = (await readonlyErrors(victim.port)) - errorsBefore;
    figures.newMasterValue = await c.sendCommand(replica, ['GET', key], { timeoutMs: 2000 });
    figures.mapFollowed = client.slots[slot][0].port === replica;
    await c.healthy(ctx.cluster);
  },
  check(ctx, f) {
    // Without these the write never met READONLY, and the figures below would prove nothing.
    if (!f.staleMap || f.refreshesBeforeWrite) ctx.fail(`the client refreshed ${f.refreshesBeforeWrite}× between the failover and the write, or its map had moved (the route was not stale)`);
    if (f.readonlyErrors !== 1) ctx.fail(`the old master answered READONLY ${f.readonlyErrors} times (want 1)`);
    if (f.evalResult !== '"OK"') ctx.fail(`the EVAL answered ${f.evalResult} (want OK)`);
    if (f.writeRefreshes !== 1) ctx.fail(`${f.writeRefreshes} refreshes for the write (want exactly 1)`);
    if (f.newMasterValue !== 'after') ctx.fail(`the new master holds ${JSON.stringify(f.newMasterValue)} (want "after")`);
    if (!f.mapFollowed) ctx.fail("the client's map does not route the slot to the new master");
  },
};

module.exports = [R4b, R18];
