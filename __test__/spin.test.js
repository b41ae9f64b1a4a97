// The JS thread's spin after a lone command it wrote itself (src/binding/spin.rs), against a real
// local Redis Cluster: it ends on the reply and delivers it (counted in stats().spinHits), gives
// up at its cap on a reply that is slow to come (spinMisses) and still delivers it, pauses after
// a run of misses, spends one cap per loop turn however many clients are armed, is off with
// `spinMicros: 0`, and never stands in for a reply or reorders one.
// Latency is the benchmark's business (bench/, seq): nothing here is timed.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('crypto');
const path = require('path');
const { execFileSync } = require('child_process');
const { RedisClustr, cluster, stopOwnCluster, call, connect, quit } = require('./helpers');

const PREFIX = `spin:${process.pid}:${crypto.randomBytes(4).toString('hex')}:`;

let c;
before(async () => {
  c = await cluster();
});

after(async () => {
  await stopOwnCluster();
});

test('one command at a time: the spin ends on each reply and delivers it, in order', async () => {
  // A generous cap, so that a reply slower than usual on a busy machine still ends a spin.
  const client = await connect(c.seeds, { spinMicros: 1000 });
  try {
    const before = client.stats();
    assert.equal(before.spinHits + before.spinMisses, 0);
    for (let i = 0; i < 200; i++) assert.equal(await call(client, 'set', `${PREFIX}k${i}`, `v${i}`), 'OK');
    for (let i = 0; i < 200; i++) assert.equal(await call(client, 'get', `${PREFIX}k${i}`), `v${i}`);
    const s = client.stats();
    assert.ok(s.spinHits > 0, `no spin ended on a reply in 400 lone commands: ${JSON.stringify(s)}`);
    // One spin per lone command at most (some are written by the io thread, e.g. the first).
    assert.ok(s.spinHits + s.spinMisses <= 400, JSON.stringify(s));
  } finally {
    await quit(client);
  }
});

test('a reply slower than the cap is a miss and still arrives; misses in a row pause the spin', async () => {
  const client = await connect(c.seeds, { spinMicros: 50 });
  try {
    // BLPOP on an empty list: the server holds the reply for 100 ms, far past the 50 µs cap.
    // Twelve: the first commands of a client may go through the io thread (no spin).
    for (let i = 0; i < 12; i++) assert.equal(await call(client, 'blpop', `${PREFIX}empty`, '0.1'), null);
    const s = client.stats();
    // Eight misses in a row, then a pause: the commands after them do not spin at all.
    assert.equal(s.spinMisses, 8, JSON.stringify(s));
    assert.equal(s.spinHits, 0, JSON.stringify(s));
  } finally {
    await quit(client);
  }
});

test('two clients armed in the same loop turn spend one cap between them', async () => {
  // Short spins, so that an unrelated event rarely ends one early.
  const a = await connect(c.seeds, { spinMicros: 10 });
  const b = await connect(c.seeds, { spinMicros: 10 });
  try {
    // Each round, each client writes one lone BLPOP in the same tick; both replies take 100 ms.
    const rounds = 6;
    for (let i = 0; i < rounds; i++) {
      const got = await Promise.all([call(a, 'blpop', `${PREFIX}emptyA`, '0.1'), call(b, 'blpop', `${PREFIX}emptyB`, '0.1')]);
      assert.deepEqual(got, [null, null]);
    }
    const misses = a.stats().spinMisses + b.stats().spinMisses;
    // At most one spin per round runs out; the other client's, right after it in the same turn,
    // is skipped (without that, 2 per round). A spin may also end early on another event, and a
    // preempted thread may split a turn: hence a bound, not an exact count.
    assert.ok(misses <= rounds + 1, `${misses} misses in ${rounds} rounds`);
    assert.ok(misses > 0, 'no spin ran out at all');
  } finally {
    await quit(a);
    await quit(b);
  }
});

test('spinMicros: 0 turns the spin off; a bad value is refused at construction', async () => {
  const client = await connect(c.seeds, { spinMicros: 0 });
  try {
    for (let i = 0; i < 50; i++) assert.equal(await call(client, 'get', `${PREFIX}k${i}`), `v${i}`);
    const s = client.stats();
    assert.equal(s.spinHits + s.spinMisses, 0, JSON.stringify(s));
  } finally {
    await quit(client);
  }
  for (const bad of [-1, 'fast', NaN]) {
    assert.throws(() => new RedisClustr({ servers: c.seeds, spinMicros: bad }), { code: 'INVALID_ARG' }, String(bad));
  }
});

test('a callback that throws during a spun delivery is an uncaught exception; the next command works', () => {
  // In a child process, so that the exception meets a plain 'uncaughtException' listener.
  const script = `
    const RedisClustr = require(${JSON.stringify(path.join(__dirname, '..'))});
    const client = new RedisClustr({ servers: ${JSON.stringify(c.seeds)}, spinMicros: 1000 });
    const seen = [];
    process.on('uncaughtException', (e) => seen.push(e.message));
    client.once('ready', () => {
      client.set('${PREFIX}throw', 'x', () => {
        client.get('${PREFIX}throw', () => {
          throw new Error('thrown by a reply callback');
        });
        setTimeout(() => client.get('${PREFIX}throw', (err, v) => {
          const s = client.stats();
          process.stdout.write(JSON.stringify({ seen, err: err && err.message, v, hits: s.spinHits }));
          client.quit();
        }), 50);
      });
    });`;
  const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20000 }));
  assert.deepEqual(out.seen, ['thrown by a reply callback']);
  assert.equal(out.err, null);
  assert.equal(out.v, 'x');
  assert.ok(out.hits > 0, JSON.stringify(out));
});
