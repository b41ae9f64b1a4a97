// Turns the JSON lines of a fault run into the README's Markdown table:
// `node faults/report.js faults.log` (the last line per scenario wins; with `--tls`, the lines
// of a `faults/run.js --tls` run instead of the plaintext ones). Columns: ID, fault, what the
// client must do, pass figure, and the figures of that run.
'use strict';

const fs = require('fs');
const SCENARIOS = require('./scenarios');

const tls = process.argv.includes('--tls');
const file = process.argv.slice(2).find((a) => a !== '--tls');
if (!file) {
  console.error('usage: node faults/report.js [--tls] <log of `npm run test:faults`>');
  process.exit(2);
}
const results = new Map();
for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
  if (!line.startsWith('{"scenario"')) continue;
  const r = JSON.parse(line);
  if (!!r.tls === tls) results.set(r.scenario, r);
}
const cell = (s) => String(s).replace(/\|/g, '\\|');
console.log('| ID | fault | the client must | pass figure | last run |');
console.log('|---|---|---|---|---|');
for (const def of SCENARIOS) {
  if (tls && !def.tls) continue;
  const r = results.get(def.id);
  let figures = 'not run';
  if (r) {
    const verdict = r.pass ? '**pass**' : `**FAIL**: ${r.reasons.join('; ')}${r.invalid ? ` (invalid: ${r.invalid})` : ''}`;
    figures = `${verdict} — ${def.summary ? def.summary(r) : ''}${r.retried ? ' (second attempt)' : ''}`;
  }
  console.log(`| ${def.id} ${cell(def.title)} | ${cell(def.fault)} | ${cell(def.must)} | ${cell(def.passFigure)} | ${cell(figures)} |`);
}
