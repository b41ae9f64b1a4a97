// Connection-level faults: R8 CLIENT KILL every 3 s on one master, R9 CLIENT PAUSE of one master,
// R10 a short DEBUG SLEEP (late replies after timeouts), R16 seeds partly down at start, R17
// LOADING (DEBUG RELOAD of a populated master).
'use strict';

const RedisClustr = require('../..');
const c = require('../cluster');
const { window } = require('../checker');
const { quit } = require('../harness');

const net = require('net');

// Ops on the victim's slots that may have been in flight when the kill happened, somewhere in
// [from, to] (between sending CLIENT KILL and its reply): issued by `to`, not settled before `from`.
const inFlight = (wl, affected, from, to) =>
  wl.ops.filter((o) => o.s >= 0 && affected(o.s) && o.t0 <= to && o.t1 >= from).length;

// First ok on affected slots among ops issued after `from` (strictly: one issued in the same
// millisecond may predate the fault): ms after `from`, or null.
function firstOk(wl, from, affected) {
  let first = Infinity;
  for (const o of wl.ops) if (o.st === 'ok' && o.t0 > from && o.s >= 0 && affected(o.s) && o.t1 < first) first = o.t1;
  return first === Infinity ? null : first - from;
}

const R8 = {
  id: 'R8',
  summary: (f) => `reconnect ≤ ${f.maxReconnectMs} ms; info ${f.info} ≤ ${f.inFlightAtKills} in flight; duplicate ${f.duplicate}; fail ${f.fail}`,
  title: 'CLIENT KILL',
  fault: 'every 3 s, `CLIENT KILL TYPE normal SKIPME yes` on one master (5 kills)',
  must: 'reconnect with backoff; written-but-unanswered → info, unwritten → resent',
  passFigure: 'reconnect ≤ 300 ms; info ≤ in-flight at the kills; 0 duplicate',
  async run(ctx) {
    const victim = (await ctx.cluster.masters())[0];
    ctx.affected = c.inRanges(victim.slots);
    const kills = (ctx.figures.kills = []);
    for (let i = 0; i < 5; i++) {
      await ctx.at(5000 + i * 3000);
      const sentAt = Date.now();
      const killed = await c.sendCommand(victim.port, ['CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes']);
      kills.push({ sentAt, at: Date.now(), killed });
      if (i === 0) ctx.faultAt = Date.now();
    }
    await ctx.at(5000 + 5 * 3000);
    for (const k of kills) {
      k.reconnectMs = firstOk(ctx.wl, k.at, ctx.affected);
      k.inFlight = inFlight(ctx.wl, ctx.affected, k.sentAt, k.at);
    }
    await c.healthy(ctx.cluster);
  },
  check(ctx, f) {
    f.inFlightAtKills = f.kills.reduce((n, k) => n + k.inFlight, 0);
    f.maxReconnectMs = Math.max(...f.kills.map((k) => (k.reconnectMs === null ? Infinity : k.reconnectMs)));
    for (const k of f.kills) {
      delete k.at;
      delete k.sentAt;
    }
    if (f.maxReconnectMs > 300) ctx.fail(`reconnect took ${f.maxReconnectMs} ms (must be ≤ 300)`);
    if (f.info > f.inFlightAtKills) ctx.fail(`${f.info} info ops > ${f.inFlightAtKills} in flight at the kills`);
    if (f.fail) ctx.fail(`${f.fail} fail (a killed connection must not fail commands definitely): ${JSON.stringify(f.codes)}`);
  },
};

const R9 = {
  id: 'R9',
  summary: (f) => `other-shard errors ${f.otherShardErrors}; ${f.refreshesDuringPause} refreshes in the 3 s pause; first ok ${f.resumeMs} ms after it; throughput after ${f.throughputAfterRatio}×; wrong ${f.wrong}`,
  title: 'CLIENT PAUSE',
  fault: '`CLIENT PAUSE 3000 ALL` on one master at t = 8 s (no failover)',
  must: 'report timeouts, keep the node (no topology thrash), resume',
  passFigure: 'timeouts only for that shard; ≤ 1 refresh/s during the pause; full throughput ≤ 1 s after it ends; 0 wrong',
  async run(ctx) {
    const victim = (await ctx.cluster.masters())[0];
    ctx.affected = c.inRanges(victim.slots);
    await ctx.at(8000);
    const r0 = ctx.mon.statsDelta().refreshes;
    await c.sendCommand(victim.port, ['CLIENT', 'PAUSE', '3000', 'ALL']);
    const pauseAt = Date.now();
    ctx.faultAt = pauseAt;
    const endAt = pauseAt + 3000;
    await c.until(() => c.sendCommand(victim.port, ['PING'], { timeoutMs: 200 }).then((r) => r === 'PONG'), {
      timeout: 10000,
      what: 'the pause to end',
    });
    ctx.figures.refreshesDuringPause = ctx.mon.statsDelta().refreshes - r0;
    ctx.pause = [pauseAt, endAt];
    await c.at(endAt + 2500);
    await c.healthy(ctx.cluster);
  },
  check(ctx, f) {
    const [pauseAt, endAt] = ctx.pause;
    const others = window(ctx.wl, pauseAt - 1000, endAt + 1000, (o) => o.s >= 0 && !ctx.affected(o.s));
    f.otherShardErrors = others.fail + others.info;
    const victimErrors = window(ctx.wl, pauseAt - 1000, endAt + 1000, (o) => o.s >= 0 && ctx.affected(o.s));
    f.victimErrors = victimErrors.codes;
    f.resumeMs = firstOk(ctx.wl, endAt, ctx.affected);
    // Throughput on the victim's slots in the second after the pause vs. the 3 s before it.
    const before = window(ctx.wl, pauseAt - 3000, pauseAt, (o) => o.s >= 0 && ctx.affected(o.s)).ok / 3;
    const after = window(ctx.wl, endAt + 1000, endAt + 2000, (o) => o.s >= 0 && ctx.affected(o.s)).ok;
    f.throughputAfterRatio = Math.round((after / before) * 100) / 100;
    if (f.otherShardErrors) ctx.fail(`${f.otherShardErrors} errors on other shards: ${JSON.stringify(others.codes)}`);
    if (f.refreshesDuringPause > 4) ctx.fail(`${f.refreshesDuringPause} refreshes during the 3 s pause (must be ≤ 1/s)`);
    if (f.resumeMs === null || f.resumeMs > 1000) ctx.fail(`first ok on the paused shard ${f.resumeMs} ms after the pause (must be ≤ 1000)`);
    if (f.throughputAfterRatio < 0.8) ctx.fail(`throughput 1-2 s after the pause at ${f.throughputAfterRatio} of before (must be ≥ 0.8)`);
    if (f.fail) ctx.fail(`${f.fail} definite failures (a paused node only times out): ${JSON.stringify(f.codes)}`);
  },
};

const R10 = {
  id: 'R10',
  summary: (f) => `${f.timeoutsDuringSleep} timeouts during the sleep; wrong ${f.wrong}; hung ${f.hung}`,
  title: 'DEBUG SLEEP short',
  fault: '`DEBUG SLEEP 1.5` on a master at t = 8 s (below the node timeout), command timeout 500 ms',
  must: 'time out; late replies must not be matched to newer requests',
  passFigure: '0 wrong replies (ECHO nonces, typed replies), 0 hung',
  client: { commandTimeout: 500 },
  async run(ctx) {
    const victim = (await ctx.cluster.masters())[0];
    ctx.affected = c.inRanges(victim.slots);
    await ctx.at(8000);
    ctx.faultAt = Date.now();
    // Deferred: the reply comes when it wakes.
    ctx.figures.sleep = await c.sendCommand(victim.port, ['DEBUG', 'SLEEP', '1.5'], { timeoutMs: 10000 });
    ctx.figures.timeoutsDuringSleep = window(ctx.wl, ctx.faultAt - 500, Date.now(), (o) => o.code === 'TIMEOUT').ops;
    await ctx.at(14000);
    await c.healthy(ctx.cluster);
  },
  check(ctx, f) {
    if (!f.timeoutsDuringSleep) ctx.fail('no request timed out during the sleep: the scenario did not provoke late replies');
    if (f.fail) ctx.fail(`${f.fail} definite failures (a sleeping node only times out): ${JSON.stringify(f.codes)}`);
  },
};

// A loopback port nothing listens on (connecting is refused).
function closedPort() {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.listen(0, c.HOST, () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const cb2p = (fn) => new Promise((resolve) => fn((err, value) => resolve({ err, value })));

const R16 = {
  id: 'R16',
  summary: (f) => `ready ${f.readyMs} ms, ${f.nodesKnown} nodes known; all seeds dead → ${f.allDownCode}`,
  title: 'seeds partly down',
  fault: 'start the client with 3 seeds of which 2 are closed ports',
  must: 'connect via the live seed, learn the rest',
  passFigure: 'ready ≤ 2 s; error only if all seeds fail',
  quick: true,
  workload: false,
  async run(ctx) {
    const dead = [await closedPort(), await closedPort()];
    const seeds = [...dead.map((port) => ({ host: c.HOST, port })), ctx.cluster.seeds[0]];
    const errors = [];
    const t = Date.now();
    const client = new RedisClustr({ servers: seeds, commandTimeout: 1000, slotInterval: 1000 });
    client.on('error', (e) => errors.push(e.code));
    try {
      await c.until(() => client.ready, { timeout: 10000, interval: 5, what: 'ready with one live seed' });
      ctx.figures.readyMs = Date.now() - t;
      // It learned the whole cluster: every node of the map, not only the seed.
      await c.until(() => client.fullReady, { timeout: 5000, interval: 5, what: 'fullReady' });
      ctx.figures.nodesKnown = Object.keys(client.connections).length;
      let bad = 0;
      for (let i = 0; i < 200; i++) {
        const k = `r16:${i}`;
        const s = await cb2p((cb) => client.set(k, String(i), cb));
        const g = await cb2p((cb) => client.get(k, cb));
        if (s.err || g.err || g.value !== String(i)) bad++;
      }
      ctx.figures.commandErrors = bad;
      ctx.figures.errorEvents = errors.length;
    } finally {
      await quit(client);
    }
    // All seeds dead: commands fail definitely with NO_SLOT_MAP, quickly.
    const none = new RedisClustr({ servers: dead.map((port) => ({ host: c.HOST, port })), commandTimeout: 1000 });
    none.on('error', () => {});
    try {
      const t2 = Date.now();
      const r = await cb2p((cb) => none.get('r16', cb));
      ctx.figures.allDownCode = r.err ? r.err.code : `no error (${JSON.stringify(r.value)})`;
      ctx.figures.allDownMs = Date.now() - t2;
    } finally {
      await quit(none);
    }
  },
  check(ctx, f) {
    if (f.readyMs > 2000) ctx.fail(`ready after ${f.readyMs} ms (must be ≤ 2000)`);
    if (f.nodesKnown !== 6) ctx.fail(`client knows ${f.nodesKnown} nodes (want all 6)`);
    if (f.commandErrors) ctx.fail(`${f.commandErrors} of 200 SET/GET pairs failed`);
    if (f.errorEvents) ctx.fail(`${f.errorEvents} 'error' events although one seed was alive`);
    if (f.allDownCode !== 'NO_SLOT_MAP') ctx.fail(`with every seed dead a command ended with ${f.allDownCode} (want NO_SLOT_MAP)`);
  },
};

const POPULATE = 1000000;

const R17 = {
  id: 'R17',
  summary: (f) => `reload ${f.reloadMs} ms, -LOADING seen by a side connection ${f.loadingSeenByOthers}×, client retries ${f.retriesDuringReload}, fail ${f.fail}`,
  title: 'LOADING',
  fault: `\`DEBUG POPULATE ${POPULATE}\` on a master, then \`DEBUG RELOAD\` under load`,
  must: 'wait and retry LOADING',
  passFigure: '0 fail surfaced if loading ends within 5 s (other clients verified to see -LOADING)',
  // A deadline above the retry budget: a command that meets LOADING waits it out (up to 5 s).
  client: { commandTimeout: 8000, retryBudget: 5000 },
  async run(ctx) {
    const victim = (await ctx.cluster.masters())[0];
    ctx.affected = c.inRanges(victim.slots);
    await c.sendCommand(victim.port, ['DEBUG', 'POPULATE', String(POPULATE), 'r17pop'], { timeoutMs: 60000 });
    await c.replicasInSync(ctx.cluster, victim.port);
    await ctx.at(8000);
    const r0 = ctx.mon.statsDelta().retries;
    ctx.faultAt = Date.now();
    // A side connection checks that other clients really get -LOADING during the reload: one
    // persistent socket sending a GET every 10 ms (a fresh connection per probe would spend the
    // short loading phase connecting, or time out during the blocking save before it).
    const side = net.connect(victim.port, c.HOST);
    side.on('error', () => {});
    let loadingSeen = 0;
    let tailText = '';
    side.on('data', (d) => {
      const text = tailText + d.toString('latin1');
      loadingSeen += (text.match(/-LOADING/g) || []).length;
      tailText = text.slice(-7); // shorter than '-LOADING': no match is counted twice
    });
    await new Promise((resolve) => side.once('connect', resolve));
    // The probed key must be the victim's: the cluster redirect check comes before the LOADING one.
    let i = 0;
    while (!ctx.affected(RedisClustr.keySlot(`r17pop:${i}`))) i++;
    const key = `r17pop:${i}`;
    const get = `*2\r\n$3\r\nGET\r\n$${key.length}\r\n${key}\r\n`;
    // DEBUG RELOAD blocks the master for its save and load (2.2-3.3 s on the 2-core VM). With
    // the harness's 2 s node timeout the other nodes could fail it over meanwhile, which is R3,
    // not this scenario (two runs were invalid that way): the timeout is raised for the reload.
    const ports = ctx.cluster.nodes.map((n) => n.port);
    const nodeTimeout = (ms) =>
      Promise.all(ports.map((p) => c.sendCommand(p, ['CONFIG', 'SET', 'cluster-node-timeout', String(ms)])));
    await nodeTimeout(15000);
    const ticker = setInterval(() => side.write(get), 10);
    const t = Date.now();
    try {
      ctx.figures.reload = await c.sendCommand(victim.port, ['DEBUG', 'RELOAD'], { timeoutMs: 60000 });
    } finally {
      clearInterval(ticker);
      await nodeTimeout(2000);
    }
    ctx.figures.reloadMs = Date.now() - t;
    // Replies to GETs sent during the reload arrive in order: wait until the socket answers a PING.
    side.write('*1\r\n$4\r\nPING\r\n');
    await c.until(() => tailText.includes('+PONG'), { timeout: 5000, what: 'the side connection to catch up' }).catch(() => {});
    side.destroy();
    ctx.figures.loadingSeenByOthers = loadingSeen;
    ctx.figures.retriesDuringReload = ctx.mon.statsDelta().retries - r0;
    await c.healthy(ctx.cluster);
    await ctx.at(16000);
  },
  check(ctx, f) {
    if (f.reload !== 'OK') ctx.fail(`DEBUG RELOAD answered ${JSON.stringify(f.reload)}`);
    if (!f.loadingSeenByOthers) ctx.fail('no other client saw -LOADING during the reload: the scenario did not provoke LOADING');
    if (f.fail && f.reloadMs <= 5000) ctx.fail(`${f.fail} fail surfaced although loading took ${f.reloadMs} ms: ${JSON.stringify(f.codes)}`);
  },
};

module.exports = [R8, R9, R10, R16, R17];
