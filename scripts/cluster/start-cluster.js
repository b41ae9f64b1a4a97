// startCluster(): picks a free random port block, spawns the nodes of a LocalCluster, creates the
// cluster with `redis-cli --cluster create` and waits until it is fully healthy.
'use strict';

const childProcess = require('child_process');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const { HOST, TMP_PREFIX } = require('./util');
const { ensureRedis } = require('./install');
const { sendCommand } = require('./resp');
const { liveChildren, ownedDirs, installExitHooks } = require('./exit-cleanup');
const { LocalCluster } = require('./local-cluster');

// ---------------------------------------------------------------------------------------------
// Ports

function portFree(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host: HOST, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

const FORBIDDEN_PORTS = new Set([6379, 7001, 7002, 7003, 7004, 7005, 7006]);

// `offsets`: the other ports each node listens on, relative to its port (the bus at +10000, a
// TLS port a caller adds through extraArgs).
async function pickBasePort(count, offsets = [10000]) {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20000 + Math.floor(Math.random() * (45000 - 20000 - count));
    const ports = [];
    for (let i = 0; i < count; i++) ports.push(base + i, ...offsets.map((o) => base + i + o));
    if (ports.some((p) => FORBIDDEN_PORTS.has(p))) continue;
    const free = await Promise.all(ports.map(portFree));
    if (free.every(Boolean)) return base;
  }
  throw new Error(`no free block of ${count} ports (+10000 bus ports) found in 20000-44999`);
}

// ---------------------------------------------------------------------------------------------
// startCluster

/**
 * Starts a throwaway Redis Cluster on loopback: `masters * (1 + replicas)` redis-server
 * children (`--daemonize no`, ports P..P+n-1 with bus ports P+10000.. all checked free, random
 * base in 20000-44999), `redis-cli --cluster create ... --cluster-replicas <replicas>
 * --cluster-yes`, then waits (30 s) until every node reports cluster_state:ok, all agree on
 * CLUSTER SLOTS, and every replica's link is up. Calls ensureRedis() first. On failure it stops
 * whatever it started and rethrows. Children are SIGKILLed if this process exits without stop().
 * @param {object} [opts]
 * @param {number} [opts.masters=3] at least 3 (redis-cli's minimum)
 * @param {number} [opts.replicas=1] replicas per master
 * @param {string} [opts.dir] root dir for node dirs/logs (default: a fresh mkdtemp under os.tmpdir())
 * @param {number} [opts.nodeTimeout=2000] cluster-node-timeout in ms
 * @param {string[]|function(number): string[]} [opts.extraArgs=[]] extra redis-server arguments
 *   (e.g. ['--appendonly', 'yes']), or a function of the node's port returning them (per-node
 *   values such as `--tls-port`)
 * @param {number[]} [opts.portOffsets=[10000]] every port a node listens on besides its own,
 *   relative to it, checked free with it: the bus port, and any port extraArgs adds (TLS)
 * @param {boolean} [opts.detached=false] CLI use: detach + unref the servers so they outlive us
 * @returns {Promise<LocalCluster>} see LocalCluster: nodes, seeds, dir, command(), masters(),
 *   waitHealthy(), killNode(), restartNode(), stop()
 */
async function startCluster({
  masters = 3,
  replicas = 1,
  dir,
  nodeTimeout = 2000,
  extraArgs = [],
  portOffsets = [10000],
  detached = false,
} = {}) {
  if (!Number.isInteger(masters) || masters < 3) throw new Error('startCluster: masters must be an integer >= 3');
  if (!Number.isInteger(replicas) || replicas < 0) throw new Error('startCluster: replicas must be an integer >= 0');
  const redis = ensureRedis();
  installExitHooks();
  const total = masters * (1 + replicas);
  let root = dir;
  let ownsDir = false;
  if (root) {
    ownsDir = !fs.existsSync(root);
    fs.mkdirSync(root, { recursive: true });
  } else {
    root = fs.mkdtempSync(path.join(os.tmpdir(), TMP_PREFIX));
    ownsDir = true;
  }
  if (ownsDir) ownedDirs.add(root);
  let cluster = new LocalCluster({ dir: root, ownsDir, nodeTimeout, extraArgs, detached, redis });
  try {
    for (let attempt = 1; ; attempt++) {
      const base = await pickBasePort(total, portOffsets);
      try {
        for (let i = 0; i < total; i++) cluster._spawn(base + i);
        const deadline = Date.now() + 10000;
        await Promise.all(cluster.nodes.map((n) => cluster._waitReady(n.port, deadline)));
        break;
      } catch (e) {
        if (!e.portConflict || attempt >= 5) {
          if (e.portConflict) e.message += `\n(a port was taken on each of ${attempt} attempts)`;
          throw e;
        }
        // Someone grabbed a port between our check and redis' bind: start over elsewhere.
        const failed = cluster;
        failed._ownsDir = false; // remove only its per-port subdirs, keep the root
        await failed.stop();
        cluster = new LocalCluster({ dir: root, ownsDir, nodeTimeout, extraArgs, detached, redis });
      }
    }
    const addrs = cluster.nodes.map((n) => `${HOST}:${n.port}`);
    await runRedisCli(redis.redisCli, [
      '--cluster', 'create', ...addrs, '--cluster-replicas', String(replicas), '--cluster-yes',
    ]);
    const expect = { masters, replicas: masters * replicas, known: total };
    await cluster.waitHealthy(30000, { expect });
    // Redis 7.0 leaves a replica out of CLUSTER SLOTS until its replication offset is > 0, which
    // on an idle cluster happens at the first replication PING (10 s). One propagated write per
    // master (FLUSHALL of the still-empty keyspace) makes the offsets move now; then wait until
    // every node lists every replica, so tests see the full topology from the start.
    const current = await cluster.masters();
    await Promise.all(current.map((m) => sendCommand(m.port, ['FLUSHALL'])));
    await cluster.waitHealthy(30000, { expect: { ...expect, listedReplicas: replicas } });
    if (detached) {
      // CLI mode: the servers and their dir outlive this process (`stop` removes them).
      for (const rec of cluster._procs.values()) liveChildren.delete(rec.child);
      ownedDirs.delete(root);
    }
    return cluster;
  } catch (e) {
    await cluster.stop().catch(() => {});
    throw e;
  }
}

function runRedisCli(cli, args, timeoutMs = 60000) {
  return new Promise((resolve, reject) => {
    const child = childProcess.spawn(cli, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`redis-cli ${args.slice(0, 2).join(' ')} failed (${code ?? signal}):\n${out.trim().split('\n').slice(-20).join('\n')}`));
    });
  });
}

// pickBasePort and runRedisCli are also used by the fault harness (faults/cluster.js) to add a
// node to a running cluster and to run `redis-cli --cluster reshard|add-node|del-node|check`.
module.exports = { startCluster, pickBasePort, runRedisCli };
