// A cluster-wide SCAN that survives resharding: scanIterator({match, count, type}) (async
// iterator of keys) and scanEach(options, onKeys, done) (callback form).
//
// Each master is SCANned in turn through its node handle. A slot that moves while the scan runs
// could carry keys from a master not yet scanned to one already done, so the scan notes every slot
// whose owner changed or that was migrating (each master's own CLUSTER NODES line, at the start
// and end of a round) and scans exactly those slots again on every master, until a round sees no
// move.
// Keys already yielded are remembered and never yielded twice (SCAN itself may repeat a key), so
// every key present throughout the scan is visited exactly once; memory grows with the keys
// visited.
'use strict';

const { clientError } = require('./errors');

const MAX_ROUNDS = 10;

function call(node, name, args) {
  return new Promise((resolve, reject) => node.send_command(name, args, (err, v) => (err ? reject(err) : resolve(v))));
}

function masters(client) {
  const seen = new Map();
  for (const nodes of client.slots) if (nodes && nodes[0] && !seen.has(nodes[0].address)) seen.set(nodes[0].address, nodes[0]);
  return [...seen.values()];
}

// The cluster's own view, asked of every master (the client's map may lag behind a move that
// sent it no MOVED): which slots each master says it serves, and which it says are migrating or
// importing ("[slot->-id]" / "[slot-<-id]" on its own CLUSTER NODES line).
async function clusterView(client) {
  const owner = new Array(16384).fill(null);
  const moving = new Set();
  await Promise.all(
    masters(client).map(async (m) => {
      const text = String(await call(m, 'cluster', ['nodes']));
      const mine = (text.split('\n').find((l) => l.includes('myself')) || '').trim().split(' ');
      if (!(mine[2] || '').includes('master')) return;
      for (const t of mine.slice(8)) {
        if (t.startsWith('[')) {
          moving.add(Number(/^\[(\d+)/.exec(t)[1]));
          continue;
        }
        const [a, b] = t.split('-').map(Number);
        for (let s = a; s <= (Number.isNaN(b) || b === undefined ? a : b); s++) owner[s] = m.address;
      }
    })
  );
  return { owner, moving };
}

async function* scanIterator(options = {}) {
  const client = this;
  if (!client.ready) await new Promise((resolve, reject) => client.waitFor('ready', (e) => (e ? reject(e) : resolve())));
  const args = ['0'];
  if (options.match !== undefined) args.push('MATCH', options.match);
  if (options.count !== undefined) args.push('COUNT', String(options.count));
  if (options.type !== undefined) args.push('TYPE', options.type);
  const slotOf = client.constructor.keySlot;
  const seen = new Set();
  let only = null; // null: every slot; else the slots to scan again
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const before = await clusterView(client);
    for (const m of masters(client)) {
      let cursor = '0';
      do {
        args[0] = cursor;
        const [next, keys] = await call(m, 'scan', args);
        cursor = String(next);
        for (const k of keys) {
          if (only && !only.has(slotOf(k))) continue;
          const id = Buffer.isBuffer(k) ? k.toString('latin1') : k;
          if (seen.has(id)) continue;
          seen.add(id);
          yield k;
        }
      } while (cursor !== '0');
    }
    const after = await clusterView(client);
    const changed = new Set([...before.moving, ...after.moving]);
    for (let s = 0; s < 16384; s++) if (after.owner[s] !== before.owner[s]) changed.add(s);
    if (changed.size === 0) return;
    only = changed;
  }
  throw clientError('TRYAGAIN', `slots kept moving through ${MAX_ROUNDS} scan rounds; the scan may be incomplete`);
}

/** Callback form: onKeys(keys) per batch of keys, then done(err). */
function scanEach(options, onKeys, done) {
  if (typeof options === 'function') {
    done = onKeys;
    onKeys = options;
    options = {};
  }
  (async () => {
    let batch = [];
    for await (const k of this.scanIterator(options)) {
      batch.push(k);
      if (batch.length >= 100) {
        onKeys(batch);
        batch = [];
      }
    }
    if (batch.length) onKeys(batch);
  })().then(
    () => done && done(null),
    (err) => (done ? done(err) : this.emit('error', err))
  );
}

module.exports = { scanIterator, scanEach };
