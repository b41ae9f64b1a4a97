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
    return {
      seeds,
      command: (port, ...args) => sendCommand(port, args),
      masters: () => LocalCluster.prototype.masters.call({ nodes: seeds.map((s) => ({ host: s.host, port: s.port, pid: 0 })), seeds, command: (port, ...args) => sendCommand(port, args) }),
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

/** A connected client for `seeds`; resolves once the slot map is in. */
async function connect(seeds, extra = {}) {
  const client = new RedisClustr(Object.assign({ servers: seeds }, extra));
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

module.exports = { RedisClustr, cluster, stopOwnCluster, call, callError, connect, quit, until };
