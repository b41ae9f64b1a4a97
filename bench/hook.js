// What the createClient hook costs: the same workloads over the client's native connections and
// over node_redis v3 clients from a createClient factory (README, "createClient hook"). Small on
// purpose: one throwaway local cluster, modes interleaved (native, hook, native, hook, ...) so
// drift hits both alike, median of the reps, every reply checked.
//
//   NAPI_RS_NATIVE_LIBRARY_PATH=<release .node> node bench/hook.js
//
// Only a release addon is worth measuring: build one with
// `node scripts/build.js --output-dir /tmp/rcn-release` and point the variable at its .node file.
'use strict';

const path = require('path');
const ROOT = path.join(__dirname, '..');
const RedisClustr = require(ROOT);
const { startCluster } = require(path.join(ROOT, 'scripts', 'cluster'));
// node_redis v3, the package's devDependency (bench/node_modules holds the peers' newer redis).
const redis3 = require(require.resolve('redis', { paths: [ROOT] }));

const REPS = Number(process.env.REPS || 3);
const SEQ_OPS = 4000;
const CONC_OPS = 100000;
const IN_FLIGHT = 512;

function connect(seeds, hook) {
  const config = { servers: seeds };
  if (hook) config.createClient = (port, host, options) => redis3.createClient(port, host, options);
  const client = new RedisClustr(config);
  return new Promise((resolve) => client.waitFor('fullReady', () => resolve(client)));
}

function get(client, key) {
  return new Promise((resolve, reject) => client.get(key, (e, v) => (e ? reject(e) : resolve(v))));
}

async function sequential(client) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < SEQ_OPS; i++) {
    const v = await get(client, `bench:hook:${i % 100}`);
    if (v !== `v${i % 100}`) throw new Error(`wrong reply ${v}`);
  }
  return SEQ_OPS / (Number(process.hrtime.bigint() - t0) / 1e9);
}

// IN_FLIGHT commands outstanding at all times, half GET and half SET, over 1,000 keys.
function concurrent(client) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    let sent = 0;
    let done = 0;
    const next = () => {
      const i = sent++;
      const key = `bench:hook:c:${i % 1000}`;
      const cb = (e, v) => {
        if (e) return reject(e);
        if (i % 2 === 1 && v !== 'OK') return reject(new Error(`wrong SET reply ${v}`));
        if (++done === CONC_OPS) return resolve(CONC_OPS / (Number(process.hrtime.bigint() - t0) / 1e9));
        if (sent < CONC_OPS) next();
      };
      if (i % 2 === 0) client.get(key, cb);
      else client.set(key, 'x', cb);
    };
    for (let k = 0; k < IN_FLIGHT; k++) next();
  });
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main() {
  if (!process.env.NAPI_RS_NATIVE_LIBRARY_PATH) console.warn('bench/hook.js: NAPI_RS_NATIVE_LIBRARY_PATH is not set; measuring whatever addon loads (a debug build understates native speed)');
  const cluster = await startCluster();
  const results = { native: { seq: [], conc: [] }, hook: { seq: [], conc: [] } };
  try {
    const setup = await connect(cluster.seeds, false);
    for (let i = 0; i < 100; i++) await new Promise((r) => setup.set(`bench:hook:${i}`, `v${i}`, r));
    await new Promise((r) => setup.quit(r));
    for (let rep = 0; rep < REPS; rep++) {
      for (const mode of ['native', 'hook']) {
        const client = await connect(cluster.seeds, mode === 'hook');
        await sequential(client); // warm-up: JIT, connections
        results[mode].seq.push(await sequential(client));
        results[mode].conc.push(await concurrent(client));
        await new Promise((r) => client.quit(r));
      }
    }
  } finally {
    await cluster.stop();
  }
  const row = (name, key) => {
    const n = median(results.native[key]);
    const h = median(results.hook[key]);
    return `| ${name} | ${Math.round(n).toLocaleString('en')} | ${Math.round(h).toLocaleString('en')} | ${(h / n).toFixed(2)}× |`;
  };
  console.log(`median of ${REPS} reps, ops/s`);
  console.log('| workload | native | createClient (node_redis 3) | hook ÷ native |');
  console.log('|---|--:|--:|--:|');
  console.log(row('seq: one GET at a time', 'seq'));
  console.log(row(`conc: ${IN_FLIGHT} in flight, GET/SET`, 'conc'));
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
