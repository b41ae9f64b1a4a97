// The hand-written index.d.ts describes the API: a usage file compiles with tsc, and misuse
// marked @ts-expect-error fails to (tsc reports an unused @ts-expect-error otherwise).
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const path = require('node:path');

test('a usage file type-checks against index.d.ts', () => {
  const tsc = require.resolve('typescript/bin/tsc');
  const file = path.join(__dirname, 'fixtures', 'usage.ts');
  const r = spawnSync(
    process.execPath,
    [tsc, '--noEmit', '--strict', '--esModuleInterop', '--module', 'commonjs', '--target', 'es2020', '--types', 'node', file],
    { encoding: 'utf8' }
  );
  assert.equal(r.status, 0, `tsc failed:\n${r.stdout}${r.stderr}`);
});
