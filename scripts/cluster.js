// Throwaway local Redis Cluster for the demo, the tests and developers: finds (or apt-installs)
// redis-server/redis-cli, starts N loopback `redis-server --daemonize no` children on free random
// ports under a per-run temp dir, creates the cluster with `redis-cli --cluster create`, waits
// until it is really healthy, offers fault helpers (kill/restart a node, live slot migration) and
// stops exactly the PIDs it started. No npm dependencies: a minimal RESP2 client is built in.
// Also a CLI: `node scripts/cluster.js start|stop|status` (state in <package root>/.cluster/).
'use strict';

const childProcess = require('child_process');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');

const HOST = '127.0.0.1';
const PACKAGE_ROOT = path.resolve(__dirname, '..');
const STATE_DIR = path.join(PACKAGE_ROOT, '.cluster');
const STATE_FILE = path.join(STATE_DIR, 'state.json');
const TMP_PREFIX = 'redis-clustr-native-';
const INSTALL_HINT = 'sudo apt-get install -y redis-server redis-tools';
const POLL_MS = 50;
const STOP_GRACE_MS = 5000;
const SLOT_COUNT = 16384;

// ---------------------------------------------------------------------------------------------
// Small utilities

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves true when `promise` settles within `ms`, else false; leaves no timer behind. */
function settlesWithin(promise, ms) {
  let timer;
  return Promise.race([
    promise.then(() => true),
    new Promise((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function which(cmd) {
  for (const d of (process.env.PATH || '').split(path.delimiter)) {
    if (!d) continue;
    const p = path.join(d, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch (_) {
      // not here
    }
  }
  return null;
}

/** Parses `key:value` lines of an INFO / CLUSTER INFO reply into an object. */
function parseInfo(text) {
  const out = {};
  for (const line of String(text).split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0 && line[0] !== '#') out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

/** Is `pid` a live (non-zombie) process? */
function pidAlive(pid) {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return e.code === 'EPERM';
  }
  try {
    // A zombie still answers kill(0); field 3 of /proc/<pid>/stat is its state.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch (_) {
    return true; // no /proc: trust kill(0)
  }
}

function pidCmdline(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch (_) {
    return null;
  }
}

function tail(file, lines = 15) {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch (_) {
    return '';
  }
}

// ---------------------------------------------------------------------------------------------
// Installing / locating Redis

let ensured = null;

/**
 * Makes sure `redis-server` and `redis-cli` (Redis >= 7.0) are on PATH. When either is missing
 * and the process runs as root, runs `apt-get update` and
 * `apt-get install -y redis-server redis-tools` with inherited stdio; when not root, throws an
 * Error whose message says to run `sudo apt-get install -y redis-server redis-tools`.
 * Synchronous; the result is memoised for the process.
 * @returns {{redisServer: string, redisCli: string, version: string}} absolute paths and version
 * @throws {Error} when Redis is missing and cannot be installed, or is older than 7.0
 */
function ensureRedis() {
  if (ensured) return ensured;
  let redisServer = which('redis-server');
  let redisCli = which('redis-cli');
  if (!redisServer || !redisCli) {
    const missing = [!redisServer && 'redis-server', !redisCli && 'redis-cli'].filter(Boolean);
    const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
    if (!isRoot || !which('apt-get')) {
      throw new Error(
        `${missing.join(' and ')} not found on PATH. Install Redis (>= 7.0) with:\n` +
          `  ${INSTALL_HINT}\n` +
          '(Debian/Ubuntu; elsewhere install Redis >= 7.0 so that redis-server and redis-cli are on PATH.)',
      );
    }
    console.error(`[cluster] ${missing.join(' and ')} missing; installing Debian's redis-server and redis-tools`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    try {
      childProcess.execFileSync('apt-get', ['update'], { stdio: 'inherit', env });
      childProcess.execFileSync('apt-get', ['install', '-y', 'redis-server', 'redis-tools'], { stdio: 'inherit', env });
    } catch (e) {
      throw new Error(`installing Redis with apt-get failed (${e.message}); install it yourself: ${INSTALL_HINT}`);
    }
    redisServer = which('redis-server');
    redisCli = which('redis-cli');
    if (!redisServer || !redisCli) {
      throw new Error(`apt-get finished but redis-server/redis-cli are still not on PATH; try: ${INSTALL_HINT}`);
    }
  }
  const out = childProcess.execFileSync(redisServer, ['--version'], { encoding: 'utf8' });
  const m = /v=(\d+)\.(\d+)\.(\d+)/.exec(out);
  const version = m ? `${m[1]}.${m[2]}.${m[3]}` : 'unknown';
  if (!m || Number(m[1]) < 7) {
    throw new Error(`redis-server ${version} found at ${redisServer}; Redis >= 7.0 is required (${INSTALL_HINT})`);
  }
  ensured = { redisServer, redisCli, version };
  return ensured;
}

// ---------------------------------------------------------------------------------------------
// Minimal RESP2 client (one connection per call; fine for harness polling)

/** An error reply (`-ERR ...`, `-MOVED ...`) from a Redis server. `code` is its first word. */
class ReplyError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ReplyError';
    this.code = message.split(' ', 1)[0];
  }
}

function encodeCommand(args) {
  const parts = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/**
 * Parses one RESP2 value at `pos`. Returns `{ value, pos }`, or `null` when `buf` ends first.
 * Error replies become ReplyError values (not thrown); bulk strings are utf8 strings unless
 * `buffers` is true.
 */
function parseReply(buf, pos, buffers, depth = 0) {
  if (depth > 64) throw new Error('RESP nesting too deep');
  if (pos >= buf.length) return null;
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[pos]);
  const line = buf.toString('utf8', pos + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+':
      return { value: line, pos: next };
    case '-':
      return { value: new ReplyError(line), pos: next };
    case ':': {
      if (!/^-?\d+$/.test(line)) throw new Error(`bad RESP integer ${JSON.stringify(line)}`);
      return { value: Number(line), pos: next };
    }
    case '$': {
      if (!/^-?\d+$/.test(line)) throw new Error(`bad RESP bulk length ${JSON.stringify(line)}`);
      const len = Number(line);
      if (len < 0) return { value: null, pos: next };
      if (buf.length < next + len + 2) return null;
      const raw = buf.subarray(next, next + len);
      return { value: buffers ? Buffer.from(raw) : raw.toString('utf8'), pos: next + len + 2 };
    }
    case '*': {
      if (!/^-?\d+$/.test(line)) throw new Error(`bad RESP array length ${JSON.stringify(line)}`);
      const n = Number(line);
      if (n < 0) return { value: null, pos: next };
      const arr = [];
      let p = next;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, p, buffers, depth + 1);
        if (!r) return null;
        arr.push(r.value);
        p = r.pos;
      }
      return { value: arr, pos: p };
    }
    default:
      throw new Error(`unexpected RESP type byte 0x${buf[pos].toString(16)}`);
  }
}

/**
 * Sends several commands on one fresh connection to `host:port` (pipelined) and resolves with
 * their replies in order. Error replies are ReplyError objects *in the array* (not rejected).
 * Rejects on connection errors, protocol errors, or when `timeoutMs` passes (code ETIMEDOUT).
 * @param {number} port
 * @param {Array<Array<string|number|Buffer>>} commands
 * @param {{host?: string, timeoutMs?: number, buffers?: boolean}} [opts]
 * @returns {Promise<any[]>}
 */
function pipeline(port, commands, { host = HOST, timeoutMs = 10000, buffers = false } = {}) {
  return new Promise((resolve, reject) => {
    const replies = [];
    let buf = Buffer.alloc(0);
    let done = false;
    const socket = net.createConnection({ host, port });
    const finish = (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(replies);
    };
    const timer = setTimeout(() => {
      const e = new Error(`timeout after ${timeoutMs} ms waiting for ${host}:${port}`);
      e.code = 'ETIMEDOUT';
      finish(e);
    }, timeoutMs);
    socket.setNoDelay(true);
    socket.on('connect', () => socket.write(Buffer.concat(commands.map(encodeCommand))));
    socket.on('data', (chunk) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      try {
        let r;
        while (replies.length < commands.length && (r = parseReply(buf, 0, buffers))) {
          replies.push(r.value);
          buf = buf.subarray(r.pos);
        }
      } catch (e) {
        finish(e);
        return;
      }
      if (replies.length === commands.length) finish(null);
    });
    socket.on('error', (e) => finish(e));
    socket.on('close', () => finish(new Error(`connection to ${host}:${port} closed before all replies arrived`)));
  });
}

/**
 * Sends one command to `host:port` on a fresh connection. Resolves with the parsed reply
 * (status → string, integer → number, bulk → string or Buffer, nil → null, array → array whose
 * nested error replies are ReplyError *values*). A top-level error reply REJECTS with a
 * ReplyError (`err.code` = 'ERR', 'MOVED', 'ASK', ...; `err.message` = the full line).
 * @param {number} port
 * @param {Array<string|number|Buffer>} args
 * @param {{host?: string, timeoutMs?: number, buffers?: boolean}} [opts]
 * @returns {Promise<any>}
 */
async function sendCommand(port, args, opts) {
  const [reply] = await pipeline(port, [args], opts);
  if (reply instanceof ReplyError) throw reply;
  return reply;
}

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

async function pickBasePort(count) {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20000 + Math.floor(Math.random() * (45000 - 20000 - count));
    const ports = [];
    for (let i = 0; i < count; i++) ports.push(base + i, base + i + 10000);
    if (ports.some((p) => FORBIDDEN_PORTS.has(p))) continue;
    const free = await Promise.all(ports.map(portFree));
    if (free.every(Boolean)) return base;
  }
  throw new Error(`no free block of ${count} ports (+10000 bus ports) found in 20000-44999`);
}

// ---------------------------------------------------------------------------------------------
// Process bookkeeping: kill every still-running child if this process dies

const liveChildren = new Set(); // ChildProcess
const ownedDirs = new Set(); // temp dirs of clusters not yet stopped
let hooksInstalled = false;

/** Synchronously SIGKILLs every child still running and removes the temp dirs we created. */
function cleanupSync() {
  for (const child of liveChildren) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch (_) {
      // already gone
    }
  }
  liveChildren.clear();
  for (const d of ownedDirs) {
    try {
      fs.rmSync(d, { recursive: true, force: true });
    } catch (_) {
      // a dying server may still be writing; best effort
    }
  }
  ownedDirs.clear();
}

function installExitHooks() {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', cleanupSync);
  // 'exit' does not run when a signal kills the process. If nobody else handles the signal,
  // kill our servers and re-raise it so the default behaviour (terminate) still happens.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    const handler = () => {
      if (process.listenerCount(sig) > 1) return; // someone else decides; 'exit' still covers us
      cleanupSync();
      process.removeListener(sig, handler);
      process.kill(process.pid, sig);
    };
    process.on(sig, handler);
  }
}

// ---------------------------------------------------------------------------------------------
// The cluster object

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
      ...this._extraArgs.map(String),
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
 * @param {string[]} [opts.extraArgs=[]] extra redis-server arguments (e.g. ['--appendonly', 'yes'])
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
      const base = await pickBasePort(total);
      try {
        for (let i = 0; i < total; i++) cluster._spawn(base + i);
        const deadline = Date.now() + 10000;
        await Promise.all(cluster.nodes.map((n) => cluster._waitReady(n.port, deadline)));
        break;
      } catch (e) {
        if (!e.portConflict || attempt >= 5) throw e;
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

// ---------------------------------------------------------------------------------------------
// migrateSlot

/**
 * Moves one slot live, the way `redis-cli --cluster reshard` does: `CLUSTER SETSLOT <slot>
 * IMPORTING <fromId>` on the target, `... MIGRATING <toId>` on the source, then
 * `CLUSTER GETKEYSINSLOT <slot> 100` + `MIGRATE 127.0.0.1 <toPort> "" 0 5000 KEYS ...` until the
 * slot is empty, then `CLUSTER SETSLOT <slot> NODE <toId>` on the target, the source and every
 * other master (a node that answers "Please use SETSLOT only with masters" is skipped, as in
 * redis-cli). Node ids come from CLUSTER MYID. `onStep(name, info)` is awaited after each step,
 * so a test can issue traffic while the slot is half-moved. Step names, in order:
 * 'importing', 'migrating', 'batch' (after each MIGRATE; info.keys = keys moved so far),
 * 'migrated', 'node-target', 'node-source', 'node-all'.
 * @param {LocalCluster} cluster the cluster the ports belong to (commands go straight to
 *   127.0.0.1:<port> on fresh connections, so any object is accepted)
 * @param {number} slot 0..16383
 * @param {number} fromPort current owner (master)
 * @param {number} toPort new owner (master)
 * @param {{onStep?: (name: string, info: {slot: number, keys: number}) => any}} [opts]
 * @returns {Promise<{slot: number, fromId: string, toId: string, keys: number}>}
 */
async function migrateSlot(cluster, slot, fromPort, toPort, { onStep } = {}) {
  if (!Number.isInteger(slot) || slot < 0 || slot >= SLOT_COUNT) throw new Error(`bad slot ${slot}`);
  let keys = 0;
  const step = async (name) => {
    if (onStep) await onStep(name, { slot, keys });
  };
  const [fromId, toId] = await Promise.all([
    sendCommand(fromPort, ['CLUSTER', 'MYID']),
    sendCommand(toPort, ['CLUSTER', 'MYID']),
  ]);
  await sendCommand(toPort, ['CLUSTER', 'SETSLOT', slot, 'IMPORTING', fromId]);
  await step('importing');
  await sendCommand(fromPort, ['CLUSTER', 'SETSLOT', slot, 'MIGRATING', toId]);
  await step('migrating');
  for (;;) {
    const batch = await sendCommand(fromPort, ['CLUSTER', 'GETKEYSINSLOT', slot, 100], { buffers: true });
    if (batch.length === 0) break;
    await sendCommand(fromPort, ['MIGRATE', HOST, toPort, '', 0, 5000, 'KEYS', ...batch]);
    keys += batch.length;
    await step('batch');
  }
  await step('migrated');
  const tolerate = (e) => {
    if (!(e instanceof ReplyError) || !/only with masters/i.test(e.message)) throw e;
  };
  await sendCommand(toPort, ['CLUSTER', 'SETSLOT', slot, 'NODE', toId]);
  await step('node-target');
  await sendCommand(fromPort, ['CLUSTER', 'SETSLOT', slot, 'NODE', toId]).catch(tolerate);
  await step('node-source');
  const nodesText = await sendCommand(toPort, ['CLUSTER', 'NODES']);
  const others = [];
  for (const line of nodesText.split('\n')) {
    const f = line.split(' ');
    if (f.length < 8 || !/(^|,)master(,|$)/.test(f[2]) || /fail|noaddr|handshake/.test(f[2])) continue;
    const port = Number(f[1].split('@')[0].split(':').pop());
    if (port && port !== fromPort && port !== toPort) others.push(port);
  }
  await Promise.all(others.map((p) => sendCommand(p, ['CLUSTER', 'SETSLOT', slot, 'NODE', toId]).catch(tolerate)));
  await step('node-all');
  return { slot, fromId, toId, keys };
}

// ---------------------------------------------------------------------------------------------
// CLI

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

async function cli(argv) {
  const [cmd, ...rest] = argv;
  const rel = path.relative(process.cwd(), __filename) || __filename;
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

if (require.main === module) {
  cli(process.argv.slice(2)).catch((e) => {
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
