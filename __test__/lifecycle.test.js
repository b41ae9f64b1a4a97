// Lifecycle of a client against real local servers: the connect → ready → fullReady sequence and
// the state it leaves behind (slots, connections), quit() draining in-flight work and letting the
// process exit, commands after quit, seeds that are not a cluster or not reachable (NOT_A_CLUSTER,
// NO_SLOT_MAP with each seed's error), the redis-clustr queue options (wait, maxQueueLength,
// queueShift), and a password that must never leak into inspect output, config or errors.
'use strict';

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');
const util = require('node:util');
const h = require('./helpers');
const { sendCommand } = require('../scripts/cluster');

const { RedisClustr } = h;
const HOST = '127.0.0.1';
const FIXTURE = path.join(__dirname, 'fixtures', 'quit-exit.js');

after(() => h.stopOwnCluster());

/** The master that owns `slot` according to the cluster itself. */
async function ownerOf(c, slot) {
  const masters = await c.masters();
  const m = masters.find((x) => x.slots.some(([a, b]) => slot >= a && slot <= b));
  assert.ok(m, `no master owns slot ${slot}`);
  return m;
}

/** Resolves with [err, value, elapsedMs] of one callback-style call. */
function settle(client, method, ...args) {
  const t0 = Date.now();
  return new Promise((resolve) => client[method](...args, (err, value) => resolve([err, value, Date.now() - t0])));
}

/**
 * Runs the quit-exit fixture in a child process and resolves with its exit code/signal, how long
 * it took and the JSON summary it printed. A child still running after `timeoutMs` is SIGKILLed
 * (by its pid) and reported with `timedOut: true`.
 */
function runQuitFixture(env, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [FIXTURE], {
      env: Object.assign({}, process.env, env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let errOut = '';
    let timedOut = false;
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (errOut += d));
    const timer = setTimeout(() => {
      timedOut = true;
      process.kill(child.pid, 'SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = out.trim().split('\n').pop();
      let summary = null;
      try {
        summary = JSON.parse(line);
      } catch (_) {
        // reported through the assertion below
      }
      resolve({ code, signal, timedOut, ms: Date.now() - t0, summary, stdout: out, stderr: errOut });
    });
  });
}

/**
 * A TCP proxy to 127.0.0.1:`port` that holds every new connection for `delayMs` before
 * connecting it through: a seed whose first reply is slow, so commands can be issued before the
 * first slot map deterministically. `close()` destroys every socket it made.
 */
async function delayingProxy(port, delayMs) {
  const sockets = new Set();
  const track = (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
  };
  const server = net.createServer((sock) => {
    track(sock);
    const timer = setTimeout(() => {
      if (sock.destroyed) return;
      const up = net.connect(port, HOST);
      track(up);
      sock.pipe(up);
      up.pipe(sock);
      up.on('close', () => sock.destroy());
      sock.on('close', () => up.destroy());
    }, delayMs);
    sock.on('close', () => clearTimeout(timer));
  });
  await new Promise((resolve) => server.listen(0, HOST, resolve));
  return {
    port: server.address().port,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

test('a client emits connect, then ready, then fullReady and then exposes every slot and node', async () => {
  const c = await h.cluster();
  const client = new RedisClustr({ ...h.modeOptions(), servers: c.seeds });
  const order = [];
  const flagsAt = {};
  try {
    assert.equal(client.ready, false);
    assert.equal(client.connected, false);
    assert.equal(client.fullReady, false);
    for (const ev of ['connect', 'ready', 'fullReady']) {
      client.on(ev, () => {
        order.push(ev);
        flagsAt[ev] = { connected: client.connected, ready: client.ready, fullReady: client.fullReady };
      });
    }
    await h.until(() => order.includes('fullReady'), { what: 'fullReady' });
    assert.deepEqual(order, ['connect', 'ready', 'fullReady']);
    assert.deepEqual(flagsAt.connect, { connected: true, ready: false, fullReady: false });
    assert.deepEqual(flagsAt.ready, { connected: true, ready: true, fullReady: false });
    assert.deepEqual(flagsAt.fullReady, { connected: true, ready: true, fullReady: true });
    assert.equal(client.ready, true);
    assert.equal(client.connected, true);
    assert.equal(client.fullReady, true);

    // slots: 16384 entries of [master, ...replicas], matching what the cluster says.
    assert.equal(client.slots.length, 16384);
    const masters = await c.masters();
    const byPort = new Map(masters.map((m) => [m.port, m]));
    for (let s = 0; s < 16384; s++) {
      const entry = client.slots[s];
      assert.ok(Array.isArray(entry) && entry.length >= 1, `slot ${s} has no handles`);
      const [master, ...replicas] = entry;
      const m = byPort.get(master.port);
      assert.ok(m && m.slots.some(([a, b]) => s >= a && s <= b), `slot ${s}: client says ${master.port}, cluster disagrees`);
      assert.equal(master.host, HOST);
      assert.equal(master.master, true);
      assert.equal(master.ready, true);
      assert.deepEqual(replicas.map((r) => r.port).sort((a, b) => a - b), m.replicas);
      for (const r of replicas) {
        assert.equal(r.master, false);
        assert.equal(r.host, HOST);
        assert.equal(r.ready, true);
      }
    }
    // The same handle object stands for a node everywhere.
    assert.equal(client.slots[0][0], client.connections[client.slots[0][0].address]);

    // connections: every node of the cluster, ready.
    const expected = c.seeds.map((s) => `${s.host}:${s.port}`).sort();
    assert.equal(expected.length, 6);
    assert.deepEqual(Object.keys(client.connections).sort(), expected);
    for (const [addr, node] of Object.entries(client.connections)) {
      assert.equal(node.address, addr);
      assert.equal(`${node.host}:${node.port}`, addr);
      assert.equal(node.ready, true, `${addr} not ready`);
      assert.equal(node.connected, true, `${addr} not connected`);
      assert.equal(node.master, byPort.has(node.port));
    }
  } finally {
    await h.quit(client);
  }
});

test('the constructor accepts a bare array of servers', async () => {
  const c = await h.cluster();
  const client = new RedisClustr(c.seeds.slice(0, 1));
  try {
    assert.deepEqual(client.config.servers, c.seeds.slice(0, 1));
    await h.until(() => client.ready, { what: 'ready' });
    const key = `{lifecycle}bare-array:${process.pid}`;
    assert.equal(await h.call(client, 'set', key, 'from-a-bare-array'), 'OK');
    assert.equal(await h.call(client, 'get', key), 'from-a-bare-array');
    assert.equal(await h.call(client, 'del', key), 1);
    assert.equal(Object.keys(client.connections).length >= 3, true);
  } finally {
    await h.quit(client);
  }
});

test('quit with 1,000 commands in flight settles every callback and the process then exits by itself', async () => {
  const c = await h.cluster();
  const prefix = `quit-exit:${process.pid}:${Date.now()}`;
  const r = await runQuitFixture({ QUIT_EXIT_SEEDS: JSON.stringify(c.seeds), QUIT_EXIT_PREFIX: prefix });
  assert.equal(r.timedOut, false, `the child did not exit within 10 s (stdout ${r.stdout}, stderr ${r.stderr})`);
  assert.equal(r.code, 0, `child exited with ${r.code}/${r.signal}: ${r.stderr}`);
  assert.ok(r.summary, `no summary printed: ${r.stdout}`);
  assert.equal(r.summary.callbacks, 1000);
  assert.equal(r.summary.ok, 1000);
  assert.deepEqual(r.summary.errors, []);
  assert.equal(r.summary.quitCallbacks, 1);
  assert.equal(r.summary.quitError, null);
  assert.equal(r.summary.end, 1);

  // The SETs really reached the cluster.
  const client = await h.connect(c.seeds);
  try {
    // One GET/DEL per key: these keys span every slot, and splitting is not what is tested here.
    const keys = Array.from({ length: 1000 }, (_, i) => `${prefix}:${i}`);
    const values = await Promise.all(keys.map((k) => h.call(client, 'get', k)));
    assert.deepEqual(values, keys.map((_, i) => `v${i}`));
    const deleted = await Promise.all(keys.map((k) => h.call(client, 'del', k)));
    assert.equal(deleted.reduce((a, b) => a + b, 0), 1000);
  } finally {
    await h.quit(client);
  }
});

test("quit's callback and 'end' come after the callbacks of every command sent before quit", async () => {
  const c = await h.cluster();
  const prefix = `quit-order:${process.pid}:${Date.now()}`;
  const r = await runQuitFixture({ QUIT_EXIT_SEEDS: JSON.stringify(c.seeds), QUIT_EXIT_PREFIX: prefix });
  try {
    assert.equal(r.code, 0);
    assert.equal(r.summary.callbacks, 1000);
    assert.equal(r.summary.callbacksAtQuit, 1000, 'quit callback ran before some command callbacks');
    assert.equal(r.summary.callbacksAtEnd, 1000, "'end' was emitted before some command callbacks");
  } finally {
    const client = await h.connect(c.seeds);
    try {
      await Promise.all(Array.from({ length: 1000 }, (_, i) => h.call(client, 'del', `${prefix}:${i}`)));
    } finally {
      await h.quit(client);
    }
  }
});

test('commands issued before the first slot map are sent, not dropped, when quit follows at once', async () => {
  const c = await h.cluster();
  // A seed that answers only after 200 ms: the commands and quit() surely come before the map.
  const proxy = await delayingProxy(c.seeds[0].port, 200);
  const key = `{lifecycle}early:${process.pid}:${Date.now()}`;
  try {
    const client = new RedisClustr({ ...h.modeOptions(), servers: [{ host: HOST, port: proxy.port }] });
    const results = [settle(client, 'set', key, 'early'), settle(client, 'incr', `${key}:n`)];
    await h.quit(client);
    const [[setErr, setValue], [incrErr, incrValue]] = await Promise.all(results);
    assert.equal(setErr, null, setErr && `${setErr.code}: ${setErr.message}`);
    assert.equal(setValue, 'OK');
    assert.equal(incrErr, null);
    assert.equal(incrValue, 1);
  } finally {
    await proxy.close();
    const check = await h.connect(c.seeds);
    try {
      await h.call(check, 'del', key, `${key}:n`);
    } finally {
      await h.quit(check);
    }
  }
});

test('a command after quit fails with CLOSED in its callback and is never sent', async () => {
  const c = await h.cluster();
  const client = await h.connect(c.seeds);
  const key = `{lifecycle}after-quit:${process.pid}:${Date.now()}`;
  const owner = await ownerOf(c, RedisClustr.keySlot(key));
  let ended = false;
  client.quit(() => {
    ended = true;
  });
  let sync = true;
  const pending = settle(client, 'set', key, 'must-not-arrive');
  sync = false;
  const [err] = await pending;
  assert.equal(sync, false);
  assert.ok(err instanceof Error);
  assert.equal(err.code, 'CLOSED');
  assert.equal(err.command, 'SET');

  await h.until(() => ended, { what: 'quit to finish' });
  const [err2] = await settle(client, 'incr', key);
  assert.equal(err2.code, 'CLOSED');

  // Without a callback, the failure is an 'error' event (not a crash, not a rejection).
  const evErr = await new Promise((resolve) => {
    client.once('error', resolve);
    client.set(key, 'also-not');
  });
  assert.equal(evErr.code, 'CLOSED');

  // Nothing reached the server.
  assert.equal(await c.command(owner.port, 'EXISTS', key), 0);
});

test('a seed that is not in cluster mode gives NOT_A_CLUSTER and no crash without an error listener', async () => {
  const plain = await h.startPlainRedis();
  let client;
  try {
    client = new RedisClustr({ ...h.modeOptions(), servers: [{ host: HOST, port: plain.port }] });
    assert.equal(client.listenerCount('error'), 0);
    const [err] = await settle(client, 'get', 'anything');
    assert.ok(err instanceof Error);
    assert.equal(err.code, 'NOT_A_CLUSTER', `${err.code}: ${err.message}`);
    assert.equal(err.command, 'GET');
    assert.match(err.message, /cluster/i);
    assert.equal(client.ready, false);
    // Discovery keeps failing in the background with no 'error' listener: still no crash.
    const rounds = client.stats().refreshes;
    await h.until(() => client.stats().refreshes > rounds, { what: 'another discovery round' });
    const [err2] = await settle(client, 'set', 'anything', 'x');
    assert.equal(err2.code, 'NOT_A_CLUSTER');
    // And the plain server received nothing but discovery queries.
    assert.equal(await sendCommand(plain.port, ['EXISTS', 'anything']), 0);
  } finally {
    if (client) await h.quit(client);
    await plain.stop();
  }
});

test('no reachable seed gives NO_SLOT_MAP carrying each seed’s ECONNREFUSED, without a crash', async () => {
  const one = await h.freePort();
  const client1 = new RedisClustr({ ...h.modeOptions(), servers: [{ host: HOST, port: one }] });
  try {
    assert.equal(client1.listenerCount('error'), 0);
    const [err] = await settle(client1, 'get', 'k');
    assert.equal(err.code, 'NO_SLOT_MAP', `${err.code}: ${err.message}`);
    assert.ok(Array.isArray(err.errors));
    assert.equal(err.errors.length, 1);
    assert.ok(err.errors[0] instanceof Error);
    assert.equal(err.errors[0].code, 'ECONNREFUSED');
    assert.equal(err.errors[0].address, `${HOST}:${one}`);
    const rounds = client1.stats().refreshes;
    await h.until(() => client1.stats().refreshes > rounds, { what: 'another discovery round' });
  } finally {
    await h.quit(client1);
  }

  let two = await h.freePort();
  while (two === one) two = await h.freePort();
  const client2 = new RedisClustr({ ...h.modeOptions(), servers: [{ host: HOST, port: one }, { host: HOST, port: two }] });
  try {
    const [err] = await settle(client2, 'set', 'k', 'v');
    assert.equal(err.code, 'NO_SLOT_MAP');
    assert.equal(err.errors.length, 2);
    assert.deepEqual(err.errors.map((e) => e.code), ['ECONNREFUSED', 'ECONNREFUSED']);
    assert.deepEqual(err.errors.map((e) => e.address).sort(), [`${HOST}:${one}`, `${HOST}:${two}`].sort());
    for (const e of err.errors) assert.match(e.message, /refused/i);
  } finally {
    await h.quit(client2);
  }
});

test('with wait: 300 a command to a dead cluster fails only after about 300 ms', async () => {
  const port = await h.freePort();
  const t0 = Date.now();
  const client = new RedisClustr({ ...h.modeOptions(), servers: [{ host: HOST, port }], wait: 300 });
  try {
    const [err] = await settle(client, 'get', 'k');
    const elapsed = Date.now() - t0;
    assert.equal(err.code, 'NO_SLOT_MAP');
    assert.ok(elapsed >= 250, `failed after ${elapsed} ms, before wait ran out`);
    assert.ok(elapsed < 2000, `failed only after ${elapsed} ms`);
  } finally {
    await h.quit(client);
  }
});

test('without wait a command to a dead cluster fails promptly', async () => {
  const port = await h.freePort();
  for (const afterFirstRound of [false, true]) {
    const client = new RedisClustr({ ...h.modeOptions(), servers: [{ host: HOST, port }] });
    try {
      if (afterFirstRound) {
        // The 'error' event reports that a whole discovery round failed.
        const first = await new Promise((resolve) => client.once('error', resolve));
        assert.equal(first.code, 'NO_SLOT_MAP');
      }
      const [err, , elapsed] = await settle(client, 'get', 'k');
      assert.equal(err.code, 'NO_SLOT_MAP');
      const when = afterFirstRound ? 'after the first failed round' : 'with the constructor';
      assert.ok(elapsed < 250, `a command issued ${when} failed only after ${elapsed} ms`);
    } finally {
      await h.quit(client);
    }
  }
});

// A seed that accepts but never answers keeps the commands queued (a refused seed would fail them
// at once); its topology query times out after connect_timeout and fails the rest.
test('maxQueueLength with queueShift (default) fails the oldest waiting command with QUEUE_FULL', async () => {
  const hole = await h.blackHole();
  const client = new RedisClustr({
    ...h.modeOptions(),
    servers: [{ host: HOST, port: hole.port }],
    maxQueueLength: 2,
    redisOptions: { connect_timeout: 300 },
  });
  try {
    const order = [];
    const results = ['a', 'b', 'c'].map((k, i) =>
      settle(client, 'get', k).then((r) => {
        order.push(i);
        return r;
      }),
    );
    const codes = (await Promise.all(results)).map(([err]) => err && err.code);
    assert.deepEqual(codes, ['QUEUE_FULL', 'NO_SLOT_MAP', 'NO_SLOT_MAP']);
    assert.equal(order[0], 0, 'the QUEUE_FULL victim is settled first');
  } finally {
    await h.quit(client);
    await hole.close();
  }
});

test('maxQueueLength with queueShift: false fails the newest command with QUEUE_FULL', async () => {
  const hole = await h.blackHole();
  const client = new RedisClustr({
    ...h.modeOptions(),
    servers: [{ host: HOST, port: hole.port }],
    maxQueueLength: 2,
    queueShift: false,
    redisOptions: { connect_timeout: 300 },
  });
  try {
    const results = await Promise.all(['a', 'b', 'c'].map((k) => settle(client, 'get', k)));
    assert.deepEqual(results.map(([err]) => err && err.code), ['NO_SLOT_MAP', 'NO_SLOT_MAP', 'QUEUE_FULL']);
    assert.match(results[2][0].message, /maxQueueLength/);
    // With the createClient hook, a factory client that is not ready within connect_timeout is
    // reported as refused, unless node_redis's own timeout fires first: either says "no answer".
    const expected = h.HOOK ? ['TIMEOUT', 'ECONNREFUSED'] : ['TIMEOUT'];
    assert.ok(expected.includes(results[0][0].errors[0].code), `the silent seed is reported as not answering: ${results[0][0].errors[0].code}`);
  } finally {
    await h.quit(client);
    await hole.close();
  }
});

test('the password never appears in inspect output, the config, or any error', async () => {
  const c = await h.cluster();
  const MARKER = 'S3cr3t-MARKER';
  const options = { ...h.modeOptions(), servers: c.seeds.slice(0, 2), redisOptions: { password: MARKER } };
  const client = new RedisClustr(options);
  const connectionErrors = [];
  const errorEvents = [];
  client.on('connectionError', (e) => connectionErrors.push(e));
  client.on('error', (e) => errorEvents.push(e));
  const leaks = (e) => [e.message, e.stack, util.inspect(e, { depth: 5 })].some((s) => String(s).includes(MARKER));
  try {
    assert.ok(!util.inspect(client).includes(MARKER));
    assert.ok(!util.inspect(client, { customInspect: false, showHidden: true, depth: 6 }).includes(MARKER));
    assert.ok(!JSON.stringify(client.config).includes(MARKER));
    assert.equal(client.config.redisOptions.password, '[redacted]');
    assert.equal(options.redisOptions.password, MARKER, "the caller's options object is not modified");

    if (h.HOOK) {
      // With createClient, AUTH is the factory client's business (node_redis only warns when the
      // server needs no password); the client itself still holds the password nowhere visible.
      assert.deepEqual((await settle(client, 'get', 'k')).slice(0, 2), [null, null]);
      assert.ok(!util.inspect(client, { customInspect: false, showHidden: true, depth: 6 }).includes(MARKER));
      return;
    }
    const [err] = await settle(client, 'get', 'k');
    assert.ok(err instanceof Error);
    assert.equal(err.code, 'NO_SLOT_MAP');
    assert.ok(!leaks(err));
    assert.ok(Array.isArray(err.errors) && err.errors.length === 2);
    for (const e of err.errors) {
      assert.ok(!leaks(e));
      assert.match(e.message, /AUTH/, 'each seed says that AUTH failed');
    }
    assert.ok(connectionErrors.length >= 2);
    for (const e of connectionErrors) {
      assert.ok(!leaks(e));
      assert.match(e.message, /AUTH/);
    }
    assert.ok(errorEvents.length >= 1);
    for (const e of errorEvents) assert.ok(!leaks(e));
    assert.ok(!util.inspect(client, { customInspect: false, showHidden: true, depth: 6 }).includes(MARKER));
  } finally {
    await h.quit(client);
  }
});

test('a rejected AUTH is not reported as a refused connection', { skip: h.HOOK && 'with createClient the factory client does AUTH' }, async () => {
  const c = await h.cluster();
  const client = new RedisClustr({ ...h.modeOptions(), servers: c.seeds.slice(0, 1), redisOptions: { password: 'wrong' } });
  try {
    const [err] = await settle(client, 'get', 'k');
    assert.equal(err.code, 'NO_SLOT_MAP');
    assert.equal(err.errors.length, 1);
    assert.equal(err.errors[0].code, 'HANDSHAKE_FAILED');
  } finally {
    await h.quit(client);
  }
});
