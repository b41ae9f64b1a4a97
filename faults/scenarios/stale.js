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
    const victim = (await ctx.cluster.masters())[0];
    const replica = victim.replicas[0];
    ctx.expectMasters = (await c.masterPorts(ctx.cluster)).map((p) => (p === victim.port ? replica : p));
    const affected = c.inRanges(victim.slots);
    const kp = keyIn(affected, 'r4b:pinned:');
    const kc = keyIn(affected, 'r4b:cluster:');
    const addr = `${c.HOST}:${victim.port}`;
    await c.replicasInSync(ctx.cluster, victim.port);
    await ctx.cluster.killNode(victim.port, 'SIGSTOP');
    const stopAt = Date.now();
    await c.until(async () => (await c.role(replica)).role === 'master', { timeout: 20000, what: `replica ${replica} promoted` });
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

    await c.until(async () => {
      const r = await c.role(victim.port);
      return r.role === 'slave' && r.master_link_status === 'up';
    }, { timeout: 20000, what: `old master ${victim.port} back as a replica` });
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

module.exports = [R4b];
