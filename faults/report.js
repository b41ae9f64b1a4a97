// Turns the JSON lines of a fault run into the README's Markdown table:
// `node faults/report.js faults.log` (the last line per scenario wins). Columns: ID, fault, what
// the client must do, pass figure, and the figures of that run.
'use strict';

const fs = require('fs');
const SCENARIOS = require('./scenarios');

const file = process.argv[2];
if (!file) {
  console.error('usage: node faults/report.js <log of `npm run test:faults`>');
  process.exit(2);
}
const results = new Map();
for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
  if (!line.startsWith('{"scenario"')) continue;
  const r = JSON.parse(line);
  results.set(r.scenario, r);
}
const cell = (s) => String(s).replace(/\|/g, '\\|');
console.log('| ID | fault | the client must | pass figure | last run |');
console.log('|---|---|---|---|---|');
for (const def of SCENARIOS) {
  const r = results.get(def.id);
  let figures = 'not run';
  if (r) {
    const verdict = r.pass ? '**pass**' : `**FAIL**: ${r.reasons.join('; ')}${r.invalid ? ` (invalid: ${r.invalid})` : ''}`;
    figures = `${verdict} — ${def.summary ? def.summary(r) : ''}${r.retried ? ' (second attempt)' : ''}`;
  }
  console.log(`| ${def.id} ${cell(def.title)} | ${cell(def.fault)} | ${cell(def.must)} | ${cell(def.passFigure)} | ${cell(figures)} |`);
}
