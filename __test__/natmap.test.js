// natMap on a real cluster that announces addresses the client cannot dial: every node is told
// to announce the hostname `n<port>.invalid` (cluster-announce-hostname with the hostname
// endpoint type), which CLUSTER SHARDS/SLOTS and MOVED then carry. Without natMap the client
// finds the cluster from its seed but cannot reach a node; with natMap (object or function) it
// dials 127.0.0.1 and works, while node identity stays the announced name. Own cluster: the
// announce settings would confuse the other suites.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startCluster } = require('../scripts/cluster');
const h = require('./helpers');

let cluster;
const announced = (port) => `n${port}.invalid`;

before(async () => {
  cluster = await startCluster();
  for (const n of cluster.nodes) {
    await cluster.command(n.port, 'CONFIG', 'SET', 'cluster-announce-hostname', announced(n.port));
    await cluster.command(n.port, 'CONFIG', 'SET', 'cluster-preferred-endpoint-type', 'hostname');
  }
  // Hostnames travel by gossip: wait until every node names every master by its hostname.
  await h.until(
    async () => {
      for (const n of cluster.nodes) {
        const slots = await cluster.command(n.port, 'CLUSTER', 'SLOTS');
        if (!slots.every((r) => String(r[2][0]).endsWith('.invalid'))) return false;
      }
      return true;
    },
    { timeout: 20000, what: 'hostnames announced by every node' }
  );
});
after(async () => {
  if (cluster) await cluster.stop();
});

const table = () => Object.fromEntries(cluster.nodes.map((n) => [`${announced(n.port)}:${n.port}`, { host: '127.0.0.1', port: n.port }]));

// SET and GET of keys spread over every master, through the map.
async function roundTrip(client, prefix) {
  const keys = Array.from({ length: 60 }, (_, i) => `${prefix}:${i}`);
  await client.batch(keys.map((k) => ['set', k, k])).execAsync();
  assert.deepEqual(await h.call(client, 'mget', keys), keys);
}

test('without natMap the announced names cannot be dialled', async () => {
  const client = new h.RedisClustr({ servers: cluster.seeds, retryBudget: 300, commandTimeout: 3000 });
  client.on('error', () => {});
  try {
    const err = await h.callError(client, 'set', 'nat:x', 'v');
    assert.match(err.message, /\.invalid/, 'the error names the node it could not reach');
    assert.notEqual(err.code, 'INVALID_ARG');
  } finally {
    await h.quit(client);
  }
});

test('an object natMap dials the mapped address; nodes keep their announced names', async () => {
  const client = await h.connect(cluster.seeds, { natMap: table() });
  try {
    await roundTrip(client, 'nat:obj');
    const names = Object.keys(client.connections).filter((a) => a.endsWith('.invalid:' + a.split(':')[1]));
    assert.ok(names.length >= 3, `connections are keyed by announced names: ${Object.keys(client.connections)}`);
    assert.ok(client.slots[0][0].host.endsWith('.invalid'));
  } finally {
    await h.quit(client);
  }
});

test('a function natMap is asked per new connection and null means "dial as announced"', async () => {
  const asked = [];
  const map = table();
  const client = await h.connect(cluster.seeds, {
    natMap: (key) => {
      asked.push(key);
      return map[key] || null;
    },
  });
  try {
    await roundTrip(client, 'nat:fn');
    assert.ok(asked.includes(cluster.seeds[0].host + ':' + cluster.seeds[0].port), 'the seed was asked about (and dialled as is)');
    assert.ok(asked.filter((k) => k.endsWith('.invalid:' + k.split(':')[1])).length >= 3, `asked: ${asked}`);
  } finally {
    await h.quit(client);
  }
});

test('a natMap function that throws or answers nonsense fails the command with a clear error', async () => {
  for (const natMap of [
    (key) => {
      if (key.includes('.invalid')) throw new Error('secret-ish detail');
      return null;
    },
    (key) => (key.includes('.invalid') ? { host: 42 } : null),
  ]) {
    const client = new h.RedisClustr({ servers: cluster.seeds, natMap, retryBudget: 300, commandTimeout: 3000 });
    client.on('error', () => {});
    try {
      const err = await h.callError(client, 'set', 'nat:y', 'v');
      assert.match(err.message, /natMap/);
      assert.doesNotMatch(err.message, /secret-ish/);
    } finally {
      await h.quit(client);
    }
  }
});

test('natMap is validated at construction', () => {
  for (const natMap of ['x', { nothost: { host: 'a', port: 1 } }, { 'a:1': { host: 'b', port: 0 } }, { 'a:1': null }]) {
    assert.throws(() => new h.RedisClustr({ servers: cluster.seeds, natMap }), (e) => e.code === 'INVALID_ARG', JSON.stringify(natMap));
  }
});
