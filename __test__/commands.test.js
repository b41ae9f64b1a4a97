// Commands through the client against a real local Redis Cluster: RedisClustr.keySlot agrees with
// the server's CLUSTER KEYSLOT on random binary keys; writes land on the master that owns the key
// (checked with a direct GET on that master, which would answer MOVED anywhere else); binary-safe
// values and keys; every node_redis calling form (upper/lower case, send_command, argument
// shapes, chaining, no callback); the promise twins; keyless commands; EVAL/EVALSHA routing by
// their first key; and cross-slot commands that cannot be split getting the server's CROSSSLOT.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('crypto');
const { pipeline, sendCommand } = require('../scripts/cluster');
const { RedisClustr, cluster, stopOwnCluster, call, callError, connect, quit, until } = require('./helpers');

const PREFIX = `cmd:${process.pid}:${crypto.randomBytes(4).toString('hex')}:`;

let c;
let client;
let masters;

before(async () => {
  c = await cluster();
  masters = await c.masters();
  assert.ok(masters.length >= 3, `expected at least 3 masters, got ${masters.length}`);
  client = await connect(c.seeds);
});

after(async () => {
  if (client) await quit(client);
  await stopOwnCluster();
});

/** The master that owns `slot` per CLUSTER SLOTS. */
function ownerOfSlot(slot) {
  const m = masters.find((x) => x.slots.some(([a, b]) => slot >= a && slot <= b));
  assert.ok(m, `no master owns slot ${slot}`);
  return m;
}

function ownerOf(key) {
  return ownerOfSlot(RedisClustr.keySlot(key));
}

/** A key starting with `prefix` whose slot `master` owns. */
function keyOn(master, prefix) {
  for (let i = 0; i < 100000; i++) {
    const key = `${PREFIX}${prefix}:${i}`;
    const s = RedisClustr.keySlot(key);
    if (master.slots.some(([a, b]) => s >= a && s <= b)) return key;
  }
  throw new Error(`no key found for master ${master.port}`);
}

/** GET straight from the key's owning master (rejects with MOVED if the map is wrong). */
function directGet(key, opts) {
  const m = ownerOf(key);
  return sendCommand(m.port, ['GET', key], Object.assign({ host: m.host }, opts));
}

function direct(key, ...args) {
  const m = ownerOf(key);
  return sendCommand(m.port, args, { host: m.host });
}

function token() {
  return crypto.randomBytes(8).toString('hex');
}

// A byte pool weighted towards the bytes that matter for slots: braces and invalid UTF-8.
const SPECIAL = [0x7b, 0x7d, 0x7b, 0x7d, 0xff, 0xfe, 0x80, 0xc3, 0xe2, 0xed, 0xa0, 0x00, 0x0d, 0x0a, 0x20];
function randomKey(rand) {
  const len = rand(41);
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = rand(3) === 0 ? SPECIAL[rand(SPECIAL.length)] : rand(256);
  const shape = rand(10);
  if (shape === 0 && len > 2) {
    // An explicit hash tag somewhere inside: prefix{tag}suffix.
    const open = rand(len - 1);
    const close = open + 1 + rand(len - open - 1);
    b[open] = 0x7b;
    b[close] = 0x7d;
  } else if (shape === 1 && len > 1) {
    // An empty tag first: the whole key must be hashed.
    const open = rand(len - 1);
    b[open] = 0x7b;
    b[open + 1] = 0x7d;
  }
  return b;
}

test('RedisClustr.keySlot gives the same slot as CLUSTER KEYSLOT for 10,000 random binary keys', async () => {
  // Deterministic per run seed, printed on failure, so a mismatch can be replayed.
  const seed = crypto.randomBytes(4).readUInt32LE(0);
  let state = seed || 1;
  const rand = (n) => {
    // xorshift32
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state % n;
  };
  const keys = [];
  for (let i = 0; i < 10000; i++) keys.push(randomKey(rand));
  // Fixed cases the random ones may miss.
  keys.push(
    Buffer.alloc(0),
    Buffer.from('{}'),
    Buffer.from('{'),
    Buffer.from('}{'),
    Buffer.from('foo{}{bar}'),
    Buffer.from('foo{{bar}}zap'),
    Buffer.from('{user1000}.following'),
    Buffer.from([0x7b, 0xff, 0x7d, 0x61]),
    Buffer.from([0xff]),
    Buffer.from('123456789')
  );

  // The sample must exercise what it claims to: invalid UTF-8 whose lossy string form hashes
  // elsewhere (so stringifying a Buffer key would be caught), and keys with a real hash tag.
  const invalidUtf8 = keys.filter((k) => !Buffer.from(k.toString('utf8'), 'utf8').equals(k));
  assert.ok(invalidUtf8.length > 1000, `only ${invalidUtf8.length} keys are invalid UTF-8`);
  assert.ok(
    invalidUtf8.some((k) => RedisClustr.keySlot(k) !== RedisClustr.keySlot(k.toString('utf8'))),
    'no key in the sample hashes differently as bytes and as a lossy string'
  );
  assert.ok(keys.filter((k) => /\{[^}]+\}/.test(k.toString('latin1'))).length > 500, 'too few hash-tagged keys');

  const port = c.seeds[0].port;
  const host = c.seeds[0].host;
  const mismatches = [];
  for (let i = 0; i < keys.length; i += 1000) {
    const chunk = keys.slice(i, i + 1000);
    const replies = await pipeline(port, chunk.map((k) => ['CLUSTER', 'KEYSLOT', k]), { host, timeoutMs: 20000 });
    chunk.forEach((k, j) => {
      const mine = RedisClustr.keySlot(k);
      assert.equal(typeof replies[j], 'number', `CLUSTER KEYSLOT failed for ${k.toString('hex')}: ${replies[j]}`);
      if (mine !== replies[j]) mismatches.push(`${k.toString('hex')}: keySlot ${mine}, server ${replies[j]}`);
    });
  }
  assert.deepEqual(mismatches.slice(0, 20), [], `seed ${seed}: ${mismatches.length} mismatches`);
});

test('RedisClustr.keySlot hashes a string as its UTF-8 bytes, like the server does', async () => {
  const keys = ['', 'a', 'héllo', '日本語キー', '{tag}rest', 'x{ü}y', '😀{😀}', '\u0000\r\n'];
  const replies = await pipeline(c.seeds[0].port, keys.map((k) => ['CLUSTER', 'KEYSLOT', k]), { host: c.seeds[0].host });
  assert.deepEqual(
    keys.map((k) => RedisClustr.keySlot(k)),
    replies
  );
  for (const k of keys) assert.equal(RedisClustr.keySlot(k), RedisClustr.keySlot(Buffer.from(k, 'utf8')));
});

test(
  'RedisClustr.keySlot hashes a Uint8Array key as its bytes, the same way commands route it',
  async () => {
    // Commands accept any Uint8Array as bytes (lib/args.js copies it with Buffer.from), so keySlot
    // must agree; String(u8) would give "255,0,123" instead.
    const bytes = [0xff, 0x00, 0x7b, 0x61, 0x7d];
    const server = await sendCommand(c.seeds[0].port, ['CLUSTER', 'KEYSLOT', Buffer.from(bytes)], { host: c.seeds[0].host });
    assert.equal(RedisClustr.keySlot(Buffer.from(bytes)), server);
    assert.equal(RedisClustr.keySlot(new Uint8Array(bytes)), server);
  }
);

test('a SET through the client lands on the master that owns the key, for every master', async () => {
  const movedBefore = client.stats().moved;
  for (const m of masters) {
    const key = keyOn(m, 'route');
    const value = token();
    assert.equal(await call(client, 'set', key, value), 'OK');
    // A plain GET on the owner: any other node would answer MOVED (the promise would reject).
    assert.equal(await sendCommand(m.port, ['GET', key], { host: m.host }), value);
    // And the harness really does tell nodes apart: a non-owner refuses the key.
    const other = masters.find((x) => x !== m);
    await assert.rejects(sendCommand(other.port, ['GET', key], { host: other.host }), (e) => e.code === 'MOVED');
    // Read back through the client too.
    assert.equal(await call(client, 'get', key), value);
  }
  // With a correct slot map from the start, no command needed a MOVED hop.
  assert.equal(client.stats().moved, movedBefore, 'the client was redirected: it routed to the wrong node first');
});

test('subcommand and movable-key commands route to the master that owns their keys', async () => {
  const movedBefore = client.stats().moved;
  for (const m of masters) {
    // Keys sharing one hash tag owned by m.
    const tagKey = keyOn(m, 'mv');
    const tag = `{${tagKey}}`;
    const k = (n) => `${tag}${n}`;
    assert.equal(await call(client, 'set', k('str'), '12'), 'OK');
    assert.equal(await call(client, 'object', 'encoding', k('str')), 'int');
    assert.equal(typeof (await call(client, 'MEMORY', 'USAGE', k('str'))), 'number');
    const id = await call(client, 'xadd', k('stream'), '*', 'f', 'v');
    const info = await call(client, 'xinfo', 'stream', k('stream'));
    assert.equal(info[info.indexOf('last-generated-id') + 1], id);
    assert.deepEqual(await call(client, 'xread', 'COUNT', 1, 'STREAMS', k('stream'), '0'), [[k('stream'), [[id, ['f', 'v']]]]]);
    await call(client, 'zadd', k('z'), 1, 'a');
    assert.equal(await call(client, 'zunionstore', k('zdest'), 1, k('z')), 1);
    await call(client, 'rpush', k('list'), 'b', 'a');
    assert.equal(await call(client, 'sort', k('list'), 'ALPHA', 'STORE', k('sorted')), 2);
    assert.deepEqual(await call(client, 'lmpop', 1, k('list'), 'LEFT'), [k('list'), ['b']]);
    // The stored results are on m itself.
    assert.deepEqual(await sendCommand(m.port, ['ZRANGE', k('zdest'), 0, -1], { host: m.host }), ['a']);
    assert.deepEqual(await sendCommand(m.port, ['LRANGE', k('sorted'), 0, -1], { host: m.host }), ['a', 'b']);
  }
  assert.equal(client.stats().moved, movedBefore, 'a command was first sent to a node that does not own its keys');
});

test('a Uint8Array key routes by its bytes to the owning master', async () => {
  const bytes = Buffer.concat([Buffer.from(PREFIX), Buffer.from([0xfe, 0x7b, 0xff, 0x7d])]);
  const u8 = new Uint8Array(bytes);
  assert.equal(await call(client, 'set', u8, 'u8'), 'OK');
  const m = ownerOf(bytes);
  assert.equal(await sendCommand(m.port, ['GET', bytes], { host: m.host }), 'u8');
});

test('a Buffer view with an offset sends only the bytes of the view', async () => {
  const key = `${PREFIX}bin:view`;
  const whole = Buffer.from('xxHELLOyy');
  assert.equal(await call(client, 'set', key, whole.subarray(2, 7)), 'OK');
  assert.equal(await directGet(key), 'HELLO');
  const u8 = new Uint8Array(whole.buffer, whole.byteOffset + 1, 3);
  assert.equal(await call(client, 'set', key, u8), 'OK');
  assert.equal(await directGet(key), 'xHE');
});

test('a Buffer changed by the caller right after the call is sent as it was at the call', async () => {
  const key = `${PREFIX}bin:mutated`;
  const value = Buffer.from('original-bytes');
  const done = call(client, 'set', key, value);
  value.fill(0x78);
  assert.equal(await done, 'OK');
  assert.equal(await directGet(key), 'original-bytes');
});

test('a binary value with CR, LF, NUL and 0xff bytes round-trips as the same bytes with detect_buffers', async () => {
  const bc = await connect(c.seeds, { redisOptions: { detect_buffers: true } });
  try {
    const key = `${PREFIX}bin:value`;
    const value = Buffer.concat([
      Buffer.from([0x0d, 0x0a, 0x00, 0xff, 0xfe, 0x24, 0x2a, 0x2d, 0x0d, 0x0a, 0x0d]),
      crypto.randomBytes(200),
      Buffer.from([0x00, 0xff]),
    ]);
    assert.equal(await call(bc, 'set', key, value), 'OK');
    // Exactly these bytes are stored on the owning master.
    assert.ok(value.equals(await directGet(key, { buffers: true })));
    // A Buffer argument asks for a Buffer reply...
    const got = await call(bc, 'get', Buffer.from(key));
    assert.ok(Buffer.isBuffer(got), `expected a Buffer, got ${typeof got}`);
    assert.ok(value.equals(got), 'the bytes changed on the way');
    // ...and a string-only call still gets a string (detect_buffers, not return_buffers).
    const asString = await call(bc, 'get', key);
    assert.equal(typeof asString, 'string');
    assert.equal(asString, value.toString('utf8'));
  } finally {
    await quit(bc);
  }
});

test('a Buffer key with invalid UTF-8 and CR LF NUL bytes is stored under exactly those bytes', async () => {
  const bc = await connect(c.seeds, { redisOptions: { detect_buffers: true } });
  try {
    const key = Buffer.concat([Buffer.from(PREFIX), Buffer.from([0xff, 0x00, 0x0d, 0x0a, 0xc3, 0x28, 0x7b, 0xfe, 0x7d])]);
    const value = Buffer.from([0x01, 0x00, 0xff, 0x0d, 0x0a]);
    assert.equal(await call(bc, 'set', key, value), 'OK');
    // The owner by the key's bytes holds it under the exact bytes (a lossy string key would
    // hash elsewhere: tag {0xfe} vs {U+FFFD}).
    assert.notEqual(RedisClustr.keySlot(key), RedisClustr.keySlot(key.toString('utf8')));
    const m = ownerOf(key);
    const stored = await sendCommand(m.port, ['GET', key], { host: m.host, buffers: true });
    assert.ok(Buffer.isBuffer(stored) && value.equals(stored));
    const got = await call(bc, 'get', key);
    assert.ok(Buffer.isBuffer(got) && value.equals(got));
    assert.equal(await call(bc, 'del', key), 1);
  } finally {
    await quit(bc);
  }
});

test('a 1 MiB random Buffer value round-trips byte for byte', async () => {
  const bc = await connect(c.seeds, { redisOptions: { return_buffers: true } });
  try {
    const key = `${PREFIX}bin:big`;
    const value = crypto.randomBytes(1024 * 1024);
    assert.equal(String(await call(bc, 'set', key, value)), 'OK');
    const got = await call(bc, 'get', key);
    assert.ok(Buffer.isBuffer(got));
    assert.equal(got.length, value.length);
    assert.ok(value.equals(got));
  } finally {
    await quit(bc);
  }
});

test('uppercase and lowercase command methods both send the command', async () => {
  const k1 = `${PREFIX}case:upper`;
  const k2 = `${PREFIX}case:lower`;
  assert.equal(typeof client.SET, 'function');
  assert.equal(typeof client.set, 'function');
  assert.equal(await call(client, 'SET', k1, 'via-upper'), 'OK');
  assert.equal(await call(client, 'set', k2, 'via-lower'), 'OK');
  assert.equal(await directGet(k1), 'via-upper');
  assert.equal(await directGet(k2), 'via-lower');
  assert.equal(await call(client, 'GET', k2), 'via-lower');
  assert.equal(await call(client, 'get', k1), 'via-upper');
});

test('send_command and sendCommand send any command by name, in either case', async () => {
  const key = `${PREFIX}send`;
  const value = token();
  assert.equal(await call(client, 'send_command', 'set', [key, value]), 'OK');
  assert.equal(await directGet(key), value);
  assert.equal(await call(client, 'sendCommand', 'get', [key]), value);
  assert.equal(await call(client, 'send_command', 'GET', [key]), value);
  assert.equal(await call(client, 'send_command', 'append', [key, '!']), value.length + 1);
  assert.equal(await directGet(key), `${value}!`);
});

test(
  'send_command with null args sends the command with no arguments, as node_redis does',
  async () => {
    assert.equal(await call(client, 'send_command', 'ping', undefined), 'PONG');
    assert.equal(await call(client, 'send_command', 'ping', null), 'PONG');
  }
);

test('every command method returns the client, so calls chain', async () => {
  const key = `${PREFIX}chain`;
  const got = await new Promise((resolve, reject) => {
    const r1 = client.set(key, 'chained', (err) => err && reject(err));
    assert.equal(r1, client);
    const r2 = client
      .del(`${key}:x`)
      .SET(`${key}:y`, '1')
      .get(key, (err, v) => (err ? reject(err) : resolve(v)));
    assert.equal(r2, client);
  });
  assert.equal(got, 'chained');
  assert.equal(client.send_command('ping', []), client);
  assert.equal(client.sendCommand('ping', []), client);
  assert.equal(await directGet(`${key}:y`), '1');
});

test('the (a, b, cb), ([a, b], cb) and (key, [b, c], cb) argument forms send the same arguments', async () => {
  const k1 = `${PREFIX}form:spread`;
  const k2 = `${PREFIX}form:array`;
  const list = `${PREFIX}form:list`;
  assert.equal(await call(client, 'set', k1, 'spread'), 'OK');
  assert.equal(await call(client, 'set', [k2, 'array']), 'OK');
  assert.equal(await directGet(k1), 'spread');
  assert.equal(await directGet(k2), 'array');
  assert.equal(await call(client, 'rpush', list, ['a', 'b']), 2);
  assert.equal(await call(client, 'rpush', list, ['c']), 3);
  assert.deepEqual(await call(client, 'lrange', list, 0, -1), ['a', 'b', 'c']);
  assert.deepEqual(await call(client, 'lrange', [list, '1', '-1']), ['b', 'c']);
  assert.deepEqual(await call(client, 'lrange', list, [0, 0]), ['a']);
  assert.deepEqual(await direct(list, 'LRANGE', list, 0, -1), ['a', 'b', 'c']);
  // Numbers are sent as their decimal strings.
  assert.equal(await call(client, 'set', k1, 42), 'OK');
  assert.equal(await directGet(k1), '42');
  assert.equal(await call(client, 'incrby', k1, -2.0), 40);
});

test('hmset(key, {field: value}, cb) sends every field and value of the object', async () => {
  const key = `${PREFIX}hash`;
  assert.equal(await call(client, 'hmset', key, { f: 'v', n: 1, 'with space': 'x y' }), 'OK');
  assert.deepEqual(await direct(key, 'HGETALL', key), ['f', 'v', 'n', '1', 'with space', 'x y']);
  assert.equal(await call(client, 'HMSET', key, { n: 2 }), 'OK');
  assert.equal(await direct(key, 'HGET', key, 'n'), '2');
  // The flat form still works.
  assert.equal(await call(client, 'hmset', key, 'g', 'w'), 'OK');
  assert.deepEqual(await call(client, 'hgetall', key), { f: 'v', n: '2', 'with space': 'x y', g: 'w' });
});

test('a call without a callback still executes', async () => {
  const key = `${PREFIX}nocb`;
  const list = `${PREFIX}nocb:list`;
  const value = token();
  client.set(key, value);
  client.rpush(list, ['x', 'y']);
  client.send_command('rpush', [list, 'z']);
  // A trailing undefined is the callback slot, as in node_redis.
  client.hmset(`${key}:h`, { a: '1' }, undefined);
  await until(async () => (await directGet(key)) === value, { what: 'the SET without a callback' });
  await until(async () => (await direct(list, 'LLEN', list)) === 3, { what: 'the RPUSHes without a callback' });
  assert.deepEqual(await direct(list, 'LRANGE', list, 0, -1), ['x', 'y', 'z']);
  await until(async () => (await direct(`${key}:h`, 'HGET', `${key}:h`, 'a')) === '1', { what: 'the HMSET without a callback' });
});

test('the promise twins resolve with the reply: setAsync and getAsync', async () => {
  const key = `${PREFIX}async`;
  const value = token();
  assert.equal(typeof client.getAsync, 'function');
  assert.equal(await client.setAsync(key, value), 'OK');
  assert.equal(await directGet(key), value);
  assert.equal(await client.getAsync(key), value);
  assert.equal(await client.getAsync(`${key}:missing`), null);
  assert.equal(await client.GETAsync(key), value);
  assert.equal(await client.send_commandAsync('get', [key]), value);
  assert.equal(await client.rpushAsync(`${key}:l`, ['a', 'b']), 2);
  assert.equal(await client.hmsetAsync(`${key}:h`, { f: 'v' }), 'OK');
  assert.deepEqual(await client.hgetallAsync(`${key}:h`), { f: 'v' });
});

test('a rejected promise twin carries the error code', async () => {
  const key = `${PREFIX}async:list`;
  await call(client, 'rpush', key, 'x');
  await assert.rejects(client.getAsync(key), (e) => {
    assert.ok(e instanceof Error);
    assert.equal(e.code, 'WRONGTYPE');
    assert.equal(e.command, 'GET');
    return true;
  });
  await assert.rejects(client.incrAsync(key), (e) => e.code === 'WRONGTYPE');
  await assert.rejects(client.setAsync(`${key}:bad`, null), (e) => e.code === 'INVALID_ARG');
  await assert.rejects(client.getAsync(), (e) => e.code === 'NO_KEY');
});

test('keyless commands work: PING, TIME and INFO', async () => {
  assert.equal(await call(client, 'ping'), 'PONG');
  assert.equal(await call(client, 'ping', 'hello'), 'hello');
  const time = await call(client, 'time');
  assert.ok(Array.isArray(time) && time.length === 2, `TIME gave ${JSON.stringify(time)}`);
  assert.match(time[0], /^\d+$/);
  assert.match(time[1], /^\d+$/);
  assert.ok(Math.abs(Number(time[0]) - Date.now() / 1000) < 60, `server time ${time[0]} is far from ours`);
  const info = await call(client, 'info', 'server');
  assert.equal(typeof info, 'string');
  assert.match(info, /redis_version:\d/);
  assert.match(await call(client, 'info'), /cluster_enabled:1/);
});

test('keyless commands go to masters only', async () => {
  const ids = new Set(masters.map((m) => m.id));
  const seen = new Set();
  for (let i = 0; i < 30; i++) {
    const id = await call(client, 'send_command', 'cluster', ['myid']);
    assert.ok(ids.has(id), `CLUSTER MYID answered by ${id}, which is not a master`);
    seen.add(id);
  }
  assert.ok(seen.size >= 1);
});

test('an unknown command sent with send_command gets the server ERR with code ERR', async () => {
  const err = await callError(client, 'send_command', 'nosuchcommand', ['a', 'b']);
  assert.ok(err instanceof Error);
  assert.equal(err.code, 'ERR');
  assert.match(err.message, /^ERR unknown command/);
  assert.equal(err.command, 'NOSUCHCOMMAND');
  assert.deepEqual(err.args, ['a', 'b']);
});

test('EVAL with one key runs on the master that owns the key', async () => {
  const script = "return {redis.call('cluster', 'myid'), redis.call('get', KEYS[1])}";
  const movedBefore = client.stats().moved;
  for (const m of masters) {
    const key = keyOn(m, 'eval');
    const value = token();
    await sendCommand(m.port, ['SET', key, value], { host: m.host });
    assert.deepEqual(await call(client, 'eval', script, 1, key), [m.id, value]);
    // A write from a script is on the owner too.
    assert.equal(await call(client, 'eval', "return redis.call('set', KEYS[1], ARGV[1])", 1, key, 'from-eval'), 'OK');
    assert.equal(await sendCommand(m.port, ['GET', key], { host: m.host }), 'from-eval');
  }
  assert.equal(client.stats().moved, movedBefore, 'EVAL was sent to a node that does not own its key first');
});

test('EVALSHA with one key runs on the master that owns the key', async () => {
  const script = "return redis.call('cluster', 'myid') .. ':' .. KEYS[1]";
  let sha;
  for (const m of masters) sha = await sendCommand(m.port, ['SCRIPT', 'LOAD', script], { host: m.host });
  for (const m of masters) {
    const key = keyOn(m, 'evalsha');
    assert.equal(await call(client, 'evalsha', sha, 1, key), `${m.id}:${key}`);
  }
});

test('EVAL with zero keys runs on a master and returns its result', async () => {
  assert.equal(await call(client, 'eval', 'return ARGV[1]', 0, 'hello'), 'hello');
  assert.deepEqual(await call(client, 'eval', 'return {ARGV[1], ARGV[2]}', '0', 'a', 'b'), ['a', 'b']);
  const id = await call(client, 'eval', "return redis.call('cluster', 'myid')", 0);
  assert.ok(
    masters.some((m) => m.id === id),
    `EVAL with 0 keys ran on ${id}, not a master`
  );
});

test('MSETNX across slots gets the server CROSSSLOT error untouched and writes nothing', async () => {
  const a = keyOn(masters[0], 'xs:a');
  const b = keyOn(masters[1], 'xs:b');
  assert.notEqual(RedisClustr.keySlot(a), RedisClustr.keySlot(b));
  const err = await callError(client, 'msetnx', a, '1', b, '2');
  assert.ok(err instanceof Error);
  assert.equal(err.code, 'CROSSSLOT');
  assert.match(err.message, /^CROSSSLOT Keys in request don't hash to the same slot/);
  assert.equal(err.command, 'MSETNX');
  assert.equal(await directGet(a), null);
  assert.equal(await directGet(b), null);
  // The same command within one slot works: the error is about slots, not MSETNX.
  assert.equal(await call(client, 'msetnx', `${PREFIX}{xs}a`, '1', `${PREFIX}{xs}b`, '2'), 1);
  assert.equal(await directGet(`${PREFIX}{xs}b`), '2');
});

test('RENAME and SINTERSTORE across slots get the server CROSSSLOT error and change nothing', async () => {
  const a = keyOn(masters[0], 'rn:a');
  const b = keyOn(masters[1], 'rn:b');
  await call(client, 'set', a, 'stay');
  const err = await callError(client, 'rename', a, b);
  assert.equal(err.code, 'CROSSSLOT');
  assert.equal(err.command, 'RENAME');
  assert.equal(await directGet(a), 'stay');
  assert.equal(await directGet(b), null);
  const s = await callError(client, 'sinterstore', b, a, keyOn(masters[2], 'rn:c'));
  assert.equal(s.code, 'CROSSSLOT');
});

test('20,000 commands queued in one tick keep their order; a refused one among them fails alone', async () => {
  // Native code hands a large tick's commands to the io thread in chunks of 4,096 while it is
  // still parsing the rest: INCR on one key shows any reordering at a chunk boundary.
  const key = `${PREFIX}{tick}n`;
  const N = 20000;
  const incrs = [];
  let refused;
  for (let i = 0; i < N; i++) {
    if (i === 10000) refused = callError(client, 'select', '1');
    incrs.push(call(client, 'incr', key));
  }
  const got = await Promise.all(incrs);
  for (let i = 0; i < N; i++) assert.equal(got[i], i + 1, `INCR #${i + 1}`);
  const err = await refused;
  assert.equal(err.code, 'INVALID_ARG');
  assert.equal(err.command, 'SELECT');
  assert.equal(await directGet(key), String(N));
});

test('a lone command never overtakes commands still in flight: SET by the driver, then GET, sees the SET', async () => {
  // A command issued with nothing else in flight is written from the JS thread at once; one
  // issued while others are pending must queue behind them. Two records in one tick go through
  // the io thread; the GET a tick later, with them still pending, must not be written first.
  const key = `${PREFIX}{order}k`;
  const other = `${PREFIX}{order}n`;
  for (let i = 0; i < 200; i++) {
    client.set(key, `v${i}`);
    client.incr(other);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(await call(client, 'get', key), `v${i}`, `round ${i}`);
  }
});
