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
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const { RedisClustr, cluster, stopOwnCluster, call, connect, quit } = require('./helpers');

// With one CPU the client never spins (src/binding/spin.rs): only the off switch is testable.
const SKIP = os.availableParallelism() < 2 && 'one CPU: the client does not spin';

const PREFIX = `spin:${process.pid}:${crypto.randomBytes(4).toString('hex')}:`;

let c;
before(async () => {
  c = await cluster();
});

after(async () => {
  await stopOwnCluster();
});

test('one command at a time: the spin ends on each reply and delivers it, in order', { skip: SKIP }, async () => {
  // A generous cap, so that a reply slower than usual on a busy machine still ends a spin.
  const client = await connect(c.seeds, { spinMicros: 1000 });
  try {
    const before = client.stats();
    assert.equal(before.spinHits + before.spinMisses, 0);
    for (let i = 0; i < 200; i++) assert.equal(await call(client, 'set', `${PREFIX}k${i}`, `v${i}`), 'OK');
    // On a loaded machine a reply can take longer than the cap: GETs go on (in order, each
    // checked) until a spin has ended on one, with a deadline rather than a fixed count.
    const deadline = Date.now() + 20000;
    let n = 200;
    for (let i = 0; i < n; i++) {
      assert.equal(await call(client, 'get', `${PREFIX}k${i % 200}`), `v${i % 200}`);
      if (i === n - 1 && client.stats().spinHits === 0 && Date.now() < deadline) n += 200;
    }
    const s = client.stats();
    assert.ok(s.spinHits > 0, `no spin ended on a reply in ${n + 200} lone commands: ${JSON.stringify(s)}`);
    // One spin per lone command at most (some are written by the io thread, e.g. the first).
    assert.ok(s.spinHits + s.spinMisses <= n + 200, JSON.stringify(s));
  } finally {
    await quit(client);
  }
});

test('a reply slower than the cap is a miss and still arrives; misses in a row pause the spin', { skip: SKIP }, async () => {
  const client = await connect(c.seeds, { spinMicros: 50 });
  try {
    // BLPOP on an empty list: the server holds the reply for 100 ms, far past the 50 µs cap, so
    // a spin runs out. Eight in a row start the pause: from then on commands do not spin at all.
    // Until the pause shows (four commands in a row with no spin, after a miss), with a
    // deadline: an unrelated event may end a spin early (a hit), which restarts the count, and
    // a client's first commands may go through the io thread (no spin either).
    const spins = () => {
      const s = client.stats();
      return s.spinHits + s.spinMisses;
    };
    let quiet = 0;
    for (let i = 0; quiet < 4; i++) {
      assert.ok(i < 60, `no pause after ${i} slow lone commands: ${JSON.stringify(client.stats())}`);
      const before = spins();
      assert.equal(await call(client, 'blpop', `${PREFIX}empty`, '0.1'), null);
      quiet = spins() === before && client.stats().spinMisses > 0 ? quiet + 1 : 0;
    }
    const s = client.stats();
    assert.ok(s.spinMisses >= 8, JSON.stringify(s));
  } finally {
    await quit(client);
  }
});

test('two clients armed in the same loop turn spend one cap between them', { skip: SKIP }, async () => {
  // Short spins, so that an unrelated event rarely ends one early.
  const a = await connect(c.seeds, { spinMicros: 10 });
  const b = await connect(c.seeds, { spinMicros: 10 });
  try {
    // Each round, each client writes one lone BLPOP in the same tick; both replies take 100 ms.
    const rounds = 8;
    for (let i = 0; i < rounds; i++) {
      const got = await Promise.all([call(a, 'blpop', `${PREFIX}emptyA`, '0.1'), call(b, 'blpop', `${PREFIX}emptyB`, '0.1')]);
      assert.deepEqual(got, [null, null]);
    }
    const misses = a.stats().spinMisses + b.stats().spinMisses;
    // At most one spin per round runs out; the other client's, right after it in the same turn,
    // is skipped (without that, 2 per round: 16, each client pausing after its 8th). A spin may
    // also end early on another event, and a preempted thread may split a turn: hence a bound
    // with some room, not an exact count.
    assert.ok(misses <= rounds + 3, `${misses} misses in ${rounds} rounds`);
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

test('a callback that throws during a spun delivery is an uncaught exception; the next command works', { skip: SKIP }, () => {
  // In a child process, so that the exception meets a plain 'uncaughtException' listener. The
  // throwing GET is repeated (each throw counted) until one was delivered by a spin, which the
  // callback sees from spinHits (counted before the spin delivers), or a deadline passes.
  const script = `
    const RedisClustr = require(${JSON.stringify(path.join(__dirname, '..'))});
    const client = new RedisClustr({ servers: ${JSON.stringify(c.seeds)}, spinMicros: 1000 });
    const seen = [];
    let attempts = 0;
    const deadline = Date.now() + 20000;
    process.on('uncaughtException', (e) => seen.push(e.message));
    function finish(spun) {
      client.get('${PREFIX}throw', (err, v) => {
        process.stdout.write(JSON.stringify({ seen: seen.length, attempts, spun, err: err && err.message, v, other: seen.filter((m) => m !== 'thrown by a reply callback') }));
        client.quit();
      });
    }
    function attempt() {
      const hits = client.stats().spinHits;
      attempts++;
      client.get('${PREFIX}throw', () => {
        const spun = client.stats().spinHits > hits;
        setTimeout(() => (spun || Date.now() > deadline ? finish(spun) : attempt()), 5);
        throw new Error('thrown by a reply callback');
      });
    }
    client.once('ready', () => client.set('${PREFIX}throw', 'x', attempt));`;
  const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 40000 }));
  assert.equal(out.spun, true, JSON.stringify(out));
  assert.equal(out.seen, out.attempts, JSON.stringify(out));
  assert.deepEqual(out.other, []);
  assert.equal(out.err, null);
  assert.equal(out.v, 'x');
});
