// The `node scripts/cluster.js start|stop|status` CLI: starts a detached cluster and records it in
// <package root>/.cluster/state.json, reports its nodes, and stops exactly the recorded PIDs.
'use strict';

const fs = require('fs');
const path = require('path');
const { HOST, TMP_PREFIX, POLL_MS, STOP_GRACE_MS, sleep, pidAlive, pidCmdline } = require('./util');
const { pipeline, parseInfo } = require('./resp');
const { startCluster } = require('./start-cluster');

const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');
const STATE_DIR = path.join(PACKAGE_ROOT, '.cluster');
const STATE_FILE = path.join(STATE_DIR, 'state.json');

function readState() {
  try {
    return JSON.parse(fs.readFileSync(STATE_FILE, 'utf8'));
  } catch (_) {
    return null;
  }
}

/**
 * Is the state file's pid still our redis-server? Its /proc cmdline must mention redis-server
 * and, since redis-server retitles itself "redis-server 127.0.0.1:<port> [cluster]", the port.
 */
function ownedPid(node) {
  const cmd = pidCmdline(node.pid);
  return !!cmd && cmd.includes('redis-server') && cmd.includes(`:${node.port}`) && pidAlive(node.pid);
}

async function cliStop(state) {
  const owned = state.nodes.filter(ownedPid);
  for (const n of state.nodes) {
    if (!owned.includes(n)) console.log(`  pid ${n.pid} (port ${n.port}) is not running (or no longer redis-server); skipped`);
  }
  const signalAll = (list, sig) => {
    for (const n of list) {
      try {
        process.kill(n.pid, sig);
      } catch (_) {
        // gone
      }
    }
  };
  const waitGone = async (list, ms) => {
    const deadline = Date.now() + ms;
    while (list.some((n) => pidAlive(n.pid)) && Date.now() < deadline) await sleep(POLL_MS);
    return list.filter((n) => pidAlive(n.pid));
  };
  signalAll(owned, 'SIGTERM');
  signalAll(owned, 'SIGCONT');
  let left = await waitGone(owned, STOP_GRACE_MS);
  if (left.length) {
    signalAll(left, 'SIGKILL');
    left = await waitGone(left, STOP_GRACE_MS);
  }
  if (left.length) throw new Error(`pids still alive after SIGKILL: ${left.map((n) => n.pid).join(' ')}`);
  if (state.ownsDir && state.dir && path.basename(state.dir).startsWith(TMP_PREFIX)) {
    fs.rmSync(state.dir, { recursive: true, force: true });
  }
  fs.rmSync(STATE_FILE, { force: true });
  try {
    fs.rmdirSync(STATE_DIR);
  } catch (_) {
    // not empty or gone
  }
  return owned.length;
}

async function cliStatus(state) {
  console.log(`Cluster in ${state.dir} (started ${state.startedAt}):`);
  for (const n of state.nodes) {
    let role = '-';
    let cstate = '-';
    const alive = ownedPid(n);
    if (alive) {
      try {
        const [repl, cinfo] = await pipeline(n.port, [['INFO', 'replication'], ['CLUSTER', 'INFO']], { timeoutMs: 2000 });
        role = parseInfo(repl).role === 'slave' ? 'replica' : parseInfo(repl).role || '?';
        cstate = parseInfo(cinfo).cluster_state || '?';
      } catch (e) {
        role = `unreachable (${e.code || e.message})`;
      }
    }
    console.log(`  ${HOST}:${n.port}  pid ${n.pid}  ${alive ? 'running' : 'NOT RUNNING'}  role ${role}  cluster_state ${cstate}`);
  }
}

function parseCliOptions(argv) {
  const opts = {};
  for (let i = 0; i < argv.length; i++) {
    const m = /^--(masters|replicas|node-timeout)(?:=(.*))?$/.exec(argv[i]);
    if (!m) throw new Error(`unknown option ${argv[i]}`);
    const v = Number(m[2] !== undefined ? m[2] : argv[++i]);
    if (m[1] === 'masters') opts.masters = v;
    else if (m[1] === 'replicas') opts.replicas = v;
    else opts.nodeTimeout = v;
  }
  return opts;
}

/**
 * Runs the CLI. `entryFile` is the script the user ran (scripts/cluster.js), named in usage hints.
 * @param {string[]} argv arguments after the script name
 * @param {string} entryFile
 */
async function cli(argv, entryFile) {
  const [cmd, ...rest] = argv;
  const rel = path.relative(process.cwd(), entryFile) || entryFile;
  const state = readState();
  const running = state && Array.isArray(state.nodes) && state.nodes.some(ownedPid);
  if (cmd === 'start') {
    if (running) {
      console.log(`A cluster is already running (seed ${HOST}:${state.nodes[0].port}); stop it first: node ${rel} stop`);
      process.exitCode = 1;
      return;
    }
    if (state) await cliStop(state); // stale state: clean up leftovers
    const t0 = Date.now();
    const cluster = await startCluster({ ...parseCliOptions(rest), detached: true });
    fs.mkdirSync(STATE_DIR, { recursive: true });
    const data = {
      startedAt: new Date().toISOString(),
      dir: cluster.dir,
      ownsDir: cluster._ownsDir,
      nodes: cluster.nodes,
      seeds: cluster.seeds,
    };
    fs.writeFileSync(STATE_FILE, `${JSON.stringify(data, null, 2)}\n`);
    const ports = cluster.nodes.map((n) => n.port);
    console.log(`Redis Cluster started in ${Date.now() - t0} ms: ${ports.length} nodes on ${HOST}:${ports[0]}-${ports[ports.length - 1]}`);
    console.log(`Seed: ${HOST}:${ports[0]}   (e.g. redis-cli -c -p ${ports[0]})`);
    console.log(`Data and logs: ${cluster.dir}`);
    console.log(`State: ${path.relative(process.cwd(), STATE_FILE)}`);
    console.log(`Stop it with: node ${rel} stop`);
  } else if (cmd === 'stop') {
    if (!state) {
      console.log('No cluster is running (no state file).');
      return;
    }
    const t0 = Date.now();
    const n = await cliStop(state);
    console.log(`Stopped ${n} redis-server process(es) in ${Date.now() - t0} ms; removed ${state.dir}`);
  } else if (cmd === 'status') {
    if (!running) {
      console.log(state ? 'No cluster is running (stale state file; `stop` cleans it up).' : 'No cluster is running.');
      return;
    }
    await cliStatus(state);
  } else {
    console.error(`usage: node ${rel} start [--masters N] [--replicas N] [--node-timeout MS] | stop | status`);
    process.exitCode = 2;
  }
}

module.exports = { cli };
