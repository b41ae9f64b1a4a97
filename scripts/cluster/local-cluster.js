// The LocalCluster object: spawning one redis-server per port and waiting until it answers, ad-hoc
// commands, the current masters, health probing (waitHealthy), fault helpers (killNode,
// restartNode) and stopping exactly the processes it started.
'use strict';

const childProcess = require('child_process');
const fs = require('fs');
const path = require('path');
const { HOST, POLL_MS, STOP_GRACE_MS, SLOT_COUNT, sleep, settlesWithin, pidAlive, tail } = require('./util');
const { ReplyError, pipeline, sendCommand, parseInfo } = require('./resp');
const { liveChildren, ownedDirs } = require('./exit-cleanup');

/** A running throwaway cluster; created by startCluster(). */
class LocalCluster {
  constructor({ dir, ownsDir, nodeTimeout, extraArgs, detached, redis }) {
    /** @type {Array<{host: string, port: number, pid: number}>} */
    this.nodes = [];
    /** @type {Array<{host: string, port: number}>} */
    this.seeds = [];
    /** Root temp dir; each node uses `<dir>/<port>`. */
    this.dir = dir;
    this._ownsDir = ownsDir;
    this._nodeTimeout = nodeTimeout;
    this._extraArgs = extraArgs;
    this._detached = detached;
    this._redis = redis;
    /** port -> { child, pid, stopped (SIGSTOPped), exited, exitPromise } */
    this._procs = new Map();
    this._stopping = null;
  }

  _serverArgs(port) {
    const nodeDir = path.join(this.dir, String(port));
    return [
      '--daemonize', 'no',
      '--bind', HOST,
      '--port', String(port),
      '--cluster-enabled', 'yes',
      '--cluster-config-file', `nodes-${port}.conf`,
      '--dir', nodeDir,
      '--logfile', path.join(nodeDir, 'redis.log'),
      '--save', '',
      '--appendonly', 'no',
      '--cluster-node-timeout', String(this._nodeTimeout),
      '--enable-debug-command', 'local',
      '--cluster-allow-replica-migration', 'no',
      // Not in RELIABILITY.md's list: the 7.0 default (5 s) delays every replica's first sync by
      // 5 s, which more than triples the start time. Overridable via extraArgs.
      '--repl-diskless-sync-delay', '0',
      // A function gives per-node arguments (e.g. a TLS port derived from `port`).
      ...(typeof this._extraArgs === 'function' ? this._extraArgs(port) : this._extraArgs).map(String),
    ];
  }

  _spawn(port) {
    const nodeDir = path.join(this.dir, String(port));
    fs.mkdirSync(nodeDir, { recursive: true });
    // stdin/stdout ignored; stderr goes to a file (not a pipe: nothing to drain, nothing keeps our
    // event loop alive) because config errors are printed there before the logfile is opened.
    const errFd = fs.openSync(path.join(nodeDir, 'stderr.log'), 'a');
    let child;
    try {
      child = childProcess.spawn(this._redis.redisServer, this._serverArgs(port), {
        stdio: ['ignore', 'ignore', errFd],
        detached: this._detached,
      });
    } finally {
      fs.closeSync(errFd);
    }
    const rec = { child, pid: child.pid, stopped: false, exited: false, spawnError: null };
    rec.exitPromise = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        rec.exited = true;
        rec.exitInfo = { code, signal };
        liveChildren.delete(child);
        resolve();
      });
    });
    child.once('error', (e) => {
      rec.spawnError = e;
      if (!child.pid) {
        rec.exited = true;
        liveChildren.delete(child);
      }
    });
    if (child.pid) liveChildren.add(child);
    if (this._detached) child.unref();
    this._procs.set(port, rec);
    const existing = this.nodes.find((n) => n.port === port);
    if (existing) existing.pid = child.pid;
    else {
      this.nodes.push({ host: HOST, port, pid: child.pid });
      this.seeds.push({ host: HOST, port });
    }
    return rec;
  }

  _alive(port) {
    const rec = this._procs.get(port);
    return !!rec && !rec.exited && !!rec.pid;
  }

  /** Waits until `port` answers PING and is served by the pid we spawned. */
  async _waitReady(port, deadline) {
    const rec = this._procs.get(port);
    const logFile = path.join(this.dir, String(port), 'redis.log');
    for (;;) {
      if (rec.spawnError) throw rec.spawnError;
      if (rec.exited) {
        const log = `${tail(path.join(this.dir, String(port), 'stderr.log'), 5)}\n${tail(logFile)}`.trim();
        const err = new Error(`redis-server on port ${port} exited (${JSON.stringify(rec.exitInfo)}) while starting:\n${log}`);
        err.portConflict = /Address already in use|Could not create server TCP listening socket/i.test(log);
        throw err;
      }
      try {
        const [pong, info] = await pipeline(port, [['PING'], ['INFO', 'server']], { timeoutMs: 1000 });
        if (pong === 'PONG') {
          const pid = Number(parseInfo(info).process_id);
          if (pid === rec.pid) return;
          const err = new Error(`port ${port} is served by pid ${pid}, not by our redis-server ${rec.pid}`);
          err.portConflict = true;
          throw err;
        }
      } catch (e) {
        if (e.portConflict) throw e;
        // not listening yet
      }
      if (Date.now() > deadline) {
        throw new Error(`redis-server on port ${port} did not answer PING in time:\n${tail(logFile)}`);
      }
      await sleep(POLL_MS);
    }
  }

  /**
   * One-shot command to the node on `port` (fresh connection, 10 s timeout). Resolves with the
   * parsed reply; an error reply (`-ERR`, `-MOVED`, ...) REJECTS with a ReplyError whose `code`
   * is the reply's first word. Error replies nested in arrays (e.g. EXEC) stay ReplyError values.
   * @param {number} port
   * @param {...(string|number|Buffer)} args
   * @returns {Promise<any>}
   */
  command(port, ...args) {
    return sendCommand(port, args);
  }

  /**
   * Current masters according to the view most live nodes agree on (CLUSTER SLOTS), sorted by
   * port: `[{ host, port, id, slots: [[start, end], ...], replicas: [port, ...] }]`.
   * @returns {Promise<Array<{host: string, port: number, id: string, slots: number[][], replicas: number[]}>>}
   */
  async masters() {
    const views = await Promise.all(
      this._livePorts().map((p) => sendCommand(p, ['CLUSTER', 'SLOTS'], { timeoutMs: 2000 }).catch(() => null)),
    );
    const counts = new Map();
    for (const v of views) {
      if (!Array.isArray(v) || v.length === 0) continue; // never adopt an empty map
      const key = normaliseSlots(v);
      const c = counts.get(key) || { n: 0, view: v };
      c.n++;
      counts.set(key, c);
    }
    if (counts.size === 0) throw new Error('no live node returned a CLUSTER SLOTS map');
    const best = [...counts.values()].sort((a, b) => b.n - a.n)[0].view;
    const byPort = new Map();
    for (const [start, end, master, ...replicas] of best) {
      const port = Number(master[1]);
      let m = byPort.get(port);
      if (!m) {
        m = { host: master[0] || HOST, port, id: master[2], slots: [], replicas: [] };
        byPort.set(port, m);
      }
      m.slots.push([start, end]);
      for (const r of replicas) if (!m.replicas.includes(Number(r[1]))) m.replicas.push(Number(r[1]));
    }
    const out = [...byPort.values()].sort((a, b) => a.port - b.port);
    for (const m of out) {
      m.slots.sort((a, b) => a[0] - b[0]);
      m.replicas.sort((a, b) => a - b);
    }
    return out;
  }

  _livePorts(exclude = []) {
    return this.nodes
      .map((n) => n.port)
      .filter((p) => this._alive(p) && !this._procs.get(p).stopped && !exclude.includes(p));
  }

  /** One health probe; resolves with null when healthy, else with a reason string. */
  async _probe({ exclude = [], expect = null } = {}) {
    const ports = this._livePorts(exclude);
    if (ports.length === 0) return 'no live nodes';
    let results;
    try {
      results = await Promise.all(
        ports.map((p) =>
          pipeline(p, [['CLUSTER', 'INFO'], ['CLUSTER', 'SLOTS'], ['INFO', 'replication'], ['CLUSTER', 'NODES']], {
            timeoutMs: 1000,
          }),
        ),
      );
    } catch (e) {
      return `probe failed: ${e.message}`;
    }
    let refSlots = null;
    let refPort = 0;
    let replicaCount = 0;
    for (let i = 0; i < ports.length; i++) {
      const port = ports[i];
      const [cinfo, slots, repl, nodesText] = results[i];
      for (const r of results[i]) if (r instanceof ReplyError) return `node ${port}: ${r.message}`;
      const ci = parseInfo(cinfo);
      if (ci.cluster_state !== 'ok') return `node ${port}: cluster_state:${ci.cluster_state}`;
      if (expect && Number(ci.cluster_known_nodes) !== expect.known) {
        return `node ${port}: cluster_known_nodes:${ci.cluster_known_nodes}, want ${expect.known}`;
      }
      if (/\[\d+-[<>]-/.test(nodesText)) return `node ${port}: has open (importing/migrating) slots`;
      const norm = normaliseSlots(slots);
      if (refSlots === null) {
        refSlots = norm;
        refPort = port;
        const covered = slots.reduce((s, r) => s + (r[1] - r[0] + 1), 0);
        if (covered !== SLOT_COUNT) return `node ${port}: CLUSTER SLOTS covers ${covered} slots`;
        if (expect) {
          const nMasters = new Set(slots.map((r) => r[2][1])).size;
          if (nMasters !== expect.masters) return `node ${port}: ${nMasters} masters own slots, want ${expect.masters}`;
        }
      } else if (norm !== refSlots) {
        return `nodes ${refPort} and ${port} disagree on CLUSTER SLOTS`;
      }
      if (expect && expect.listedReplicas !== undefined) {
        const r = slots.find((range) => range.length - 3 !== expect.listedReplicas);
        if (r) return `node ${port}: CLUSTER SLOTS lists ${r.length - 3} replicas for ${r[0]}-${r[1]}`;
      }
      const ri = parseInfo(repl);
      if (ri.role === 'slave') {
        replicaCount++;
        if (ri.master_link_status !== 'up') return `replica ${port}: master_link_status:${ri.master_link_status}`;
        if (ri.master_sync_in_progress === '1') return `replica ${port}: sync in progress`;
      }
    }
    if (expect && replicaCount !== expect.replicas) return `${replicaCount} replicas up, want ${expect.replicas}`;
    return null;
  }

  /**
   * Polls (every 50 ms, until `timeoutMs`) until every live, non-SIGSTOPped node not in
   * `exclude` reports cluster_state:ok and no open slots, all of them return the same masters
   * per slot range in CLUSTER SLOTS covering all 16384 slots, and every replica reports
   * master_link_status:up. Rejects with the last reason when the deadline passes.
   * @param {number} [timeoutMs=30000]
   * @param {{exclude?: number[]}} [opts] ports to ignore (e.g. a node removed with del-node)
   * @returns {Promise<{ms: number}>} time it took
   */
  async waitHealthy(timeoutMs = 30000, { exclude = [], expect = null } = {}) {
    const t0 = Date.now();
    const deadline = t0 + timeoutMs;
    let reason;
    for (;;) {
      reason = await this._probe({ exclude, expect });
      if (reason === null) return { ms: Date.now() - t0 };
      if (Date.now() > deadline) break;
      await sleep(POLL_MS);
    }
    throw new Error(`cluster not healthy after ${timeoutMs} ms: ${reason}`);
  }

  /**
   * Sends `signal` (default SIGKILL) to the redis-server on `port`. For terminating signals it
   * resolves once the process has exited (rejects after 10 s); SIGSTOP marks the node paused
   * (waitHealthy and masters() skip it) and SIGCONT un-marks it.
   * @param {number} port
   * @param {NodeJS.Signals} [signal='SIGKILL']
   * @returns {Promise<{port: number, pid: number}>}
   */
  async killNode(port, signal = 'SIGKILL') {
    const rec = this._procs.get(port);
    if (!rec) throw new Error(`no node on port ${port} in this cluster`);
    if (rec.exited) throw new Error(`node ${port} (pid ${rec.pid}) is not running`);
    process.kill(rec.pid, signal);
    if (signal === 'SIGSTOP' || signal === 'SIGTSTP') rec.stopped = true;
    else if (signal === 'SIGCONT') rec.stopped = false;
    else if (signal !== 0 && signal !== 'SIGUSR1' && signal !== 'SIGUSR2') {
      if (rec.stopped) process.kill(rec.pid, 'SIGCONT');
      const ok = await settlesWithin(rec.exitPromise, 10000);
      if (!ok) throw new Error(`node ${port} (pid ${rec.pid}) did not exit within 10 s of ${signal}`);
    }
    return { port, pid: rec.pid };
  }

  /**
   * Starts one more redis-server on `port` (which the caller found free, bus port included) with
   * the same arguments as the others, and resolves when it answers PING. It is not part of the
   * cluster until someone runs `redis-cli --cluster add-node` (or CLUSTER MEET); stop() stops it.
   * @param {number} port
   * @returns {Promise<{host: string, port: number, pid: number}>}
   */
  async spawnNode(port) {
    if (this._procs.has(port)) throw new Error(`port ${port} already belongs to this cluster`);
    if (this._stopping) throw new Error('cluster is stopped');
    this._spawn(port);
    await this._waitReady(port, Date.now() + 10000);
    return this.nodes.find((n) => n.port === port);
  }

  /**
   * Starts the (exited) node on `port` again with the same arguments and directory, so it keeps
   * its nodes-<port>.conf and rejoins the cluster. Resolves when it answers PING; does not wait
   * for the cluster to be healthy (use waitHealthy).
   * @param {number} port
   * @returns {Promise<{host: string, port: number, pid: number}>}
   */
  async restartNode(port) {
    if (!this._procs.has(port)) throw new Error(`no node on port ${port} in this cluster`);
    if (this._alive(port)) throw new Error(`node ${port} is still running`);
    if (this._stopping) throw new Error('cluster is stopped');
    this._spawn(port);
    await this._waitReady(port, Date.now() + 10000);
    return this.nodes.find((n) => n.port === port);
  }

  /**
   * Stops every redis-server this object started: SIGTERM (plus SIGCONT for paused ones), SIGKILL
   * after 5 s for any still alive, waits for them to exit, then removes the temp dir (only if
   * startCluster created it; otherwise only the per-port subdirectories). Idempotent.
   * @returns {Promise<void>}
   */
  stop() {
    if (!this._stopping) this._stopping = this._stop();
    return this._stopping;
  }

  async _stop() {
    const recs = [...this._procs.values()];
    const waitAll = (list, ms) => settlesWithin(Promise.all(list.map((r) => r.exitPromise)), ms);
    const sig = (rec, s) => {
      try {
        if (!rec.exited && rec.pid) process.kill(rec.pid, s);
      } catch (_) {
        // gone already
      }
    };
    for (const r of recs) {
      sig(r, 'SIGTERM');
      sig(r, 'SIGCONT'); // a SIGSTOPped process only acts on SIGTERM once continued
    }
    await waitAll(recs.filter((r) => !r.exited), STOP_GRACE_MS);
    const stubborn = recs.filter((r) => !r.exited);
    for (const r of stubborn) sig(r, 'SIGKILL');
    await waitAll(stubborn, STOP_GRACE_MS);
    for (const r of recs) {
      if (!r.exited && r.pid && this._detached) {
        // Detached + unref'd children may never report 'exit' to us; poll the pid instead.
        const deadline = Date.now() + STOP_GRACE_MS;
        while (pidAlive(r.pid) && Date.now() < deadline) await sleep(POLL_MS);
      }
      liveChildren.delete(r.child);
    }
    if (this._ownsDir) {
      fs.rmSync(this.dir, { recursive: true, force: true });
      ownedDirs.delete(this.dir);
    } else {
      for (const port of this._procs.keys()) {
        fs.rmSync(path.join(this.dir, String(port)), { recursive: true, force: true });
      }
    }
  }
}

/** Canonical "start-end@masterport" list of a CLUSTER SLOTS reply, for comparing views. */
function normaliseSlots(slots) {
  if (!Array.isArray(slots)) return String(slots);
  return slots
    .map((r) => [r[0], r[1], Array.isArray(r[2]) ? r[2][1] : '?'])
    .sort((a, b) => a[0] - b[0])
    .map(([s, e, p]) => `${s}-${e}@${p}`)
    .join(',');
}

module.exports = { LocalCluster };
