// Runs one fault scenario end to end: a fresh cluster, a client with the settings of
// RELIABILITY.md §1, the workload, the scenario's own timeline (inject, heal, wait healthy), 5 s
// more of load that must be error-free, then the checker and the global pass conditions. Produces
// one result object (printed by run.js as one JSON line). A run that saw an unplanned failover
// (the masters at the end are not the ones the scenario expects: CPU starvation on a 2-core box
// can make a healthy master miss the node timeout) is marked invalid, and run.js retries it once.
// In a TLS run the nodes serve TLS beside plaintext: the client connects over TLS only, the
// harness's probes keep to plaintext, and redis-cli goes over TLS (see cluster.js).
'use strict';

const RedisClustr = require('..');
const { Workload } = require('./workload');
const { Monitor } = require('./monitor');
const { checkFinalState, opFigures } = require('./checker');
const c = require('./cluster');
const { TLS_OFFSET, tlsArgs } = require('../scripts/cluster/tls');

const MiB = 1024 * 1024;
const TAIL_MS = 5000;

/** RELIABILITY.md §1 client settings; a scenario may override some. */
const CLIENT_DEFAULTS = { commandTimeout: 1000, maxRedirections: 16, retryBudget: 5000, slotInterval: 1000 };

function connect(seeds, options) {
  const client = new RedisClustr(Object.assign({ servers: seeds }, options));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('client not ready within 10 s')), 10000);
    client.once('ready', () => {
      clearTimeout(t);
      resolve(client);
    });
  });
}

function quit(client) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, 5000);
    client.quit(() => {
      clearTimeout(t);
      resolve();
    });
  });
}

/**
 * @param {object} def scenario: {id, title, cluster? (startCluster options), client?, workload?,
 *   memoryOutsideHeap?, run(ctx), check?(ctx, figures)}
 * @param {{quick?: boolean, rate?: number, tls?: object}} opts `tls`: certificates from
 *   scripts/cluster/tls.js; the nodes then also serve TLS and the client connects only over it
 * @returns {Promise<object>} the result line
 */
async function runScenario(def, opts = {}) {
  const started = Date.now();
  const reasons = [];
  const figures = {};
  let invalid = null;
  c.useTls(opts.tls || null);
  const clusterOptions = Object.assign({}, def.cluster || {});
  if (opts.tls) Object.assign(clusterOptions, { extraArgs: tlsArgs(opts.tls, 'optional'), portOffsets: [10000, TLS_OFFSET] });
  const cluster = await c.freshCluster(clusterOptions);
  let client = null;
  let wl = null;
  let mon = null;
  let expectMasters = null;
  try {
    const mastersBefore = await c.masterPorts(cluster);
    mon = new Monitor();
    const clientOptions = Object.assign({}, CLIENT_DEFAULTS, def.client || {});
    if (opts.tls) clientOptions.redisOptions = { tls: { ca: opts.tls.ca } };
    // The harness's own probes use the plaintext ports; the client knows each node by its TLS one.
    client = await connect(cluster.seeds.map((s) => ({ host: s.host, port: c.tlsPort(s.port) })), clientOptions);
    mon.watch(client);
    client.on('error', (e) => {
      figures.errorEvents = (figures.errorEvents || 0) + 1;
      if (!figures.errorEventSample) figures.errorEventSample = String(e && e.message);
    });
    const ctx = {
      cluster,
      client,
      mon,
      quick: !!opts.quick,
      clientPort: c.tlsPort,
      figures,
      fail: (reason) => reasons.push(reason),
      expectMasters: mastersBefore,
      faultAt: 0,
      affected: () => true,
      t0: Date.now(),
      at: (ms) => c.at(ctx.t0 + ms),
      wl: null,
    };
    expectMasters = () => ctx.expectMasters;
    if (def.workload !== false) {
      const w = Object.assign({}, def.workload || {});
      if (w.deadlineMs === undefined) w.deadlineMs = clientOptions.commandTimeout || clientOptions.retryBudget + 1000;
      if (opts.rate && w.rate === undefined) w.rate = opts.rate;
      wl = ctx.wl = new Workload(client, w);
      wl.start();
    }
    ctx.t0 = Date.now();
    await def.run(ctx);

    if (wl) {
      // The cluster is healthy again: 5 s of load that must not see a single error.
      const tailFrom = Date.now();
      await c.at(tailFrom + TAIL_MS);
      const settled = await wl.stop();
      if (!settled) reasons.push('some workers did not finish their last op');
      Object.assign(figures, opFigures(wl, { faultAt: ctx.faultAt, affected: ctx.affected, tailFrom }));
      const state = await checkFinalState(client, wl);
      figures.lost = state.lost;
      figures.lostDetail = { counters: state.lostCounters, lists: state.lostList, w3: state.lostW3, durable: state.durableLost };
      ctx.lostListAt = state.lostListAt;
      Object.assign(figures, {
        duplicate: state.duplicate,
        phantom: state.phantom,
        noack: state.noack,
        wrong: wl.wrong + state.wrongFinal,
        hung: wl.hung,
        staleReads: wl.staleReads,
        waits: wl.waits,
        codes: wl.codes,
      });
      if (state.samples.length) figures.checkSamples = state.samples.slice(0, 5);
      if (wl.wrongSamples.length) figures.wrongSamples = wl.wrongSamples.slice(0, 5);
      if (wl.hungSamples.length) figures.hungSamples = wl.hungSamples;
    }
    mon.stop();
    const u = mon.unhandled();
    figures.unhandled = u.uncaught + u.rejections + u.panics;
    if (u.samples.length) figures.unhandledSamples = u.samples;
    figures.rssDeltaMiB = Math.round((mon.rssMax - mon.rssStart) / MiB);
    figures.outsideHeapDeltaMiB = Math.round((mon.outsideHeapMax - mon.outsideHeapStart) / MiB);
    const s = mon.statsDelta();
    figures.refreshes = s.refreshes;
    figures.moved = s.moved;
    figures.ask = s.ask;
    figures.retries = s.retries;
    figures.topologyEvents = mon.topologyEvents;

    // Global pass conditions (RELIABILITY.md §1).
    for (const k of ['duplicate', 'phantom', 'noack', 'wrong', 'hung']) {
      if (figures[k] !== undefined && figures[k] !== 0) reasons.push(`${k} = ${figures[k]} (must be 0)`);
    }
    if (figures.unhandled !== 0) reasons.push(`unhandled = ${figures.unhandled} (must be 0)`);
    // A long run (the soak) keeps its op log and list records in the JS heap: there the bound
    // applies to the memory outside it, where the client's native side lives.
    if (def.memoryOutsideHeap) {
      if (figures.outsideHeapDeltaMiB >= 64) reasons.push(`RSS outside the JS heap grew ${figures.outsideHeapDeltaMiB} MiB (must be < 64)`);
    } else if (figures.rssDeltaMiB >= 64) reasons.push(`RSS grew ${figures.rssDeltaMiB} MiB (must be < 64)`);
    if (wl && figures.tailErrors !== 0) reasons.push(`${figures.tailErrors} errors in the ${TAIL_MS / 1000} s after recovery (must be 0)`);
    if (def.check) def.check(ctx, figures);

  } catch (e) {
    reasons.push(`scenario error: ${e && e.message ? e.message : e}`);
  } finally {
    // Also after an error: a scenario that failed because a healthy master was failed over by
    // CPU starvation is invalid, not failed.
    if (expectMasters) {
      const mastersAfter = await c.masterPorts(cluster).catch(() => null);
      const expected = [...expectMasters()].sort((a, b) => a - b);
      if (mastersAfter && JSON.stringify(mastersAfter) !== JSON.stringify(expected)) {
        invalid = `unplanned failover: masters ${mastersAfter.join(',')}, expected ${expected.join(',')}`;
      }
    }
    if (wl && !wl.stoppedAt) await wl.stop().catch(() => {});
    if (mon) mon.stop();
    if (client) await quit(client);
    await cluster.stop();
  }
  return Object.assign(
    { scenario: def.id, title: def.title, tls: !!opts.tls, pass: reasons.length === 0 && !invalid, invalid, reasons, seconds: Math.round((Date.now() - started) / 100) / 10 },
    figures,
  );
}

// For a scenario that fails the first master over: its first replica takes over, so the run
// ends with that replica among the masters instead (anything else is an unplanned failover).
async function firstMasterWillFailOver(ctx) {
  const masters = await ctx.cluster.masters();
  const victim = masters[0];
  const replica = victim.replicas[0];
  ctx.expectMasters = masters.map((m) => m.port).sort((a, b) => a - b).map((p) => (p === victim.port ? replica : p));
  return { masters, victim, replica };
}

module.exports = { runScenario, CLIENT_DEFAULTS, connect, quit, firstMasterWillFailOver };
