// Cluster lifecycle and admin actions for the fault scenarios, on top of scripts/cluster (which
// already starts every node with the flags of RELIABILITY.md §1: --daemonize no, loopback, per-run
// temp dir, --save "", --cluster-node-timeout 2000, --enable-debug-command local,
// --cluster-allow-replica-migration no, and keeps the pids): a fresh cluster per scenario that
// `redis-cli --cluster check` accepts, condition waits with deadlines, node ids and roles,
// redis-cli reshard / add-node / del-node, and the set of masters (to spot unplanned failovers).
'use strict';

const net = require('net');
const { startCluster, ensureRedis, sendCommand, parseInfo } = require('../scripts/cluster');
const { pickBasePort, runRedisCli } = require('../scripts/cluster/start-cluster');
const { TLS_OFFSET } = require('../scripts/cluster/tls');

const HOST = '127.0.0.1';

/** Polls `fn` (every `interval` ms) until it returns a truthy value; throws after `timeout`. */
async function until(fn, { timeout = 10000, interval = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    let v;
    try {
      v = await fn();
    } catch (_) {
      v = null; // a probe that fails (node paused, restarting) just means "not yet"
    }
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** Resolves at absolute time `t` (a scenario timeline step, not a stand-in for a condition). */
function at(t) {
  const ms = t - Date.now();
  return ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve();
}

// In a TLS run (faults/run.js --tls) redis-cli goes over TLS to the nodes' TLS ports. With
// `tls-cluster yes` a node opens its MIGRATE connections with TLS, to the port redis-cli names,
// which must then be a TLS port; over plaintext CLUSTER NODES lists the plaintext ones.
let tlsCa = null;

/** TLS for the redis-cli commands that follow (certificates from scripts/cluster/tls.js, or null). */
function useTls(certs) {
  tlsCa = certs ? certs.file('ca.crt') : null;
}

/** The port the client (and redis-cli) use for the node whose plaintext port is `port`. */
const tlsPort = (port) => (tlsCa ? port + TLS_OFFSET : port);

/** A node as redis-cli's cluster commands should name it. */
const cliAddr = (port) => `${HOST}:${tlsPort(port)}`;

function cli(args, timeoutMs) {
  return runRedisCli(ensureRedis().redisCli, tlsCa ? ['--tls', '--cacert', tlsCa, ...args] : args, timeoutMs);
}

/** `redis-cli --cluster check`: full coverage and no open slots, else throws with its output. */
async function check(port) {
  // eslint-disable-next-line no-control-regex
  const out = (await cli(['--cluster', 'check', cliAddr(port)])).replace(/\x1b\[[0-9;]*m/g, '');
  // Open slots and uncovered slots are reported as [WARNING] / [ERR] lines.
  if (!/\[OK\] All 16384 slots covered/.test(out) || /\[ERR\]|\[WARNING\]/.test(out)) {
    throw new Error(`redis-cli --cluster check ${port} is not clean:\n${out}`);
  }
  return out;
}

/**
 * A fresh 3-master / 3-replica cluster for one scenario (rebuilding is cheaper and more certain
 * than repairing one whose roles changed), checked clean by redis-cli.
 */
async function freshCluster(opts = {}) {
  const cluster = await startCluster(opts);
  try {
    await check(cluster.seeds[0].port);
  } catch (e) {
    await cluster.stop();
    throw e;
  }
  return cluster;
}

const nodeId = (port) => sendCommand(port, ['CLUSTER', 'MYID'], { timeoutMs: 2000 });

async function role(port) {
  const info = parseInfo(await sendCommand(port, ['INFO', 'replication'], { timeoutMs: 1000 }));
  return info;
}

/** Waits until the replica at `port` runs as a master (a failover's promotion). */
function promoted(port, timeout = 20000) {
  return until(async () => (await role(port)).role === 'master', { timeout, interval: 20, what: `replica ${port} promoted` });
}

/** Waits until the node at `port` runs as a replica with its link up (a healed old master). */
function backAsReplica(port, timeout = 20000) {
  return until(async () => {
    const r = await role(port);
    return r.role === 'slave' && r.master_link_status === 'up';
  }, { timeout, what: `${port} back as a replica` });
}

/** What the node at `port` says of the cluster: 'ok', or 'fail' while it refuses every key. */
async function clusterState(port, timeoutMs = 500) {
  return parseInfo(await sendCommand(port, ['CLUSTER', 'INFO'], { timeoutMs })).cluster_state;
}

/** Ports of the masters that own slots, sorted (majority view of the live nodes). */
async function masterPorts(cluster) {
  return (await cluster.masters()).map((m) => m.port).sort((a, b) => a - b);
}

/** Does `slot` fall in one of `ranges` ([[start, end], ...])? */
const inRanges = (ranges) => (slot) => ranges.some(([a, b]) => slot >= a && slot <= b);

/** Waits until every live node agrees, the map is complete and replicas are in sync. */
function healthy(cluster, timeoutMs = 30000, opts = {}) {
  return cluster.waitHealthy(timeoutMs, opts);
}

/** A replica's `master_link_status:up` and a `WAIT 1 5000` on its master from a side connection. */
async function replicasInSync(cluster, masterPort) {
  const replicas = (await cluster.masters()).find((m) => m.port === masterPort).replicas;
  await until(async () => {
    const infos = await Promise.all(replicas.map(role));
    return infos.every((i) => i.master_link_status === 'up');
  }, { timeout: 10000, what: `replicas of ${masterPort} in sync` });
  const acked = await sendCommand(masterPort, ['WAIT', '1', '5000'], { timeoutMs: 6000 });
  if (acked < 1) throw new Error(`WAIT 1 5000 on ${masterPort} answered ${acked}`);
}

function portFree(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host: HOST, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/**
 * Starts a 7th node (same flags) and joins it with `redis-cli --cluster add-node` as an empty
 * master; resolves with its port and id once every node knows it.
 */
async function addNode(cluster) {
  let port;
  for (let i = 0; i < 10 && !port; i++) {
    const p = await pickBasePort(1);
    if (await portFree(p)) port = p;
  }
  await cluster.spawnNode(port);
  await cli(['--cluster', 'add-node', cliAddr(port), cliAddr(cluster.seeds[0].port)]);
  const total = cluster.nodes.length;
  await until(async () => {
    const infos = await Promise.all(cluster.nodes.map((n) => sendCommand(n.port, ['CLUSTER', 'INFO'], { timeoutMs: 1000 })));
    return infos.every((i) => Number(parseInfo(i).cluster_known_nodes) === total);
  }, { timeout: 15000, what: `every node to know the new node ${port}` });
  return { port, id: await nodeId(port) };
}

/** `redis-cli --cluster reshard` of `slots` slots from `from` ('all' or ids) to node id `to`. */
function reshard(viaPort, { from = 'all', to, slots }) {
  return cli([
    '--cluster', 'reshard', cliAddr(viaPort),
    '--cluster-from', from, '--cluster-to', to, '--cluster-slots', String(slots), '--cluster-yes',
  ], 120000);
}

/** `redis-cli --cluster del-node`: forgets the (empty) node everywhere and resets it. */
function delNode(viaPort, id) {
  return cli(['--cluster', 'del-node', cliAddr(viaPort), id]);
}

module.exports = {
  HOST,
  useTls,
  tlsPort,
  until,
  at,
  cli,
  check,
  freshCluster,
  nodeId,
  role,
  promoted,
  backAsReplica,
  clusterState,
  masterPorts,
  inRanges,
  healthy,
  replicasInSync,
  addNode,
  reshard,
  delNode,
  sendCommand,
  parseInfo,
};
