// redisOptions.prefix against a real local Redis Cluster, with node_redis's meaning: the prefix is
// put in front of every key argument (fixed and movable key positions, SORT's BY/GET patterns),
// commands route by the prefixed key, and nothing else changes: values, ARGV, channels, SCAN/KEYS
// patterns and replies are left as they are. A second client without a prefix checks what the
// server really stored; `stats().moved` staying 0 proves the prefixed client routed by the
// prefixed key's slot (by the bare key it would have been MOVED).
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('crypto');
const { sendCommand } = require('../scripts/cluster');
const h = require('./helpers');

const { RedisClustr } = h;
const RUN = `pfx:${process.pid}:${crypto.randomBytes(4).toString('hex')}:`;

let c;
let masters;
let plain;

before(async () => {
  c = await h.cluster();
  masters = await c.masters();
  plain = await h.connect(c.seeds);
});

after(async () => {
  if (plain) await h.quit(plain);
  await h.stopOwnCluster();
});

function ownerOf(key) {
  const slot = RedisClustr.keySlot(key);
  const m = masters.find((x) => x.slots.some(([a, b]) => slot >= a && slot <= b));
  assert.ok(m, `no master owns slot ${slot}`);
  return m;
}

/** A bare key (starting with `stem`) whose owner differs from that of `prefix` + key. */
function movedByPrefix(prefix, stem) {
  for (let i = 0; i < 10000; i++) {
    const key = `${stem}${i}`;
    if (ownerOf(key).port !== ownerOf(Buffer.concat([Buffer.from(prefix), Buffer.from(key)])).port) return key;
  }
  throw new Error('no key changes owner with the prefix');
}

async function withPrefix(prefix, fn, extra = {}) {
  const client = await h.connect(c.seeds, { redisOptions: Object.assign({ prefix }, extra) });
  try {
    await fn(client);
  } finally {
    await h.quit(client);
  }
}

test('a prefixed SET is stored under the prefixed name, on the prefixed key\'s master', async () => {
  const prefix = `${RUN}a:`;
  const key = movedByPrefix(prefix, 'k');
  await withPrefix(prefix, async (client) => {
    assert.equal(await h.call(client, 'set', key, 'v1'), 'OK');
    assert.equal(await h.call(client, 'get', key), 'v1');
    assert.equal(await client.getAsync(key), 'v1');
    assert.equal(client.stats().moved, 0, 'routed by the bare key: MOVED was needed');
    assert.equal(client.selectClient(key).port, ownerOf(prefix + key).port);
  });
  assert.equal(await h.call(plain, 'get', prefix + key), 'v1');
  assert.equal(await h.call(plain, 'get', key), null);
  const owner = ownerOf(prefix + key);
  assert.equal(await sendCommand(owner.port, ['GET', prefix + key], { host: owner.host }), 'v1');
});

test('cross-slot MSET / MGET / DEL / EXISTS with a prefix split by the prefixed keys', async () => {
  const prefix = `${RUN}b:`;
  const keys = Array.from({ length: 12 }, (_, i) => `m${i}`);
  await withPrefix(prefix, async (client) => {
    const pairs = keys.flatMap((k, i) => [k, `v${i}`]);
    assert.equal(await h.call(client, 'mset', pairs), 'OK');
    assert.deepEqual(await h.call(client, 'mget', keys), keys.map((_, i) => `v${i}`));
    assert.deepEqual(await h.call(client, 'mget', 'm3', 'nope', 'm0'), ['v3', null, 'v0']);
    assert.equal(await h.call(client, 'exists', keys), 12);
    assert.equal(client.stats().moved, 0);
    assert.deepEqual(await h.call(plain, 'mget', keys.map((k) => prefix + k)), keys.map((_, i) => `v${i}`));
    assert.equal(await h.call(client, 'del', keys.slice(0, 7)), 7);
    assert.equal(await h.call(plain, 'exists', keys.map((k) => prefix + k)), 5);
  });
});

test('batch, multi and transaction put the prefix on their keys', async () => {
  const prefix = `${RUN}c:`;
  await withPrefix(prefix, async (client) => {
    const replies = await client.batch().set('x', 'bx').incr('n').mget('x', 'n', 'absent').execAsync();
    assert.deepEqual(replies, ['OK', 1, ['bx', '1', null]]);
    await client.multi([['set', 'y', 'my']]).execAsync();
    // Keys sharing a hash tag keep sharing a slot once prefixed: MULTI/EXEC on one node.
    const tx = await client.transaction().set('{u}a', '1').incrby('{u}b', 5).mget('{u}a', '{u}b').execAsync();
    assert.deepEqual(tx, ['OK', 5, ['1', '5']]);
  });
  assert.deepEqual(await h.call(plain, 'mget', `${prefix}x`, `${prefix}n`, `${prefix}y`, `${prefix}{u}b`), ['bx', '1', 'my', '5']);
  assert.deepEqual(await h.call(plain, 'mget', 'x', 'y'), [null, null]);
});

test('a Buffer prefix and Buffer keys are joined as bytes', async () => {
  const prefix = Buffer.from([0xff, 0x00, 0x3a]);
  const key = Buffer.concat([Buffer.from(RUN), Buffer.from([0xfe, 0x80, 0x7b])]);
  const value = Buffer.from([0x00, 0xc3, 0x28]);
  await withPrefix(
    prefix,
    async (client) => {
      assert.equal(await h.call(client, 'set', key, value), 'OK');
      assert.deepEqual(await h.call(client, 'get', key), value);
      assert.equal(await h.call(client, 'set', 'str', 'text'), 'OK');
      assert.equal(client.stats().moved, 0);
    },
    { return_buffers: true }
  );
  const full = Buffer.concat([prefix, key]);
  const owner = ownerOf(full);
  assert.deepEqual(await sendCommand(owner.port, ['GET', full], { host: owner.host, buffers: true }), value);
  const strKey = Buffer.concat([prefix, Buffer.from('str')]);
  assert.equal(await h.call(plain, 'get', strKey), 'text');
  await h.call(plain, 'del', full, strKey);
});

test('a {hash tag} in the prefix puts every key in one slot', async () => {
  const tag = `${RUN}tag`;
  const prefix = `{${tag}}:`;
  const slot = RedisClustr.keySlot(tag);
  const owner = ownerOf(tag);
  await withPrefix(prefix, async (client) => {
    // Not splittable and not hash-tagged: CROSSSLOT without the prefix's tag.
    assert.equal(await h.call(client, 'msetnx', 'a', '1', 'b', '2', 'c', '3'), 1);
    assert.equal(await h.call(client, 'sunionstore', 'u', 'a-set', 'b-set'), 0);
    assert.equal(await h.call(client, 'rename', 'a', 'a2'), 'OK');
    const tx = await client.transaction().incr('p').incr('q').mget('a2', 'b', 'c').execAsync();
    assert.deepEqual(tx, [1, 1, ['1', '2', '3']]);
    // SORT's STORE destination is a movable key: prefixed like the source. (Its BY/GET
    // patterns are prefixed too, but Redis 7.0 refuses them in cluster mode altogether.)
    await h.call(client, 'rpush', 'list', '2', '1', '3');
    assert.equal(await h.call(client, 'sort', 'list', 'STORE', 'sorted'), 3);
    assert.equal(client.stats().moved, 0);
  });
  // Our keys by name (other suites' random keys can share the slot, so a count would not do).
  const inSlot = await sendCommand(owner.port, ['CLUSTER', 'GETKEYSINSLOT', slot, 10000], { host: owner.host });
  assert.deepEqual(
    inSlot.filter((k) => k.startsWith(prefix)).sort(),
    ['a2', 'b', 'c', 'list', 'p', 'q', 'sorted'].map((k) => prefix + k).sort(),
    'a2 b c p q list sorted, all in the tag\'s slot'
  );
  assert.equal(await h.call(plain, 'get', `${prefix}a2`), '1');
  assert.deepEqual(await h.call(plain, 'lrange', `${prefix}sorted`, 0, -1), ['1', '2', '3']);
});

test('EVAL prefixes its KEYS but not its ARGV', async () => {
  const prefix = `${RUN}e:`;
  const script = "redis.call('set', KEYS[1], ARGV[1]); return {KEYS[1], KEYS[2], ARGV[1], ARGV[2]}";
  await withPrefix(prefix, async (client) => {
    const r = await h.call(client, 'eval', script, 2, '{s}k1', '{s}k2', 'arg1', 'arg2');
    assert.deepEqual(r, [`${prefix}{s}k1`, `${prefix}{s}k2`, 'arg1', 'arg2']);
    // With 0 keys nothing is prefixed (ARGV that looks like a key stays as given).
    assert.deepEqual(await h.call(client, 'eval', 'return ARGV[1]', 0, 'k'), 'k');
  });
  assert.equal(await h.call(plain, 'get', `${prefix}{s}k1`), 'arg1');
});

test('channels are not keys: pub/sub names go out unprefixed', async () => {
  const prefix = `${RUN}p:`;
  const channel = `${RUN}chan`;
  const shard = `${RUN}shard`;
  await withPrefix(prefix, async (client) => {
    const rec = h.recordPubsub(client);
    await h.call(client, 'subscribe', channel);
    await h.call(client, 'ssubscribe', shard);
    assert.deepEqual(client.subscriptions.channels, [channel]);
    // Published by a client without a prefix, on the bare names. (PUBLISH counts only the
    // receiving node's subscribers; the cluster bus carries the message to the others.)
    await h.call(plain, 'publish', channel, 'hello');
    assert.equal(await h.call(plain, 'spublish', shard, 'shello'), 1);
    const [ch, msg] = await rec.waitFor('message');
    assert.equal(ch, channel);
    assert.equal(msg, 'hello');
    const [sch, smsg] = await rec.waitFor('smessage');
    assert.equal(sch, shard);
    assert.equal(smsg, 'shello');
    // And the prefixed client publishes on the bare name too.
    const plainRec = h.recordPubsub(plain);
    await h.call(plain, 'subscribe', `${channel}:back`);
    await h.call(client, 'publish', `${channel}:back`, 'back');
    assert.deepEqual(await plainRec.waitFor('message'), [`${channel}:back`, 'back']);
    await h.call(plain, 'unsubscribe', `${channel}:back`);
  });
});

test('SCAN / KEYS patterns and replies are the full names, untouched', async () => {
  const prefix = `${RUN}s:`;
  await withPrefix(prefix, async (client) => {
    await h.call(client, 'mset', 'one', '1', 'two', '2', 'three', '3');
    const keys = (await h.call(client, 'keys', `${prefix}*`)).sort();
    assert.deepEqual(keys, [`${prefix}one`, `${prefix}three`, `${prefix}two`]);
    assert.deepEqual(await h.call(client, 'keys', 'one'), []);
    const scanned = [];
    for await (const k of client.scanIterator({ match: `${prefix}t*` })) scanned.push(k);
    assert.deepEqual(scanned.sort(), [`${prefix}three`, `${prefix}two`]);
  });
});

test('commands pinned to a node handle get the prefix too', async () => {
  const prefix = `${RUN}n:`;
  const key = movedByPrefix(prefix, 'pinned');
  await withPrefix(prefix, async (client) => {
    const node = client.selectClient(key);
    assert.equal(await h.call(node, 'set', key, 'here'), 'OK');
  });
  assert.equal(await h.call(plain, 'get', prefix + key), 'here');
});

test('a prefix that is not a string or a Buffer is refused with INVALID_ARG', () => {
  for (const prefix of [42, {}, ['a']]) {
    assert.throws(
      () => new RedisClustr({ servers: c.seeds, redisOptions: { prefix } }),
      (e) => e.code === 'INVALID_ARG' && /prefix/.test(e.message)
    );
  }
});
