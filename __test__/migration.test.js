// Live slot migration against a real local cluster, driven step by step with scripts/cluster.js's
// migrateSlot(onStep): while the slot is half-moved the client must follow ASK without touching its
// slot map, retry a multi-key command that gets TRYAGAIN until it can succeed, and after the move
// patch its map exactly once on MOVED; a background load of SET/GET on the slot loses nothing.
// Each test migrates the slot back, so the cluster leaves this file with its original owners.
'use strict';

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { migrateSlot, sendCommand, pipeline } = require('../scripts/cluster');
const h = require('./helpers');

const { RedisClustr } = h;
const HOST = '127.0.0.1';
const TAG = '{mig}';
const SLOT = RedisClustr.keySlot(TAG);
const key = (name) => `${TAG}${name}`;

after(() => h.stopOwnCluster());

/** The slot's current owner and the master it will move to (the next one by port). */
async function owners(c, slot) {
  const masters = await c.masters();
  const i = masters.findIndex((m) => m.slots.some(([a, b]) => slot >= a && slot <= b));
  assert.ok(i >= 0, `no master owns slot ${slot}`);
  return { from: masters[i].port, to: masters[(i + 1) % masters.length].port };
}

/** Waits until the cluster agrees again (no open slots, same map everywhere, replicas linked). */
async function healthy(c) {
  await c.waitHealthy(30000);
}

/** Deletes the given keys of the slot straight on its owner (no client involved). */
async function clearKeys(c, port, names) {
  if (names.length) await c.command(port, 'DEL', ...names);
}

/**
 * Empties the slot on its owner. Other suites share this cluster and write thousands of random keys;
 * some of them hash to this slot by chance, and the test counts the keys a migration batch moves.
 */
async function clearSlot(port, slot) {
  for (;;) {
    const ks = await sendCommand(port, ['CLUSTER', 'GETKEYSINSLOT', slot, 1000], { buffers: true });
    if (ks.length === 0) return;
    await sendCommand(port, ['DEL', ...ks]);
  }
}

/** Reads `k` on `port` the way a client that was redirected with ASK would. */
async function askingGet(port, k) {
  const [asking, value] = await pipeline(port, [['ASKING'], ['GET', k]]);
  assert.equal(asking, 'OK');
  return value;
}

const { within } = h;

test('a client reading and writing a slot while it migrates follows ASK, retries TRYAGAIN and patches its map once on MOVED', async () => {
  const c = await h.cluster();
  const { from, to } = await owners(c, SLOT);
  const names = 'abcdefghij'.split('').map(key);
  const extra = [key('new'), key('late')];
  await clearSlot(from, SLOT);
  // The periodic safety refresh is pushed out of the way so that only MOVED can teach the client
  // the new owner: the test counts exactly one slot patch.
  const client = await h.connect(c.seeds, { slotInterval: 600000 });
  let failure = null;
  let forward = null;
  let mget = null;
  let mgetRetriesBefore = 0;
  const seen = new Set();
  try {
    await Promise.all(names.map((k) => h.call(client, 'set', k, `v:${k}`)));
    assert.equal(await c.command(from, 'GET', names[0]), `v:${names[0]}`, 'the keys start on the source');
    assert.equal(client.slots[SLOT][0].port, from);

    const checks = {
      async importing() {
        // Only the target knows: the source serves everything as before.
        const s0 = client.stats();
        assert.equal(await h.call(client, 'get', names[0]), `v:${names[0]}`);
        assert.equal(await h.call(client, 'set', names[1], 'v:b2'), 'OK');
        assert.equal(await c.command(from, 'GET', names[1]), 'v:b2');
        const s1 = client.stats();
        assert.equal(s1.ask, s0.ask);
        assert.equal(s1.moved, s0.moved);
      },
      async migrating() {
        // Move one key by hand, so the slot is really half-moved.
        const moved = names[1];
        assert.equal(await c.command(from, 'MIGRATE', HOST, to, '', 0, 5000, 'KEYS', moved), 'OK');
        const s0 = client.stats();

        // A key still on the source: served there, no redirection.
        assert.equal(await h.call(client, 'get', names[0]), `v:${names[0]}`);
        assert.equal(await h.call(client, 'set', names[2], 'v:c2'), 'OK');
        assert.equal(await c.command(from, 'GET', names[2]), 'v:c2');
        const s1 = client.stats();
        assert.equal(s1.ask, s0.ask, 'keys not yet moved need no ASK');

        // A moved key and a new key: followed via ASK to the target.
        assert.equal(await h.call(client, 'get', moved), 'v:b2');
        assert.equal(await h.call(client, 'set', extra[0], 'v:new'), 'OK');
        assert.equal(await askingGet(to, extra[0]), 'v:new', 'the new key was written on the target');
        assert.equal(await h.call(client, 'get', extra[0]), 'v:new');
        const s2 = client.stats();
        assert.equal(s2.ask, s1.ask + 3, 'each of the 3 commands was followed with one ASK');
        assert.equal(s2.slotPatches, s0.slotPatches, 'ASK must not change the map');
        assert.equal(s2.moved, s0.moved);
        assert.equal(client.slots[SLOT][0].port, from, 'the map still says the source');

        // A multi-key command over a moved and an unmoved key: the server says TRYAGAIN ...
        await assert.rejects(sendCommand(from, ['MGET', names[0], moved]), (e) => e.code === 'TRYAGAIN');
        // ... and the client keeps retrying it while the migration goes on.
        const r0 = client.stats().retries;
        mgetRetriesBefore = r0;
        const state = { settled: false };
        mget = h.call(client, 'mget', names[0], moved).finally(() => {
          state.settled = true;
        });
        mget.catch(() => {}); // awaited (and checked) in the batch step
        await h.until(() => client.stats().retries >= r0 + 2, { what: 'the client to retry the TRYAGAIN MGET' });
        assert.equal(state.settled, false, 'the MGET cannot succeed while its keys are split');
      },
      async batch(info) {
        if (seen.has('batch')) return;
        seen.add('batch');
        assert.equal(info.keys, names.length - 1, 'the first batch moved every key left on the source');
        // Both MGET keys are on the target now: the retried MGET gets there via ASK.
        assert.deepEqual(await within(mget, 5000, 'the TRYAGAIN MGET'), [`v:${names[0]}`, 'v:b2']);
        assert.ok(client.stats().retries >= mgetRetriesBefore + 2, 'the MGET was retried');
        const s0 = client.stats();
        assert.equal(await h.call(client, 'get', names[0]), `v:${names[0]}`);
        assert.equal(await h.call(client, 'set', names[3], 'v:d2'), 'OK');
        assert.equal(await askingGet(to, names[3]), 'v:d2');
        const s1 = client.stats();
        assert.equal(s1.ask, s0.ask + 2);
        assert.equal(s1.slotPatches, s0.slotPatches);
        assert.equal(client.slots[SLOT][0].port, from);
      },
      async migrated() {
        // Still ASK: the owner has not changed yet.
        const s0 = client.stats();
        assert.equal(await h.call(client, 'set', extra[1], 'v:late'), 'OK');
        assert.equal(await askingGet(to, extra[1]), 'v:late');
        assert.equal(client.stats().ask, s0.ask + 1);
        assert.equal(client.stats().slotPatches, s0.slotPatches);
      },
    };
    const onStep = async (name, info) => {
      if (failure || !checks[name]) return;
      try {
        await checks[name](info);
      } catch (e) {
        failure = e; // finish the migration anyway, so the cluster stays whole
      }
    };
    forward = migrateSlot(c, SLOT, from, to, { onStep });
    await forward;
    if (failure) throw failure;

    assert.ok(seen.has('batch'), 'the batch step ran');

    // After node-all: the next command gets MOVED, is followed, and patches the map once.
    const s0 = client.stats();
    assert.equal(await h.call(client, 'get', names[0]), `v:${names[0]}`);
    const s1 = client.stats();
    assert.equal(s1.moved, s0.moved + 1, 'the first command after the move was redirected by MOVED');
    assert.equal(s1.slotPatches, s0.slotPatches + 1);
    assert.equal(client.slots[SLOT][0].port, to, 'client.slots shows the new owner');

    // However many commands follow (one by one, then all at once), no more patches.
    const current = (k) => ({ [names[1]]: 'v:b2', [names[2]]: 'v:c2', [names[3]]: 'v:d2' })[k] || `v:${k}`;
    for (let i = 0; i < 20; i++) {
      const k = names[i % names.length];
      assert.equal(await h.call(client, 'get', k), current(k));
    }
    const burst = await Promise.all(
      Array.from({ length: 50 }, (_, i) => h.call(client, 'set', key(`burst${i % 5}`), `x${i}`)),
    );
    assert.deepEqual(burst, Array(50).fill('OK'));
    assert.equal(await h.call(client, 'mget', key('new'), key('late')).then((v) => v.join()), 'v:new,v:late');
    const s2 = client.stats();
    assert.equal(s2.slotPatches, s0.slotPatches + 1, 'the slot was patched exactly once');
    assert.ok(s2.moved - s0.moved <= 2, `${s2.moved - s0.moved} MOVED after the move`);
    assert.equal(client.slots[SLOT][0].port, to);
    assert.equal(await c.command(to, 'GET', names[0]), `v:${names[0]}`, 'the data lives on the new owner');
  } finally {
    try {
      if (forward) {
        await forward.catch(() => {});
        // Back to the original owner; the client follows that move too.
        await migrateSlot(c, SLOT, to, from);
        await healthy(c);
      }
      if (!failure && forward) {
        assert.equal(await h.call(client, 'get', names[0]), `v:${names[0]}`);
        assert.equal(client.slots[SLOT][0].port, from);
      }
      await clearKeys(c, from, [...names, ...extra, ...Array.from({ length: 5 }, (_, i) => key(`burst${i}`))]);
    } finally {
      await h.quit(client);
    }
  }
});

test('2,000 SETs and GETs on a slot during its whole migration all succeed and every acknowledged write is readable', async () => {
  const c = await h.cluster();
  const { from, to } = await owners(c, SLOT);
  const client = await h.connect(c.seeds);
  const TOTAL = 2000;
  const WORKERS = 8;
  const KEYS_PER_WORKER = 40;
  const PER_STEP = 120;
  const failures = [];
  const acked = new Map(); // key -> last value whose SET was acknowledged
  const written = new Set();
  let ops = 0;
  let done = false;
  let forward = null;

  async function worker(w) {
    for (let i = 0; !done || ops < TOTAL; i++) {
      const k = key(`bg:${w}:${i % KEYS_PER_WORKER}`);
      const v = `${w}:${i}`;
      try {
        written.add(k);
        const r = await h.call(client, 'set', k, v);
        ops++;
        if (r !== 'OK') failures.push(`SET ${k} replied ${r}`);
        else acked.set(k, v);
        const g = await h.call(client, 'get', k);
        ops++;
        if (g !== v) failures.push(`GET ${k} gave ${g}, expected ${v}`);
      } catch (e) {
        ops++;
        failures.push(`${k}: ${e.code} ${e.message}`);
      }
      if (failures.length > 20) return;
    }
  }

  try {
    const load = Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
    // Some keys exist on the source before the migration starts, more are created during it.
    await h.until(() => ops >= 200 || failures.length, { what: 'the load to start' });
    const steps = [];
    forward = migrateSlot(c, SLOT, from, to, {
      // Hold every step until the load has made progress in that state of the slot.
      onStep: async (name) => {
        steps.push(name);
        const target = ops + PER_STEP;
        await h.until(() => ops >= target || failures.length, { what: `load during step ${name}` });
      },
    });
    const result = await forward;
    done = true;
    await load;
    assert.deepEqual(failures, []);
    assert.ok(ops >= TOTAL, `${ops} operations`);
    assert.ok(result.keys > 0, 'the migration moved keys the load had written');
    for (const s of ['importing', 'migrating', 'batch', 'migrated', 'node-target', 'node-source', 'node-all']) {
      assert.ok(steps.includes(s), `step ${s} ran under load`);
    }

    // Every acknowledged write is readable with its value, through the client and on the new owner.
    assert.equal(acked.size, written.size);
    const ks = [...acked.keys()];
    const viaClient = await Promise.all(ks.map((k) => h.call(client, 'get', k)));
    assert.deepEqual(viaClient, ks.map((k) => acked.get(k)));
    const onOwner = await pipeline(to, ks.map((k) => ['GET', k]));
    assert.deepEqual(onOwner, ks.map((k) => acked.get(k)));
    assert.equal(client.slots[SLOT][0].port, to);
  } finally {
    done = true;
    try {
      if (forward) {
        await forward.catch(() => {});
        await migrateSlot(c, SLOT, to, from);
        await healthy(c);
        if (written.size) await clearKeys(c, from, [...written]);
      }
    } finally {
      await h.quit(client);
    }
  }
});
