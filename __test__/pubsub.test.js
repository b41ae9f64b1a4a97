// Pub/Sub on the shared local cluster (roles never change here; pubsub-failover.test.js covers
// SIGKILL, CLUSTER FAILOVER and slot migration on a cluster of its own): delivery of channel,
// pattern and shard-channel messages published by a second client, binary payloads with
// return_buffers / detect_buffers, the node_redis event and callback shapes with the server's
// counts, `client.subscriptions`, subscribing before 'ready', commands on the subscribed client,
// unsubscribing one name or everything (absence proved by ordering: a later publish on the same
// node arrives, an earlier one to the dropped name never does), resubscription after CLIENT KILL
// with the 'resubscribed' gap, and quit() with live subscriptions letting the process exit.
'use strict';

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { spawn } = require('node:child_process');
const path = require('node:path');
const { sendCommand } = require('../scripts/cluster');
const h = require('./helpers');

const { RedisClustr } = h;
const FIXTURE = path.join(__dirname, 'fixtures', 'pubsub-quit.js');
const T = { timeout: 60000 };

after(() => h.stopOwnCluster());

// Names unique to this run, so nothing left on the shared cluster can be mistaken for ours.
const RUN = `${process.pid}.${Date.now().toString(36)}`;
let seq = 0;
const uniq = (what) => `ps:${RUN}:${++seq}:${what}`;

/** The master object (from cluster.masters()) that owns `slot`. */
function ownerOf(masters, slot) {
  const m = masters.find((x) => x.slots.some(([a, b]) => slot >= a && slot <= b));
  assert.ok(m, `no master owns slot ${slot}`);
  return m;
}

/** A shard channel name `{tag}:what` whose slot is owned by the master on `port`. */
function shardChannelOn(masters, port, what) {
  for (let i = 0; ; i++) {
    const tag = `ps${RUN}-${++seq}-${i}`;
    if (ownerOf(masters, RedisClustr.keySlot(`{${tag}}`)).port === port) return `{${tag}}:${what}`;
  }
}

/** `client.subscriptions` with each list sorted (the order is not part of the contract). */
function sortedSubs(subs) {
  return {
    channels: [...subs.channels].sort(),
    patterns: [...subs.patterns].sort(),
    shardChannels: [...subs.shardChannels].sort(),
  };
}

const { within } = h;

/** Calls a subscription method with a callback and resolves with its `lastName` (10 s deadline). */
function sub(client, method, ...args) {
  return within(h.call(client, method, ...args), 10000, `${method}(${args.map(String).join(', ')})`);
}

/** PUBSUB NUMSUB `channels` on every node: `[{port, counts: {channel: n}}]`. */
async function numsub(c, channels) {
  return Promise.all(
    c.seeds.map(async ({ port }) => {
      const r = await sendCommand(port, ['PUBSUB', 'NUMSUB', ...channels]);
      const counts = {};
      for (let i = 0; i < r.length; i += 2) counts[r[i]] = r[i + 1];
      return { port, counts };
    }),
  );
}

/** The one node whose server lists a subscriber of every one of `channels` (asserts it is one). */
async function classicHolder(c, channels) {
  const views = await numsub(c, channels);
  const holders = views.filter((v) => channels.some((ch) => v.counts[ch] > 0));
  assert.equal(holders.length, 1, `one node carries the classic subscriptions, got ${JSON.stringify(holders)}`);
  for (const ch of channels) assert.equal(holders[0].counts[ch], 1, `${ch} has exactly one subscriber`);
  return holders[0].port;
}

/** PUBSUB SHARDNUMSUB `channel` on `port`. */
async function shardNumsub(port, channel) {
  const r = await sendCommand(port, ['PUBSUB', 'SHARDNUMSUB', channel]);
  return r[1];
}

/** How many events of `type` arrived after index `since` of rec.events. */
function eventsSince(rec, since, type) {
  return rec.events.slice(since).filter((e) => e.type === type).map((e) => e.args);
}

test('a channel, a pattern and a shard channel each deliver what a second client publishes, as strings in node_redis shapes', T, async () => {
  const c = await h.cluster();
  const masters = await c.masters();
  const subscriber = await h.connect(c.seeds);
  const publisher = await h.connect(c.seeds);
  try {
    const rec = h.recordPubsub(subscriber);
    const ch = uniq('chan');
    const pat = `${uniq('pat')}.*`;
    const pch = `${pat.slice(0, -2)}.news`;
    const sch = shardChannelOn(masters, masters[1].port, 'shard');
    assert.equal(await sub(subscriber, 'subscribe', ch), ch);
    assert.equal(await sub(subscriber, 'psubscribe', pat), pat);
    assert.equal(await sub(subscriber, 'ssubscribe', sch), sch);

    const text = 'héllo wörld ✓ 𝄞';
    const n = await h.call(publisher, 'publish', ch, text);
    // PUBLISH counts the receivers on the node that took it (0 or our 1); the bus carries it on.
    assert.ok(Number.isInteger(n) && n >= 0 && n <= 1, `publish replied ${n}`);
    await h.call(publisher, 'publish', pch, 'through the pattern');
    // SPUBLISH goes to the slot owner, where our one shard subscriber must be.
    assert.equal(await h.call(publisher, 'spublish', sch, 'sharded'), 1);

    assert.deepEqual(await rec.waitFor('message', (channel) => channel === ch), [ch, text]);
    assert.deepEqual(await rec.waitFor('pmessage', (p) => p === pat), [pat, pch, 'through the pattern']);
    assert.deepEqual(await rec.waitFor('smessage', (channel) => channel === sch), [sch, 'sharded']);
    for (const e of rec.events.filter((x) => /message$/.test(x.type))) {
      for (const a of e.args) assert.equal(typeof a, 'string', `${e.type} argument ${String(a)} is a string`);
    }

    // Messages on one shard channel arrive once each, in publishing order.
    const expected = Array.from({ length: 30 }, (_, i) => `seq ${i}`);
    for (const m of expected) assert.equal(await h.call(publisher, 'spublish', sch, m), 1);
    await h.until(() => rec.of('smessage').length >= 31, { what: '30 more shard messages' });
    assert.deepEqual(rec.of('smessage').slice(1).map((a) => a[1]), expected);
    assert.equal(rec.of('message').length, 1, 'the channel message came exactly once');
    assert.equal(rec.of('pmessage').length, 1, 'the pattern message came exactly once');
    assert.deepEqual(rec.errors, []);
  } finally {
    await h.quit(subscriber);
    await h.quit(publisher);
  }
});

test('with return_buffers, messages arrive as Buffers with their exact bytes (0x00, 0xff, \\r\\n, a large payload)', T, async () => {
  const c = await h.cluster();
  const masters = await c.masters();
  const subscriber = await h.connect(c.seeds, { redisOptions: { return_buffers: true } });
  const publisher = await h.connect(c.seeds);
  try {
    const rec = h.recordPubsub(subscriber);
    const ch = uniq('bin');
    const pat = `${uniq('binpat')}:*`;
    const pch = `${pat.slice(0, -1)}x`;
    const sch = shardChannelOn(masters, masters[2].port, 'bin');
    await sub(subscriber, 'subscribe', ch);
    await sub(subscriber, 'psubscribe', pat);
    await sub(subscriber, 'ssubscribe', sch);

    // Looks like RESP framing ("$-1\r\n", "*2\r\n") and is not valid UTF-8.
    const payload = Buffer.from([0x00, 0xff, 0x0d, 0x0a, 0x24, 0x2d, 0x31, 0x0d, 0x0a, 0xfe, 0x2a, 0x32, 0x0d, 0x0a, 0x00, 0xc3]);
    const big = crypto.randomBytes(256 * 1024);
    await h.call(publisher, 'publish', ch, payload);
    await h.call(publisher, 'publish', pch, payload);
    assert.equal(await h.call(publisher, 'spublish', sch, payload), 1);
    assert.equal(await h.call(publisher, 'spublish', sch, big), 1);

    const [mch, m] = await rec.waitFor('message', (channel) => h.str(channel) === ch);
    assert.equal(h.str(mch), ch);
    assert.ok(Buffer.isBuffer(m), `message is a Buffer, got ${typeof m}`);
    assert.deepEqual(m, payload);

    const [pp, pc, pm] = await rec.waitFor('pmessage', (p) => h.str(p) === pat);
    assert.deepEqual([h.str(pp), h.str(pc)], [pat, pch]);
    assert.ok(Buffer.isBuffer(pm), `pmessage message is a Buffer, got ${typeof pm}`);
    assert.deepEqual(pm, payload);

    await h.until(() => rec.of('smessage').length >= 2, { what: 'two shard messages' });
    const [[s1ch, s1], [s2ch, s2]] = rec.of('smessage');
    assert.deepEqual([h.str(s1ch), h.str(s2ch)], [sch, sch]);
    assert.ok(Buffer.isBuffer(s1) && Buffer.isBuffer(s2), 'smessage messages are Buffers');
    assert.deepEqual(s1, payload);
    assert.equal(s2.length, big.length);
    assert.ok(s2.equals(big), 'the 256 KiB payload arrived byte for byte');
    assert.deepEqual(rec.errors, []);
  } finally {
    await h.quit(subscriber);
    await h.quit(publisher);
  }
});

test('with detect_buffers, a channel subscribed by a Buffer name delivers Buffers and one subscribed by a string delivers strings', T, async () => {
  const c = await h.cluster();
  const masters = await c.masters();
  const subscriber = await h.connect(c.seeds, { redisOptions: { detect_buffers: true } });
  const publisher = await h.connect(c.seeds);
  try {
    const rec = h.recordPubsub(subscriber);
    const byBuffer = uniq('detect-buf');
    const byString = uniq('detect-str');
    const shardByBuffer = shardChannelOn(masters, masters[0].port, 'detect');
    await sub(subscriber, 'subscribe', Buffer.from(byBuffer));
    await sub(subscriber, 'subscribe', byString);
    await sub(subscriber, 'ssubscribe', Buffer.from(shardByBuffer));

    const payload = Buffer.from([0x61, 0x00, 0xff, 0x0d, 0x0a, 0x62]);
    await h.call(publisher, 'publish', byBuffer, payload);
    await h.call(publisher, 'publish', byString, 'plain text');
    assert.equal(await h.call(publisher, 'spublish', shardByBuffer, payload), 1);

    const [, mb] = await rec.waitFor('message', (channel) => h.str(channel) === byBuffer);
    assert.ok(Buffer.isBuffer(mb), `message on the Buffer-subscribed channel is a Buffer, got ${typeof mb}`);
    assert.deepEqual(mb, payload);
    const [cs, ms] = await rec.waitFor('message', (channel) => h.str(channel) === byString);
    assert.equal(cs, byString);
    assert.equal(ms, 'plain text');
    const [, sm] = await rec.waitFor('smessage', (channel) => h.str(channel) === shardByBuffer);
    assert.ok(Buffer.isBuffer(sm), `smessage on the Buffer-subscribed shard channel is a Buffer, got ${typeof sm}`);
    assert.deepEqual(sm, payload);
    assert.deepEqual(rec.errors, []);
  } finally {
    await h.quit(subscriber);
    await h.quit(publisher);
  }
});

test('each subscription call emits one event per name with the server count, calls back once with the last name, and subscriptions lists the set', T, async () => {
  const c = await h.cluster();
  const masters = await c.masters();
  const client = await h.connect(c.seeds);
  try {
    const rec = h.recordPubsub(client);
    const [a, b, c3, d] = ['a', 'b', 'c', 'd'].map(uniq);
    const p = `${uniq('p')}.*`;
    const s1 = shardChannelOn(masters, masters[0].port, 's1');
    const s2 = s1.replace(/:s1$/, ':s2'); // same hash tag: same slot, same connection
    const s3 = shardChannelOn(masters, masters[1].port, 's3');

    // Variadic form: both events (counts 1, 2) come before the one callback, which gets `b`.
    let eventsAtCallback;
    const last = await within(
      new Promise((resolve, reject) =>
        client.subscribe(a, b, (err, name) => {
          eventsAtCallback = rec.of('subscribe').slice();
          if (err) reject(err);
          else resolve(name);
        }),
      ),
      10000,
      'subscribe(a, b)',
    );
    assert.equal(last, b);
    assert.deepEqual(eventsAtCallback, [
      [a, 1],
      [b, 2],
    ]);
    assert.equal(typeof eventsAtCallback[0][0], 'string');
    assert.equal(typeof eventsAtCallback[0][1], 'number');

    // Array form.
    assert.equal(await sub(client, 'subscribe', [c3]), c3);
    assert.deepEqual(rec.of('subscribe'), [
      [a, 1],
      [b, 2],
      [c3, 3],
    ]);
    // Channels and patterns share the one classic connection, so its count goes on.
    assert.equal(await sub(client, 'psubscribe', p), p);
    assert.deepEqual(rec.of('psubscribe'), [[p, 4]]);
    // No callback: the event alone.
    client.subscribe(d);
    assert.deepEqual(await rec.waitFor('subscribe', (ch) => ch === d), [d, 5]);

    // Shard channels: counts are those of the connection to the owning master.
    assert.equal(await sub(client, 'ssubscribe', [s1, s2]), s2);
    assert.equal(await sub(client, 'ssubscribe', s3), s3);
    assert.deepEqual(rec.of('ssubscribe'), [
      [s1, 1],
      [s2, 2],
      [s3, 1],
    ]);

    assert.deepEqual(sortedSubs(client.subscriptions), {
      channels: [a, b, c3, d].sort(),
      patterns: [p],
      shardChannels: [s1, s2, s3].sort(),
    });
    // The servers agree: one node carries all classic channels; each shard channel is on its owner.
    await classicHolder(c, [a, b, c3, d]);
    assert.equal(await shardNumsub(masters[0].port, s1), 1);
    assert.equal(await shardNumsub(masters[0].port, s2), 1);
    assert.equal(await shardNumsub(masters[1].port, s3), 1);
    assert.deepEqual(rec.of('resubscribed'), [], 'nothing was lost, so nothing was resubscribed');
    assert.deepEqual(rec.errors, []);
  } finally {
    await h.quit(client);
  }
});

test('subscribing right after the constructor, before ready, subscribes and delivers', T, async () => {
  const c = await h.cluster();
  const masters = await c.masters();
  const ch = uniq('early');
  const pat = `${uniq('early-p')}.*`;
  const pch = `${pat.slice(0, -2)}.x`;
  const sch = shardChannelOn(masters, masters[2].port, 'early');
  const client = new RedisClustr({ ...h.modeOptions(), servers: c.seeds });
  const rec = h.recordPubsub(client);
  let publisher;
  try {
    assert.equal(client.ready, false, 'no slot map yet');
    const names = await Promise.all([sub(client, 'subscribe', ch), sub(client, 'psubscribe', pat), sub(client, 'ssubscribe', sch)]);
    assert.deepEqual(names, [ch, pat, sch]);
    assert.deepEqual(rec.of('subscribe'), [[ch, 1]]);
    assert.deepEqual(rec.of('psubscribe'), [[pat, 2]]);
    assert.deepEqual(rec.of('ssubscribe'), [[sch, 1]]);

    publisher = await h.connect(c.seeds);
    await h.call(publisher, 'publish', ch, 'early bird');
    await h.call(publisher, 'publish', pch, 'early pattern');
    assert.equal(await h.call(publisher, 'spublish', sch, 'early shard'), 1);
    assert.deepEqual(await rec.waitFor('message'), [ch, 'early bird']);
    assert.deepEqual(await rec.waitFor('pmessage'), [pat, pch, 'early pattern']);
    assert.deepEqual(await rec.waitFor('smessage'), [sch, 'early shard']);
    assert.equal(client.ready, true);
    assert.deepEqual(rec.errors, []);
  } finally {
    await h.quit(client);
    if (publisher) await h.quit(publisher);
  }
});

test("the subscribed client's own commands keep working while messages flow", T, async () => {
  const c = await h.cluster();
  const masters = await c.masters();
  const client = await h.connect(c.seeds);
  const publisher = await h.connect(c.seeds);
  const keys = Array.from({ length: 200 }, (_, i) => `${uniq('key')}:${i}`);
  try {
    const rec = h.recordPubsub(client);
    const ch = uniq('busy');
    const sch = shardChannelOn(masters, masters[0].port, 'busy');
    await sub(client, 'subscribe', ch);
    await sub(client, 'ssubscribe', sch);

    const messages = Array.from({ length: 50 }, (_, i) => `m${i}`);
    const publishing = (async () => {
      for (const m of messages) assert.equal(await h.call(publisher, 'spublish', sch, m), 1);
    })();
    const sets = await Promise.all(keys.map((k, i) => h.call(client, 'set', k, `v${i}`)));
    const gets = await Promise.all(keys.map((k) => h.call(client, 'get', k)));
    await publishing;
    assert.ok(sets.every((r) => r === 'OK'));
    assert.deepEqual(gets, keys.map((_, i) => `v${i}`));
    assert.equal(await h.call(client, 'incr', `${keys[0]}:n`), 1);
    assert.equal(await h.call(client, 'ping'), 'PONG');

    await h.until(() => rec.of('smessage').length >= messages.length, { what: '50 shard messages' });
    assert.deepEqual(rec.of('smessage').map((a) => a[1]), messages);
    await h.call(publisher, 'publish', ch, 'still here');
    assert.deepEqual(await rec.waitFor('message'), [ch, 'still here']);
    assert.deepEqual(rec.errors, []);
  } finally {
    try {
      await Promise.all(keys.concat(`${keys[0]}:n`).map((k) => h.call(publisher, 'del', k)));
    } finally {
      await h.quit(client);
      await h.quit(publisher);
    }
  }
});

test('unsubscribing one channel, pattern or shard channel stops its messages while the others keep arriving', T, async () => {
  const c = await h.cluster();
  const masters = await c.masters();
  const client = await h.connect(c.seeds);
  const publisher = await h.connect(c.seeds);
  try {
    const rec = h.recordPubsub(client);
    const [a, b] = ['gone', 'kept'].map(uniq);
    const pa = `${uniq('gone-p')}.*`;
    const pb = `${uniq('kept-p')}.*`;
    const paMatch = `${pa.slice(0, -2)}.m`;
    const pbMatch = `${pb.slice(0, -2)}.m`;
    const owner = masters[1].port;
    const s1 = shardChannelOn(masters, owner, 'gone');
    const s2 = s1.replace(/:gone$/, ':kept');
    await sub(client, 'subscribe', a, b);
    await sub(client, 'psubscribe', pa, pb);
    await sub(client, 'ssubscribe', s1, s2);
    const holder = await classicHolder(c, [a, b]);

    assert.equal(await sub(client, 'unsubscribe', a), a);
    assert.deepEqual(rec.of('unsubscribe'), [[a, 3]], 'b, pa and pb remain on the connection');
    assert.equal(await sub(client, 'punsubscribe', pa), pa);
    assert.deepEqual(rec.of('punsubscribe'), [[pa, 2]]);
    assert.equal(await sub(client, 'sunsubscribe', s1), s1);
    assert.deepEqual(rec.of('sunsubscribe'), [[s1, 1]]);
    assert.deepEqual(sortedSubs(client.subscriptions), { channels: [b], patterns: [pb], shardChannels: [s2] });

    // The servers dropped them too.
    const views = await numsub(c, [a, b]);
    assert.equal(views.reduce((n, v) => n + v.counts[a], 0), 0, `nobody subscribes ${a} any more`);
    assert.equal(views.find((v) => v.port === holder).counts[b], 1);
    assert.equal(await shardNumsub(owner, s1), 0);
    assert.equal(await shardNumsub(owner, s2), 1);

    // Absence by ordering: the dropped names are published first, on the very node (and
    // connection) that serves the kept ones; when the last kept one arrives, the dropped ones
    // would have come before it.
    const since = rec.events.length;
    assert.equal(await sendCommand(holder, ['PUBLISH', a, 'to a']), 0);
    assert.equal(await sendCommand(holder, ['PUBLISH', paMatch, 'to pa']), 0);
    assert.equal(await sendCommand(holder, ['PUBLISH', b, 'to b']), 1);
    assert.equal(await sendCommand(holder, ['PUBLISH', pbMatch, 'to pb']), 1);
    assert.equal(await h.call(publisher, 'spublish', s1, 'to s1'), 0, 'no receiver for the dropped shard channel');
    assert.equal(await h.call(publisher, 'spublish', s2, 'to s2'), 1);
    await h.until(() => eventsSince(rec, since, 'pmessage').length >= 1 && eventsSince(rec, since, 'smessage').length >= 1, {
      what: 'the kept pattern and shard channel messages',
    });
    assert.deepEqual(eventsSince(rec, since, 'message'), [[b, 'to b']]);
    assert.deepEqual(eventsSince(rec, since, 'pmessage'), [[pb, pbMatch, 'to pb']]);
    assert.deepEqual(eventsSince(rec, since, 'smessage'), [[s2, 'to s2']]);
    assert.deepEqual(rec.errors, []);
  } finally {
    await h.quit(client);
    await h.quit(publisher);
  }
});

test('unsubscribe(), punsubscribe() and sunsubscribe() with no names remove every channel, pattern and shard channel', T, async () => {
  const c = await h.cluster();
  const masters = await c.masters();
  const client = await h.connect(c.seeds);
  const publisher = await h.connect(c.seeds);
  try {
    const rec = h.recordPubsub(client);
    const [a, b] = ['all-a', 'all-b'].map(uniq);
    const p = `${uniq('all-p')}.*`;
    const pMatch = `${p.slice(0, -2)}.m`;
    const s1 = shardChannelOn(masters, masters[0].port, 'one');
    const s2 = s1.replace(/:one$/, ':two');
    const s3 = shardChannelOn(masters, masters[2].port, 'three'); // another master, another connection
    await sub(client, 'subscribe', a, b);
    await sub(client, 'psubscribe', p);
    await sub(client, 'ssubscribe', s1, s2);
    await sub(client, 'ssubscribe', s3);
    await classicHolder(c, [a, b]);

    await sub(client, 'unsubscribe');
    const unsub = rec.of('unsubscribe');
    assert.deepEqual(unsub.map((x) => x[0]).sort(), [a, b].sort());
    assert.deepEqual(unsub.map((x) => x[1]), [2, 1], 'the pattern still counts on the connection');
    assert.deepEqual(sortedSubs(client.subscriptions), { channels: [], patterns: [p], shardChannels: [s1, s2, s3].sort() });

    await sub(client, 'punsubscribe');
    assert.deepEqual(rec.of('punsubscribe'), [[p, 0]]);
    await sub(client, 'sunsubscribe');
    assert.deepEqual(rec.of('sunsubscribe').map((x) => x[0]).sort(), [s1, s2, s3].sort());
    assert.deepEqual(sortedSubs(client.subscriptions), { channels: [], patterns: [], shardChannels: [] });

    const views = await numsub(c, [a, b]);
    assert.equal(views.reduce((n, v) => n + v.counts[a] + v.counts[b], 0), 0, 'no node lists a subscriber of a or b');
    assert.equal(await shardNumsub(masters[0].port, s1), 0);
    assert.equal(await shardNumsub(masters[0].port, s2), 0);
    assert.equal(await shardNumsub(masters[2].port, s3), 0);
    assert.equal(await h.call(publisher, 'spublish', s1, 'x'), 0);
    assert.equal(await h.call(publisher, 'spublish', s3, 'x'), 0);

    // A fresh subscription afterwards counts 1: nothing of the old set is left on the connection.
    const w = uniq('witness');
    await sub(client, 'subscribe', w);
    assert.deepEqual(rec.of('subscribe').pop(), [w, 1]);
    const witnessNode = await classicHolder(c, [w]);
    const since = rec.events.length;
    assert.equal(await sendCommand(witnessNode, ['PUBLISH', a, 'late a']), 0);
    assert.equal(await sendCommand(witnessNode, ['PUBLISH', pMatch, 'late p']), 0);
    assert.equal(await sendCommand(witnessNode, ['PUBLISH', w, 'witness']), 1);
    await rec.waitFor('message', (ch) => ch === w);
    assert.deepEqual(eventsSince(rec, since, 'message'), [[w, 'witness']], 'a was not delivered before the witness');
    assert.deepEqual(eventsSince(rec, since, 'pmessage'), [], 'the pattern was not delivered before the witness');
    assert.deepEqual(rec.errors, []);
  } finally {
    await h.quit(client);
    await h.quit(publisher);
  }
});

test('after CLIENT KILL TYPE pubsub on every node the client resubscribes by itself, reports the gap, and delivers what is published next', T, async () => {
  const c = await h.cluster();
  const masters = await c.masters();
  const client = await h.connect(c.seeds);
  const publisher = await h.connect(c.seeds);
  const key = uniq('kill-key');
  try {
    const rec = h.recordPubsub(client);
    const ch = uniq('kill');
    const p = `${uniq('kill-p')}.*`;
    const pMatch = `${p.slice(0, -2)}.m`;
    const s1 = shardChannelOn(masters, masters[0].port, 'kill1');
    const s2 = shardChannelOn(masters, masters[1].port, 'kill2');
    await sub(client, 'subscribe', ch);
    await sub(client, 'psubscribe', p);
    await sub(client, 'ssubscribe', s1);
    await sub(client, 'ssubscribe', s2);
    await h.call(publisher, 'publish', ch, 'before');
    await rec.waitFor('message', (x, m) => m === 'before');
    assert.deepEqual(rec.of('resubscribed'), []);

    const tKill = Date.now();
    const killed = await Promise.all(c.seeds.map(({ port }) => sendCommand(port, ['CLIENT', 'KILL', 'TYPE', 'pubsub'])));
    assert.ok(
      killed.reduce((x, y) => x + y, 0) >= 3,
      `the classic and both shard subscriber connections were killed (${killed})`,
    );

    const covered = () => {
      const evs = rec.of('resubscribed').map((x) => x[0]);
      const all = (k) => new Set(evs.flatMap((e) => e[k]));
      return all('channels').has(ch) && all('patterns').has(p) && all('shardChannels').has(s1) && all('shardChannels').has(s2);
    };
    await h.until(covered, { timeout: 20000, what: "'resubscribed' for the channel, the pattern and both shard channels" });
    const resubs = rec.events.filter((e) => e.type === 'resubscribed');
    for (const { args, at } of resubs) {
      const info = args[0];
      for (const k of ['channels', 'patterns', 'shardChannels']) assert.ok(Array.isArray(info[k]), `${k} is an array`);
      assert.ok(Number.isFinite(info.from) && Number.isFinite(info.to), `from/to are numbers: ${JSON.stringify(info)}`);
      assert.ok(info.from >= tKill - 5, `the loss was noticed after the kill (${info.from} >= ${tKill})`);
      assert.ok(info.from <= info.to, `from ${info.from} <= to ${info.to}`);
      assert.ok(info.to <= at + 5, `to ${info.to} is not after the event itself (${at})`);
    }
    const classic = resubs.map((e) => e.args[0]).find((info) => info.channels.length > 0);
    assert.deepEqual(classic.channels, [ch]);
    assert.deepEqual(classic.patterns, [p]);

    // Published after recovery: every kind arrives.
    const since = rec.events.length;
    await h.call(publisher, 'publish', ch, 'after');
    await h.call(publisher, 'publish', pMatch, 'after p');
    assert.equal(await h.call(publisher, 'spublish', s1, 'after s1'), 1);
    assert.equal(await h.call(publisher, 'spublish', s2, 'after s2'), 1);
    await h.until(
      () =>
        eventsSince(rec, since, 'message').length >= 1 &&
        eventsSince(rec, since, 'pmessage').length >= 1 &&
        eventsSince(rec, since, 'smessage').length >= 2,
      { what: 'the messages published after the kill' },
    );
    assert.deepEqual(eventsSince(rec, since, 'message'), [[ch, 'after']]);
    assert.deepEqual(eventsSince(rec, since, 'pmessage'), [[p, pMatch, 'after p']]);
    assert.deepEqual(
      eventsSince(rec, since, 'smessage').sort((x, y) => (x[0] < y[0] ? -1 : 1)),
      [
        [s1, 'after s1'],
        [s2, 'after s2'],
      ].sort((x, y) => (x[0] < y[0] ? -1 : 1)),
    );
    // One classic subscriber connection again, not two; the set itself did not change.
    await classicHolder(c, [ch]);
    assert.deepEqual(sortedSubs(client.subscriptions), { channels: [ch], patterns: [p], shardChannels: [s1, s2].sort() });
    // The command path was not involved.
    assert.equal(await h.call(client, 'set', key, 'v'), 'OK');
    assert.equal(await h.call(client, 'get', key), 'v');
  } finally {
    try {
      await h.call(publisher, 'del', key);
    } finally {
      await h.quit(client);
      await h.quit(publisher);
    }
  }
});

/**
 * Runs the pubsub-quit fixture; `onLine(line)` sees each stdout line as it comes. Resolves with
 * the exit code/signal, the JSON summary it printed at exit, when it said it was quitting and when
 * it closed. SIGKILLed (by pid) and reported `timedOut` 10 s after "quitting", or after 30 s.
 */
function runQuitFixture(env, onLine) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FIXTURE], { env: Object.assign({}, process.env, env), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let rest = '';
    let errOut = '';
    let quitAt = null;
    let timedOut = false;
    const kill = () => {
      timedOut = true;
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch (_) {
        // already gone
      }
    };
    let timer = setTimeout(kill, 30000);
    child.stdout.on('data', (d) => {
      out += d;
      const lines = (rest + d).split('\n');
      rest = lines.pop();
      for (const line of lines) {
        if (line === 'quitting') {
          quitAt = Date.now();
          clearTimeout(timer);
          timer = setTimeout(kill, 10000);
        }
        onLine(line);
      }
    });
    child.stderr.on('data', (d) => (errOut += d));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      let summary = null;
      try {
        summary = JSON.parse(out.trim().split('\n').pop());
      } catch (_) {
        // reported by the assertions
      }
      resolve({ code, signal, timedOut, quitAt, closedAt: Date.now(), summary, stdout: out, stderr: errOut });
    });
  });
}

test('quit() with a channel, a pattern and a shard channel subscribed lets the process exit by itself', T, async () => {
  const c = await h.cluster();
  const masters = await c.masters();
  const publisher = await h.connect(c.seeds);
  try {
    const ch = uniq('quit');
    const p = `${uniq('quit-p')}.*`;
    const s = shardChannelOn(masters, masters[1].port, 'quit');
    let published = null;
    const r = await runQuitFixture(
      { PUBSUB_QUIT_SEEDS: JSON.stringify(c.seeds), PUBSUB_QUIT_CHANNEL: ch, PUBSUB_QUIT_PATTERN: p, PUBSUB_QUIT_SHARD: s },
      (line) => {
        if (line !== 'subscribed') return;
        published = h.call(publisher, 'publish', ch, 'goodbye');
        published.catch(() => {}); // awaited (and asserted) below, once the child is gone
      },
    );
    const why = `(code ${r.code}, signal ${r.signal}, stdout ${r.stdout}, stderr ${r.stderr})`;
    assert.ok(published, `the child never reported its subscriptions ${why}`);
    await published;
    assert.equal(r.timedOut, false, `the child did not exit within 10 s of quit() ${why}`);
    assert.equal(r.code, 0, `the child exited with ${r.code}/${r.signal} ${why}`);
    assert.ok(r.summary, `no summary printed ${why}`);
    assert.deepEqual(r.summary.errors, []);
    assert.deepEqual(r.summary.subscribed, [ch, p, s]);
    assert.deepEqual(r.summary.messages, [[ch, 'goodbye']]);
    assert.equal(r.summary.quitCallbacks, 1);
    assert.equal(r.summary.quitError, null);
    assert.ok(r.closedAt - r.quitAt < 10000, `exited ${r.closedAt - r.quitAt} ms after quit()`);
  } finally {
    await h.quit(publisher);
  }
});
