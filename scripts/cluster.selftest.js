// Self-test of scripts/cluster.js against real redis-server processes: start a 3+3 cluster, check
// its layout, migrate an empty slot and a slot holding a key with migrateSlot, check every node
// sees the new owners, stop it and check that no started PID survives.
'use strict';

const assert = require('node:assert/strict');
const { startCluster, migrateSlot, parseInfo, ReplyError } = require('./cluster');

function pidGone(pid) {
  try {
    process.kill(pid, 0);
    return false;
  } catch (e) {
    return e.code === 'ESRCH';
  }
}

/** Polls until every node's CLUSTER SLOTS gives `slot` to `port` (deadline `ms`). */
async function waitOwner(cluster, slot, port, ms = 10000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await Promise.all(
      cluster.nodes.map(async (n) => {
        const slots = await cluster.command(n.port, 'CLUSTER', 'SLOTS');
        const range = slots.find((r) => r[0] <= slot && slot <= r[1]);
        return range ? Number(range[2][1]) : null;
      }),
    );
    if (last.every((p) => p === port)) return;
    if (Date.now() > deadline) throw new Error(`slot ${slot} owners per node: ${last.join(',')}, want ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const ownerOf = (masters, slot) => masters.find((m) => m.slots.some(([s, e]) => s <= slot && slot <= e));

async function main() {
  const t0 = Date.now();
  const cluster = await startCluster();
  const startMs = Date.now() - t0;
  const pids = cluster.nodes.map((n) => n.pid);
  let stopMs;
  try {
    assert.equal(cluster.nodes.length, 6);
    assert.equal(new Set(pids).size, 6);
    for (const n of cluster.nodes) {
      assert.ok(n.port >= 20000 && n.port <= 44999, `port ${n.port} in range`);
    }

    const masters = await cluster.masters();
    assert.equal(masters.length, 3, '3 masters');
    const covered = masters.flatMap((m) => m.slots).reduce((s, [a, b]) => s + b - a + 1, 0);
    assert.equal(covered, 16384, 'all slots covered');
    for (const m of masters) assert.equal(m.replicas.length, 1, `master ${m.port} has one replica`);

    let replicasUp = 0;
    for (const n of cluster.nodes) {
      const info = parseInfo(await cluster.command(n.port, 'INFO', 'replication'));
      if (info.role === 'slave' && info.master_link_status === 'up') replicasUp++;
    }
    assert.equal(replicasUp, 3, '3 replicas with master_link_status:up');

    // Error replies reject with a ReplyError carrying the first word as code.
    const key = 'selftest:{k}';
    const keySlot = await cluster.command(masters[0].port, 'CLUSTER', 'KEYSLOT', key);
    const keyOwner = ownerOf(masters, keySlot);
    const notOwner = masters.find((m) => m !== keyOwner);
    await assert.rejects(cluster.command(notOwner.port, 'GET', key), (e) => e instanceof ReplyError && e.code === 'MOVED');

    // 1. an empty slot
    const from = masters[0];
    const to = masters[1];
    const slot = from.slots[0][0];
    assert.notEqual(slot, keySlot);
    assert.equal(await cluster.command(from.port, 'CLUSTER', 'COUNTKEYSINSLOT', slot), 0);
    const steps = [];
    const tm = Date.now();
    await migrateSlot(cluster, slot, from.port, to.port, { onStep: (s) => steps.push(s) });
    assert.deepEqual(steps, ['importing', 'migrating', 'migrated', 'node-target', 'node-source', 'node-all']);
    await waitOwner(cluster, slot, to.port);
    const emptyMs = Date.now() - tm;

    // 2. a slot holding a key, with traffic while half-moved
    await cluster.command(keyOwner.port, 'SET', key, 'v1');
    const dest = notOwner;
    let askSeen = false;
    const r = await migrateSlot(cluster, keySlot, keyOwner.port, dest.port, {
      onStep: async (s) => {
        if (s === 'migrating') {
          // key still on the source: served there; an absent key gets -ASK
          assert.equal(await cluster.command(keyOwner.port, 'GET', key), 'v1');
          await assert.rejects(cluster.command(keyOwner.port, 'GET', 'selftest:{k}:absent'), (e) => {
            askSeen = e.code === 'ASK';
            return true;
          });
        }
      },
    });
    assert.ok(askSeen, 'ASK while migrating');
    assert.equal(r.keys, 1);
    await waitOwner(cluster, keySlot, dest.port);
    assert.equal(await cluster.command(dest.port, 'GET', key), 'v1');
    assert.equal(await cluster.command(keyOwner.port, 'CLUSTER', 'COUNTKEYSINSLOT', keySlot), 0);

    const { ms: healthyMs } = await cluster.waitHealthy(10000);
    console.log(
      `start ${startMs} ms; empty-slot migration visible everywhere ${emptyMs} ms; healthy again ${healthyMs} ms`,
    );
  } finally {
    const ts = Date.now();
    await cluster.stop();
    stopMs = Date.now() - ts;
    await cluster.stop(); // idempotent
  }
  for (const pid of pids) assert.ok(pidGone(pid), `pid ${pid} gone`);
  const fs = require('fs');
  assert.ok(!fs.existsSync(cluster.dir), 'temp dir removed');
  console.log(`stop ${stopMs} ms; total ${Date.now() - t0} ms`);
  console.log('cluster selftest ok');
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
