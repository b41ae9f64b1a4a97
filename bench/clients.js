// One adapter per client under test. Every adapter has the same promise-based shape, and each
// uses the client the way its own documentation tells users to:
//
//   connect(seeds)        -> resolves once the client can serve every slot
//   get(key)              -> value | null
//   set(key, value)       -> 'OK'
//   batch(cmds)           -> replies in order; cmds = [['get', k] | ['set', k, v] | ['exists', k]]
//   mget(keys)            -> values in key order (keys spread over many slots)
//   close()
//
// `notes` says how batch and mget are done when the client has no cross-slot form of them; the
// report prints these as footnotes.
'use strict';

const path = require('path');
const calculateSlot = require('cluster-key-slot');
const { valueOf, KEY_PREFIX, KEYSPACE } = require('./workloads');

const ROOT = path.join(__dirname, '..');

// Groups indexes of `keys` by hash slot: Map(slot -> [index, ...]).
function bySlot(keys) {
  const groups = new Map();
  for (let i = 0; i < keys.length; i++) {
    const slot = calculateSlot(keys[i]);
    let g = groups.get(slot);
    if (!g) groups.set(slot, (g = []));
    g.push(i);
  }
  return groups;
}

// MGET per slot, in parallel, reassembled in the caller's key order. This is what ioredis and
// node-redis users have to do: both reject a cross-slot MGET with CROSSSLOT.
async function mgetBySlot(keys, mgetOne) {
  const out = new Array(keys.length);
  const jobs = [];
  for (const idx of bySlot(keys).values()) {
    jobs.push(
      mgetOne(idx.map((i) => keys[i])).then((vals) => {
        for (let j = 0; j < idx.length; j++) out[idx[j]] = vals[j];
      })
    );
  }
  await Promise.all(jobs);
  return out;
}

// ---------------------------------------------------------------------------------------------

const native = {
  id: 'native',
  label: 'redis-clustr-native',
  short: '**ours**',
  ours: true,
  notes: {},
  load() {
    return require(ROOT);
  },
  async connect(seeds) {
    const RedisClustr = this.load();
    const c = new RedisClustr({ servers: seeds });
    c.on('error', (e) => {
      throw e;
    });
    await new Promise((resolve, reject) => c.waitFor('fullReady', (err) => (err ? reject(err) : resolve())));
    return {
      get: (k) => c.getAsync(k),
      set: (k, v) => c.setAsync(k, v),
      batch: (cmds) => {
        const b = c.batch();
        for (const [op, k, v] of cmds) {
          if (op === 'set') b.set(k, v);
          else b[op](k);
        }
        return b.execAsync();
      },
      mget: (keys) => c.mgetAsync(keys),
      close: () => new Promise((resolve) => c.quit(() => resolve())),
    };
  },
};

const redisClustr = {
  id: 'redis-clustr',
  label: 'redis-clustr 1.7.0',
  short: 'redis-clustr',
  notes: {},
  async connect(seeds) {
    const RedisClustr = require('redis-clustr');
    const c = new RedisClustr({ servers: seeds });
    c.on('error', (e) => {
      throw e;
    });
    await new Promise((resolve, reject) => c.waitFor('fullReady', (err) => (err ? reject(err) : resolve())));
    const p = (fn) => new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))));
    return {
      get: (k) => p((cb) => c.get(k, cb)),
      set: (k, v) => p((cb) => c.set(k, v, cb)),
      batch: (cmds) =>
        p((cb) => {
          const b = c.batch();
          for (const [op, k, v] of cmds) {
            if (op === 'set') b.set(k, v);
            else b[op](k);
          }
          b.exec(cb);
        }),
      mget: (keys) => p((cb) => c.mget(keys, cb)),
      close: () => new Promise((resolve) => c.quit(() => resolve())),
    };
  },
};

function ioredis(autoPipelining) {
  return {
    id: autoPipelining ? 'ioredis-ap' : 'ioredis',
    label: autoPipelining ? 'ioredis (autopipelining)' : 'ioredis',
    short: autoPipelining ? 'ioredis AP' : 'ioredis',
    notes: {
      batch: 'ioredis: a cluster pipeline must stay on one node, so a batch is one `pipeline()` per master (grouped with `cluster.slots`), run in parallel.',
      mget: 'ioredis: MGET across slots fails with CROSSSLOT; keys are grouped by slot and one MGET per slot is sent in parallel (~100 one-key MGETs for 100 random keys).',
    },
    async connect(seeds) {
      const { Cluster } = require('ioredis');
      const c = new Cluster(seeds, { enableAutoPipelining: autoPipelining });
      c.on('error', () => {});
      await new Promise((resolve, reject) => {
        c.once('ready', resolve);
        c.once('end', () => reject(new Error('ioredis cluster ended before ready')));
      });
      return {
        get: (k) => c.get(k),
        set: (k, v) => c.set(k, v),
        batch: async (cmds) => {
          const groups = new Map();
          for (let i = 0; i < cmds.length; i++) {
            const node = c.slots[calculateSlot(cmds[i][1])][0];
            let g = groups.get(node);
            if (!g) groups.set(node, (g = []));
            g.push(i);
          }
          const out = new Array(cmds.length);
          await Promise.all(
            [...groups.values()].map(async (idx) => {
              const pl = c.pipeline();
              for (const i of idx) {
                const [op, k, v] = cmds[i];
                if (op === 'set') pl.set(k, v);
                else pl[op](k);
              }
              const res = await pl.exec();
              for (let j = 0; j < idx.length; j++) {
                if (res[j][0]) throw res[j][0];
                out[idx[j]] = res[j][1];
              }
            })
          );
          return out;
        },
        mget: (keys) => mgetBySlot(keys, (ks) => c.mget(ks)),
        close: () => c.quit(),
      };
    },
  };
}

const nodeRedis = {
  id: 'node-redis',
  label: 'node-redis (createCluster)',
  short: 'node-redis',
  notes: {
    batch: "node-redis: a cluster `multi()` is bound to one node, so a batch is sent as parallel commands, which node-redis pipelines automatically within a tick (its documented 'auto-pipelining').",
    mget: 'node-redis: MGET across slots fails with CROSSSLOT; keys are grouped by slot and one MGET per slot is sent in parallel.',
  },
  async connect(seeds) {
    const { createCluster } = require('redis');
    const c = createCluster({ rootNodes: seeds.map((s) => ({ url: `redis://${s.host}:${s.port}` })) });
    c.on('error', () => {});
    await c.connect();
    return {
      get: (k) => c.get(k),
      set: (k, v) => c.set(k, v),
      batch: (cmds) =>
        Promise.all(cmds.map(([op, k, v]) => (op === 'set' ? c.set(k, v) : op === 'get' ? c.get(k) : c.exists(k)))),
      mget: (keys) => mgetBySlot(keys, (ks) => c.mGet(ks)),
      close: () => (typeof c.close === 'function' ? c.close() : c.quit()),
    };
  },
};

const glide = {
  id: 'glide',
  label: 'Valkey GLIDE',
  short: 'GLIDE',
  notes: {
    all: 'GLIDE: `requestTimeout` raised to 30 s and `inflightRequestsLimit` to 200,000 (defaults 250 ms and 1,000 would fail fan-in and flood); batch is a non-atomic `ClusterBatch` (`exec(batch, true)`).',
  },
  async connect(seeds) {
    const { GlideClusterClient, ClusterBatch } = require('@valkey/valkey-glide');
    const c = await GlideClusterClient.createClient({
      addresses: seeds.map((s) => ({ host: s.host, port: s.port })),
      requestTimeout: 30000,
      inflightRequestsLimit: 200000,
    });
    return {
      get: (k) => c.get(k),
      set: (k, v) => c.set(k, v),
      batch: (cmds) => {
        const b = new ClusterBatch(false);
        for (const [op, k, v] of cmds) {
          if (op === 'set') b.set(k, v);
          else if (op === 'get') b.get(k);
          else b.exists([k]);
        }
        return c.exec(b, true);
      },
      mget: (keys) => c.mget(keys),
      close: () => c.close(),
    };
  },
};

// A stand-in's calls: each is one bare promise, held with its argument `x` and resolved with
// `reply(x)` on the next macrotask, every call of a turn at once.
function heldAnswers(reply) {
  const held = [];
  const settle = () => {
    for (let i = 0; i < held.length; i += 2) held[i](reply(held[i + 1]));
    held.length = 0;
  };
  return (x) =>
    new Promise((resolve) => {
      if (held.push(resolve, x) === 2) setImmediate(settle);
    });
}

// Not a client: the flood workload's own share of the peak. Each GET is one bare promise,
// resolved with the value a server would return once the whole flood is issued. A client whose
// get() returns a promise cannot peak below this, so the report subtracts it to show what each
// client itself holds for 100,000 commands in flight.
const floor = {
  id: 'floor',
  label: 'promise-only floor',
  notes: {},
  async connect() {
    return {
      get: heldAnswers((k) => valueOf(Number(k.slice(KEY_PREFIX.length)))),
      close: async () => {},
    };
  },
};

// Not a client either: the CPU the conc, batch and mget workloads spend themselves (making keys
// and values, promises, checking every reply), which process.cpuUsage() counts for every client.
// Each call is one promise, resolved with values from a table made before the measured part
// (the only reply work left is a batch's or an MGET's array), all of a turn's calls at once on
// the next macrotask: a client whose own work costs nothing. The report subtracts its CPU per op
// to show each client's own share.
const cpuFloor = {
  id: 'cpu-floor',
  label: 'CPU floor (no client)',
  notes: {},
  async connect() {
    const values = Array.from({ length: KEYSPACE }, (_, i) => valueOf(i));
    const valueOfKey = (k) => values[Number(k.slice(KEY_PREFIX.length))];
    const answer = heldAnswers((reply) => reply);
    return {
      get: (k) => answer(valueOfKey(k)),
      set: () => answer('OK'),
      batch: (cmds) => answer(cmds.map(([op, k]) => (op === 'set' ? 'OK' : op === 'get' ? valueOfKey(k) : 1))),
      mget: (keys) => answer(keys.map(valueOfKey)),
      close: async () => {},
    };
  },
};

const CLIENTS = [native, redisClustr, ioredis(false), ioredis(true), nodeRedis, glide];
const STAND_INS = [floor, cpuFloor];

module.exports = {
  CLIENTS,
  FLOOR: floor,
  CPU_FLOOR: cpuFloor,
  byId: (id) => STAND_INS.find((c) => c.id === id) || CLIENTS.find((c) => c.id === id),
};
