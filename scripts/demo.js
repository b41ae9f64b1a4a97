// `npm run demo`: the five-minute tour of redis-clustr-native. Builds the addon if it is missing,
// starts a throwaway 6-node Redis Cluster on loopback (3 masters + 3 replicas, temp dirs), runs the
// redis-clustr README's usage example, then a short tour: keys spread over the masters, a batch of
// 10,000 SETs, node_redis reply shapes, cross-slot MGET, a live slot migration the client follows
// (ASK/MOVED) while it keeps reading and writing, and the events it emitted. The client is quit
// and the cluster stopped in `finally`, even on failure (exit code 1 then). No npm dependencies.
'use strict';

const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const root = path.join(__dirname, '..');
const t0 = Date.now();
const ms = (since) => `${Date.now() - since} ms`;
const say = (s = '') => console.log(s);
const step = (title) => say(`\n== ${title}`);
let checks = 0;
function check(ok, what) {
  if (!ok) throw new Error(`check failed: ${what}`);
  checks++;
}

// 1. The native addon: build it when no compiled *.node file sits in the package root.
if (!fs.readdirSync(root).some((f) => f.endsWith('.node'))) {
  say('No native addon found: building it (node scripts/build.js) ...');
  const r = spawnSync(process.execPath, [path.join(__dirname, 'build.js')], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error('demo: building the addon failed (see above); nothing else was started.');
    process.exit(1);
  }
}

const { ensureRedis, startCluster, migrateSlot } = require('./cluster');
const RedisClustr = require('..');

async function main(ctx) {
  // 2. Redis itself, and a throwaway cluster.
  let version;
  try {
    ({ version } = ensureRedis());
  } catch (e) {
    e.plain = true; // its message already says what to install; a stack trace would only distract
    throw e;
  }
  step(`Starting a local Redis Cluster (redis-server ${version}: 3 masters + 3 replicas on loopback)`);
  let since = Date.now();
  const cluster = (ctx.cluster = await startCluster());
  const masters = await cluster.masters();
  say(`Up in ${ms(since)}. Seed addresses: ${cluster.seeds.map((s) => `${s.host}:${s.port}`).join(' ')}`);
  say(`Masters: ${masters.map((m) => `${m.host}:${m.port} (slots ${m.slots.map((r) => r.join('-')).join(',')})`).join('  ')}`);

  // 3. The README's usage example, essentially verbatim (only the port is this cluster's).
  step("The README's usage example");
  const seedPort = cluster.seeds[0].port;
  say(`  const RedisClustr = require('redis-clustr-native');`);
  say(`  const redis = new RedisClustr({servers: [{host: '127.0.0.1', port: ${seedPort}}]});`);
  say(`  redis.set('key', 'value'); redis.get('key', (err, v) => ...)`);
  const redis = (ctx.redis = new RedisClustr({ servers: [{ host: '127.0.0.1', port: seedPort }] }));
  const events = { connect: 0, ready: 0, fullReady: 0, topology: [], error: [], connectionError: [] };
  for (const ev of ['connect', 'ready', 'fullReady']) redis.on(ev, () => events[ev]++);
  redis.on('topology', (t) => events.topology.push(t));
  redis.on('error', (e) => events.error.push(e));
  redis.on('connectionError', (e) => events.connectionError.push(e));
  redis.set('key', 'value');
  const got = await new Promise((resolve, reject) => {
    redis.get('key', (err, v) => (err ? reject(err) : resolve(v)));
  });
  say(`-> get('key') called back with err = null, value = ${JSON.stringify(got)}`);
  check(got === 'value', "get('key') returns 'value'");

  // 4. Routing: each key's hash slot, and the master that owns it (from the client's own map).
  step('Keys land on different masters (slot = CRC16(key) mod 16384, then the slot map)');
  const owners = new Set();
  for (const key of ['foo', 'bar', 'user:1', 'cart:42', 'session:abc', '{user:1}:cart']) {
    const slot = RedisClustr.keySlot(key);
    const owner = redis.slots[slot][0].address;
    owners.add(owner);
    await redis.setAsync(key, `v-${key}`);
    check((await redis.getAsync(key)) === `v-${key}`, `read back ${key}`);
    say(`  ${key.padEnd(14)} slot ${String(slot).padStart(5)}  ->  master ${owner}`);
  }
  say(`  6 keys, ${owners.size} different masters; '{user:1}:cart' shares user:1's slot (hash tag).`);
  check(owners.size === masters.length, 'keys spread over every master');
  check(RedisClustr.keySlot('{user:1}:cart') === RedisClustr.keySlot('user:1'), 'hash tags pick the slot');

  // 5. A burst: 10,000 SETs in one batch(), then 10,000 GETs fired in the same tick.
  step('10,000 SETs in one batch().exec(), then 10,000 GETs fired at once');
  const N = 10000;
  since = Date.now();
  const batch = redis.batch();
  for (let i = 0; i < N; i++) batch.set(`burst:${i}`, `value-${i}`);
  const sets = await batch.execAsync();
  const setTime = ms(since);
  since = Date.now();
  const gets = await Promise.all(Array.from({ length: N }, (_, i) => redis.getAsync(`burst:${i}`)));
  const wrong = gets.filter((v, i) => v !== `value-${i}`).length;
  say(`  batch of ${N} SETs in ${setTime} (${sets.filter((r) => r === 'OK').length} x 'OK'), ${N} GETs in ${ms(since)}; ${wrong} wrong values.`);
  check(sets.length === N && sets.every((r) => r === 'OK') && wrong === 0, 'burst written and read back intact');

  // 6. Replies shaped the node_redis way.
  step('Reply shapes, as node_redis gives them');
  await redis.delAsync('shape:h');
  await redis.hmsetAsync('shape:h', { name: 'Ada', visits: 3 });
  const h = await redis.hgetallAsync('shape:h');
  await redis.delAsync('shape:n');
  const n = await redis.incrAsync('shape:n');
  const missing = await redis.getAsync('shape:missing');
  const wrongType = await redis.lpushAsync('shape:h', 'x').then(() => null, (e) => e);
  say(`  hgetall -> ${JSON.stringify(h)}   incr -> ${n} (${typeof n})   get(missing) -> ${missing}`);
  say(`  lpush on a hash -> ${wrongType && wrongType.constructor.name} code=${wrongType && wrongType.code} command=${wrongType && wrongType.command}: ${wrongType && wrongType.message}`);
  check(h && h.name === 'Ada' && h.visits === '3', 'hgetall gives an object');
  check(n === 1 && missing === null, 'incr gives a number, a missing key null');
  check(wrongType instanceof Error && wrongType.code === 'WRONGTYPE', 'WRONGTYPE error with .code');

  // 7. Cross-slot MGET: split by slot, sent in parallel, values back in the caller's order.
  step('Cross-slot MGET over keys on different masters');
  const mkeys = ['foo', 'bar', 'nobody', 'user:1'];
  const mget = await redis.mgetAsync(mkeys);
  const slotsUsed = new Set(mkeys.map((k) => redis.slots[RedisClustr.keySlot(k)][0].address));
  say(`  mget(${mkeys.join(', ')}) -> ${JSON.stringify(mget)}`);
  say(`  ${mkeys.length} keys on ${slotsUsed.size} masters: split per slot, sent in parallel, merged in your order.`);
  check(JSON.stringify(mget) === JSON.stringify(['v-foo', 'v-bar', null, 'v-user:1']), 'cross-slot mget in order');
  const deleted = await redis.delAsync('foo', 'bar', 'nobody');
  say(`  del(foo, bar, nobody) -> ${deleted} (counts summed over the parts)`);
  check(deleted === 2, 'cross-slot del sums the counts');

  // 7b. Pub/sub: the subscribing client keeps running commands; messages arrive as events.
  step('Pub/sub: a channel, a pattern and a shard channel');
  const pub = (ctx.pub = new RedisClustr({ servers: [{ host: '127.0.0.1', port: seedPort }] }));
  const heard = [];
  redis.on('message', (ch, m) => heard.push(`message ${ch}: ${m}`));
  redis.on('pmessage', (p, ch, m) => heard.push(`pmessage ${p} ${ch}: ${m}`));
  redis.on('smessage', (ch, m) => heard.push(`smessage ${ch}: ${m}`));
  await redis.subscribeAsync('news');
  await redis.psubscribeAsync('news.*');
  await redis.ssubscribeAsync('orders:{42}');
  await pub.publishAsync('news', 'hello');
  await pub.publishAsync('news.eu', 'bonjour');
  await pub.spublishAsync('orders:{42}', 'order 42 shipped');
  const heardBy = Date.now() + 5000;
  while (heard.length < 3 && Date.now() < heardBy) await new Promise((r) => setTimeout(r, 10));
  for (const line of heard) say(`  ${line}`);
  say(`  (while subscribed, the same client still answers get: ${JSON.stringify(await redis.getAsync('key'))})`);
  check(heard.length === 3, 'every published message arrived, once each');
  await redis.unsubscribeAsync();
  await redis.punsubscribeAsync();
  await redis.sunsubscribeAsync();

  // 8. A live slot migration, followed transparently.
  step('A live slot migration while the client keeps reading and writing');
  const K = 250; // > 100, so migrateSlot moves the keys in 3 MIGRATE batches
  const keys = Array.from({ length: K }, (_, i) => `{tour}:item:${i}`);
  const slot = RedisClustr.keySlot(keys[0]);
  const from = redis.slots[slot][0];
  const to = masters.find((m) => m.port !== from.port);
  let round = 0;
  await Promise.all(keys.map((k, i) => redis.setAsync(k, `r0-${i}`)));
  const before = redis.stats();
  say(`  ${K} keys in slot ${slot} ({tour}) on ${from.address}; moving the slot to ${to.host}:${to.port}.`);
  let reads = 0;
  let bad = 0;
  const traffic = async () => {
    const vals = await Promise.all(keys.map((k) => redis.getAsync(k)));
    reads += vals.length;
    bad += vals.filter((v, i) => v !== `r${round}-${i}`).length;
    round++;
    await Promise.all(keys.map((k, i) => redis.setAsync(k, `r${round}-${i}`)));
  };
  since = Date.now();
  await migrateSlot(cluster, slot, from.port, to.port, {
    onStep: async (name, info) => {
      await traffic();
      const s = redis.stats();
      say(`  step ${name.padEnd(11)} keys moved ${String(info.keys).padStart(3)}  | read+wrote all ${K} keys; ASK so far ${s.ask - before.ask}, MOVED ${s.moved - before.moved}`);
    },
  });
  await traffic();
  const after = redis.stats();
  const target = `${to.host}:${to.port}`;
  const deadline = Date.now() + 5000;
  while (redis.slots[slot][0].address !== target && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  say(`  Done in ${ms(since)}: ${reads} reads, ${bad} wrong; the client followed ${after.ask - before.ask} ASK and ${after.moved - before.moved} MOVED`);
  say(`  redirections (stats: ${JSON.stringify(after)}). Slot ${slot} is now owned by ${redis.slots[slot][0].address}.`);
  check(bad === 0, 'every read during the migration returned the value last written');
  check(after.ask > before.ask && after.moved > before.moved, 'ASK and MOVED were followed');
  check(redis.slots[slot][0].address === target, 'the slot map shows the new owner');

  // 9. Events.
  step('Events the client emitted');
  const moved = events.topology.flatMap((t) => t.movedRanges).filter((r) => r.first <= slot && slot <= r.last);
  say(`  connect x${events.connect}, ready x${events.ready}, fullReady x${events.fullReady}, topology x${events.topology.length}` +
    ` (first: ${events.topology[0] ? events.topology[0].added.length : 0} nodes added), error x${events.error.length}, connectionError x${events.connectionError.length}`);
  if (moved.length) say(`  topology change for the migration: ${JSON.stringify(moved[moved.length - 1])}`);
  check(events.connect >= 1 && events.ready >= 1 && events.fullReady >= 1 && events.topology.length >= 1, 'lifecycle events seen');
  check(events.error.length === 0, 'no error events');
}

(async () => {
  const ctx = {};
  let failure = null;
  try {
    await main(ctx);
  } catch (e) {
    failure = e;
    console.error(`\nDEMO FAILED: ${e && !e.plain && e.stack ? e.stack : e && e.message ? e.message : e}`);
  } finally {
    if (ctx.redis) {
      let timer;
      const late = new Promise((r) => (timer = setTimeout(r, 5000, 'no reply within 5 s')));
      const q = await Promise.race([ctx.redis.quitAsync(), late]).catch((e) => e);
      clearTimeout(timer);
      if (q !== 'OK') console.error(`demo: client quit did not complete cleanly (${q && q.message ? q.message : q})`);
    }
    if (ctx.pub) await ctx.pub.quitAsync().catch(() => {});
    if (ctx.cluster) await ctx.cluster.stop().catch((e) => console.error(`demo: stopping the cluster failed: ${e.message}`));
  }
  const stopped = ctx.cluster ? '; client quit, cluster stopped' : '';
  if (failure) {
    const why = failure.plain ? 'Redis is not installed, see above' : String(failure.message || failure).split('\n')[0];
    say(`\nredis-clustr-native demo: FAILED after ${checks} checks in ${ms(t0)} (${why})${stopped}.`);
    process.exitCode = 1;
  } else {
    say(`\nredis-clustr-native demo: OK, ${checks} checks passed in ${ms(t0)}${stopped}.`);
  }
})();
