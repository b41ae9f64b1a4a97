// Slots on the move: R5 online reshard under load (redis-cli, twice), R6 a manual slot migration
// driven step by step with the exact reply, ASK and refresh count checked at each step, R7 a MOVED
// loop between two masters that disagree about one slot (must stop at the redirection limit).
'use strict';

const RedisClustr = require('../..');
const c = require('../cluster');
const { pipeline } = require('../../scripts/cluster');
const { window } = require('../checker');
const { cpuMeter } = require('../monitor');

// R6 and R7 each own one slot the workload never touches (it must stay empty for SETSLOT).
const R6_TAG = '{r6-migration}';
const R6_SLOT = RedisClustr.keySlot(R6_TAG);
const R7_KEY = 'r7-moved-loop';
const R7_SLOT = RedisClustr.keySlot(R7_KEY);

const cb2p = (fn) => new Promise((resolve) => fn((err, value) => resolve({ err, value })));

// Masters (other than its owner) holding keys of a slot: with `CLUSTER COUNTKEYSINSLOT` on every
// master for every slot it does not own. A key on two nodes would show here.
async function strayKeys(cluster) {
  const masters = await cluster.masters();
  let stray = 0;
  for (const m of masters) {
    const owns = c.inRanges(m.slots);
    const cmds = [];
    for (let s = 0; s < 16384; s++) if (!owns(s)) cmds.push(['CLUSTER', 'COUNTKEYSINSLOT', s]);
    const counts = await pipeline(m.port, cmds, { timeoutMs: 20000 });
    for (const n of counts) if (n > 0) stray += n;
  }
  return stray;
}

const R5 = {
  id: 'R5',
  summary: (f) => `N ${f.ops}, reshards ${(f.reshards || []).map((r) => r.ms).join(' + ')} ms, lost ${f.lost}, W1/W2 errors ${f.w12Errors}, W3 errors ${f.w3Errors}, ASK ${f.ask}, keys on two masters ${f.strayKeys}`,
  title: 'online reshard',
  fault: '`redis-cli --cluster reshard --cluster-from all --cluster-slots 1500` to one master at t = 5 s, then to another',
  must: 'follow ASK with ASKING back-to-back; patch the map on MOVED; TRYAGAIN backoff for W3',
  passFigure: 'N ≥ 60,000; 0 lost, 0 fail for W1/W2 (W3 TRYAGAIN absorbed); no key on two masters',
  tls: true,
  async run(ctx) {
    const masters = await ctx.cluster.masters();
    ctx.faultAt = 0; // no outage expected: recovery time is not a figure here
    ctx.figures.reshards = [];
    const targets = [masters[0], masters[1]];
    for (let i = 0; i < targets.length; i++) {
      await ctx.at(i === 0 ? 5000 : 13000);
      const t = Date.now();
      await c.reshard(masters[2].port, { from: 'all', to: targets[i].id, slots: 1500 });
      ctx.figures.reshards.push({ to: targets[i].port, ms: Date.now() - t });
    }
    await ctx.at(18000);
    await c.healthy(ctx.cluster);
    await c.check(masters[0].port);
    ctx.figures.strayKeys = await strayKeys(ctx.cluster);
  },
  check(ctx, f) {
    const w12 = window(ctx.wl, 0, Infinity, (o) => ['get', 'incr', 'rpush', 'lrange'].includes(o.k));
    const w3 = window(ctx.wl, 0, Infinity, (o) => o.k === 'mset' || o.k === 'mget' || o.k === 'tx');
    f.w12Errors = w12.fail + w12.info;
    f.w3Errors = w3.fail + w3.info;
    if (f.w3Errors) f.w3Codes = w3.codes;
    if (f.ops < 60000) ctx.fail(`N = ${f.ops} (must be ≥ 60,000)`);
    if (f.lost) ctx.fail(`lost = ${f.lost} (must be 0)`);
    if (f.w12Errors) ctx.fail(`${f.w12Errors} W1/W2 errors surfaced (must be 0): ${JSON.stringify(w12.codes)}`);
    // TRYAGAIN may surface only when it lasted beyond the 5 s retry budget.
    if (f.w3Errors && !f.reshards.some((r) => r.ms > 5000)) ctx.fail(`${f.w3Errors} W3 errors although no reshard lasted 5 s: ${JSON.stringify(w3.codes)}`);
    if (f.strayKeys) ctx.fail(`${f.strayKeys} keys found on a master that does not own their slot`);
  },
};

async function askingCalls(port) {
  const info = c.parseInfo(await c.sendCommand(port, ['INFO', 'commandstats']));
  const m = /calls=(\d+)/.exec(info.cmdstat_asking || '');
  return m ? Number(m[1]) : 0;
}

const R6 = {
  id: 'R6',
  summary: (f) => `steps ${f.steps ? 'as expected' : '?'}; GET k2: ${f.askOnGet} ASK / ${f.askingOnGet} ASKING; total ${f.askTotal} ASK / ${f.askingTotal} ASKING; map changes on ASK ${f.mapChangesOnAsk}; refreshes after NODE ${f.refreshesAfterNode}`,
  title: 'manual slot migration',
  fault: 'IMPORTING/MIGRATING on an empty hash-tag slot, MIGRATE of one key, SETSLOT NODE on all masters',
  must: 'exact behaviour per step: ASK with one ASKING, TRYAGAIN retried, MOVED after NODE',
  passFigure: 'each step returns the right value; exactly one ASKING per ASK; 0 map changes on ASK; 1 refresh after NODE',
  quick: true,
  // No periodic refresh: every refresh counted must come from the migration itself.
  client: { slotInterval: 60000 },
  workload: { rate: 1000, avoidSlot: (s) => s === R6_SLOT || s === R7_SLOT },
  async run(ctx) {
    const { client, figures } = ctx;
    const steps = (figures.steps = {});
    const masters = await ctx.cluster.masters();
    const A = masters.find((m) => c.inRanges(m.slots)(R6_SLOT));
    const [B, C] = masters.filter((m) => m !== A);
    const k1 = `${R6_TAG}k1`;
    const k2 = `${R6_TAG}k2`;
    const k3 = `${R6_TAG}k3`;
    const count = (port) => c.sendCommand(port, ['CLUSTER', 'COUNTKEYSINSLOT', R6_SLOT]);
    if ((await count(A.port)) !== 0) throw new Error(`slot ${R6_SLOT} is not empty`);
    await ctx.at(2000);
    ctx.faultAt = 0;

    steps.importing = await c.sendCommand(B.port, ['CLUSTER', 'SETSLOT', R6_SLOT, 'IMPORTING', A.id]);
    // k1 is written before MIGRATING: a MIGRATING source answers ASK for a key it does not hold.
    const set = await cb2p((cb) => client.set(k1, 'v1', cb));
    steps.setK1 = set.err ? set.err.code : set.value;
    steps.k1OnSource = await count(A.port);
    steps.migrating = await c.sendCommand(A.port, ['CLUSTER', 'SETSLOT', R6_SLOT, 'MIGRATING', B.id]);

    // GET k2: absent on the source -> ASK -> ASKING + GET on the target -> nil; the map stays.
    const s0 = ctx.mon.statsDelta();
    const topo0 = ctx.mon.topologyEvents;
    const asking0 = await askingCalls(B.port);
    const g = await cb2p((cb) => client.get(k2, cb));
    const s1 = ctx.mon.statsDelta();
    steps.getK2 = g.err ? g.err.code : g.value;
    figures.askOnGet = s1.ask - s0.ask;
    figures.askingOnGet = (await askingCalls(B.port)) - asking0;
    figures.mapChangesOnAsk = s1.slotPatches - s0.slotPatches + (ctx.mon.topologyEvents - topo0);

    steps.migrate = await c.sendCommand(A.port, ['MIGRATE', c.HOST, B.port, '', 0, 5000, 'KEYS', k1]);
    // MGET k1 k3: ASK (neither key on the source) -> on the target k1 is there, k3 is not ->
    // TRYAGAIN, retried until the slot is settled.
    const retries0 = ctx.mon.statsDelta().retries;
    const mget = cb2p((cb) => client.mget(k1, k3, cb));
    await c.until(() => ctx.mon.statsDelta().retries > retries0, { timeout: 3000, interval: 10, what: 'MGET to be retried on TRYAGAIN' });
    figures.mgetRetriesBeforeNode = ctx.mon.statsDelta().retries - retries0;

    const r0 = ctx.mon.statsDelta().refreshes;
    steps.nodeTarget = await c.sendCommand(B.port, ['CLUSTER', 'SETSLOT', R6_SLOT, 'NODE', B.id]);
    steps.nodeSource = await c.sendCommand(A.port, ['CLUSTER', 'SETSLOT', R6_SLOT, 'NODE', B.id]);
    steps.nodeThird = await c.sendCommand(C.port, ['CLUSTER', 'SETSLOT', R6_SLOT, 'NODE', B.id]);
    const m = await mget;
    steps.mget = m.err ? m.err.code : m.value;
    const asking1 = await askingCalls(B.port);
    figures.askTotal = ctx.mon.statsDelta().ask - s0.ask;
    figures.askingTotal = asking1 - asking0;
    // GET k1 through the client's stale map: MOVED -> patch + one refresh.
    const g1 = await cb2p((cb) => client.get(k1, cb));
    steps.getK1 = g1.err ? g1.err.code : g1.value;
    await c.until(() => ctx.mon.statsDelta().refreshes > r0, { timeout: 3000, interval: 10, what: 'a refresh after NODE' });
    for (let i = 0; i < 20; i++) await cb2p((cb) => client.get(k1, cb));
    figures.refreshesAfterNode = ctx.mon.statsDelta().refreshes - r0;
    figures.slotOwner = client.slots[R6_SLOT] && client.slots[R6_SLOT][0].port === B.port ? 'target' : 'other';
    await c.healthy(ctx.cluster);
  },
  check(ctx, f) {
    const want = {
      importing: 'OK', setK1: 'OK', k1OnSource: 1, migrating: 'OK', getK2: null, migrate: 'OK',
      nodeTarget: 'OK', nodeSource: 'OK', nodeThird: 'OK', mget: ['v1', null], getK1: 'v1',
    };
    for (const [step, v] of Object.entries(want)) {
      if (JSON.stringify(f.steps[step]) !== JSON.stringify(v)) ctx.fail(`step ${step} answered ${JSON.stringify(f.steps[step])}, want ${JSON.stringify(v)}`);
    }
    if (f.askOnGet !== 1 || f.askingOnGet !== 1) ctx.fail(`GET k2: ${f.askOnGet} ASK followed with ${f.askingOnGet} ASKING (want 1 and 1)`);
    if (f.askingTotal !== f.askTotal) ctx.fail(`${f.askTotal} ASK followed but ${f.askingTotal} ASKING sent (must be equal)`);
    if (f.mapChangesOnAsk !== 0) ctx.fail(`${f.mapChangesOnAsk} map changes on ASK (must be 0)`);
    if (f.refreshesAfterNode !== 1) ctx.fail(`${f.refreshesAfterNode} refreshes after NODE (must be 1)`);
    if (f.slotOwner !== 'target') ctx.fail('the client map does not name the target as the slot owner');
    if (f.fail || f.info) ctx.fail(`${f.fail} fail / ${f.info} info in the workload (must be 0)`);
  },
};

const R7 = {
  id: 'R7',
  summary: (f) => `${f.code} after ${f.attempts} attempts in ${f.errorMs} ms; CPU ${f.cpu} core (workload included)`,
  title: 'MOVED loop',
  fault: 'on an empty slot: `SETSLOT s NODE B` on A and `SETSLOT s NODE A` on B, then a command at once',
  must: 'stop after 16 redirections with MAX_REDIRECTIONS (definite)',
  passFigure: 'error within ≤ 17 attempts and ≤ 2 s; CPU < 50% of a core; slot restored',
  quick: true,
  workload: { rate: 1000, avoidSlot: (s) => s === R6_SLOT || s === R7_SLOT },
  async run(ctx) {
    const masters = await ctx.cluster.masters();
    const A = masters.find((m) => c.inRanges(m.slots)(R7_SLOT));
    const B = masters.find((m) => m !== A);
    if ((await c.sendCommand(A.port, ['CLUSTER', 'COUNTKEYSINSLOT', R7_SLOT])) !== 0) throw new Error(`slot ${R7_SLOT} is not empty`);
    await ctx.at(2000);
    await c.sendCommand(A.port, ['CLUSTER', 'SETSLOT', R7_SLOT, 'NODE', B.id]);
    await c.sendCommand(B.port, ['CLUSTER', 'SETSLOT', R7_SLOT, 'NODE', A.id]);
    const before = ctx.mon.statsDelta();
    const cpu = cpuMeter();
    const t = Date.now();
    const r = await cb2p((cb) => ctx.client.get(R7_KEY, cb));
    ctx.figures.errorMs = Date.now() - t;
    ctx.figures.code = r.err ? r.err.code : `no error (${JSON.stringify(r.value)})`;
    const after = ctx.mon.statsDelta();
    ctx.figures.attempts = after.moved - before.moved + 1;
    // CPU over 2 s from the command: a client still spinning on the loop would show here.
    await c.at(t + 2000);
    ctx.figures.cpu = Math.round(cpu() * 100) / 100;
    // Restore: A owns the slot again on both.
    await c.sendCommand(A.port, ['CLUSTER', 'SETSLOT', R7_SLOT, 'NODE', A.id]);
    await c.sendCommand(B.port, ['CLUSTER', 'SETSLOT', R7_SLOT, 'NODE', A.id]);
    await c.healthy(ctx.cluster);
    const again = await cb2p((cb) => ctx.client.get(R7_KEY, cb));
    ctx.figures.afterRestore = again.err ? again.err.code : again.value;
  },
  check(ctx, f) {
    if (f.code !== 'MAX_REDIRECTIONS') ctx.fail(`the command ended with ${f.code} (want MAX_REDIRECTIONS)`);
    if (f.attempts > 17) ctx.fail(`${f.attempts} attempts (must be ≤ 17)`);
    if (f.errorMs > 2000) ctx.fail(`error after ${f.errorMs} ms (must be ≤ 2000)`);
    if (f.cpu >= 0.5) ctx.fail(`CPU ${f.cpu} of a core (must be < 0.5)`);
    if (f.afterRestore !== null) ctx.fail(`GET after the restore answered ${JSON.stringify(f.afterRestore)}`);
    if (f.fail || f.info) ctx.fail(`${f.fail} fail / ${f.info} info in the workload (must be 0)`);
  },
};

module.exports = [R5, R6, R7];
