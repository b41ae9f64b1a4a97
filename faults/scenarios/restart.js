// R15 full restart: AOF with `appendfsync always`, every node SIGKILLed at once and started again
// from its own directory (nodes.conf + AOF), as Redis' own 04-resharding.tcl does. The client must
// reconnect everything and lose no write acknowledged before the kill.
'use strict';

const c = require('../cluster');

const R15 = {
  id: 'R15',
  summary: (f) => `healthy ${f.healthyAfterMs} ms, first ok ${f.recoveryMs} ms after the last node was up; lost ${f.lost}`,
  title: 'full restart',
  fault: 'AOF on (`appendfsync always`); SIGKILL every node at t = 8 s, restart them all',
  must: 'reconnect everything, re-seed from any live node',
  passFigure: 'first ok ≤ 10 s after the last node is up; 0 lost among writes acked before the kill',
  cluster: { extraArgs: ['--appendonly', 'yes', '--appendfsync', 'always'] },
  async run(ctx) {
    const ports = ctx.cluster.nodes.map((n) => n.port);
    await ctx.at(8000);
    await Promise.all(ports.map((p) => ctx.cluster.killNode(p, 'SIGKILL')));
    ctx.figures.killedAt = Date.now() - ctx.t0;
    await Promise.all(ports.map((p) => ctx.cluster.restartNode(p)));
    // Recovery counts from the moment the last node answers again.
    ctx.faultAt = Date.now();
    await c.healthy(ctx.cluster, 30000);
    ctx.figures.healthyAfterMs = Date.now() - ctx.faultAt;
    await c.at(ctx.faultAt + 6000);
  },
  check(ctx, f) {
    if (f.recoveryMs === null || f.recoveryMs > 10000) ctx.fail(`first ok ${f.recoveryMs} ms after the last node was up (must be ≤ 10000)`);
    if (f.lost) ctx.fail(`lost = ${f.lost} (must be 0: every ok write was fsynced before the kill)`);
  },
};

module.exports = [R15];
