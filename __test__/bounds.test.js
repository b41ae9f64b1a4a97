// Resource bounds (RELIABILITY.md §8, issue 6 item 7) on a cluster of this suite's own, since it
// SIGSTOPs every master: with nothing able to complete, 1,000,000 SETs of 1 KiB meet the
// client's limits (maxInFlight, maxQueueBytes). At most the limit is accepted, the rest fail with
// QUEUE_FULL within the same turn of the event loop, memory stays bounded, every accepted command
// settles once the masters run again, and after quit() nothing of ours is left: no handle, no
// timer, and the process exits by itself. The scenario runs in a child process
// (fixtures/flood-bounds.js, forked with --expose-gc) so its RSS is measured alone.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { fork } = require('node:child_process');
const path = require('node:path');
const { startCluster } = require('../scripts/cluster');
const h = require('./helpers');

const FIXTURE = path.join(__dirname, 'fixtures', 'flood-bounds.js');
// What an accepted command may end with after SIGCONT besides OK: the masters were silent for
// longer than cluster-node-timeout, so they may briefly flag each other as failing (CLUSTERDOWN,
// retried until the retry budget runs out) or drop a connection (CONNECTION_LOST, outcome
// unknown). README "Failures": both are documented outcomes; a hang or QUEUE_FULL is not.
const DOCUMENTED = new Set(['OK', 'CLUSTERDOWN', 'CONNECTION_LOST', 'TIMEOUT']);

let cluster;
before(async () => {
  // Three masters and no replicas: with every master stopped no failover can happen, and three
  // servers are all this needs on a 2-core box. Without full coverage required, a master that the
  // others flag as failing while it is stopped does not turn the live ones' answers into
  // CLUSTERDOWN, so what the quit tests see depends on the client, not on failure detection.
  cluster = await startCluster({ replicas: 0, extraArgs: ['--cluster-require-full-coverage', 'no'] });
});
after(async () => {
  if (cluster) await cluster.stop();
});

/** Forks the fixture and returns helpers to talk to it; `exit` resolves with {code, signal, at}. */
function startChild(env) {
  const child = fork(FIXTURE, [], {
    execArgv: ['--expose-gc'],
    env: Object.assign({}, process.env, env),
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stdout.resume();
  child.stderr.on('data', (d) => (stderr += d));
  const inbox = [];
  const waiters = [];
  child.on('message', (m) => {
    const w = waiters.findIndex((x) => x.type === m.type || m.type === 'failed');
    if (w >= 0) waiters.splice(w, 1)[0].resolve(m);
    else inbox.push(m);
  });
  const exit = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })));
  const next = (type, ms) => {
    const i = inbox.findIndex((m) => m.type === type || m.type === 'failed');
    const got = i >= 0 ? Promise.resolve(inbox.splice(i, 1)[0]) : new Promise((resolve) => waiters.push({ type, resolve }));
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no '${type}' from the child within ${ms} ms; stderr: ${stderr}`)), ms);
    });
    const died = exit.then((e) => {
      throw new Error(`the child exited (${e.code}/${e.signal}) before '${type}'; stderr: ${stderr}`);
    });
    return Promise.race([got, timeout, died]).then((m) => {
      if (m.type === 'failed') throw new Error(`the child failed: ${m.error}`);
      return m;
    }).finally(() => clearTimeout(timer));
  };
  return { child, next, exit, stderr: () => stderr };
}

test('1,000,000 SETs against stopped masters: the limits hold, memory stays bounded, everything accepted settles and the process exits by itself', async (t) => {
  const masters = await cluster.masters();
  assert.equal(masters.length, 3);
  const c = startChild({
    FLOOD_SEEDS: JSON.stringify(cluster.seeds),
    FLOOD_PREFIX: `bounds:${process.pid}:${Date.now()}`,
  });
  let stopped = [];
  try {
    await c.next('ready', 20000);
    for (const m of masters) {
      await cluster.killNode(m.port, 'SIGSTOP');
      stopped.push(m.port);
    }
    c.child.send({ type: 'flood' });
    const f = await c.next('flooded', 60000);
    t.diagnostic(
      `flood ${f.floodMs} ms; slowest turn with refusals ${f.maxRefusalMs} ms; RSS ${f.rssBeforeMiB} → peak ` +
        `${f.rssPeakMiB} → ${f.rssAfterMiB} MiB after gc; B accepted ${f.b.accepted} (${f.queuedBytesB} bytes)`
    );

    // Client A: maxInFlight 1000 binds. Nothing can complete, so exactly 1000 are accepted.
    assert.equal(f.a.settledDuringFlood, 0, `commands completed while every master was stopped: ${JSON.stringify(f.a)}`);
    assert.equal(f.a.accepted, 1000, `accepted ${f.a.accepted} with maxInFlight 1000`);
    assert.equal(f.a.refused, 999000);
    assert.equal(f.a.maxOutstanding, 1000);
    // Client B: maxQueueBytes 256 KiB binds first. A command is refused once the bytes already
    // queued reach the budget, so the last one accepted may cross it by its own size (~1.1 KiB).
    assert.equal(f.b.settledDuringFlood, 0);
    assert.ok(f.queuedBytesB >= 256 * 1024 && f.queuedBytesB < 256 * 1024 + 2048, `B holds ${f.queuedBytesB} bytes`);
    assert.ok(f.b.accepted > 200 && f.b.accepted < 256, `B accepted ${f.b.accepted} commands of ~1.1 KiB under 256 KiB`);
    assert.equal(f.b.accepted + f.b.refused, 200000);
    // Every refusal arrived within the turn of the loop that made it, none later.
    for (const s of [f.a, f.b]) {
      assert.equal(s.unaccounted, 0, 'a refused call had not been called back within its turn');
      assert.equal(s.lateRefusals, 0);
    }
    // Memory: bounded by the limits, not by what was submitted (1,000,000 × 1 KiB = 1 GiB).
    const growth = f.rssPeakMiB - f.rssBeforeMiB;
    assert.ok(growth < 100, `RSS grew ${growth} MiB (${f.rssBeforeMiB} → peak ${f.rssPeakMiB}, ${f.rssAfterMiB} after gc)`);

    for (const port of stopped.splice(0)) await cluster.killNode(port, 'SIGCONT');
    c.child.send({ type: 'settle', deadlineMs: 30000 });
    const s = await c.next('settled', 60000);
    t.diagnostic(`after SIGCONT: A ${JSON.stringify(s.a.codes)}, B ${JSON.stringify(s.b.codes)}; quit took ${s.quitMs} ms`);
    for (const [name, r] of [['A', s.a], ['B', s.b]]) {
      assert.equal(r.settled, r.accepted, `client ${name}: ${r.accepted - r.settled} accepted commands never settled (${JSON.stringify(r.codes)})`);
      for (const code of Object.keys(r.codes)) assert.ok(DOCUMENTED.has(code), `client ${name}: undocumented outcome ${code} (${JSON.stringify(r.codes)})`);
      assert.ok((r.codes.OK || 0) > 0, `client ${name}: nothing succeeded after SIGCONT (${JSON.stringify(r.codes)})`);
    }
    // After quit no handle or timer of ours is left, and the process ends by itself.
    assert.deepEqual(s.resources, s.baselineResources, `left behind: ${JSON.stringify(s.resources)} (before: ${JSON.stringify(s.baselineResources)})`);
    const sentAt = Date.now();
    const exited = await Promise.race([c.exit, new Promise((resolve) => setTimeout(resolve, 5000, null))]);
    assert.ok(exited, `the child did not exit within 5 s of quit (stderr: ${c.stderr()})`);
    assert.equal(exited.code, 0, `child exit ${exited.code}/${exited.signal}: ${c.stderr()}`);
    assert.ok(exited.at - sentAt < 5000);
  } finally {
    for (const port of stopped) await cluster.killNode(port, 'SIGCONT');
    if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
    await cluster.waitHealthy(30000).catch(() => {});
  }
});

/** Resolves once `client` has a ready connection to every master (a PING through each). */
async function pingMasters(client) {
  const masters = [...new Set(client.slots.map((s) => s[0]))];
  await Promise.all(masters.map((m) => new Promise((resolve, reject) => m.ping((e) => (e ? reject(e) : resolve())))));
}

/** 1,000 SETs; resolves the outcome of each (`'OK'` or the error code) in `outcomes`. */
function fireSets(client, prefix, outcomes) {
  const keys = Array.from({ length: 1000 }, (_, i) => `${prefix}:${i}`);
  for (const [i, k] of keys.entries()) client.set(k, 'v', (err, reply) => (outcomes[i] = err ? err.code : reply));
  return keys;
}

test('quit() with 1,000 commands in flight and one master stopped: with commandTimeout every one settles and quit completes', async () => {
  const victim = (await cluster.masters())[0];
  const owned = (k) => victim.slots.some(([a, b]) => h.RedisClustr.keySlot(k) >= a && h.RedisClustr.keySlot(k) <= b);
  const client = await h.connect(cluster.seeds, { commandTimeout: 1000 });
  let stopped = false;
  try {
    await pingMasters(client);
    await cluster.killNode(victim.port, 'SIGSTOP');
    stopped = true;
    const outcomes = new Array(1000).fill(null);
    const keys = fireSets(client, `bounds-quit-t:${process.pid}:${Date.now()}`, outcomes);
    let ended = 0;
    client.on('end', () => ended++);
    const quitDone = new Promise((resolve) => client.quit((err, v) => resolve([err, v])));
    assert.deepEqual(await h.within(quitDone, 10000, 'quit with a stopped master'), [null, 'OK']);
    assert.equal(ended, 1);
    const expected = keys.map((k) => (owned(k) ? 'TIMEOUT' : 'OK'));
    assert.ok(expected.includes('TIMEOUT') && expected.includes('OK'));
    assert.deepEqual(outcomes, expected, 'the stopped master’s commands time out, the others succeed, none is left');
  } finally {
    if (stopped) await cluster.killNode(victim.port, 'SIGCONT');
    await h.quit(client);
    await cluster.waitHealthy(30000);
  }
});

test('quit() with 1,000 commands in flight and one master stopped: without commandTimeout quit waits, and completes once the master runs again', async () => {
  const victim = (await cluster.masters())[0];
  const owned = (k) => victim.slots.some(([a, b]) => h.RedisClustr.keySlot(k) >= a && h.RedisClustr.keySlot(k) <= b);
  const client = await h.connect(cluster.seeds);
  let stopped = false;
  try {
    await pingMasters(client);
    await cluster.killNode(victim.port, 'SIGSTOP');
    stopped = true;
    const outcomes = new Array(1000).fill(null);
    const keys = fireSets(client, `bounds-quit-w:${process.pid}:${Date.now()}`, outcomes);
    const onVictim = keys.filter(owned).length;
    let quitResult = null;
    client.quit((err, v) => (quitResult = [err, v]));
    // The live masters answer; the stopped one's commands wait (README: a command to a node that
    // stops answering waits until it answers or the connection fails) and so does quit.
    await h.until(() => outcomes.filter((o) => o === 'OK').length === 1000 - onVictim, { what: 'the live masters’ replies' });
    assert.equal(outcomes.filter((o) => o === null).length, onVictim);
    assert.equal(quitResult, null, 'quit completed with commands still in flight');
    await cluster.killNode(victim.port, 'SIGCONT');
    stopped = false;
    await h.until(() => quitResult !== null, { what: 'quit after SIGCONT' });
    assert.deepEqual(quitResult, [null, 'OK']);
    assert.deepEqual(outcomes, keys.map(() => 'OK'), 'every command settled with OK before quit called back');
  } finally {
    if (stopped) await cluster.killNode(victim.port, 'SIGCONT');
    await h.quit(client);
    await cluster.waitHealthy(30000);
  }
});
