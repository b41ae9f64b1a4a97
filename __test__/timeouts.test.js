// commandTimeout and the guards around a connection shared by every caller: a command to a node
// that stops answering (CLIENT PAUSE) fails with TIMEOUT, and its late reply is dropped instead of
// being handed to the next caller; options this version cannot honour are refused, not ignored;
// CLIENT REPLY (which would desynchronise reply matching) is refused.
'use strict';

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { sendCommand } = require('../scripts/cluster');
const h = require('./helpers');

after(h.stopOwnCluster);

test('a command to a sleeping node times out and its late reply never reaches the next caller', async () => {
  const c = await h.cluster();
  const client = await h.connect(c.seeds, { commandTimeout: 300 });
  try {
    const tag = `{to${process.pid}}`;
    await h.call(client, 'set', `${tag}a`, 'value-a');
    await h.call(client, 'set', `${tag}b`, 'value-b');
    const owner = client.slots[h.RedisClustr.keySlot(`${tag}a`)][0];
    // CLIENT PAUSE answers OK once the pause is in force: every other connection then waits.
    assert.equal(await sendCommand(owner.port, ['client', 'pause', '1500', 'ALL']), 'OK');
    const started = Date.now();
    const err = await h.callError(client, 'get', `${tag}a`);
    assert.equal(err.code, 'TIMEOUT');
    assert.ok(Date.now() - started < 1400, 'failed by the deadline, not by the end of the pause');
    await h.until(
      () => sendCommand(owner.port, ['ping'], { timeoutMs: 200 }).then((r) => r === 'PONG', () => false),
      { what: 'the pause to end' }
    );
    // The late reply to GET a arrives ahead of this one on the same connection.
    assert.equal(await h.call(client, 'get', `${tag}b`), 'value-b');
    assert.equal(await h.call(client, 'get', `${tag}a`), 'value-a');
  } finally {
    await h.quit(client);
  }
});

test('CLIENT REPLY is refused and the connection keeps matching replies to callers', async () => {
  const c = await h.cluster();
  const client = await h.connect(c.seeds);
  try {
    const err = await h.callError(client, 'send_command', 'client', ['reply', 'skip']);
    assert.equal(err.code, 'INVALID_ARG');
    const k = `cr:${process.pid}`;
    await h.call(client, 'set', k, 'x');
    assert.equal(await h.call(client, 'get', k), 'x');
  } finally {
    await h.quit(client);
  }
});

test('maxInFlight and maxQueueBytes refuse new commands at the call with QUEUE_FULL', async () => {
  const c = await h.cluster();
  const client = await h.connect(c.seeds, { maxInFlight: 5, maxQueueBytes: 64 * 1024 });
  try {
    const tag = `{mif${process.pid}}`;
    const owner = client.slots[h.RedisClustr.keySlot(tag)][0];
    // Hold the owner so the first commands stay in flight.
    assert.equal(await sendCommand(owner.port, ['client', 'pause', '500', 'ALL']), 'OK');
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        new Promise((resolve) => client.set(`${tag}${i}`, 'v', (err, v) => resolve(err ? err.code : v)))
      )
    );
    assert.deepEqual(results, ['OK', 'OK', 'OK', 'OK', 'OK', 'QUEUE_FULL', 'QUEUE_FULL', 'QUEUE_FULL']);
    assert.equal(await h.call(client, 'exists', `${tag}5`), 0, 'a refused command was not sent');

    // Bytes: one big command fills the budget; the next is refused while it is queued.
    assert.equal(await sendCommand(owner.port, ['client', 'pause', '500', 'ALL']), 'OK');
    const big = 'x'.repeat(80 * 1024);
    const [first, second] = await Promise.all([
      new Promise((resolve) => client.set(`${tag}big`, big, (err, v) => resolve(err ? err.code : v))),
      new Promise((resolve) => client.set(`${tag}small`, 'v', (err, v) => resolve(err ? err.code : v))),
    ]);
    assert.deepEqual([first, second], ['OK', 'QUEUE_FULL']);
    assert.equal(await h.call(client, 'set', `${tag}small`, 'v'), 'OK', 'accepted again once drained');
  } finally {
    await h.quit(client);
  }
});
