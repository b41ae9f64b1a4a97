// WATCH sessions (client.watch): optimistic transactions on a connection of their own. The
// central case is two sessions watching the same key: on one shared connection the first EXEC
// would clear the second one's WATCH and its EXEC would wrongly succeed (a lost update); with a
// session each, the second EXEC answers null. Also: the happy path, promise twins, CROSSSLOT,
// a WATCH that meets MOVED after a slot moved behind the client's back, a WATCH that meets ASK
// while its slot is half-moved (and gives up after maxRedirections), ended sessions, quit.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { migrateSlot } = require('../scripts/cluster');
const h = require('./helpers');

let client;
let other;
let c;
before(async () => {
  c = await h.cluster();
  client = await h.connect(c.seeds);
  other = await h.connect(c.seeds);
});
after(async () => {
  if (client) await h.quit(client);
  if (other) await h.quit(other);
  // Run alone, the suite starts a cluster of its own: without this it outlived the suite.
  await h.stopOwnCluster();
});

const watch = (...keys) => h.call(client, 'watch', ...keys);
const exec = (m) => new Promise((resolve, reject) => m.exec((err, replies) => (err ? reject(err) : resolve(replies))));

test('watch, read, then MULTI/EXEC on the session runs the transaction', async () => {
  await h.call(client, 'set', '{w1}:n', '5');
  await h.call(client, 'del', '{w1}:log');
  const tx = await watch('{w1}:n', '{w1}:log');
  assert.equal(await h.call(tx, 'get', '{w1}:n'), '5');
  const seen = [];
  const replies = await exec(
    tx
      .multi()
      .incrby('{w1}:n', 10, (err, v) => seen.push([err, v]))
      .rpush('{w1}:log', 'x')
  );
  assert.deepEqual(replies, [15, 1]);
  assert.deepEqual(seen, [[null, 15]]);
  assert.equal(await h.call(client, 'get', '{w1}:n'), '15');
});

test('a watched key changed by anyone else makes EXEC answer null and run nothing', async () => {
  await h.call(client, 'set', '{w2}:k', 'a');
  const tx = await watch('{w2}:k');
  await h.call(other, 'set', '{w2}:k', 'b');
  let perCommand;
  const replies = await exec(tx.multi().set('{w2}:k', 'c', (err, v) => (perCommand = [err, v])));
  assert.equal(replies, null);
  assert.deepEqual(perCommand, [null, null]);
  assert.equal(await h.call(client, 'get', '{w2}:k'), 'b');
});

test('two sessions watching one key: the second EXEC fails although the same client ran the first', async () => {
  await h.call(client, 'set', '{w3}:k', '0');
  const a = await watch('{w3}:k');
  const b = await watch('{w3}:k');
  const [va, vb] = await Promise.all([h.call(a, 'get', '{w3}:k'), h.call(b, 'get', '{w3}:k')]);
  assert.deepEqual(await exec(a.multi().set('{w3}:k', String(Number(va) + 1))), ['OK']);
  // Sharing a connection, a's EXEC would have cleared b's WATCH and this would write 1 again.
  assert.equal(await exec(b.multi().set('{w3}:k', String(Number(vb) + 1))), null);
  assert.equal(await h.call(client, 'get', '{w3}:k'), '1');
});

test('concurrent optimistic increments lose nothing', async () => {
  await h.call(client, 'set', '{w4}:k', '0');
  let aborted = 0;
  const incr = async () => {
    for (;;) {
      const tx = await client.watchAsync('{w4}:k');
      const v = Number(await tx.getAsync('{w4}:k'));
      const r = await tx.multi().set('{w4}:k', String(v + 1)).execAsync();
      if (r !== null) return;
      aborted++;
    }
  };
  await Promise.all(Array.from({ length: 20 }, incr));
  assert.equal(await h.call(client, 'get', '{w4}:k'), '20');
  assert.ok(aborted > 0, 'the increments really raced (some transactions were retried)');
});

test('keys in different slots cannot be watched together; raw WATCH points at watch()', async () => {
  const err = await h.callError(client, 'watch', '{w5}a', '{w6}b');
  assert.equal(err.code, 'CROSSSLOT');
  const raw = await new Promise((resolve) => client.send_command('watch', ['k'], resolve));
  assert.equal(raw.code, 'INVALID_ARG');
  assert.match(raw.message, /client\.watch/);
});

test('a session ends with exec: later commands on it fail with CLOSED, nothing sent', async () => {
  const tx = await watch('{w7}:k');
  await exec(tx.multi().set('{w7}:k', '1'));
  const err = await h.callError(tx, 'set', '{w7}:k', '2');
  assert.equal(err.code, 'CLOSED');
  assert.equal(await h.call(client, 'get', '{w7}:k'), '1');
  const t2 = await watch('{w7}:k');
  assert.equal(await h.call(t2, 'unwatch'), 'OK');
  assert.equal((await h.callError(t2, 'get', '{w7}:k')).code, 'CLOSED');
});

/** Sets `key` to v1; returns its slot, the master that owns it and another master to move it to. */
async function movable(key) {
  const slot = h.RedisClustr.keySlot(key);
  await h.call(client, 'set', key, 'v1');
  const owner = client.slots[slot][0];
  const target = (await c.masters()).find((m) => m.port !== owner.port);
  return { slot, owner, target };
}

test('a WATCH whose slot moved behind the client follows MOVED to the new owner', async () => {
  const key = '{w8}:k';
  const { slot, owner, target } = await movable(key);
  const movedBefore = client.stats().moved;
  await migrateSlot(c, slot, owner.port, target.port);
  try {
    const tx = await watch(key);
    assert.equal(await h.call(tx, 'get', key), 'v1');
    assert.deepEqual(await exec(tx.multi().set(key, 'v2')), ['OK']);
    assert.ok(client.stats().moved > movedBefore, 'the WATCH was redirected');
    assert.equal(await h.call(other, 'get', key), 'v2');
  } finally {
    await migrateSlot(c, slot, target.port, owner.port);
  }
});

/** How many WATCHes node `port` has refused (a redirection counts as a rejected call). */
async function rejectedWatches(port) {
  const info = await c.command(port, 'INFO', 'commandstats');
  const m = /cmdstat_watch:[^\r\n]*rejected_calls=(\d+)/.exec(info);
  return m ? Number(m[1]) : 0;
}

/**
 * Moves `slot` from `owner` to `target`, running `during()` while its keys have moved but the
 * slot has not (the old owner answers ASK for them). A failure in `during` is thrown once the
 * move is done, so the cluster stays whole.
 */
async function whileHalfMoved(slot, owner, target, during) {
  let failure;
  await migrateSlot(c, slot, owner.port, target.port, {
    async onStep(name) {
      if (name !== 'migrated') return;
      try {
        await during();
      } catch (e) {
        failure = e;
      }
    },
  });
  if (failure) throw failure;
}

test('a WATCH on a key whose slot is mid-migration waits out the ASK, then opens on the new owner', async () => {
  // A session cannot follow ASK (each later command would need its own ASKING), so its WATCH is
  // retried until the migration settles: it must neither open on the old owner nor give up.
  const key = '{w9}:k';
  const { slot, owner, target } = await movable(key);
  let session;
  let opened = false;
  try {
    await whileHalfMoved(slot, owner, target, async () => {
      const before = await rejectedWatches(owner.port);
      session = watch(key).then((tx) => {
        opened = true;
        return tx;
      });
      session.catch(() => {});
      await h.until(async () => (await rejectedWatches(owner.port)) >= before + 2, {
        timeout: 10000,
        what: 'the WATCH redirected by ASK at least twice',
      });
      assert.equal(opened, false, 'the session did not open while the slot was half-moved');
    });
    const tx = await h.within(session, 10000, 'the WATCH once the slot moved');
    assert.equal(await h.call(tx, 'get', key), 'v1');
    assert.deepEqual(await exec(tx.multi().set(key, 'v2')), ['OK']);
    assert.equal(await c.command(target.port, 'GET', key), 'v2', 'the transaction ran on the new owner');
  } finally {
    await migrateSlot(c, slot, target.port, owner.port);
  }
});

test('a WATCH that keeps meeting ASK fails with MAX_REDIRECTIONS once its hops are spent', async () => {
  // Each ASK is a hop: a migration that does not settle ends the wait with an error the caller
  // can retry on, rather than a WATCH that waits forever.
  const key = '{w10}:k';
  const { slot, owner, target } = await movable(key);
  const strict = await h.connect(c.seeds, { maxRedirections: 2 });
  try {
    await whileHalfMoved(slot, owner, target, async () => {
      const before = await rejectedWatches(owner.port);
      const err = await h.within(h.callError(strict, 'watch', key), 10000, 'the WATCH under ASK');
      assert.equal(err.code, 'MAX_REDIRECTIONS');
      assert.equal(await rejectedWatches(owner.port), before + 3, 'two hops allowed, the third ASK ends it');
    });
  } finally {
    await h.quit(strict);
    await migrateSlot(c, slot, target.port, owner.port);
  }
});

test('quit with an open session finishes; the session is then closed', async () => {
  const own = await h.connect(c.seeds);
  const tx = await h.call(own, 'watch', '{w9}:k');
  await h.within(h.quit(own), 5000, 'quit with an open WATCH session');
  const err = await h.callError(tx, 'get', '{w9}:k');
  assert.equal(err.code, 'CLOSED');
});

test('a session whose connection is killed ends: nothing is resent elsewhere, later commands fail', async () => {
  const key = '{w10}:k';
  await h.call(client, 'set', key, 'before');
  const tx = await watch(key);
  const owner = client.slots[h.RedisClustr.keySlot(key)][0];
  const list = String(await c.command(owner.port, 'CLIENT', 'LIST'));
  const line = list.split('\n').find((l) => / cmd=watch /.test(l));
  assert.ok(line, `the session's connection is listed: ${list}`);
  const id = line.match(/\bid=(\d+)/)[1];
  await c.command(owner.port, 'CLIENT', 'KILL', 'ID', id);
  const err = await h.until(
    async () => {
      const e = await new Promise((resolve) => tx.get(key, (er) => resolve(er)));
      return e || false;
    },
    { what: 'the killed session to fail its commands' }
  );
  assert.ok(['CONNECTION_LOST', 'CLOSED'].includes(err.code), `${err.code}: ${err.message}`);
  const execErr = await new Promise((resolve) => tx.multi().set(key, 'after').exec((e) => resolve(e)));
  assert.ok(execErr, 'exec on the dead session fails');
  assert.equal(await h.call(client, 'get', key), 'before', 'nothing ran');
});
