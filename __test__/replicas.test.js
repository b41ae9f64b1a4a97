// The `slaves` option: read-only commands go to masters only ('never', the default), to masters
// and replicas ('share'), or to replicas ('always'); writes always go to the master; replica
// connections are put in READONLY mode once, so replicas answer reads instead of MOVED.
// Where each GET ran is read from the nodes' own command statistics.
'use strict';

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { sendCommand, parseInfo } = require('../scripts/cluster');
const h = require('./helpers');

after(h.stopOwnCluster);

async function getCalls(port) {
  const info = parseInfo(await sendCommand(port, ['info', 'commandstats']));
  const m = /calls=(\d+)/.exec(info.cmdstat_get || '');
  return m ? Number(m[1]) : 0;
}

async function readsWith(slaves) {
  const c = await h.cluster();
  const client = await h.connect(c.seeds, { slaves });
  try {
    await new Promise((resolve) => (client.fullReady ? resolve() : client.once('fullReady', resolve)));
    const key = `rep:${slaves}:${process.pid}`;
    await h.call(client, 'set', key, 'v');
    const [master, ...replicas] = client.slots[h.RedisClustr.keySlot(key)];
    assert.ok(replicas.length >= 1, 'the shard has a replica');
    // The write reached the replica before we read from it.
    await new Promise((resolve, reject) => master.send_command('wait', ['1', '2000'], (e, n) => (e ? reject(e) : resolve(n))));
    const before = { master: await getCalls(master.port), replica: await getCalls(replicas[0].port) };
    for (let i = 0; i < 40; i++) assert.equal(await h.call(client, 'get', key), 'v');
    const after = { master: await getCalls(master.port), replica: await getCalls(replicas[0].port) };
    const clients = await sendCommand(replicas[0].port, ['client', 'list']);
    return {
      master: after.master - before.master,
      replica: after.replica - before.replica,
      readonlyConnection: /flags=r /.test(clients),
    };
  } finally {
    await h.quit(client);
  }
}

test("slaves: 'never' reads from the master only", async () => {
  const d = await readsWith('never');
  assert.equal(d.master, 40);
  assert.equal(d.replica, 0);
});

test("slaves: 'always' reads from the replica, which answers instead of redirecting", async () => {
  const d = await readsWith('always');
  assert.equal(d.replica, 40);
  assert.equal(d.master, 0);
  assert.ok(d.readonlyConnection, 'the replica connection is in READONLY mode (flags=r)');
});

test("slaves: 'share' spreads reads over the master and its replica", async () => {
  const d = await readsWith('share');
  assert.equal(d.master + d.replica, 40);
  assert.ok(d.master > 0 && d.replica > 0, `both served reads (${d.master} / ${d.replica})`);
});

test("writes go to the master even with slaves: 'always'", async () => {
  const c = await h.cluster();
  const client = await h.connect(c.seeds, { slaves: 'always' });
  try {
    const key = `repw:${process.pid}`;
    assert.equal(await h.call(client, 'set', key, 'x'), 'OK');
    assert.equal(await h.call(client, 'incr', `${key}:n`), 1);
    assert.equal(client.stats().moved, 0, 'no write was sent to a replica and redirected');
  } finally {
    await h.quit(client);
  }
});
