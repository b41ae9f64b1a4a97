#!/usr/bin/env node
// Scale benchmark (issue 7, "Scale"): does our client stay flat from 3 to 30 masters? Starts a
// throwaway 3-master cluster, then (after stopping it) a 30-master one, both without replicas,
// and measures against each, in a fresh process per measurement: time to 'ready' and
// 'fullReady', RSS after connecting and after load, conc throughput (total and per master) and
// the cost of a slot-map refresh. Prints a table (3 vs 30 masters and the ratio) and writes
// bench/scale.md and bench/scale.json. See bench/README.md ("Scale").
//
//   npm run bench:scale                (from the package root)
//   node bench/scale.js [--reps 5] [--masters 3,30] [--clients native,ioredis] [--idle 3000]
//                       [--scale 1] [--addon FILE] [--quick] [--no-write]
//
// Numbers are measured, never asserted on; a wrong or failed reply fails the run.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { BENCH, ROOT, ensureDeps, versionOf, ensureAddon, runChild, preload, machineBusyUs, pidsCpuUs, gitHead, machine } = require('./harness');

const CLIENT_LABELS = { native: '**ours**', ioredis: 'ioredis' };
// The refresh rate asked for while measuring refresh cost: our client's floor (its rate limit is
// one round per 100 ms), so an idle window holds as many refreshes as the client will do.
const FAST_REFRESH_MS = 100;
const INFLIGHT = require('./workloads').SCENARIOS.find((s) => s.id === 'conc').inflight;

function parseArgs(argv) {
  const o = { reps: 5, masters: [3, 30], clients: ['native', 'ioredis'], idleMs: 3000, scale: 1, addon: null, write: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--reps') o.reps = Number(val());
    else if (a === '--masters') o.masters = val().split(',').map(Number);
    else if (a === '--clients') o.clients = val().split(',');
    else if (a === '--idle') o.idleMs = Number(val());
    else if (a === '--scale') o.scale = Number(val());
    else if (a === '--addon') o.addon = path.resolve(val());
    else if (a === '--no-write') o.write = false;
    else if (a === '--quick') {
      o.reps = 1;
      o.scale = 0.1;
      o.idleMs = 1000;
      o.write = false;
    } else if (a === '-h' || a === '--help') {
      console.log('node bench/scale.js [--reps N] [--masters 3,30] [--clients native,ioredis] [--idle MS] [--scale X] [--addon FILE] [--quick] [--no-write]');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!(o.reps >= 1) || !Number.isInteger(o.reps)) throw new Error('--reps must be a positive integer');
  if (o.masters.length !== 2 || !o.masters.every((m) => Number.isInteger(m) && m >= 3)) throw new Error('--masters needs two sizes >= 3, e.g. 3,30');
  if (o.clients.some((c) => !CLIENT_LABELS[c]) || !o.clients.includes('native')) throw new Error(`--clients: native plus any of ${Object.keys(CLIENT_LABELS).join(',')}`);
  if (!(o.idleMs >= 500)) throw new Error('--idle must be at least 500 ms');
  if (!(o.scale > 0)) throw new Error('--scale must be positive');
  return o;
}

// ---------------------------------------------------------------------------------------------
// Figures

const median = (xs) => {
  const v = xs.filter((x) => x != null && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};

// The approximate RESP size of a reply as parsed by scripts/cluster/resp (strings re-encoded as
// bulk strings, which is what CLUSTER SHARDS/SLOTS send), to show how the topology reply grows.
function respBytes(v) {
  if (Array.isArray(v)) return `*${v.length}\r\n`.length + v.reduce((n, x) => n + respBytes(x), 0);
  if (v === null || v === undefined) return 5;
  if (typeof v === 'number') return `:${v}\r\n`.length;
  const len = Buffer.byteLength(String(v));
  return `$${len}\r\n`.length + len + 2;
}

// One row per figure: [label, fn(size summary) -> number|null, format, unit note].
// A size summary is { load: [...], fast: [...], idle: [...] } of child results for one client.
function perRefresh(sz, what) {
  // Refresh cost = (idle window with refreshes every 100 ms) - (same window with the client's
  // default, which does ~no refreshes), per refresh, median over reps.
  const n = Math.min(sz.fast.length, sz.idle.length);
  const xs = [];
  for (let i = 0; i < n; i++) {
    const f = sz.fast[i];
    const b = sz.idle[i];
    const count = (x) => (x.refreshes != null ? x.refreshes : x.serverCalls);
    const dn = count(f) - count(b);
    if (!(dn > 0)) continue;
    if (what === 'client') xs.push((f.cpuUs - b.cpuUs) / dn);
    else if (what === 'server') xs.push((f.serverUsec - b.serverUsec) / (f.serverCalls - b.serverCalls));
    else if (what === 'rate') xs.push(count(f) / (f.wallMs / 1000));
  }
  return median(xs);
}

const FIGURES = [
  { id: 'readyMs', label: "time to 'ready' (ms)", get: (sz) => median(sz.load.map((r) => r.readyMs)), digits: 1 },
  { id: 'fullReadyMs', label: "time to 'fullReady' (ms)", get: (sz) => median(sz.load.map((r) => r.fullReadyMs)), digits: 1 },
  { id: 'connectCpuMs', label: "client CPU to 'fullReady' (ms)", get: (sz) => median(sz.load.map((r) => r.connectCpuMs)), digits: 1 },
  { id: 'rssReadyMiB', label: 'RSS after fullReady (MiB)', get: (sz) => median(sz.load.map((r) => r.rssReadyMiB)), digits: 1 },
  { id: 'rssLoadMiB', label: 'RSS after the conc load (MiB)', get: (sz) => median(sz.load.map((r) => r.rssLoadMiB)), digits: 1 },
  { id: 'peakRssMiB', label: 'peak RSS (MiB)', get: (sz) => median(sz.load.map((r) => r.peakRssMiB)), digits: 1 },
  { id: 'threads', label: 'threads after fullReady', get: (sz) => median(sz.load.map((r) => r.threads)), digits: 0 },
  { id: 'opsPerSec', label: 'conc throughput (ops/s)', get: (sz) => median(sz.load.map((r) => r.opsPerSec)), digits: 0 },
  { id: 'opsPerMaster', label: 'conc ops/s per master', get: (sz, m) => median(sz.load.map((r) => r.opsPerSec / m)), digits: 0 },
  { id: 'cpuUsPerOp', label: 'client CPU per conc op (µs)', get: (sz) => median(sz.load.map((r) => r.cpuUsPerOp)), digits: 2 },
  { id: 'serverCpuUsPerOp', label: 'servers\' CPU per conc op (µs)', get: (sz) => median(sz.load.map((r) => r.serverCpuUsPerOp)), digits: 2 },
  { id: 'deepOpsPerSec', label: 'conc, same depth per node (ops/s)', get: (sz) => median(sz.load.map((r) => r.deepOpsPerSec)), digits: 0 },
  { id: 'deepCpuUsPerOp', label: 'client CPU per op, same depth (µs)', get: (sz) => median(sz.load.map((r) => r.deepCpuUsPerOp)), digits: 2 },
  { id: 'deepServerCpuUsPerOp', label: 'servers\' CPU per op, same depth (µs)', get: (sz) => median(sz.load.map((r) => r.deepServerCpuUsPerOp)), digits: 2 },
  { id: 'refreshRate', label: `refreshes/s at a ${FAST_REFRESH_MS} ms interval`, get: (sz) => perRefresh(sz, 'rate'), digits: 1 },
  { id: 'refreshClientUs', label: 'client CPU per refresh (µs)', get: (sz) => perRefresh(sz, 'client'), digits: 0 },
  { id: 'refreshServerUs', label: 'server CPU per topology query (µs)', get: (sz) => perRefresh(sz, 'server'), digits: 1 },
];

function fmt(x, digits) {
  if (x == null) return '–';
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function table(summary, opts, footnotes) {
  const [a, b] = opts.masters;
  const head = ['figure'];
  const align = ['---'];
  for (const c of opts.clients) {
    head.push(`${CLIENT_LABELS[c]} ${a}`, `${CLIENT_LABELS[c]} ${b}`, `${CLIENT_LABELS[c]} ${b}÷${a}`);
    align.push('--:', '--:', '--:');
  }
  const lines = [`| ${head.join(' | ')} |`, `|${align.join('|')}|`];
  for (const f of FIGURES) {
    const row = [f.label];
    for (const c of opts.clients) {
      const x = summary[c][a][f.id];
      const y = summary[c][b][f.id];
      row.push(fmt(x, f.digits), fmt(y, f.digits), x != null && y != null && x !== 0 ? `${(y / x).toFixed(2)}×` : '–');
    }
    lines.push(`| ${row.join(' | ')} |`);
  }
  return `${lines.join('\n')}\n\n${footnotes.map((n, i) => `${i + 1}. ${n}`).join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// Running

async function measureSize(masters, opts, env, addon, log) {
  const { startCluster } = require(path.join(ROOT, 'scripts', 'cluster.js'));
  const { sendCommand } = require(path.join(ROOT, 'scripts', 'cluster', 'resp.js'));
  const { key, valueOf, KEYSPACE } = require('./workloads');
  const t0 = Date.now();
  const cluster = await startCluster({ masters, replicas: 0 });
  const out = { masters, results: [], otherCpuPct: [] };
  try {
    const seeds = cluster.seeds.map((s) => ({ host: s.host, port: s.port }));
    const ports = cluster.nodes.map((n) => n.port);
    const serverPids = cluster.nodes.map((n) => n.pid);
    out.clusterStartS = (Date.now() - t0) / 1000;
    out.redis = (/redis_version:(\S+)/.exec(await sendCommand(ports[0], ['INFO', 'server'])) || [])[1] || null;
    out.shardsBytes = respBytes(await sendCommand(ports[0], ['CLUSTER', 'SHARDS']));
    out.slotsBytes = respBytes(await sendCommand(ports[0], ['CLUSTER', 'SLOTS']));
    log(`scale: ${masters} masters up in ${out.clusterStartS.toFixed(1)} s (redis ${out.redis}; CLUSTER SHARDS reply ≈ ${out.shardsBytes} B, SLOTS ≈ ${out.slotsBytes} B); preloading ${KEYSPACE.toLocaleString('en-US')} keys...`);
    await preload(seeds, KEYSPACE, key, valueOf);

    // One child per measurement; the client order rotates per rep so drift hits both alike.
    const run = async (c, mode, args, rep) => {
      const busy0 = machineBusyUs();
      const servers0 = pidsCpuUs(serverPids);
      const self0 = process.cpuUsage();
      const w0 = Date.now();
      const r = await runChild([mode, JSON.stringify(args)], env, 'scale-child.js');
      if (!r.ok) throw new Error(`${c} ${mode} failed against ${masters} masters (rep ${rep}):\n${r.stderr || `exit ${r.code} ${r.signal || ''}`}`);
      if (r.result.addon && fs.realpathSync(r.result.addon) !== fs.realpathSync(addon.file)) {
        throw new Error(`our client loaded ${r.result.addon}, not the release addon ${addon.file}`);
      }
      if (busy0 != null) {
        // CPU used by anything but this run while the child ran, as a share of the machine.
        const selfCpu = process.cpuUsage(self0);
        const other = machineBusyUs() - busy0 - (pidsCpuUs(serverPids) - servers0) - r.result.processCpuUs - selfCpu.user - selfCpu.system;
        r.result.otherCpuPct = Math.max(0, (100 * other) / ((Date.now() - w0) * 1000 * os.cpus().length));
        out.otherCpuPct.push(r.result.otherCpuPct);
      }
      Object.assign(r.result, { masters, mode, rep });
      out.results.push(r.result);
      return r.result;
    };
    for (let rep = 1; rep <= opts.reps; rep++) {
      const order = opts.clients.map((_, i) => opts.clients[(i + rep) % opts.clients.length]);
      for (const c of order) {
        // The second conc keeps the in-flight count per node of 512 on the smaller cluster, to
        // tell a cost per node apart from the cost of shallower pipelines on each connection.
        const deepInflight = Math.round((INFLIGHT * masters) / opts.masters[0]);
        const x = await run(c, 'load', { client: c, seeds, serverPids, scale: opts.scale, seed: 0x9e3779b9 ^ (rep * 7919 + 1), deepInflight }, rep);
        const fast = await run(c, 'refresh', { client: c, seeds, ports, slotInterval: FAST_REFRESH_MS, idleMs: opts.idleMs }, rep);
        const idle = await run(c, 'refresh', { client: c, seeds, ports, slotInterval: null, idleMs: opts.idleMs }, rep);
        const busy = [x, fast, idle].some((m) => m.otherCpuPct > 10) ? '  (other work > 10 % of the machine)' : '';
        log(
          `  ${String(masters).padStart(2)} masters rep ${rep} ${c.padEnd(7)} ready ${x.readyMs.toFixed(1)} ms` +
            (x.fullReadyMs != null ? ` fullReady ${x.fullReadyMs.toFixed(1)} ms` : '') +
            `  RSS ${x.rssReadyMiB.toFixed(0)}→${x.rssLoadMiB.toFixed(0)} MiB  conc ${Math.round(x.opsPerSec).toLocaleString('en-US')} ops/s ${x.cpuUsPerOp.toFixed(2)} µs CPU/op` +
            ` (${deepInflight} in flight: ${Math.round(x.deepOpsPerSec).toLocaleString('en-US')} ops/s ${x.deepCpuUsPerOp.toFixed(2)} µs)` +
            `  refresh: ${fast.refreshes != null ? fast.refreshes : fast.serverCalls} in ${(fast.wallMs / 1000).toFixed(1)} s, CPU ${(fast.cpuUs / 1000).toFixed(1)} ms vs ${(idle.cpuUs / 1000).toFixed(1)} ms idle${busy}`
        );
      }
    }
  } finally {
    await cluster.stop();
  }
  return out;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const loadBefore = os.loadavg();
  if (loadBefore[0] > 1) console.log(`scale: WARNING: load average is ${loadBefore.map((x) => x.toFixed(2)).join(' ')} before the run; other work skews every number.`);
  ensureDeps();
  const addon = ensureAddon(opts);
  const env = Object.assign({}, process.env, { NAPI_RS_NATIVE_LIBRARY_PATH: addon.file });
  const conc = require('./workloads').SCENARIOS.find((s) => s.id === 'conc');
  const concCount = Math.max(1, Math.round(conc.count * opts.scale));
  console.log(`scale: our addon: ${addon.file} (${addon.how})`);
  console.log(`scale: Node ${process.version}, ${machine().cores} cores; ${opts.reps} reps; clients ${opts.clients.join(', ')}; conc = ${concCount.toLocaleString('en-US')} commands, 512 in flight; refresh idle window ${opts.idleMs} ms`);

  const sizes = [];
  for (const m of opts.masters) sizes.push(await measureSize(m, opts, env, addon, (l) => console.log(l)));

  const summary = {};
  for (const c of opts.clients) {
    summary[c] = {};
    for (const sz of sizes) {
      const mine = sz.results.filter((r) => r.client === c);
      const groups = {
        load: mine.filter((r) => r.mode === 'load'),
        fast: mine.filter((r) => r.mode === 'refresh' && r.slotInterval != null),
        idle: mine.filter((r) => r.mode === 'refresh' && r.slotInterval == null),
      };
      summary[c][sz.masters] = {};
      for (const f of FIGURES) summary[c][sz.masters][f.id] = f.get(groups, sz.masters);
    }
  }

  const [a, b] = opts.masters;
  const other = sizes.flatMap((s) => s.otherCpuPct);
  const busy = other.filter((x) => x > 10).length;
  const footnotes = [
    `Clusters: ${a} and ${b} masters, no replicas, Redis ${sizes[0].redis || '?'} on loopback, sharing ${machine().cores} cores with the client; ${(100000).toLocaleString('en-US')} keys preloaded. Each figure is the median of ${opts.reps} reps, each measurement in a fresh process; ours is the release addon, ioredis ${versionOf(path.join(BENCH, 'node_modules', 'ioredis'))} with its defaults.`,
    "Time to 'ready' / 'fullReady': from the constructor call (module already loaded) to the event. Ours: 'ready' = first slot map adopted, 'fullReady' = a connection to every node of the map has answered PING. ioredis has no 'fullReady'; its 'ready' comes after its first CLUSTER SLOTS and a CLUSTER INFO, and it connects to the other nodes on first use (its row shows the CPU to 'ready'). Client CPU = process.cpuUsage() over the same span: the client's own work, as opposed to waiting for the servers.",
    'RSS: process.memoryUsage().rss after fullReady (after gc()) and right after the measured conc part; peak = process.resourceUsage().maxRSS.',
    `conc: 512 in flight, 50/50 GET/SET over the 100,000 keys, every reply verified (bench/workloads.js), ${concCount.toLocaleString('en-US')} commands after a warm-up. Per master = total ÷ masters: the ${b} servers share the same 2 cores as the ${a}, so the total, not the per-master figure, is what can stay flat here. Servers' CPU = utime + stime of every redis-server from /proc over the measured part (10 ms ticks), per op. "Same depth per node": the same count again with ${INFLIGHT} × masters ÷ ${a} in flight (${Math.round((INFLIGHT * b) / a).toLocaleString('en-US')} on ${b}), i.e. as many commands per connection as ${INFLIGHT} give on ${a} masters.`,
    `Refresh cost: an idle client with the periodic refresh at ${FAST_REFRESH_MS} ms (ours: \`slotInterval\`; ioredis: \`slotsRefreshInterval\`) for ${opts.idleMs} ms, minus the same client with its default (ours: 10 s, ioredis: off) over the same window; process CPU (process.cpuUsage(), every thread) divided by the refreshes done (ours: stats().refreshes; ioredis: topology queries counted on the servers). Server CPU per query: INFO commandstats usec of CLUSTER SHARDS (ours) / CLUSTER SLOTS (ioredis), summed over the servers. Reply sizes: CLUSTER SHARDS ≈ ${sizes[0].shardsBytes} → ${sizes[1].shardsBytes} B, CLUSTER SLOTS ≈ ${sizes[0].slotsBytes} → ${sizes[1].slotsBytes} B.`,
  ];
  if (other.length) {
    const mean = other.reduce((x, y) => x + y, 0) / other.length;
    footnotes.push(`Other work on the machine during the measurements: ${mean.toFixed(1)} % of it on average` + (busy ? `; above 10 % in ${busy} of ${other.length} measurements.` : '.'));
  }
  const md = table(summary, opts, footnotes);
  const minutes = (Date.now() - started) / 60000;
  console.log(`\n## Scale: ${a} vs ${b} masters (median of ${opts.reps}, ${minutes.toFixed(1)} min)\n`);
  console.log(md);

  if (opts.write) {
    const json = {
      date: new Date().toISOString(),
      machine: machine(),
      node: process.version,
      commit: gitHead(),
      addon: addon.file,
      ioredis: versionOf(path.join(BENCH, 'node_modules', 'ioredis')),
      reps: opts.reps,
      scale: opts.scale,
      idleMs: opts.idleMs,
      fastRefreshMs: FAST_REFRESH_MS,
      clients: opts.clients,
      sizes: sizes.map(({ results, ...rest }) => rest),
      summary,
      results: sizes.flatMap((s) => s.results),
      footnotes,
      minutes,
      loadavg: { before: loadBefore, after: os.loadavg() },
    };
    fs.writeFileSync(path.join(BENCH, 'scale.json'), `${JSON.stringify(json, null, 2)}\n`);
    fs.writeFileSync(path.join(BENCH, 'scale.md'), `# Scale: ${a} vs ${b} masters\n\nWritten by \`npm run bench:scale\` on ${json.date.slice(0, 10)} (commit ${json.commit || '?'}, ${machine().cores} cores, Node ${process.version}).\n\n${md}`);
    console.log('scale: wrote bench/scale.json and bench/scale.md');
  }
}

main().catch((e) => {
  console.error(`scale: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
