// The createClient hook itself (SPEC §5), whatever mode `npm test` runs in: one factory client per
// node made with (port, host, redisOptions) and actually carrying the commands; no JS Redis client
// loaded without the hook (checked in a fresh process's require graph); and a factory that throws,
// returns something that is not a client, or whose client emits errors gives coded errors without
// hanging or crashing. The behavioural suites run over the hook too (REDIS_CLUSTR_HOOK=1).
'use strict';

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const h = require('./helpers');

const { RedisClustr } = h;
const FIXTURE = path.join(__dirname, 'fixtures', 'require-graph.js');
const PREFIX = `hook:${process.pid}:`;

after(() => h.stopOwnCluster());

/** A node_redis factory that records its calls and counts the commands its clients send. */
function recordingFactory() {
  const rec = { calls: [], sent: 0, clients: [] };
  rec.factory = (port, host, options) => {
    rec.calls.push({ port, host, options });
    const client = h.redisFactory(port, host, options);
    const send = client.send_command;
    client.send_command = function (...args) {
      rec.sent++;
      return send.apply(this, args);
    };
    rec.clients.push(client);
    return client;
  };
  return rec;
}

function runFixture(env) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FIXTURE], { env: Object.assign({}, process.env, env), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let errOut = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (errOut += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`fixture exited with ${code}: ${errOut}`));
      resolve(JSON.parse(out));
    });
  });
}

test('without createClient no JS Redis client is ever loaded; with it, the factory is the only one', async () => {
  const c = await h.cluster();
  const seeds = JSON.stringify(c.seeds);
  const native = await runFixture({ REQUIRE_GRAPH_SEEDS: seeds, REQUIRE_GRAPH_HOOK: '0', REDIS_CLUSTR_HOOK: '0' });
  assert.equal(native.value, 'v');
  assert.deepEqual(native.clients, []);
  // The control: the same check sees node_redis when the user's factory loads it.
  const hooked = await runFixture({ REQUIRE_GRAPH_SEEDS: seeds, REQUIRE_GRAPH_HOOK: '1', REDIS_CLUSTR_HOOK: '0' });
  assert.equal(hooked.value, 'v');
  assert.ok(hooked.clients.includes('redis'), `expected redis in ${JSON.stringify(hooked.clients)}`);
});

test('each node gets one factory client, made with (port, host, redisOptions), and the commands travel over them', async () => {
  const c = await h.cluster();
  const rec = recordingFactory();
  const redisOptions = { connect_timeout: 5000 };
  const client = await h.connect(c.seeds, { createClient: rec.factory, redisOptions });
  try {
    await h.within(new Promise((r) => client.waitFor('fullReady', r)), 10000, 'fullReady');
    const nodes = new Set((await c.masters()).map((m) => `${m.host}:${m.port}`));
    const made = rec.calls.map((x) => `${x.host}:${x.port}`);
    assert.equal(new Set(made).size, made.length, `one client per node, got ${made.join(', ')}`);
    for (const n of nodes) assert.ok(made.includes(n), `no client for master ${n}`);
    for (const call of rec.calls) {
      assert.equal(typeof call.port, 'number');
      assert.equal(call.options, redisOptions, 'the factory gets the caller\'s redisOptions');
    }
    const before = rec.sent;
    const keys = Array.from({ length: 30 }, (_, i) => `${PREFIX}spread:${i}`);
    for (const k of keys) assert.equal(await h.call(client, 'set', k, k), 'OK');
    assert.deepEqual(await h.call(client, 'mget', keys), keys);
    assert.ok(rec.sent - before >= 31, `the factory clients sent ${rec.sent - before} commands`);
    // Nothing new was made for those commands: the clients are cached per node.
    assert.equal(rec.calls.length, made.length);
  } finally {
    await h.quit(client);
  }
});

test('a factory that throws gives CREATE_CLIENT_FAILED, in the callback and as connectionError, without hanging', async () => {
  const c = await h.cluster();
  const client = new RedisClustr({
    servers: c.seeds.slice(0, 1),
    createClient: () => {
      throw new Error('factory says no');
    },
  });
  const connErrors = [];
  client.on('connectionError', (e) => connErrors.push(e));
  client.on('error', () => {});
  try {
    const err = await h.within(h.callError(client, 'get', `${PREFIX}x`), 10000, 'GET with a throwing factory');
    assert.equal(err.code, 'NO_SLOT_MAP');
    assert.equal(err.errors[0].code, 'CREATE_CLIENT_FAILED');
    assert.match(err.errors[0].message, /createClient\(\d+, '127\.0\.0\.1', redisOptions\) threw: factory says no/);
    assert.equal(connErrors[0].code, 'CREATE_CLIENT_FAILED');
  } finally {
    await h.within(h.quit(client), 10000, 'quit');
  }
});

test('a factory that returns something that is not a client gives CREATE_CLIENT_INVALID', async () => {
  const c = await h.cluster();
  for (const bad of [() => ({}), () => null, () => ({ send_command: 1, on() {} })]) {
    const client = new RedisClustr({ servers: c.seeds.slice(0, 1), createClient: bad });
    client.on('connectionError', () => {});
    try {
      const err = await h.within(h.callError(client, 'get', `${PREFIX}x`), 10000, 'GET with a non-client');
      assert.equal(err.code, 'NO_SLOT_MAP');
      assert.equal(err.errors[0].code, 'CREATE_CLIENT_INVALID');
      assert.match(err.errors[0].message, /not a node_redis-compatible client/);
    } finally {
      await h.within(h.quit(client), 10000, 'quit');
    }
  }
});

test('createClient that is not a function is refused by the constructor with INVALID_ARG', () => {
  assert.throws(() => new RedisClustr({ servers: [{ host: '127.0.0.1', port: 1 }], createClient: 'redis' }), { code: 'INVALID_ARG' });
});

test('a factory client that cannot connect gives ECONNREFUSED from it, and its error events do not crash the process', async () => {
  const dead = await h.freePort();
  const client = new RedisClustr({
    servers: [{ host: '127.0.0.1', port: dead }],
    createClient: (port, host, o) => h.redisFactory(port, host, o),
  });
  client.on('connectionError', () => {});
  try {
    const err = await h.within(h.callError(client, 'get', `${PREFIX}x`), 15000, 'GET with an unreachable node');
    assert.equal(err.code, 'NO_SLOT_MAP');
    assert.equal(err.errors[0].code, 'ECONNREFUSED');
    assert.match(err.errors[0].message, /through the createClient client/);
  } finally {
    await h.within(h.quit(client), 10000, 'quit');
  }
});

test('an error emitted by a ready factory client is a connectionError (CONNECTION_LOST) and later commands still succeed', async () => {
  const c = await h.cluster();
  const rec = recordingFactory();
  const client = await h.connect(c.seeds, { createClient: rec.factory });
  const connErrors = [];
  client.on('connectionError', (e) => connErrors.push(e));
  try {
    const key = `${PREFIX}after-error`;
    assert.equal(await h.call(client, 'set', key, '1'), 'OK');
    for (const x of rec.clients) x.emit('error', new Error('synthetic failure'));
    await h.until(() => connErrors.length > 0, { what: 'a connectionError' });
    assert.equal(connErrors[0].code, 'CONNECTION_LOST');
    assert.match(connErrors[0].message, /synthetic failure/);
    // The driver opens a new link over the (still connected) cached client.
    assert.equal(await h.within(h.call(client, 'incr', key), 10000, 'INCR after the error'), 2);
  } finally {
    await h.quit(client);
  }
});

test('after quit every factory client is closed, so the process can exit', async () => {
  const c = await h.cluster();
  const rec = recordingFactory();
  const client = await h.connect(c.seeds, { createClient: rec.factory });
  await h.call(client, 'set', `${PREFIX}quit`, '1');
  await h.quit(client);
  await h.until(() => rec.clients.every((x) => !x.connected && x.closing), { what: 'every factory client closed' });
});
