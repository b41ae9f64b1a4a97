// Reply shapes and errors as node_redis gives them, against a real local Redis Cluster: status →
// 'OK', integer → number, bulk → string, nil → null, arrays nested as arrays (with nils and nested
// error replies in place), hgetall → plain object or null, return_buffers / detect_buffers →
// Buffers for bulk replies; server errors as Error with .code/.command/.args; and every bad input
// (undefined, null, object, function, symbol, NaN, no key) rejected in the callback with a clear
// code, asynchronously, without leaking the bad value and without anything being sent (checked
// with a direct GET on the key's owner); failures without a callback are emitted as 'error'.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('crypto');
const util = require('util');
const { sendCommand } = require('../scripts/cluster');
const { RedisClustr, cluster, stopOwnCluster, call, callError, connect, quit } = require('./helpers');

const PREFIX = `rep:${process.pid}:${crypto.randomBytes(4).toString('hex')}:`;

let c;
let client;
let masters;

before(async () => {
  c = await cluster();
  masters = await c.masters();
  client = await connect(c.seeds);
});

after(async () => {
  if (client) await quit(client);
  await stopOwnCluster();
});

function ownerOf(key) {
  const slot = RedisClustr.keySlot(key);
  const m = masters.find((x) => x.slots.some(([a, b]) => slot >= a && slot <= b));
  assert.ok(m, `no master owns slot ${slot}`);
  return m;
}

/** A command straight to the key's owning master (rejects with MOVED if the map is wrong). */
function direct(key, ...args) {
  const m = ownerOf(key);
  return sendCommand(m.port, args, { host: m.host });
}

let seq = 0;
function freshKey(name) {
  seq += 1;
  return `${PREFIX}${name}:${seq}`;
}

/** Resolves with the next 'error' event of `emitter`, or rejects after `ms`. */
function nextError(emitter, ms = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      emitter.removeListener('error', onError);
      reject(new Error(`no 'error' event within ${ms} ms`));
    }, ms);
    function onError(err) {
      clearTimeout(t);
      resolve(err);
    }
    emitter.once('error', onError);
  });
}

// ---- reply shapes ----

test('a status reply is the string OK', async () => {
  const key = freshKey('status');
  const reply = await call(client, 'set', key, 'v');
  assert.equal(reply, 'OK');
  assert.equal(typeof reply, 'string');
  assert.equal(await call(client, 'ping'), 'PONG');
  assert.equal(await call(client, 'eval', "return redis.status_reply('FINE')", 0), 'FINE');
});

test('an integer reply is a number', async () => {
  const key = freshKey('int');
  assert.strictEqual(await call(client, 'incr', key), 1);
  assert.strictEqual(await call(client, 'incr', key), 2);
  assert.strictEqual(await call(client, 'incrby', key, -12), -10);
  assert.strictEqual(await call(client, 'incrby', key, 2 ** 40), 2 ** 40 - 10);
  assert.strictEqual(await call(client, 'exists', key), 1);
  assert.strictEqual(await call(client, 'exists', `${key}:none`), 0);
  assert.equal(await direct(key, 'GET', key), String(2 ** 40 - 10));
});

test('a bulk reply is a string, including multi-byte UTF-8 and an empty string', async () => {
  const key = freshKey('bulk');
  const value = 'héllo ✓ 日本 😀 \r\n\u0000 end';
  await call(client, 'set', key, value);
  const got = await call(client, 'get', key);
  assert.equal(typeof got, 'string');
  assert.equal(got, value);
  // A number stored is still read back as a bulk string.
  await call(client, 'set', key, 7);
  assert.strictEqual(await call(client, 'get', key), '7');
  await call(client, 'set', key, '');
  assert.strictEqual(await call(client, 'get', key), '');
});

test('a nil reply is null', async () => {
  const key = freshKey('nil');
  assert.strictEqual(await call(client, 'get', key), null);
  assert.strictEqual(await call(client, 'hget', key, 'f'), null);
  assert.strictEqual(await call(client, 'lpop', key), null);
});

test('array replies are arrays, empty arrays stay empty and nils inside stay null', async () => {
  const list = freshKey('list');
  assert.equal(await call(client, 'lpush', list, 'a', 'b', 'c'), 3);
  assert.deepEqual(await call(client, 'lrange', list, 0, -1), ['c', 'b', 'a']);
  assert.deepEqual(await call(client, 'lrange', `${list}:none`, 0, -1), []);
  const a = `${PREFIX}{arr}a`;
  const b = `${PREFIX}{arr}b`;
  await call(client, 'set', a, '1');
  assert.deepEqual(await call(client, 'mget', a, b), ['1', null]);
  assert.deepEqual(await call(client, 'eval', "return {1, false, 'x'}", 0), [1, null, 'x']);
});

test('arrays longer than native code builds in one call (4,096) arrive whole and in order', async () => {
  // Up to 4,096 elements an array is made by one call into JS, beyond that element by element:
  // both sides of that line for a reply and for a batch's results, then 3,000 completions at
  // once (however many drains they take).
  const list = freshKey('long');
  const items = Array.from({ length: 10000 }, (_, i) => `i${i}`);
  assert.equal(await call(client, 'rpush', list, ...items), items.length);
  assert.deepEqual(await call(client, 'lrange', list, 0, 4095), items.slice(0, 4096));
  assert.deepEqual(await call(client, 'lrange', list, 0, -1), items);
  const b = client.batch();
  for (let i = 0; i < 5000; i++) b.lindex(list, i);
  const results = await util.promisify((cb) => b.exec(cb))();
  assert.deepEqual(results, items.slice(0, 5000));
  const many = await Promise.all(Array.from({ length: 3000 }, (_, i) => client.lindexAsync(list, 9999 - i)));
  assert.deepEqual(many, items.slice(7000).reverse());
});

// Counts the shim's hand-overs to native code (calls of submit) until stop().
function countHandOvers(c) {
  const native = c._native;
  const submit = native.submit;
  const counter = {
    count: 0,
    stop: () => delete native.submit,
  };
  native.submit = function (...args) {
    counter.count++;
    return submit.apply(this, args);
  };
  return counter;
}

test('a tick that queues thousands of commands hands them over in parts, replies in order', async () => {
  // Memory stays bounded by a burst: every 1,024 commands go to native code at once instead of
  // the whole tick's queue waiting for its end (100,000 commands held their bytes three times).
  const list = freshKey('parts');
  const handed = countHandOvers(client);
  try {
    const jobs = [];
    for (let i = 0; i < 5000; i++) jobs.push(client.rpushAsync(list, `v${i}`));
    const duringTick = handed.count;
    const lengths = await Promise.all(jobs);
    assert.ok(duringTick >= 4, `5,000 commands were handed over ${duringTick} times within their tick`);
    assert.deepEqual(lengths, Array.from({ length: 5000 }, (_, i) => i + 1));
    assert.deepEqual(await call(client, 'lrange', list, 0, -1), Array.from({ length: 5000 }, (_, i) => `v${i}`));
  } finally {
    handed.stop();
  }
});

test('an idle client hands a big tick over at 200 arguments; with commands in flight, at its end', async () => {
  // With nothing in flight the servers would sit idle while the tick builds the rest, so the
  // first 200 arguments' worth goes at once; after that the tick's end, as usual (a second early
  // hand-over per tick only costs CPU when the servers already have work).
  const keys = Array.from({ length: 400 }, (_, i) => freshKey(`early${i}`));
  await call(client, 'mset', ...keys.flatMap((k, i) => [k, `e${i}`]));
  const handed = countHandOvers(client);
  try {
    assert.equal(client._pending.size, 0, 'the client is idle before the tick');
    const small = [client.getAsync(keys[0]), client.getAsync(keys[1])];
    assert.equal(handed.count, 0, 'a small tick waits for its end');
    await Promise.all(small);
    handed.count = 0;
    const first = client.mgetAsync(keys.slice(0, 300));
    const afterFirst = handed.count;
    const second = client.mgetAsync(keys.slice(100, 400));
    const third = client.getAsync(keys[399]);
    const duringTick = handed.count;
    const [a, b, c] = await Promise.all([first, second, third]);
    assert.equal(afterFirst, 1, 'an idle client hands 301 arguments over at once');
    assert.equal(duringTick, 1, 'with the first MGET in flight, the rest waits for the end of the tick');
    assert.deepEqual(a, keys.slice(0, 300).map((_, i) => `e${i}`));
    assert.deepEqual(b, keys.slice(100, 400).map((_, i) => `e${i + 100}`));
    assert.equal(c, 'e399');
  } finally {
    handed.stop();
  }
});

test('nested array replies are nested arrays', async () => {
  assert.deepEqual(await call(client, 'eval', 'return {1, {2, "x"}}', 0), [1, [2, 'x']]);
  assert.deepEqual(await call(client, 'eval', 'return {{}, {{"deep", {3}}}}', 0), [[], [['deep', [3]]]]);
  const zset = freshKey('zset');
  await call(client, 'zadd', zset, 1, 'one', 2, 'two');
  assert.deepEqual(await call(client, 'zrange', zset, 0, -1, 'WITHSCORES'), ['one', '1', 'two', '2']);
  // SCAN-style reply: [cursor, [items]].
  const [cursor, items] = await call(client, 'zscan', zset, 0);
  assert.equal(cursor, '0');
  assert.deepEqual(items, ['one', '1', 'two', '2']);
});

test('an error reply nested in an array is an Error with its code, in place', async () => {
  const reply = await call(client, 'eval', "return {1, redis.error_reply('MYERR boom'), 'x'}", 0);
  assert.equal(reply.length, 3);
  assert.equal(reply[0], 1);
  assert.ok(reply[1] instanceof Error, `expected an Error, got ${util.inspect(reply[1])}`);
  assert.equal(reply[1].code, 'MYERR');
  assert.equal(reply[1].message, 'MYERR boom');
  assert.equal(reply[2], 'x');
});

test('hgetall gives a plain object of strings, and null for a missing hash', async () => {
  const key = freshKey('hash');
  await call(client, 'hmset', key, { f1: 'v1', f2: 2, 'ünï': 'ç' });
  const obj = await call(client, 'hgetall', key);
  assert.equal(Object.getPrototypeOf(obj), Object.prototype);
  assert.deepEqual(obj, { f1: 'v1', f2: '2', 'ünï': 'ç' });
  assert.strictEqual(await call(client, 'hgetall', `${key}:none`), null);
  assert.deepEqual(await call(client, 'HGETALL', key), obj);
  assert.deepEqual(await call(client, 'send_command', 'hgetall', [key]), obj);
});

test('return_buffers gives Buffers for bulk replies, hgetall values and array items', async () => {
  const bc = await connect(c.seeds, { redisOptions: { return_buffers: true } });
  try {
    const key = freshKey('rb');
    const bytes = Buffer.from([0x00, 0xff, 0x0d, 0x0a, 0xc3]);
    await call(bc, 'set', key, bytes);
    const got = await call(bc, 'get', key);
    assert.ok(Buffer.isBuffer(got), `expected a Buffer, got ${util.inspect(got)}`);
    assert.ok(bytes.equals(got));
    // Even with string-only arguments.
    await call(client, 'set', `${key}:s`, 'plain');
    const s = await call(bc, 'get', `${key}:s`);
    assert.ok(Buffer.isBuffer(s) && s.toString() === 'plain');
    const hash = `${key}:h`;
    await call(bc, 'hmset', hash, { a: 'x', b: bytes });
    const obj = await call(bc, 'hgetall', hash);
    assert.deepEqual(Object.keys(obj).sort(), ['a', 'b']);
    assert.ok(Buffer.isBuffer(obj.a) && obj.a.toString() === 'x');
    assert.ok(Buffer.isBuffer(obj.b) && bytes.equals(obj.b));
    const list = `${key}:l`;
    await call(bc, 'rpush', list, 'p', 'q');
    const items = await call(bc, 'lrange', list, 0, -1);
    assert.ok(items.every(Buffer.isBuffer));
    assert.deepEqual(items.map(String), ['p', 'q']);
    // Integers and nils keep their shapes.
    assert.strictEqual(await call(bc, 'incr', `${key}:n`), 1);
    assert.strictEqual(await call(bc, 'get', `${key}:none`), null);
    assert.strictEqual(await call(bc, 'hgetall', `${key}:none`), null);
  } finally {
    await quit(bc);
  }
});

test('detect_buffers gives Buffers only to calls that passed a Buffer argument', async () => {
  const dc = await connect(c.seeds, { redisOptions: { detect_buffers: true } });
  try {
    const key = freshKey('db');
    await call(dc, 'hmset', key, { f: 'v' });
    const asStrings = await call(dc, 'hgetall', key);
    assert.deepEqual(asStrings, { f: 'v' });
    const asBuffers = await call(dc, 'hgetall', Buffer.from(key));
    assert.ok(Buffer.isBuffer(asBuffers.f) && asBuffers.f.toString() === 'v');
    assert.strictEqual(await call(dc, 'hget', key, 'f'), 'v');
    const b = await call(dc, 'hget', key, Buffer.from('f'));
    assert.ok(Buffer.isBuffer(b) && b.toString() === 'v');
  } finally {
    await quit(dc);
  }
});

// ---- server errors ----

test('a server error is an Error with .code, the uppercase .command and the .args', async () => {
  const key = freshKey('wrongtype');
  await call(client, 'set', key, 'string');
  const err = await callError(client, 'lpush', key, 'x', 1);
  assert.ok(err instanceof Error);
  assert.equal(err.code, 'WRONGTYPE');
  assert.match(err.message, /^WRONGTYPE Operation against a key holding the wrong kind of value/);
  assert.equal(err.command, 'LPUSH');
  assert.deepEqual(err.args, [key, 'x', '1']);
  // The same through send_command with a mixed-case name.
  const err2 = await callError(client, 'send_command', 'Lpush', [key, 'y']);
  assert.equal(err2.code, 'WRONGTYPE');
  assert.equal(err2.command, 'LPUSH');
  assert.deepEqual(err2.args, [key, 'y']);
  // The key is untouched.
  assert.equal(await direct(key, 'GET', key), 'string');
});

test('a server error from a script keeps its own code', async () => {
  const err = await callError(client, 'eval', "return redis.error_reply('MYERR top level')", 0);
  assert.equal(err.code, 'MYERR');
  assert.equal(err.message, 'MYERR top level');
  assert.equal(err.command, 'EVAL');
  const notInt = freshKey('notint');
  await call(client, 'set', notInt, 'abc');
  const err2 = await callError(client, 'incr', notInt);
  assert.equal(err2.code, 'ERR');
  assert.match(err2.message, /not an integer/);
});

// ---- bad input ----

const BAD = [
  ['undefined', undefined],
  ['null', null],
  ['a plain object', { a: 1 }],
  ['an array nested in the arguments', [['nested']]],
  ['a function in a non-last position', () => 1],
  ['a symbol', Symbol('s')],
  ['NaN', NaN],
  ['Infinity', Infinity],
];

for (const [what, bad] of BAD) {
  test(`SET with ${what} as the value fails with INVALID_ARG and writes nothing`, async () => {
    const key = freshKey('bad');
    // (key, bad, cb); for the nested array this is the (key, [b], cb) form with b itself an array.
    const err = await callError(client, 'set', key, bad);
    assert.ok(err instanceof Error);
    assert.equal(err.code, 'INVALID_ARG');
    assert.equal(err.command, 'SET');
    assert.match(err.message, /argument 2/);
    assert.match(err.message, /nothing was sent/);
    assert.strictEqual(await direct(key, 'GET', key), null);
    assert.strictEqual(await direct(key, 'EXISTS', key), 0);
  });
}

test('a bad argument is rejected in every calling form and nothing is written', async () => {
  const key = freshKey('forms');
  const cases = [
    () => callError(client, 'set', [key, null]),
    () => callError(client, 'rpush', key, ['ok', undefined]),
    () => callError(client, 'send_command', 'set', [key, { x: 1 }]),
    () => callError(client, 'sendCommand', 'set', [key, NaN]),
    () => callError(client, 'hmset', key, { f: null }),
    () => callError(client, 'hmset', key, { f: { nested: 1 } }),
    () => callError(client, 'set', { notAKey: 1 }, 'v'),
    () => client.setAsync(key, undefined).then(
      () => assert.fail('setAsync resolved'),
      (e) => e
    ),
  ];
  for (const run of cases) {
    const err = await run();
    assert.equal(err.code, 'INVALID_ARG', `${run}: got ${err.code} ${err.message}`);
  }
  assert.strictEqual(await direct(key, 'EXISTS', key), 0);
});

test('a bad argument fails only its own command: the others queued in the same tick still run', async () => {
  const k1 = freshKey('tick');
  const k2 = freshKey('tick');
  const k3 = freshKey('tick');
  const results = await Promise.allSettled([
    call(client, 'set', k1, 'one'),
    call(client, 'set', k2, null),
    call(client, 'set', k3, 'three'),
  ]);
  assert.deepEqual(results[0], { status: 'fulfilled', value: 'OK' });
  assert.equal(results[1].status, 'rejected');
  assert.equal(results[1].reason.code, 'INVALID_ARG');
  assert.deepEqual(results[2], { status: 'fulfilled', value: 'OK' });
  assert.equal(await direct(k1, 'GET', k1), 'one');
  assert.equal(await direct(k2, 'GET', k2), null);
  assert.equal(await direct(k3, 'GET', k3), 'three');
});

test('a bad-argument callback is called asynchronously, never inside the method call', async () => {
  const key = freshKey('async-cb');
  let returned = false;
  const err = await new Promise((resolve) => {
    client.set(key, null, (e) => {
      assert.ok(returned, 'the callback ran before set() returned');
      resolve(e);
    });
    returned = true;
  });
  assert.equal(err.code, 'INVALID_ARG');
});

test('a command with no key fails with NO_KEY and nothing is sent', async () => {
  const err = await callError(client, 'get');
  assert.ok(err instanceof Error);
  assert.equal(err.code, 'NO_KEY');
  assert.equal(err.command, 'GET');
  assert.equal((await callError(client, 'get', [])).code, 'NO_KEY');
  assert.equal((await callError(client, 'send_command', 'incr', [])).code, 'NO_KEY');
  await assert.rejects(client.hgetallAsync(), (e) => e.code === 'NO_KEY');
});

test('an error message never contains the bad value', async () => {
  const MARKER = `SECRET-${crypto.randomBytes(6).toString('hex')}`;
  const key = freshKey('secret');
  const values = [
    { password: MARKER },
    [{ password: MARKER }],
    function secret() {
      return MARKER;
    },
    Symbol(MARKER),
    { toString: () => MARKER },
    new Map([[MARKER, MARKER]]),
  ];
  for (const v of values) {
    const err = await callError(client, 'set', key, v);
    assert.equal(err.code, 'INVALID_ARG');
    assert.ok(!err.message.includes(MARKER), `message leaks the value: ${err.message}`);
    assert.ok(!util.inspect(err, { depth: 10 }).includes(MARKER), `the error leaks the value: ${util.inspect(err)}`);
    assert.ok(!JSON.stringify(err.args || []).includes(MARKER), 'err.args leaks the value');
  }
  // hmset's object form too.
  const herr = await callError(client, 'hmset', key, { field: { password: MARKER } });
  assert.equal(herr.code, 'INVALID_ARG');
  assert.ok(!util.inspect(herr, { depth: 10 }).includes(MARKER));
  assert.strictEqual(await direct(key, 'EXISTS', key), 0);
});

test('without a callback, a bad argument is emitted as an error event on the client', async () => {
  const key = freshKey('emit');
  const got = nextError(client);
  const r = client.set(key, undefined, 'EX', 10);
  assert.equal(r, client);
  const err = await got;
  assert.ok(err instanceof Error);
  assert.equal(err.code, 'INVALID_ARG');
  assert.equal(err.command, 'SET');
  assert.strictEqual(await direct(key, 'EXISTS', key), 0);
  const got2 = nextError(client);
  client.get();
  assert.equal((await got2).code, 'NO_KEY');
});

test('without a callback, a server error is emitted as an error event on the client', async () => {
  const key = freshKey('emit-server');
  await call(client, 'set', key, 'string');
  const got = nextError(client);
  client.lpush(key, 'x');
  const err = await got;
  assert.equal(err.code, 'WRONGTYPE');
  assert.equal(err.command, 'LPUSH');
  assert.deepEqual(err.args, [key, 'x']);
  // And a later command on the same client still works.
  assert.equal(await call(client, 'get', key), 'string');
});

test('a rejected promise twin does not also emit an error event', async () => {
  const key = freshKey('no-double');
  await call(client, 'set', key, 'string');
  let emitted = null;
  const onError = (e) => (emitted = e);
  client.on('error', onError);
  try {
    await assert.rejects(client.lpushAsync(key, 'x'), (e) => e.code === 'WRONGTYPE');
    await assert.rejects(client.setAsync(key, null), (e) => e.code === 'INVALID_ARG');
    // A later successful round trip proves every earlier reply has been dispatched.
    assert.equal(await call(client, 'ping'), 'PONG');
    assert.equal(emitted, null, `an error was emitted too: ${emitted && emitted.message}`);
  } finally {
    client.removeListener('error', onError);
  }
});
