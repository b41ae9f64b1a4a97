// transaction() / multi({atomic: true}): a real MULTI/EXEC on the one node that owns every key,
// sent as one block; CROSSSLOT when keys span slots; followed as a whole through MOVED (after a
// slot moved) and ASK (while it moves), which is safe because EXECABORT proves nothing ran.
'use strict';

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { sendCommand, migrateSlot } = require('../scripts/cluster');
const h = require('./helpers');

after(h.stopOwnCluster);

const tag = `{tx${process.pid}}`;

test('a transaction runs atomically on the slot owner and reports per-command errors', async () => {
  const c = await h.cluster();
  const client = await h.connect(c.seeds);
  try {
    const seen = [];
    const replies = await client
      .transaction()
      .set(`${tag}n`, 1)
      .incr(`${tag}n`, (err, v) => seen.push([err, v]))
      .lpush(`${tag}n`, 'x', (err) => seen.push([err && err.code]))
      .get(`${tag}n`)
      .execAsync();
    assert.equal(replies[0], 'OK');
    assert.equal(replies[1], 2);
    assert.ok(replies[2] instanceof Error && replies[2].code === 'WRONGTYPE');
    assert.equal(replies[3], '2');
    assert.deepEqual(seen, [[null, 2], ['WRONGTYPE']]);
    // multi({atomic: true}) is the same thing.
    assert.deepEqual(await client.multi({ atomic: true }).incr(`${tag}n`).get(`${tag}n`).execAsync(), [3, '3']);
    // The owner saw one MULTI/EXEC: the value is there.
    const owner = client.slots[h.RedisClustr.keySlot(`${tag}n`)][0];
    assert.equal(await sendCommand(owner.port, ['get', `${tag}n`]), '3');
  } finally {
    await h.quit(client);
  }
});

test('keys in different slots get CROSSSLOT and nothing runs', async () => {
  const c = await h.cluster();
  const client = await h.connect(c.seeds);
  try {
    const a = `txa:${process.pid}`;
    let b = `txb:${process.pid}`;
    for (let i = 0; h.RedisClustr.keySlot(b) === h.RedisClustr.keySlot(a); i++) b = `txb:${process.pid}:${i}`;
    const err = await client.transaction().set(a, 1).set(b, 2).execAsync().then(() => null, (e) => e);
    assert.equal(err && err.code, 'CROSSSLOT');
    assert.equal(await h.call(client, 'exists', a, b), 0);
  } finally {
    await h.quit(client);
  }
});

test('a transaction follows ASK while its slot migrates and MOVED after', async () => {
  const c = await h.cluster();
  const client = await h.connect(c.seeds, { slotInterval: 600000 });
  const key = `${tag}m`;
  const slot = h.RedisClustr.keySlot(key);
  const from = client.slots[slot][0].port;
  const to = (await c.masters()).find((m) => m.port !== from).port;
  try {
    await h.call(client, 'set', key, '10');
    const before = client.stats();
    let duringAsk;
    await migrateSlot(c, slot, from, to, {
      onStep: async (step) => {
        if (step !== 'batch') return;
        // The key is on the target now, the slot still on the source: ASK for the whole block.
        duringAsk = await client.transaction().incr(key).get(key).execAsync();
      },
    });
    assert.deepEqual(duringAsk, [11, '11']);
    assert.ok(client.stats().ask > before.ask, 'ASK was followed');
    const afterMove = await client.transaction().incr(key).get(key).execAsync();
    assert.deepEqual(afterMove, [12, '12']);
    assert.ok(client.stats().moved > before.moved, 'MOVED was followed');
    assert.equal(await sendCommand(to, ['get', key]), '12');
  } finally {
    // Put the slot back for the suites that follow.
    await migrateSlot(c, slot, to, from).catch(() => {});
    await h.quit(client);
  }
});

test('hgetall inside a transaction answers an object (or null), as outside one', async () => {
  const c = await h.cluster();
  const client = await h.connect(c.seeds);
  try {
    let cbValue;
    const replies = await client
      .transaction()
      .hset(`${tag}h`, 'f', 'v')
      .hgetall(`${tag}h`, (err, v) => (cbValue = v))
      .hgetall(`${tag}none`)
      .execAsync();
    assert.deepEqual(replies, [1, { f: 'v' }, null]);
    assert.deepEqual(cbValue, { f: 'v' });
  } finally {
    await h.quit(client);
  }
});
