// A master dies under load (SIGKILL) on a cluster of this suite's own (it changes roles, so it
// does not share the npm-test cluster): the client must find the promoted replica by itself, keep
// every acknowledged increment, report the writes that were in flight as "outcome unknown"
// (CONNECTION_LOST) instead of resending them, and fail the others only definitely: a command that
// could not reach the dead node within the retry budget (ECONNREFUSED) was never applied.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startCluster } = require('../scripts/cluster');
const h = require('./helpers');

let cluster;
before(async () => {
  cluster = await startCluster();
});
after(async () => {
  if (cluster) await cluster.stop();
});

test('after SIGKILL of a master the client follows the promoted replica and loses no acknowledged write', async () => {
  const client = await h.connect(cluster.seeds.slice(0, 1), { slotInterval: 1000 });
  try {
    const victim = (await cluster.masters())[0];
    const ownedByVictim = (k) => victim.slots.some(([a, b]) => h.RedisClustr.keySlot(k) >= a && h.RedisClustr.keySlot(k) <= b);
    const keys = [];
    for (let i = 0; keys.length < 5; i++) if (ownedByVictim(`fo:${i}`)) keys.push(`fo:${i}`);
    for (const k of keys) await h.call(client, 'set', k, '0');

    const acked = new Map(keys.map((k) => [k, 0]));
    const unknown = new Map(keys.map((k) => [k, 0]));
    const definite = [];
    let killed = false;
    let okAfterKill = 0;
    let stop = false;
    const worker = async (k) => {
      while (!stop) {
        try {
          await client.incrAsync(k);
          acked.set(k, acked.get(k) + 1);
          if (killed) okAfterKill++;
        } catch (e) {
          if (e.code === 'CONNECTION_LOST') unknown.set(k, unknown.get(k) + 1);
          else definite.push(e);
        }
      }
    };
    const workers = keys.flatMap((k) => [worker(k), worker(k)]);
    await h.until(() => [...acked.values()].every((n) => n > 20), { what: 'load before the kill' });

    await cluster.killNode(victim.port, 'SIGKILL');
    killed = true;
    await h.until(() => okAfterKill > 200, { timeout: 20000, what: 'increments acknowledged after the kill' });
    stop = true;
    await Promise.all(workers);

    // Promotion takes 3-6 s here; commands that outlive the 5 s retry budget fail definitely.
    const codes = new Set(definite.map((e) => e.code));
    for (const code of codes) assert.ok(['ECONNREFUSED', 'CLUSTERDOWN'].includes(code), `unexpected failure ${code}`);
    for (const k of keys) {
      const value = Number(await h.call(client, 'get', k));
      assert.ok(value >= acked.get(k), `${k}: every acknowledged INCR is there (${value} >= ${acked.get(k)})`);
      // Neither resent (applied twice) nor applied after a definite failure.
      assert.ok(value <= acked.get(k) + unknown.get(k), `${k}: ${value} <= ${acked.get(k)} acked + ${unknown.get(k)} unknown`);
    }
    const owner = client.slots[h.RedisClustr.keySlot(keys[0])][0];
    assert.notEqual(owner.port, victim.port, 'the slot map names the promoted replica');
    assert.ok(victim.replicas.includes(owner.port), `the new owner ${owner.port} was the victim's replica`);
  } finally {
    await h.quit(client);
  }
});
