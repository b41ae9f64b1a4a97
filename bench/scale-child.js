// One scale measurement (see scale.js) in a fresh process, so timings, RSS and CPU belong to one
// client against one cluster size. Prints one JSON line on stdout; a failed connection or a
// wrong reply exits non-zero, which fails the run.
//
//   node scale-child.js load    '<json: {client, seeds, serverPids, scale, seed, deepInflight}>'
//       time (and CPU) to ready / fullReady, RSS after fullReady, then the conc workload
//       (verified): RSS, throughput, client and server CPU per op; then conc again with
//       `deepInflight` in flight (the same depth per node as 512 on 3 masters)
//   node scale-child.js refresh '<json: {client, seeds, ports, slotInterval|null, idleMs}>'
//       connects, waits until idle, then counts refreshes and CPU over `idleMs` of idleness
'use strict';

const path = require('path');
const { SCENARIOS, RUN, scaled, rng } = require('./workloads');
const { sendCommand, parseInfo } = require('../scripts/cluster/resp');
const { pidsCpuUs } = require('./harness');

const ROOT = path.join(__dirname, '..');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
const mib = (bytes) => bytes / 2 ** 20;

// Which .node file did our client load? (The run must measure the release build it chose.)
function loadedAddon() {
  return Object.keys(require.cache).find((k) => k.endsWith('.node')) || null;
}

function threadCount() {
  try {
    return Number(/^Threads:\s+(\d+)/m.exec(require('fs').readFileSync('/proc/self/status', 'utf8'))[1]);
  } catch {
    return null;
  }
}

// Connects and times it from the constructor call. `refreshMs` sets the periodic slot-map
// refresh (null: the client's default). Resolves the client's get/set/close with readyMs,
// fullReadyMs and connectCpuMs (process CPU from the constructor to the last of them, which
// tells the client's own work apart from waiting for the servers). The module is required
// before the clock starts: loading the addon is not connecting.
const CONNECT = {
  native(seeds, refreshMs) {
    const RedisClustr = require(ROOT);
    const config = { servers: seeds };
    if (refreshMs != null) config.slotInterval = refreshMs;
    return new Promise((resolve, reject) => {
      const cpu0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      const c = new RedisClustr(config);
      let readyMs = null;
      c.on('error', reject);
      c.once('ready', () => (readyMs = ms(t0)));
      c.once('fullReady', () => {
        const fullReadyMs = ms(t0);
        const cpu = process.cpuUsage(cpu0);
        resolve({
          readyMs,
          fullReadyMs,
          connectCpuMs: (cpu.user + cpu.system) / 1000,
          refreshes: () => c.stats().refreshes,
          get: (k) => c.getAsync(k),
          set: (k, v) => c.setAsync(k, v),
          close: () => new Promise((done) => c.quit(() => done())),
        });
      });
    });
  },
  ioredis(seeds, refreshMs) {
    const { Cluster } = require('ioredis');
    const opts = {};
    if (refreshMs != null) opts.slotsRefreshInterval = refreshMs;
    return new Promise((resolve, reject) => {
      const cpu0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      const c = new Cluster(seeds, opts);
      c.on('error', () => {});
      c.once('end', () => reject(new Error('ioredis cluster ended before ready')));
      // ioredis has no "every node connected" event: it connects to a node on first use.
      c.once('ready', () => {
        const readyMs = ms(t0);
        const cpu = process.cpuUsage(cpu0);
        resolve({
          readyMs,
          fullReadyMs: null,
          connectCpuMs: (cpu.user + cpu.system) / 1000,
          refreshes: () => null,
          get: (k) => c.get(k),
          set: (k, v) => c.set(k, v),
          close: () => c.quit(),
        });
      });
    });
  },
};

// The measured part of conc: throughput, client CPU and the servers' CPU (from /proc, null
// elsewhere) per op.
async function measuredConc(c, s, r, serverPids) {
  if (global.gc) global.gc();
  const srv0 = pidsCpuUs(serverPids);
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const res = await RUN.conc(c, s, s.count, r);
  const wallMs = ms(t0);
  const cpu = process.cpuUsage(cpu0);
  const srv = pidsCpuUs(serverPids) - srv0;
  return {
    ops: res.ops,
    wallMs,
    opsPerSec: res.ops / (wallMs / 1000),
    cpuUsPerOp: (cpu.user + cpu.system) / res.ops,
    serverCpuUsPerOp: srv > 0 ? srv / res.ops : null,
  };
}

async function load(opts) {
  const connect = CONNECT[opts.client];
  if (!connect) throw new Error(`unknown client ${opts.client}`);
  if (opts.client === 'native') require(ROOT);
  else require('ioredis');
  const c = await connect(opts.seeds, null);
  if (global.gc) global.gc();
  const rssReadyMiB = mib(process.memoryUsage().rss);
  const threads = threadCount();

  const s = scaled(SCENARIOS.find((x) => x.id === 'conc'), opts.scale);
  const r = rng(opts.seed);
  await RUN.conc(c, s, s.warmup, r);
  const main = await measuredConc(c, s, r, opts.serverPids);
  const out = {
    client: opts.client,
    readyMs: c.readyMs,
    fullReadyMs: c.fullReadyMs,
    connectCpuMs: c.connectCpuMs,
    rssReadyMiB,
    rssLoadMiB: mib(process.memoryUsage().rss),
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    threads,
    ...main,
  };
  if (opts.deepInflight) {
    const deep = await measuredConc(c, Object.assign({}, s, { inflight: opts.deepInflight }), r, opts.serverPids);
    for (const [k, v] of Object.entries(deep)) out[`deep${k[0].toUpperCase()}${k.slice(1)}`] = v;
    out.deepInflight = opts.deepInflight;
  }
  if (opts.client === 'native') out.addon = loadedAddon();
  await c.close();
  return out;
}

// Topology queries every server has executed so far: calls and server-side µs (INFO
// commandstats), summed over `ports`. Counted on the servers so ioredis (no refresh counter) is
// measured the same way as ours; CLUSTER SHARDS (ours) and CLUSTER SLOTS (ours on old servers,
// ioredis) both count.
async function topologyCalls(ports) {
  let calls = 0;
  let usec = 0;
  for (const port of ports) {
    const info = parseInfo(await sendCommand(port, ['INFO', 'commandstats']));
    for (const name of ['cmdstat_cluster|shards', 'cmdstat_cluster|slots']) {
      const m = /calls=(\d+),usec=(\d+)/.exec(info[name] || '');
      if (m) {
        calls += Number(m[1]);
        usec += Number(m[2]);
      }
    }
  }
  return { calls, usec };
}

async function refresh(opts) {
  const connect = CONNECT[opts.client];
  if (!connect) throw new Error(`unknown client ${opts.client}`);
  const c = await connect(opts.seeds, opts.slotInterval);
  // Let the start-up work finish (our COMMAND lookup, ioredis' lazy connects, JIT) before the
  // idle window, so the window holds only the refreshes and the process's idle overhead.
  await sleep(500);
  if (global.gc) global.gc();
  const s0 = await topologyCalls(opts.ports);
  const r0 = c.refreshes();
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await sleep(opts.idleMs);
  const cpu = process.cpuUsage(cpu0);
  const wallMs = ms(t0);
  const r1 = c.refreshes();
  const s1 = await topologyCalls(opts.ports);
  await c.close();
  return {
    client: opts.client,
    slotInterval: opts.slotInterval,
    wallMs,
    cpuUs: cpu.user + cpu.system,
    refreshes: r0 == null ? null : r1 - r0,
    serverCalls: s1.calls - s0.calls,
    serverUsec: s1.usec - s0.usec,
    addon: opts.client === 'native' ? loadedAddon() : undefined,
  };
}

const mode = process.argv[2];
const opts = JSON.parse(process.argv[3]);
const run = mode === 'load' ? load : mode === 'refresh' ? refresh : null;
if (!run) {
  process.stderr.write(`scale-child: unknown mode ${mode}\n`);
  process.exit(2);
}
run(opts).then(
  (out) => {
    const total = process.cpuUsage();
    out.processCpuUs = total.user + total.system; // whole lifetime, for the interference check
    process.stdout.write(`${JSON.stringify(out)}\n`);
    process.exit(0);
  },
  (err) => {
    process.stderr.write(`${opts.client}/${mode}: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  }
);
