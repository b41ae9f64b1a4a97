// Nodes joining and leaving: R13 a 7th node is added and gets 1000 slots under load, R14 a master
// is emptied and removed with del-node (it then answers CLUSTER SLOTS with an empty map, which
// the client must never adopt).
'use strict';

const c = require('../cluster');

// Polls the client's map on every topology event and now and then: a map with a hole is counted.
function watchCoverage(ctx) {
  const state = { uncovered: 0 };
  const probe = () => {
    const slots = ctx.client.slots;
    for (let s = 0; s < 16384; s++) {
      if (!slots[s] || !slots[s][0]) {
        state.uncovered++;
        return;
      }
    }
  };
  ctx.client.on('topology', probe);
  state.stop = () => ctx.client.removeListener('topology', probe);
  return state;
}

// Normal clients connected to `port`, not counting the connection asking.
async function clientConnections(port) {
  const list = await c.sendCommand(port, ['CLIENT', 'LIST', 'TYPE', 'normal'], { timeoutMs: 1000 });
  return list.split('\n').filter((l) => l.trim() && !/ cmd=client\|list /.test(l)).length;
}

const R13 = {
  id: 'R13',
  summary: (f) => `connection ready ${f.connectedAfterFirstSlotMs} ms after the first slot; reshard ${f.reshardMs} ms; fail ${f.fail}`,
  title: 'add node',
  fault: 'start a 7th node, `redis-cli --cluster add-node`, then reshard 1000 slots to it',
  must: 'discover it via MOVED and periodic refresh',
  passFigure: '0 fail; connections to the new node opened ≤ 2 s after its first slot',
  async run(ctx) {
    await ctx.at(3000);
    const added = await c.addNode(ctx.cluster);
    const addr = `${c.HOST}:${added.port}`;
    ctx.expectMasters = [...(await c.masterPorts(ctx.cluster)), added.port];
    ctx.figures.newNode = added.port;
    // Watch, in parallel with the reshard, when the node gets its first slot (its own view) and
    // when the client has a ready connection to it.
    let firstSlotAt = 0;
    let readyAt = 0;
    let watching = true;
    const watch = (async () => {
      while (watching && (!firstSlotAt || !readyAt)) {
        const now = Date.now();
        if (!readyAt) {
          const h = ctx.client.connections[addr];
          if (h && h.ready) readyAt = now;
        }
        if (!firstSlotAt) {
          const nodes = await c.sendCommand(added.port, ['CLUSTER', 'NODES'], { timeoutMs: 1000 }).catch(() => '');
          const me = nodes.split('\n').find((l) => l.includes('myself'));
          if (me && me.trim().split(' ').length > 8) firstSlotAt = now;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await ctx.at(6000);
    ctx.faultAt = Date.now();
    const t = Date.now();
    await c.reshard(ctx.cluster.seeds[0].port, { from: 'all', to: added.id, slots: 1000 });
    ctx.figures.reshardMs = Date.now() - t;
    await c.until(() => firstSlotAt && readyAt, { timeout: 10000, what: 'the client to connect to the new node' }).catch(() => {});
    watching = false;
    await watch;
    ctx.figures.connectedAfterFirstSlotMs = firstSlotAt && readyAt ? readyAt - firstSlotAt : null;
    await c.healthy(ctx.cluster);
    await c.check(added.port);
  },
  check(ctx, f) {
    if (f.fail) ctx.fail(`${f.fail} fail (must be 0): ${JSON.stringify(f.codes)}`);
    if (f.connectedAfterFirstSlotMs === null || f.connectedAfterFirstSlotMs > 2000) {
      ctx.fail(`connection to the new node ready ${f.connectedAfterFirstSlotMs} ms after its first slot (must be ≤ 2000)`);
    }
  },
};

const R14 = {
  id: 'R14',
  summary: (f) => `uncovered maps ${f.uncoveredMaps}; connections closed ${f.connectionsClosedMs} ms after del-node; fail ${f.fail}`,
  title: 'remove node',
  fault: 'reshard all slots off a master, `redis-cli --cluster del-node` it (CLUSTER FORGET + RESET SOFT)',
  must: 'never adopt the empty map the reset node returns; close its connections',
  passFigure: '0 fail; map never has uncovered slots; connections to it closed ≤ 2 refresh intervals (2 s)',
  async run(ctx) {
    const coverage = watchCoverage(ctx);
    const masters = await ctx.cluster.masters();
    const [keep, , gone] = masters;
    ctx.figures.removed = gone.port;
    ctx.expectMasters = masters.filter((m) => m !== gone).map((m) => m.port);
    await ctx.at(3000);
    ctx.faultAt = Date.now();
    const slots = gone.slots.reduce((n, [a, b]) => n + b - a + 1, 0);
    const t = Date.now();
    await c.reshard(keep.port, { from: gone.id, to: keep.id, slots });
    ctx.figures.reshardMs = Date.now() - t;
    // Give the emptied master's replica another master first: with replica migration off it would
    // stay attached to an empty master, and del-node may pick that master for it.
    for (const r of gone.replicas) await c.sendCommand(r, ['CLUSTER', 'REPLICATE', keep.id]);
    await c.healthy(ctx.cluster, 30000);
    const tDel = Date.now();
    await c.delNode(keep.port, gone.id);
    ctx.figures.delNodeMs = Date.now() - tDel;
    ctx.figures.removedSlotsReply = (await c.sendCommand(gone.port, ['CLUSTER', 'SLOTS'])).length;
    const closedAt = await c
      .until(async () => (await clientConnections(gone.port)) === 0 && Date.now(), { timeout: 10000, interval: 20, what: 'connections to the removed node closed' })
      .catch(() => null);
    ctx.figures.connectionsClosedMs = closedAt ? closedAt - tDel - ctx.figures.delNodeMs : null;
    ctx.figures.handleGone = !ctx.client.connections[`${c.HOST}:${gone.port}`];
    await c.healthy(ctx.cluster, 30000, { exclude: [gone.port] });
    coverage.stop();
    ctx.figures.uncoveredMaps = coverage.uncovered;
  },
  check(ctx, f) {
    if (f.fail) ctx.fail(`${f.fail} fail (must be 0): ${JSON.stringify(f.codes)}`);
    if (f.uncoveredMaps) ctx.fail(`${f.uncoveredMaps} client maps with uncovered slots (must be 0)`);
    if (f.connectionsClosedMs === null || f.connectionsClosedMs > 2000) ctx.fail(`connections to the removed node closed ${f.connectionsClosedMs} ms after del-node (must be ≤ 2000)`);
    if (!f.handleGone) ctx.fail('the removed node is still in client.connections');
  },
};

module.exports = [R13, R14];
