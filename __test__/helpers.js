// Shared test plumbing: the seeds of the cluster `npm test` started (or a cluster of our own when a
// suite is run alone with `node --test __test__/x.test.js`), a client factory that always quits
// what it made, and promise helpers that wait for conditions with a deadline instead of sleeping.
'use strict';

const { startCluster } = require('../scripts/cluster');
const RedisClustr = require('..');

let own = null;

/** The cluster under test: `{seeds, command(port, ...args), masters()}`. */
async function cluster() {
  if (process.env.REDIS_CLUSTR_SEEDS && !own) {
    const seeds = JSON.parse(process.env.REDIS_CLUSTR_SEEDS);
    const { sendCommand, LocalCluster } = require('../scripts/cluster');
    // LocalCluster's read-only probes (masters, waitHealthy) only need the live ports; every seed
    // of the shared cluster counts as live (this process cannot kill them).
    const view = {
      nodes: seeds.map((s) => ({ host: s.host, port: s.port, pid: 0 })),
      seeds,
      command: (port, ...args) => sendCommand(port, args),
      _livePorts: (exclude = []) => seeds.map((s) => s.port).filter((p) => !exclude.includes(p)),
      _probe: LocalCluster.prototype._probe,
    };
    return {
      seeds,
      command: view.command,
      masters: () => LocalCluster.prototype.masters.call(view),
      waitHealthy: (timeoutMs, opts) => LocalCluster.prototype.waitHealthy.call(view, timeoutMs, opts),
      shared: true,
    };
  }
  if (!own) own = await startCluster();
  return own;
}

/** Stops a cluster this process started (call from an `after` hook). */
async function stopOwnCluster() {
  if (own) await own.stop();
  own = null;
}

/** Calls a callback-style client method and resolves/rejects with its result. */
function call(client, method, ...args) {
  return new Promise((resolve, reject) => {
    client[method](...args, (err, value) => (err ? reject(err) : resolve(value)));
  });
}

/** Resolves with the error a callback-style call fails with (rejects if it succeeds). */
function callError(client, method, ...args) {
  return new Promise((resolve, reject) => {
    client[method](...args, (err, value) => (err ? resolve(err) : reject(new Error(`expected an error, got ${JSON.stringify(value)}`))));
  });
}

/**
 * The createClient mode (SPEC §5): with REDIS_CLUSTR_HOOK=1 (`npm test` runs the behavioural
 * suites once without and once with it) every client these helpers make carries its traffic over
 * node_redis v3 clients from the factory below, so the same assertions hold in both modes.
 */
const HOOK = process.env.REDIS_CLUSTR_HOOK === '1';

/** The factory the hook mode uses: node_redis v3, as redis-clustr users pass it. */
function redisFactory(port, host, options) {
  return require('redis').createClient(port, host, options);
}

/** Options to merge into a RedisClustr config so it runs in the mode under test. */
function modeOptions(extra = {}) {
  return HOOK && !('createClient' in extra) ? { createClient: redisFactory } : {};
}

/** A connected client for `seeds`; resolves once the slot map is in. */
async function connect(seeds, extra = {}) {
  const client = new RedisClustr(Object.assign({ servers: seeds }, modeOptions(extra), extra));
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('client not ready within 10 s')), 10000);
    client.once('ready', () => {
      clearTimeout(t);
      resolve();
    });
  });
  return client;
}

function quit(client) {
  return new Promise((resolve) => client.quit(() => resolve()));
}

/** Polls `fn` until it returns a truthy value or the deadline passes. */
async function until(fn, { timeout = 10000, interval = 20, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** Is TCP `port` on 127.0.0.1 free to listen on? */
function portFree(port) {
  const net = require('net');
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** A random free port in 20000-44999 (nothing listens there: connecting is refused). */
async function freePort() {
  for (let i = 0; i < 100; i++) {
    const port = 20000 + Math.floor(Math.random() * 25000);
    if (await portFree(port)) return port;
  }
  throw new Error('no free port found in 20000-44999');
}

/**
 * Starts a plain (non-cluster) `redis-server` on a free port and resolves once it answers PING:
 * `{port, pid, stop()}`; stop() kills exactly that pid and waits for it to exit.
 */
async function startPlainRedis() {
  const { spawn } = require('child_process');
  const { sendCommand } = require('../scripts/cluster');
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid, 'SIGKILL');
      await exited;
    }
  };
  try {
    await until(() => sendCommand(port, ['PING'], { timeoutMs: 500 }).then((r) => r === 'PONG', () => false), {
      timeout: 10000,
      what: `plain redis-server on port ${port}`,
    });
  } catch (e) {
    await stop();
    throw e;
  }
  return { port, pid: child.pid, stop };
}

/**
 * A TCP server on loopback that accepts connections and never answers: a seed that neither
 * refuses nor replies, so discovery stays pending until the client's own timeout.
 */
async function blackHole() {
  const net = require('net');
  const sockets = new Set();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Rejects with a clear message when `promise` does not settle within `ms`. */
function within(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

module.exports = { HOOK, redisFactory, modeOptions, within, RedisClustr, cluster, stopOwnCluster, call, callError, connect, quit, until, freePort, startPlainRedis, blackHole };

// ---- pub/sub (appended for pubsub.test.js and pubsub-failover.test.js) ----

const PUBSUB_EVENTS = [
  'subscribe',
  'unsubscribe',
  'psubscribe',
  'punsubscribe',
  'ssubscribe',
  'sunsubscribe',
  'message',
  'pmessage',
  'smessage',
  'resubscribed',
];

/**
 * Records a client's pub/sub events in arrival order as `{type, args, at}` (`at` = Date.now() when
 * emitted) and its 'error' events in `errors` (so a failure is asserted, never an uncaught
 * 'error'). `of(type)` lists the argument arrays of one event type; `waitFor(type, pred, opts)`
 * resolves with the first such argument array `pred` accepts (polling with `until`'s deadline).
 */
function recordPubsub(client) {
  const rec = {
    events: [],
    errors: [],
    of(type) {
      return this.events.filter((e) => e.type === type).map((e) => e.args);
    },
    waitFor(type, pred = () => true, opts = {}) {
      return until(() => this.of(type).find((args) => pred(...args)), Object.assign({ what: `a '${type}' event` }, opts));
    },
  };
  for (const type of PUBSUB_EVENTS) client.on(type, (...args) => rec.events.push({ type, args, at: Date.now() }));
  client.on('error', (e) => rec.errors.push(e));
  return rec;
}

/** A channel or message as a string, whether it came as a string or as a Buffer. */
function str(x) {
  return Buffer.isBuffer(x) ? x.toString() : x;
}

module.exports.recordPubsub = recordPubsub;
module.exports.str = str;
