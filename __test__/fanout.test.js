// Commands about the whole cluster go to every master and their replies are combined (SPEC §2
// fan-out): KEYS sees every master's keys, DBSIZE is the cluster's total, FLUSHALL empties every
// master and is 'OK' only then, RANDOMKEY finds a key wherever it lives, SCRIPT LOAD makes a
// script runnable on every master and SCRIPT EXISTS answers for all of them. Each claim is checked
// against the masters directly.
'use strict';

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { sendCommand } = require('../scripts/cluster');
const h = require('./helpers');

after(h.stopOwnCluster);

async function masterPorts(c) {
  return (await c.masters()).map((m) => m.port);
}

test('keys, dbsize, flushall and randomkey cover every master', async () => {
  const c = await h.cluster();
  const client = await h.connect(c.seeds);
  try {
    await h.call(client, 'flushall');
    const ports = await masterPorts(c);
    const keys = [];
    // At least one key on every master, found by slot.
    for (let i = 0; keys.length < 30; i++) keys.push(`fan:${i}`);
    for (const k of keys) await h.call(client, 'set', k, 'v');
    const perMaster = await Promise.all(ports.map((p) => sendCommand(p, ['dbsize'])));
    assert.ok(perMaster.filter((n) => n > 0).length >= 2, 'the keys are spread over several masters');

    assert.deepEqual((await h.call(client, 'keys', 'fan:*')).sort(), [...keys].sort());
    assert.equal(await h.call(client, 'dbsize'), 30);
    assert.ok(keys.includes(await h.call(client, 'randomkey')));

    assert.equal(await h.call(client, 'flushall'), 'OK');
    const after = await Promise.all(ports.map((p) => sendCommand(p, ['dbsize'])));
    assert.deepEqual(after, ports.map(() => 0), 'every master is empty');
    assert.equal(await h.call(client, 'dbsize'), 0);
    assert.equal(await h.call(client, 'randomkey'), null);
    assert.deepEqual(await h.call(client, 'keys', '*'), []);
  } finally {
    await h.quit(client);
  }
});

test('script load reaches every master, so evalsha works on keys anywhere', async () => {
  const c = await h.cluster();
  const client = await h.connect(c.seeds);
  try {
    await h.call(client, 'script', 'flush');
    const body = `return redis.call('get', KEYS[1]) -- ${process.pid}`;
    const sha = await h.call(client, 'script', 'load', body);
    assert.match(sha, /^[0-9a-f]{40}$/);
    for (const p of await masterPorts(c)) {
      assert.deepEqual(await sendCommand(p, ['script', 'exists', sha]), [1], `loaded on ${p}`);
    }
    assert.deepEqual(await h.call(client, 'script', 'exists', sha, '0'.repeat(40)), [1, 0]);
    for (let i = 0; i < 10; i++) {
      await h.call(client, 'set', `sha:${i}`, `v${i}`);
      assert.equal(await h.call(client, 'evalsha', sha, 1, `sha:${i}`), `v${i}`);
    }
    // Unloaded from one master only: EXISTS must say no for the cluster.
    const [first] = await masterPorts(c);
    await sendCommand(first, ['script', 'flush']);
    assert.deepEqual(await h.call(client, 'script', 'exists', sha), [0]);
  } finally {
    await h.quit(client);
  }
});

test('a node handle still sends keys to its own node only', async () => {
  const c = await h.cluster();
  const client = await h.connect(c.seeds);
  try {
    await h.call(client, 'flushall');
    for (let i = 0; i < 30; i++) await h.call(client, 'set', `own:${i}`, 'v');
    const node = client.slots[h.RedisClustr.keySlot('own:0')][0];
    const mine = await new Promise((resolve, reject) => node.keys('own:*', (e, v) => (e ? reject(e) : resolve(v))));
    assert.ok(mine.includes('own:0'));
    assert.ok(mine.length < 30, 'one node holds only its share');
  } finally {
    await h.quit(client);
  }
});
