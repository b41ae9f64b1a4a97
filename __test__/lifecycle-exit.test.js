// How a client's life may end, each in a child process of its own (fixtures/lifecycle-child.js),
// for what lifecycle.test.js and caller-input.test.js do not cover (RELIABILITY.md §6 lifecycle):
// the process exits within 1 s of 'end' with no handle or timer of ours left; process.exit()
// with 1,000 commands in flight (or from inside a reply callback) exits cleanly, without an abort
// or a panic; a worker_thread terminated with commands in flight does not take the process
// down. Uses the shared test cluster (its own when run alone).
'use strict';

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const h = require('./helpers');

const FIXTURE = path.join(__dirname, 'fixtures', 'lifecycle-child.js');

after(() => h.stopOwnCluster());

/**
 * Runs the fixture in `mode` and resolves with its exit code/signal, the time it exited, its
 * stdout JSON line and stderr. A child still running after `timeoutMs` is SIGKILLed by its pid
 * and reported with `timedOut: true`.
 */
async function runChild(mode, timeoutMs = 20000) {
  const c = await h.cluster();
  const prefix = `lc-exit:${mode}:${process.pid}:${Date.now()}`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FIXTURE], {
      env: Object.assign({}, process.env, { LIFECYCLE_SEEDS: JSON.stringify(c.seeds), LIFECYCLE_PREFIX: prefix, LIFECYCLE_MODE: mode }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    let timedOut = false;
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => {
      timedOut = true;
      process.kill(child.pid, 'SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    // 'exit' (not 'close'): the moment the process ended, before its pipes are drained.
    let exitedAt = 0;
    child.once('exit', () => (exitedAt = Date.now()));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      let summary = null;
      try {
        summary = JSON.parse(out.trim().split('\n').pop());
      } catch (_) {
        // reported by the callers' assertions
      }
      resolve({ code, signal, timedOut, exitedAt, summary, stdout: out, stderr: err });
    });
  });
}

/** A clean end: exit code 0, no signal (an abort is SIGABRT), nothing alarming on stderr. */
function assertClean(r, what) {
  const info = `${what}: code ${r.code}, signal ${r.signal}, stderr: ${r.stderr}`;
  assert.equal(r.timedOut, false, `${what} did not exit within the deadline (${info})`);
  assert.equal(r.signal, null, info);
  assert.equal(r.code, 0, info);
  assert.doesNotMatch(r.stderr, /abort|panicked|FATAL|Segmentation|core dumped|fixture failed/i, info);
}

test('after quit() the process exits within 1 s of end, with no handle or timer of ours left', async (t) => {
  for (let run = 0; run < 3; run++) {
    const r = await runChild('quit-exit');
    assertClean(r, 'quit-exit');
    assert.ok(r.summary, `no summary: ${r.stdout}`);
    assert.equal(r.summary.settled, 1000, 'every command was called back before end');
    assert.deepEqual(r.summary.resources, r.summary.baseline, `still active after end: ${JSON.stringify(r.summary.resources)}`);
    const lag = r.exitedAt - r.summary.endAt;
    t.diagnostic(`run ${run}: exited ${lag} ms after 'end'`);
    assert.ok(lag < 1000, `the process exited ${lag} ms after 'end'`);
  }
});

test('process.exit() with 1,000 commands in flight exits with code 0, no abort, no panic', async () => {
  for (let run = 0; run < 3; run++) {
    const r = await runChild('exit-in-flight');
    assertClean(r, 'exit-in-flight');
    assert.ok(r.summary, `no summary: ${r.stdout}`);
    assert.equal(r.summary.settled, 0);
    assert.equal(r.summary.pending, 1000, 'process.exit() ran with every command still in flight');
  }
});

test('process.exit() from a reply callback with the other commands in flight exits cleanly', async () => {
  for (let run = 0; run < 3; run++) {
    const r = await runChild('exit-in-callback');
    assertClean(r, 'exit-in-callback');
    assert.ok(r.summary, `no summary: ${r.stdout}`);
    assert.equal(r.summary.settled, 1);
    assert.ok(r.summary.pending < 1000, 'the replying command is no longer pending');
  }
});

test('a worker_thread terminated with commands in flight does not crash the process', async () => {
  const r = await runChild('worker-terminate', 30000);
  assertClean(r, 'worker-terminate');
  assert.ok(r.summary, `no summary: ${r.stdout}`);
  // worker.terminate() resolves with exit code 1 for a terminated worker.
  assert.deepEqual(r.summary.terminated, [1, 1, 1, 1, 1]);
  assert.deepEqual(r.summary.replies, ['number'], 'the main thread’s client still works afterwards');
});
