// The cluster-wide SCAN: scanIterator visits every key of every master exactly once, honours
// MATCH/TYPE, and stays exact while a slot moves during the scan — the worst case being keys
// carried from a master not yet scanned to one already done. Runs on its own cluster (it moves
// slots and counts every key).
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startCluster, migrateSlot } = require('../scripts/cluster');
const h = require('./helpers');

let cluster;
let client;
before(async () => {
  cluster = await startCluster();
  client = await h.connect(cluster.seeds);
});
after(async () => {
  if (client) await h.quit(client);
  if (cluster) await cluster.stop();
});

test('scanIterator visits every key once and honours match and type', async () => {
  const keys = Array.from({ length: 1500 }, (_, i) => `s:${i}`);
  await client.batch(keys.map((k) => ['set', k, 'v'])).execAsync();
  await h.call(client, 'rpush', 's:list', 'x');
  const got = [];
  for await (const k of client.scanIterator({ match: 's:*', count: 100 })) got.push(k);
  assert.equal(got.length, 1501, 'no key twice');
  assert.deepEqual(new Set(got), new Set([...keys, 's:list']));
  const lists = [];
  for await (const k of client.scanIterator({ match: 's:*', type: 'list' })) lists.push(k);
  assert.deepEqual(lists, ['s:list']);
  const batches = [];
  await new Promise((resolve, reject) =>
    client.scanEach({ match: 's:1*' }, (b) => batches.push(...b), (e) => (e ? reject(e) : resolve()))
  );
  assert.equal(batches.length, keys.filter((k) => k.startsWith('s:1')).length);
});

test('a slot moved during the scan from an unscanned master to a scanned one loses no key', async () => {
  const order = [...new Set(client.slots.map((n) => n[0].address))];
  const last = client.slots.find((n) => n[0].address === order[order.length - 1])[0];
  const first = client.slots.find((n) => n[0].address === order[0])[0];
  // Keys in one slot of the master scanned last.
  const tag = [...Array(5000).keys()].map((i) => `{m${i}}`).find((t) => client.slots[h.RedisClustr.keySlot(t)][0] === last);
  const slot = h.RedisClustr.keySlot(tag);
  const moving = Array.from({ length: 200 }, (_, i) => `${tag}:${i}`);
  await client.batch(moving.map((k) => ['set', k, 'v'])).execAsync();
  const all = new Set();
  for await (const k of client.scanIterator({ count: 200 })) all.add(k);

  const got = [];
  let moved = null;
  for await (const k of client.scanIterator({ count: 50 })) {
    got.push(k);
    // The first master is done once keys of the second show up: move the slot onto it now.
    if (!moved && client.slots[h.RedisClustr.keySlot(k)][0].address === order[1]) {
      moved = migrateSlot(cluster, slot, last.port, first.port);
      await moved;
    }
  }
  assert.ok(moved, 'the slot was moved mid-scan');
  assert.equal(got.length, new Set(got).size, 'no key twice');
  assert.deepEqual(new Set(got), all, 'every key, including the moved ones');
  for (const k of moving) assert.ok(got.includes(k));
  // Put the slot back (the client's own map learns of the moves by MOVED).
  await h.call(client, 'get', moving[0]);
  await migrateSlot(cluster, slot, first.port, last.port);
});
