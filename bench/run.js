#!/usr/bin/env node
// Side-by-side benchmark: redis-clustr-native against redis-clustr 1.7.0, ioredis (with and
// without autopipelining), node-redis createCluster and Valkey GLIDE, on a throwaway local
// 3-master / 3-replica cluster. See bench/README.md for the method.
//
//   npm run bench                      (from the package root)
//   node bench/run.js [--reps 5] [--scale 1] [--clients a,b] [--scenarios a,b] [--addon FILE]
//
// Our client always runs the RELEASE addon: a path given with --addon or
// NAPI_RS_NATIVE_LIBRARY_PATH, else one built with `scripts/build.js --output-dir` into a cache
// directory keyed by a hash of the Rust sources (so it is rebuilt only when they change). A file
// with DWARF debug sections (a debug build) is refused.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { BENCH, ROOT, ensureDeps, versionOf, ensureAddon, runChild, preload, machineBusyUs, pidsCpuUs, gitHead, machine } = require('./harness');

// The scenarios whose CPU per op is also measured for the workload alone (CPU_FLOOR in clients.js).
const CPU_FLOOR_SCENARIOS = new Set(['conc', 'batch', 'mget']);

// ---------------------------------------------------------------------------------------------
// Arguments

function parseArgs(argv) {
  const o = { reps: 5, scale: 1, clients: null, scenarios: null, addon: null, write: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--reps') o.reps = Number(val());
    else if (a === '--scale') o.scale = Number(val());
    else if (a === '--clients') o.clients = val().split(',');
    else if (a === '--scenarios') o.scenarios = val().split(',');
    else if (a === '--addon') o.addon = path.resolve(val());
    else if (a === '--no-write') o.write = false;
    else if (a === '--quick') {
      o.reps = 1;
      o.scale = 0.1;
      o.write = false;
    } else if (a === '-h' || a === '--help') {
      console.log('node bench/run.js [--reps N] [--scale X] [--clients id,..] [--scenarios id,..] [--addon FILE] [--quick] [--no-write]');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!(o.reps >= 1) || !Number.isInteger(o.reps)) throw new Error('--reps must be a positive integer');
  if (!(o.scale > 0)) throw new Error('--scale must be positive');
  return o;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const loadBefore = os.loadavg();
  if (loadBefore[0] > 1) {
    console.log(`bench: WARNING: load average is ${loadBefore.map((x) => x.toFixed(2)).join(' ')} before the run; other work on this machine skews every number.`);
  }
  ensureDeps();
  const addon = ensureAddon(opts);
  const { CLIENTS, FLOOR, CPU_FLOOR } = require('./clients');
  const { SCENARIOS, scaled, key, valueOf, KEYSPACE } = require('./workloads');
  const { startCluster } = require(path.join(ROOT, 'scripts', 'cluster.js'));
  const report = require('./report');

  let clients = opts.clients ? CLIENTS.filter((c) => opts.clients.includes(c.id)) : CLIENTS.slice();
  const scenarios = (opts.scenarios ? SCENARIOS.filter((s) => opts.scenarios.includes(s.id)) : SCENARIOS).map((s) => scaled(s, opts.scale));
  if (clients.length === 0 || scenarios.length === 0) throw new Error('no client or no scenario selected');

  const versions = {
    'redis-clustr-native': `${versionOf(ROOT)} (${addon.how})`,
    'redis-clustr': `${versionOf(path.join(BENCH, 'node_modules', 'redis-clustr'))} (on redis ${versionOf(path.join(BENCH, 'node_modules', 'redis-clustr', 'node_modules', 'redis')) || '?'})`,
    ioredis: versionOf(path.join(BENCH, 'node_modules', 'ioredis')),
    redis: versionOf(path.join(BENCH, 'node_modules', 'redis')),
    '@valkey/valkey-glide': versionOf(path.join(BENCH, 'node_modules', '@valkey', 'valkey-glide')),
  };
  console.log(`bench: our addon: ${addon.file} (${addon.how})`);
  console.log(`bench: peers: ${Object.entries(versions).slice(1).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  console.log(`bench: Node ${process.version}, ${machine().cores} cores (${machine().cpu})`);
  console.log(`bench: ${opts.reps} reps; op counts per measurement (after a warm-up; each in a fresh process):`);
  for (const s of scenarios) {
    const unit = s.id === 'batch' ? `batches of ${s.size}` : s.id === 'mget' ? `MGETs of ${s.size} keys` : s.id === 'fanin' || s.id === 'flood' ? `rounds of ${s.size.toLocaleString('en-US')} GETs` : `${s.unit}s`;
    console.log(`  ${s.title.padEnd(7)} ${s.count.toLocaleString('en-US')} ${unit} (warm-up ${s.warmup.toLocaleString('en-US')}) — ${s.what}`);
  }

  const env = Object.assign({}, process.env, { NAPI_RS_NATIVE_LIBRARY_PATH: addon.file });
  const cluster = await startCluster({ masters: 3, replicas: 1 });
  const unavailable = {};
  const results = [];
  let serverPids = [];
  let busyWarnings = 0;
  let redisVersion = null;
  try {
    const seeds = cluster.seeds.map((s) => ({ host: s.host, port: s.port }));
    serverPids = cluster.nodes.map((n) => n.pid);
    try {
      redisVersion = (/redis_version:(\S+)/.exec(await cluster.command(seeds[0].port, 'INFO', 'server')) || [])[1] || null;
    } catch {
      redisVersion = null;
    }
    console.log(`bench: cluster of 3 masters + 3 replicas up (redis ${redisVersion || '?'}, seeds ${seeds.map((s) => s.port).join(',')}); preloading ${KEYSPACE.toLocaleString('en-US')} keys...`);
    await preload(seeds, KEYSPACE, key, valueOf);

    // Can every client load, connect and read? GLIDE ships a native binary that may not run on
    // every machine: then it is reported as unavailable and the run goes on without it.
    for (const c of clients) {
      const p = await runChild(['--probe', JSON.stringify({ client: c.id, seeds })], env);
      if (!p.ok) {
        const why = (p.stderr.split('\n').find((l) => l.trim()) || `exit ${p.code}`).trim();
        if (c.id === 'glide') {
          unavailable[c.id] = why;
          console.log(`bench: ${c.label} is UNAVAILABLE here and is left out: ${why}`);
          continue;
        }
        throw new Error(`${c.label} cannot run: ${p.stderr || `exit ${p.code}`}`);
      }
      if (c.ours && fs.realpathSync(p.result.addon) !== fs.realpathSync(addon.file)) {
        throw new Error(`our client loaded ${p.result.addon}, not the release addon ${addon.file}`);
      }
    }
    clients = clients.filter((c) => !unavailable[c.id]);

    // Interleaved: every rep runs every scenario for every client before the next rep starts,
    // and the client order rotates per rep, so drift (thermal, noisy neighbours, the servers'
    // memory growing) hits every client alike.
    // flood also measures FLOOR (the workload's own memory), and conc, batch and mget CPU_FLOOR
    // (the workload's own CPU), interleaved like a client.
    const withFloor = (s) => (s.id === 'flood' ? clients.concat([FLOOR]) : CPU_FLOOR_SCENARIOS.has(s.id) ? clients.concat([CPU_FLOOR]) : clients);
    const total = opts.reps * scenarios.reduce((n, s) => n + withFloor(s).length, 0);
    let n = 0;
    for (let rep = 0; rep < opts.reps; rep++) {
      for (const s of scenarios) {
        const these = withFloor(s);
        const order = these.map((_, i) => these[(i + rep) % these.length]);
        for (const c of order) {
          n++;
          const args = JSON.stringify({ client: c.id, scenario: s.id, seeds, scale: opts.scale, seed: 0x9e3779b9 ^ (rep * 7919 + 1) });
          const busy0 = machineBusyUs();
          const servers0 = pidsCpuUs(serverPids);
          const self0 = process.cpuUsage();
          const t0 = Date.now();
          const r = await runChild([args], env);
          if (!r.ok) throw new Error(`${c.label} failed in ${s.title} (rep ${rep + 1}):\n${r.stderr || `exit ${r.code} ${r.signal || ''}`}`);
          r.result.rep = rep + 1;
          if (busy0 != null) {
            // CPU used by anything but this run (its servers, the child, this process) while the
            // child ran, as a share of the machine: other work skews the numbers.
            const selfCpu = process.cpuUsage(self0);
            const serversUs = pidsCpuUs(serverPids) - servers0;
            const other = machineBusyUs() - busy0 - serversUs - r.result.processCpuUs - selfCpu.user - selfCpu.system;
            // The servers' CPU per op, over the child's whole run (its warm-up ops counted too).
            r.result.serverCpuUsPerOp = serversUs / ((r.result.ops * (s.count + s.warmup)) / s.count);
            r.result.otherCpuPct = Math.max(0, (100 * other) / ((Date.now() - t0) * 1000 * os.cpus().length));
            if (r.result.otherCpuPct > 10) busyWarnings++;
          }
          results.push(r.result);
          const x = r.result;
          console.log(
            `  [${String(n).padStart(3)}/${total}] rep ${rep + 1} ${s.title.padEnd(7)} ${c.label.padEnd(27)} ${Math.round(x.opsPerSec).toLocaleString('en-US').padStart(9)} ops/s` +
              `  ${x.cpuUsPerOp.toFixed(2).padStart(7)} µs CPU/op  ${x.peakRssMiB.toFixed(0).padStart(5)} MiB` +
              (x.p50Us != null ? `  p50 ${x.p50Us.toFixed(1)} µs p99 ${x.p99Us.toFixed(1)} µs` : '') +
              (x.otherCpuPct > 10 ? `  (other work used ${x.otherCpuPct.toFixed(0)} % of the machine)` : '')
          );
        }
      }
    }
  } finally {
    await cluster.stop();
  }

  const medians = report.summarize(results, scenarios, clients);
  if (medians.flood) {
    const floor = report.summarize(results, scenarios.filter((s) => s.id === 'flood'), [FLOOR]).flood.floor;
    if (floor) medians.flood.floor = floor;
  }
  const cpuFloors = report.summarize(results, scenarios.filter((s) => CPU_FLOOR_SCENARIOS.has(s.id)), [CPU_FLOOR]);
  for (const [id, m] of Object.entries(cpuFloors)) if (m[CPU_FLOOR.id]) medians[id].cpuFloor = m[CPU_FLOOR.id];
  const rat = report.ratios(medians, scenarios, clients);
  const footnotes = [];
  for (const c of clients) for (const note of Object.values(c.notes || {})) if (!footnotes.includes(note)) footnotes.push(note);
  for (const [id, why] of Object.entries(unavailable)) footnotes.push(`${id}: not measured, unavailable on this machine (${why}).`);
  footnotes.push('CPU is process.cpuUsage() over the measured part, which counts every thread of the client process: our io thread, GLIDE\'s Rust runtime, libuv\'s threads.');
  footnotes.push('Counted ops: batch = commands (100 per batch), mget = keys (100 per MGET), big = SETs + GETs, fan-in and flood = GETs.');
  const otherPct = results.map((r) => r.otherCpuPct).filter((x) => x != null);
  if (otherPct.length) {
    const mean = otherPct.reduce((a, b) => a + b, 0) / otherPct.length;
    footnotes.push(
      `Other work on the machine during the measurements (CPU not used by this run's client, servers or runner): ${mean.toFixed(1)} % of the machine on average` +
        (busyWarnings ? `; above 10 % in ${busyWarnings} of ${otherPct.length} measurements, whose numbers are skewed.` : '.')
    );
  }
  const legend =
    `Columns: **ours** = redis-clustr-native ${versionOf(ROOT)} (release addon) · redis-clustr = ${versions['redis-clustr']} · ` +
    `ioredis ${versions.ioredis} · ioredis AP = the same with \`enableAutoPipelining\` · node-redis = redis ${versions.redis} \`createCluster\`` +
    (unavailable.glide ? '' : ` · GLIDE = @valkey/valkey-glide ${versions['@valkey/valkey-glide']}`) + '.';
  const table = report.tables(medians, rat, scenarios, clients, footnotes, legend);
  const minutes = (Date.now() - started) / 60000;
  console.log(`\n## Results (median of ${opts.reps}, ${minutes.toFixed(1)} min)\n`);
  console.log(table);

  if (opts.write) {
    const m = machine();
    const subtitle = `median of ${opts.reps} · 3 masters + 3 replicas on loopback · ${m.cores} cores · Node ${process.version} · redis ${redisVersion || '?'}`;
    const json = {
      date: new Date().toISOString(),
      machine: m,
      node: process.version,
      redis: redisVersion,
      versions,
      addon: addon.file,
      commit: gitHead(),
      reps: opts.reps,
      scale: opts.scale,
      scenarios: scenarios.map(({ id, title, what, count, warmup, size, inflight, unit }) => ({ id, title, what, count, warmup, size, inflight, unit })),
      clients: clients.map((c) => ({ id: c.id, label: c.label, ours: !!c.ours })),
      unavailable,
      medians,
      ratios: rat,
      results,
      footnotes,
      minutes,
      loadavg: { before: loadBefore, after: os.loadavg() },
    };
    fs.writeFileSync(path.join(BENCH, 'results.json'), `${JSON.stringify(json, null, 2)}\n`);
    fs.writeFileSync(path.join(BENCH, 'results.md'), `${table}\n`);
    fs.writeFileSync(path.join(BENCH, 'chart.svg'), report.chartSvg(medians, rat, scenarios, clients, subtitle));
    console.log('\nbench: wrote bench/results.json, bench/results.md and bench/chart.svg');
  }
}

main().catch((e) => {
  console.error(`bench: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
