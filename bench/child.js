// One measurement: one client, one scenario, in a fresh process, so peak RSS and CPU belong to
// that client and that scenario alone. Prints one JSON line on stdout; any failure (a connection
// error, a wrong or failed reply) exits non-zero and fails the run.
//
//   node child.js '<json: {client, scenario, seeds, scale, seed}>'
//   node child.js --probe '<json: {client, seeds}>'      (can this client load, connect and GET?)
'use strict';

const { byId } = require('./clients');
const { SCENARIOS, RUN, scaled, rng, key, valueOf } = require('./workloads');

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

// Which .node file did our client load? (The run must measure the release build it chose.)
function loadedAddon() {
  return Object.keys(require.cache).find((k) => k.endsWith('.node')) || null;
}

async function probe(opts) {
  const client = byId(opts.client);
  const c = await client.connect(opts.seeds);
  const v = await c.get(key(0));
  if (v !== valueOf(0)) throw new Error(`probe GET ${key(0)} returned ${JSON.stringify(v)}`);
  await c.close();
  return { ok: true, addon: client.ours ? loadedAddon() : undefined };
}

async function measure(opts) {
  const client = byId(opts.client);
  const s = scaled(SCENARIOS.find((x) => x.id === opts.scenario), opts.scale);
  const run = RUN[s.id];
  const c = await client.connect(opts.seeds);
  const baseRssMiB = process.memoryUsage().rss / 2 ** 20;
  const ctx = { nonce: `${process.pid}-${Date.now()}` };
  const r = rng(opts.seed);
  if (s.warmup > 0) await run(c, s, s.warmup, r, ctx);
  if (global.gc) global.gc();

  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const res = await run(c, s, s.count, r, ctx);
  const wallUs = Number(process.hrtime.bigint() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);

  const out = {
    client: client.id,
    scenario: s.id,
    ops: res.ops,
    wallMs: wallUs / 1000,
    opsPerSec: res.ops / (wallUs / 1e6),
    cpuUsPerOp: (cpu.user + cpu.system) / res.ops,
    cpuUserUs: cpu.user,
    cpuSystemUs: cpu.system,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    baseRssMiB,
  };
  if (res.latencies) {
    const sorted = Float64Array.from(res.latencies).sort();
    out.p50Us = percentile(sorted, 50);
    out.p99Us = percentile(sorted, 99);
  }
  if (client.ours) out.addon = loadedAddon();
  await c.close();
  return out;
}

const isProbe = process.argv[2] === '--probe';
const opts = JSON.parse(process.argv[isProbe ? 3 : 2]);
(isProbe ? probe(opts) : measure(opts)).then(
  (out) => {
    const total = process.cpuUsage();
    out.processCpuUs = total.user + total.system; // whole lifetime, for run.js's interference check
    process.stdout.write(`${JSON.stringify(out)}\n`);
    // Some clients keep timers or native threads alive after close; the result is out.
    process.exit(0);
  },
  (err) => {
    process.stderr.write(`${opts.client}/${opts.scenario || 'probe'}: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  }
);
