// Fault-scenario runner (RELIABILITY.md §1–§2): `node faults/run.js [--only R2,R5] [--quick]
// [--rate N] [--tls]`. Each scenario gets a fresh cluster and prints one JSON line of figures with `pass`
// and `reasons`; a run invalidated by an unplanned failover is retried once (§9). Ends with a
// summary line and the `# pass N` / `# fail M` lines scripts/test.js counts; exits non-zero if
// any scenario failed. `--quick` runs the short subset npm test uses, with shorter timelines.
// `--tls` runs the scenarios that have a TLS run (R1, R2, R5) with the client on TLS only (the
// nodes serve TLS beside plaintext, `tls-cluster yes`; certificates made with openssl).
'use strict';

const { runScenario } = require('./harness');
const { makeCerts } = require('../scripts/cluster/tls');

const SCENARIOS = require('./scenarios');

function parseArgs(argv) {
  const o = { only: null, quick: false, rate: undefined, tls: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') o.quick = true;
    else if (a === '--only') o.only = argv[++i].split(',').map((s) => s.trim().toUpperCase());
    else if (a.startsWith('--only=')) o.only = a.slice(7).split(',').map((s) => s.trim().toUpperCase());
    else if (a === '--rate') o.rate = Number(argv[++i]);
    else if (a === '--tls') o.tls = true;
    else throw new Error(`unknown argument ${a} (use --only R1,R2, --quick, --rate N, --tls)`);
  }
  return o;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  let list = SCENARIOS;
  if (o.only) {
    const unknown = o.only.filter((id) => !SCENARIOS.some((s) => s.id.toUpperCase() === id));
    if (unknown.length) throw new Error(`unknown scenario ${unknown.join(', ')}`);
    list = SCENARIOS.filter((s) => o.only.includes(s.id.toUpperCase()));
  } else if (o.quick) list = SCENARIOS.filter((s) => s.quick);
  if (o.tls) {
    const noTls = list.filter((s) => !s.tls).map((s) => s.id);
    if (o.only && noTls.length) throw new Error(`no TLS run for ${noTls.join(', ')} (TLS runs: ${SCENARIOS.filter((s) => s.tls).map((s) => s.id).join(', ')})`);
    list = list.filter((s) => s.tls);
  }
  const certs = o.tls ? makeCerts() : null;
  const opts = { quick: o.quick, rate: o.rate, tls: certs };
  const results = [];
  try {
    for (const def of list) {
      let r = await runScenario(def, opts);
      if (r.invalid) {
        console.log(JSON.stringify(r));
        console.error(`# ${def.id}: run invalid (${r.invalid}); retrying once`);
        r = await runScenario(def, opts);
        r.retried = true;
      }
      results.push(r);
      console.log(JSON.stringify(r));
    }
  } finally {
    if (certs) certs.remove();
  }
  const passed = results.filter((r) => r.pass).length;
  const failed = results.length - passed;
  console.log(
    `faults${o.tls ? ' (TLS)' : ''}: ${passed} passed, ${failed} failed` +
      (failed ? ` (${results.filter((r) => !r.pass).map((r) => r.scenario).join(', ')})` : ''),
  );
  console.log(`# pass ${passed}`);
  console.log(`# fail ${failed}`);
  if (failed) process.exitCode = 1;
}

main().then(
  () => process.exit(), // the clusters are stopped; do not wait for stray timers
  (e) => {
    console.error(e && e.stack ? e.stack : e);
    process.exit(1);
  },
);
