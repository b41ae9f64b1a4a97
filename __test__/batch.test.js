// batch() / multi() against a real local Redis Cluster. A batch travels as one record with one
// completion (lib/batch.js, src/binding/splits.rs): these tests pin what the caller sees through
// that path: replies in the caller's order whatever node answered first, every command on its
// key's owner, per-command callbacks before exec's, server errors and client-side errors in place
// of their command only, a cross-slot MGET split and merged in its place, fan-out commands,
// hgetall's object and detect_buffers per command; and the command-by-command path still taken
// for what one record cannot carry (maxInFlight counted per command, a closed client).
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('crypto');
const { sendCommand } = require('../scripts/cluster');
const { RedisClustr, cluster, stopOwnCluster, connect, quit } = require('./helpers');

const PREFIX = `bat:${process.pid}:${crypto.randomBytes(4).toString('hex')}:`;

let c;
let client;
let masters;

before(async () => {
  c = await cluster();
  masters = await c.masters();
  client = await connect(c.seeds);
});

after(async () => {
  if (client) await quit(client);
  await stopOwnCluster();
});

function ownerOf(key) {
  const slot = RedisClustr.keySlot(key);
  const m = masters.find((x) => x.slots.some(([a, b]) => slot >= a && slot <= b));
  assert.ok(m, `no master owns slot ${slot}`);
  return m;
}

function direct(key, ...args) {
  const m = ownerOf(key);
  return sendCommand(m.port, args, { host: m.host });
}

/** exec with a callback, as a promise of [errors, replies]. */
function exec(b) {
  return new Promise((resolve) => b.exec((errors, replies) => resolve([errors, replies])));
}

/** `n` keys, at least one on every master. */
function spreadKeys(n, name) {
  const keys = Array.from({ length: n }, (_, i) => `${PREFIX}${name}:${i}`);
  const owners = new Set(keys.map((k) => ownerOf(k).port));
  assert.equal(owners.size, masters.length, 'the keys cover every master');
  return keys;
}

test('a batch over every master answers in the caller order and each command lands on its key owner', async () => {
  const keys = spreadKeys(60, 'order');
  const b = client.batch();
  keys.forEach((k, i) => b.set(k, `v${i}`));
  keys.forEach((k) => b.get(k));
  keys.forEach((k) => b.incr(`${k}:n`));
  const pendingBefore = client._pending.size;
  const done = exec(b);
  // The design this file pins: 180 commands are one pending entry, settled by one completion.
  assert.equal(client._pending.size, pendingBefore + 1);
  const [errors, replies] = await done;
  assert.equal(errors, null);
  assert.equal(replies.length, keys.length * 3);
  assert.deepEqual(replies.slice(0, keys.length), keys.map(() => 'OK'));
  assert.deepEqual(replies.slice(keys.length, 2 * keys.length), keys.map((_, i) => `v${i}`));
  assert.deepEqual(replies.slice(2 * keys.length), keys.map(() => 1));
  // Straight on each owner: a command sent to the wrong node would have been answered MOVED.
  for (const [i, k] of keys.entries()) assert.equal(await direct(k, 'GET', k), `v${i}`);
});

test('per-command callbacks get their own reply, all before the exec callback', async () => {
  const [k1, k2] = [`${PREFIX}cb:1`, `${PREFIX}cb:2`];
  const seen = [];
  const b = client.batch();
  b.set(k1, 'a', (err, v) => seen.push(['set', err, v]));
  b.get(k1, (err, v) => seen.push(['get', err, v]));
  b.get(k2, (err, v) => seen.push(['get2', err, v]));
  const [errors, replies] = await new Promise((resolve) =>
    b.exec((e, r) => {
      seen.push(['exec']);
      resolve([e, r]);
    })
  );
  assert.equal(errors, null);
  assert.deepEqual(replies, ['OK', 'a', null]);
  assert.deepEqual(seen, [['set', null, 'OK'], ['get', null, 'a'], ['get2', null, null], ['exec']]);
});

test('a server error fails only its own command, in place, with its code', async () => {
  const k = `${PREFIX}err`;
  const [errors, replies] = await exec(client.batch().set(k, 'text').incr(k).get(k));
  assert.equal(replies[0], 'OK');
  assert.ok(replies[1] instanceof Error);
  assert.equal(replies[1].code, 'ERR');
  assert.equal(replies[1].command, 'INCR');
  assert.equal(replies[2], 'text');
  assert.deepEqual(errors, [replies[1]]);
});

test('client-side errors (no key, a bad argument) fail only their own command and send nothing', async () => {
  const k = `${PREFIX}client`;
  const b = client.batch().set(k, 'x');
  b.send_command('get', []); // NO_KEY, found by native code
  b.set(`${PREFIX}never`, { not: 'a string' }); // INVALID_ARG, found in JS
  b.get(k);
  const [errors, replies] = await exec(b);
  assert.equal(replies[0], 'OK');
  assert.equal(replies[1].code, 'NO_KEY');
  assert.equal(replies[1].command, 'GET');
  assert.equal(replies[2].code, 'INVALID_ARG');
  assert.equal(replies[3], 'x');
  assert.equal(errors.length, 2);
  assert.ok(errors.includes(replies[1]) && errors.includes(replies[2]));
  assert.equal(await direct(`${PREFIX}never`, 'EXISTS', `${PREFIX}never`), 0, 'the bad command was not sent');
});

test('execAsync rejects with the first error and carries every error and reply', async () => {
  const k = `${PREFIX}async`;
  const err = await client.batch().set(k, 'y').incr(k).execAsync().then(
    () => assert.fail('should reject'),
    (e) => e
  );
  assert.equal(err.code, 'ERR');
  assert.equal(err.errors.length, 1);
  assert.equal(err.replies[0], 'OK');
  assert.equal(err.replies[1], err);
});

test('a cross-slot MGET inside a batch is split and merged in its place; a fan-out command answers once', async () => {
  const keys = spreadKeys(12, 'mget');
  await Promise.all(keys.map((k, i) => direct(k, 'SET', k, `m${i}`)));
  const [errors, replies] = await exec(client.batch().get(keys[0]).mget(keys).dbsize().mget(keys[3], `${PREFIX}absent`));
  assert.equal(errors, null);
  assert.equal(replies[0], 'm0');
  assert.deepEqual(replies[1], keys.map((_, i) => `m${i}`));
  const total = (await Promise.all(masters.map((m) => sendCommand(m.port, ['DBSIZE'], { host: m.host })))).reduce((a, b) => a + b, 0);
  assert.equal(replies[2], total, 'DBSIZE summed over every master');
  assert.deepEqual(replies[3], ['m3', null]);
});

test('hgetall answers an object and detect_buffers gives Buffers only to commands with a Buffer argument', async () => {
  const detect = await connect(c.seeds, { redisOptions: { detect_buffers: true } });
  try {
    const h = `${PREFIX}hash`;
    const k = `${PREFIX}bin`;
    const [errors, replies] = await exec(
      detect.batch().hset(h, 'f', 'v').hgetall(h).hgetall(`${PREFIX}nohash`).set(k, 'bytes').get(k).get(Buffer.from(k))
    );
    assert.equal(errors, null);
    assert.deepEqual(replies[1], { f: 'v' });
    assert.equal(replies[2], null);
    assert.equal(replies[4], 'bytes');
    assert.ok(Buffer.isBuffer(replies[5]) && replies[5].equals(Buffer.from('bytes')));
  } finally {
    await quit(detect);
  }
});

test('an empty batch calls back (null, []) asynchronously', async () => {
  let sync = true;
  const got = new Promise((resolve) => client.batch().exec((e, r) => resolve([e, r, sync])));
  sync = false;
  assert.deepEqual(await got, [null, [], false]);
});

test('with maxInFlight a batch is counted per command: the ones over the limit fail with QUEUE_FULL', async () => {
  const limited = await connect(c.seeds, { maxInFlight: 4 });
  try {
    const keys = spreadKeys(10, 'limit');
    const b = limited.batch();
    keys.forEach((k) => b.set(k, 'l'));
    const [errors, replies] = await exec(b);
    assert.deepEqual(replies.slice(0, 4), ['OK', 'OK', 'OK', 'OK']);
    assert.ok(replies.slice(4).every((r) => r instanceof Error && r.code === 'QUEUE_FULL'));
    assert.equal(errors.length, 6);
  } finally {
    await quit(limited);
  }
});

test('a batch after quit fails every command with CLOSED', async () => {
  const closing = await connect(c.seeds);
  await quit(closing);
  const [errors, replies] = await exec(closing.batch().get(`${PREFIX}a`).get(`${PREFIX}b`));
  assert.equal(errors.length, 2);
  assert.ok(replies.every((r) => r.code === 'CLOSED'));
});

test('a batch that cannot be encoded as one record goes command by command, each callback once', async () => {
  // A record fails to encode only for a string past what a Buffer can hold; the encoder is made
  // to throw once here instead. The command that failed its check before must not be sent or
  // called back a second time.
  const own = await connect(c.seeds);
  try {
    const pushBatch = own._enc.pushBatch;
    own._enc.pushBatch = () => {
      own._enc.pushBatch = pushBatch;
      throw new RangeError('too large to encode');
    };
    const k = `${PREFIX}each`;
    const calls = [0, 0, 0];
    const b = own.batch();
    b.set(k, 'v', () => calls[0]++);
    b.set(`${PREFIX}never-each`, { not: 'a string' }, () => calls[1]++);
    b.get(k, () => calls[2]++);
    const [errors, replies] = await exec(b);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(calls, [1, 1, 1], 'every per-command callback ran exactly once');
    assert.equal(replies[0], 'OK');
    assert.equal(replies[1].code, 'INVALID_ARG');
    assert.equal(replies[2], 'v');
    assert.deepEqual(errors, [replies[1]]);
    assert.equal(own._enc.pushBatch, pushBatch, 'the batch went through the stubbed encoder');
  } finally {
    await quit(own);
  }
});
