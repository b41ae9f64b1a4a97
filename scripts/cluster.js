// Throwaway local Redis Cluster for the demo, the tests and developers: finds (or apt-installs)
// redis-server/redis-cli, starts N loopback `redis-server --daemonize no` children on free random
// ports under a per-run temp dir, creates the cluster with `redis-cli --cluster create`, waits
// until it is really healthy, offers fault helpers (kill/restart a node, live slot migration) and
// stops exactly the PIDs it started. No npm dependencies: a minimal RESP2 client is built in.
// Also a CLI: `node scripts/cluster.js start|stop|status` (state in <package root>/.cluster/).
//
// This file is the entry point only: it re-exports the public API and runs the CLI. The code
// lives in scripts/cluster/:
//   util.js           shared constants, sleep/timeout helpers, /proc process inspection
//   install.js        ensureRedis(): locate or apt-install redis-server/redis-cli >= 7.0
//   resp.js           minimal RESP2 client: sendCommand, pipeline, ReplyError, parseInfo
//   exit-cleanup.js   kill still-running children and remove temp dirs if this process dies
//   local-cluster.js  LocalCluster: spawn, waitHealthy, masters, killNode/restartNode, stop
//   start-cluster.js  startCluster(): ports, spawn, `redis-cli --cluster create`, wait healthy
//   migrate.js        migrateSlot(): live slot migration step by step
//   cli.js            the start|stop|status CLI and its state file
'use strict';

const { ensureRedis } = require('./cluster/install');
const { sendCommand, pipeline, parseInfo, ReplyError } = require('./cluster/resp');
const { LocalCluster } = require('./cluster/local-cluster');
const { startCluster } = require('./cluster/start-cluster');
const { migrateSlot } = require('./cluster/migrate');

if (require.main === module) {
  const { cli } = require('./cluster/cli');
  cli(process.argv.slice(2), __filename).catch((e) => {
    console.error(e && e.message ? e.message : e);
    process.exitCode = 1;
  });
}

module.exports = {
  ensureRedis,
  startCluster,
  migrateSlot,
  sendCommand,
  pipeline,
  parseInfo,
  ReplyError,
  LocalCluster,
};
