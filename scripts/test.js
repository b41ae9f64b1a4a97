// `npm test`: builds the addon if it is missing, starts one throwaway local Redis Cluster, runs
// `cargo test` for the Rust crates and then every __test__ suite with node's test runner against
// that cluster (its seeds are passed in REDIS_CLUSTR_SEEDS), then the behavioural suites once
// more in createClient mode, and stops the cluster whatever happens; then the quick fault
// scenarios (faults/run.js --quick, own clusters) and the packaging test. Exits non-zero if
// anything failed.
'use strict';

const { spawnSync, spawn } = require('child_process');
const fs = require('fs');
const path = require('path');
const { ensureRedis, startCluster } = require('./cluster');

const root = path.join(__dirname, '..');

// The suites that run a second time with the createClient hook: commands, reply shapes, batches
// and transactions, multi-key and fan-out, a live slot migration (ASK/MOVED), pub/sub, scan, and
// the lifecycle (connect/ready/fullReady, quit), and WATCH sessions (each on a client of its own).
const HOOK_SUITES = [
  'commands.test.js',
  'replies.test.js',
  'transaction.test.js',
  'batch.test.js',
  'fanout.test.js',
  'migration.test.js',
  'pubsub.test.js',
  'scan.test.js',
  'lifecycle.test.js',
  'watch.test.js',
];

// Totals over every runner, for the one closing line CI reads.
const totals = { passed: 0, failed: 0 };

// Runs a command with its output shown as it comes, and counts the tests its runner reports
// (cargo: "test result: ok. N passed; M failed", node: "# pass N" / "# fail N" / "# cancelled N":
// a test cancelled because its suite's hook failed did not pass, so it counts as failed).
function run(cmd, args, env) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], env: Object.assign({}, process.env, env) });
    let rest = '';
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      const lines = (rest + chunk).split('\n');
      rest = lines.pop();
      for (const line of lines) count(line);
    });
    child.on('close', (code, signal) => {
      count(rest);
      resolve(code === null ? `killed by ${signal}` : code);
    });
  });
}

function count(line) {
  let m = /^test result: \w+\. (\d+) passed; (\d+) failed/.exec(line);
  if (m) {
    totals.passed += Number(m[1]);
    totals.failed += Number(m[2]);
    return;
  }
  m = /^# (pass|fail|cancelled) (\d+)$/.exec(line);
  if (m) totals[m[1] === 'pass' ? 'passed' : 'failed'] += Number(m[2]);
}

// The newest modification time under `p` (a file or a directory tree), skipping target/.
function newest(p) {
  const st = fs.statSync(p, { throwIfNoEntry: false });
  if (!st) return 0;
  if (!st.isDirectory()) return st.mtimeMs;
  return fs.readdirSync(p).reduce((m, f) => (f === 'target' ? m : Math.max(m, newest(path.join(p, f)))), st.mtimeMs);
}

// No addon, or Rust sources changed since it was built: the node suites must not test a stale
// binary (a debug build from `npm run build:debug` counts as fresh if it is newer).
function addonIsStale() {
  const addons = fs.readdirSync(root).filter((f) => f.endsWith('.node'));
  if (addons.length === 0) return true;
  const built = Math.max(...addons.map((f) => fs.statSync(path.join(root, f)).mtimeMs));
  const sources = ['Cargo.toml', 'Cargo.lock', 'build.rs', 'src', 'crates'].map((f) => newest(path.join(root, f)));
  return Math.max(...sources) > built;
}

async function main() {
  ensureRedis();
  if (addonIsStale()) {
    const b = spawnSync(process.execPath, [path.join(__dirname, 'build.js')], { cwd: root, stdio: 'inherit' });
    if (b.status !== 0) throw new Error('the native build failed');
  }
  const failures = [];
  console.log('# cargo test --workspace');
  const cargo = await run('cargo', ['test', '--workspace']);
  if (cargo !== 0) failures.push(`cargo test (${cargo})`);

  console.log('# starting a local Redis Cluster for the node suites');
  const cluster = await startCluster();
  try {
    const suites = fs
      .readdirSync(path.join(root, '__test__'))
      .filter((f) => f.endsWith('.test.js'))
      .map((f) => path.join('__test__', f));
    const node = await run(process.execPath, ['--test', '--test-concurrency=1', ...suites], {
      REDIS_CLUSTR_SEEDS: JSON.stringify(cluster.seeds),
    });
    if (node !== 0) failures.push(`node --test (${node})`);

    // The createClient mode (SPEC §5): the behavioural suites again, with every client carrying
    // its traffic over node_redis v3 clients from a factory (see __test__/helpers.js).
    console.log('# the behavioural suites again in createClient mode (node_redis v3 clients)');
    const hookNode = await run(process.execPath, ['--test', '--test-concurrency=1', ...HOOK_SUITES.map((f) => path.join('__test__', f))], {
      REDIS_CLUSTR_SEEDS: JSON.stringify(cluster.seeds),
      REDIS_CLUSTR_HOOK: '1',
    });
    if (hookNode !== 0) failures.push(`node --test in createClient mode (${hookNode})`);
  } finally {
    await cluster.stop();
  }

  // --- Fault scenarios (issue 6, RELIABILITY.md §1-§2) ---------------------------------------
  // The quick subset (R1 baseline 10 s, R2 failover of one shard, R6 manual migration, R7 MOVED
  // loop, R16 seeds partly down, R18 READONLY), each on a fresh cluster of its own: ~1.7 min. Each scenario
  // counts as one test (the runner ends with `# pass N` / `# fail M`). `npm run test:faults`
  // runs all of them.
  console.log('# fault scenarios: faults/run.js --quick');
  const faults = await run(process.execPath, [path.join(root, 'faults', 'run.js'), '--quick']);
  if (faults !== 0) failures.push(`fault scenarios (${faults})`);

  // --- Packaging (issue 8) ---------------------------------------------------------------------
  // What npm users install: packs the package and its linux-x64-gnu platform package, installs
  // them into temporary apps (prebuilt without cargo; source build with cargo) and runs the
  // README's usage example there. Starts and stops its own local cluster; ~70 s, most of it
  // the cold source build.
  console.log('# packaging: scripts/package-test.js');
  const packaging = await run(process.execPath, [path.join(__dirname, 'package-test.js')]);
  if (packaging !== 0) failures.push(`package test (${packaging})`);

  if (failures.length) {
    console.error(`\nFAILED: ${failures.join(', ')}`);
    process.exitCode = 1;
  }
  console.log(`\ntests: ${totals.passed} passed, ${totals.failed} failed`);
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exitCode = 1;
});
