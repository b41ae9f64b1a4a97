// The scenarios. Each runs inside a fresh child process for one client (see child.js), does a
// warm-up, then the measured part, and checks every reply: a wrong, missing or failed reply
// throws, which fails the child and therefore the whole run.
'use strict';

const KEYSPACE = 100000;
const BIG = 1024 * 1024;

const KEY_PREFIX = 'bench:k:';
const key = (i) => `${KEY_PREFIX}${i}`;
// Deterministic per key, so a GET is verifiable whatever SETs ran before it (SETs write the same
// value back).
const valueOf = (i) => `val-${i}-`.padEnd(32, '.');

// Default op counts, chosen so the whole run (6 clients x 7 scenarios x 5 reps, each in its own
// process) stays under about 8 minutes on a 2-core machine. `scale` multiplies them.
const SCENARIOS = [
  {
    id: 'seq',
    title: 'seq',
    what: 'one GET at a time',
    count: 12000,
    warmup: 2000,
    unit: 'GET',
  },
  {
    id: 'conc',
    title: 'conc',
    what: '512 in flight, 50/50 GET/SET over 100,000 keys',
    count: 120000,
    warmup: 20000,
    inflight: 512,
    unit: 'command',
  },
  {
    id: 'batch',
    title: 'batch',
    what: 'batches of 100 mixed commands (GET/SET/EXISTS) across slots, 4 batches in flight',
    count: 1200, // batches
    warmup: 200,
    size: 100,
    inflight: 4,
    unit: 'command',
  },
  {
    id: 'mget',
    title: 'mget',
    what: 'MGET of 100 keys across slots, 4 in flight',
    count: 600, // MGETs
    warmup: 100,
    size: 100,
    inflight: 4,
    unit: 'key',
  },
  {
    id: 'big',
    title: 'big',
    what: '1 MiB SET then GET of it, 16 in flight',
    count: 960, // commands (half SET, half GET)
    warmup: 64,
    inflight: 16,
    unit: 'command',
  },
  {
    id: 'fanin',
    title: 'fan-in',
    what: '10,000 concurrent callers each doing one GET (6 rounds)',
    count: 6, // rounds
    warmup: 1,
    size: 10000,
    unit: 'GET',
  },
  {
    id: 'flood',
    title: 'flood',
    what: '100,000 GETs issued at once (peak RSS with 100k commands in flight)',
    count: 1,
    warmup: 0,
    size: 100000,
    unit: 'GET',
  },
];

function scaled(s, scale) {
  if (scale === 1) return s;
  const c = Object.assign({}, s);
  c.count = Math.max(1, Math.round(s.count * scale));
  c.warmup = s.warmup === 0 ? 0 : Math.max(1, Math.round(s.warmup * scale));
  return c;
}

// xorshift32: deterministic and cheap, so every client gets the same key sequence.
function rng(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

function fail(msg) {
  const e = new Error(`verification failed: ${msg}`);
  e.verification = true;
  throw e;
}

function expectValue(got, i, what) {
  if (got !== valueOf(i)) fail(`${what} ${key(i)}: expected ${JSON.stringify(valueOf(i))}, got ${JSON.stringify(got)}`);
}

function expectOk(got, what) {
  if (got !== 'OK') fail(`${what}: expected 'OK', got ${JSON.stringify(got)}`);
}

// Runs `total` jobs with `inflight` of them outstanding at a time.
async function pool(total, inflight, job) {
  let next = 0;
  const worker = async (w) => {
    while (next < total) {
      const n = next++;
      await job(n, w);
    }
  };
  const workers = [];
  for (let w = 0; w < Math.min(inflight, total); w++) workers.push(worker(w));
  await Promise.all(workers);
}

// Each returns { ops, latencies? } for `n` units of work; `r` is the random source.
const RUN = {
  async seq(c, s, n, r) {
    const lat = new Float64Array(n);
    for (let j = 0; j < n; j++) {
      const i = r() % KEYSPACE;
      const t0 = process.hrtime.bigint();
      const v = await c.get(key(i));
      lat[j] = Number(process.hrtime.bigint() - t0) / 1000;
      expectValue(v, i, 'GET');
    }
    return { ops: n, latencies: lat };
  },

  async conc(c, s, n, r) {
    await pool(n, s.inflight, async () => {
      const x = r();
      const i = (x >>> 1) % KEYSPACE;
      if (x & 1) expectOk(await c.set(key(i), valueOf(i)), `SET ${key(i)}`);
      else expectValue(await c.get(key(i)), i, 'GET');
    });
    return { ops: n };
  },

  async batch(c, s, n, r) {
    await pool(n, s.inflight, async () => {
      const idx = new Array(s.size);
      const cmds = new Array(s.size);
      for (let j = 0; j < s.size; j++) {
        const i = r() % KEYSPACE;
        idx[j] = i;
        const kind = j % 4;
        cmds[j] = kind === 1 ? ['set', key(i), valueOf(i)] : kind === 3 ? ['exists', key(i)] : ['get', key(i)];
      }
      const replies = await c.batch(cmds);
      if (!Array.isArray(replies) || replies.length !== s.size) fail(`batch: expected ${s.size} replies, got ${replies && replies.length}`);
      for (let j = 0; j < s.size; j++) {
        const op = cmds[j][0];
        if (op === 'set') expectOk(replies[j], `batch SET ${cmds[j][1]}`);
        else if (op === 'get') expectValue(replies[j], idx[j], 'batch GET');
        else if (replies[j] !== 1) fail(`batch EXISTS ${cmds[j][1]}: expected 1, got ${JSON.stringify(replies[j])}`);
      }
    });
    return { ops: n * s.size };
  },

  async mget(c, s, n, r) {
    await pool(n, s.inflight, async () => {
      const idx = new Array(s.size);
      const keys = new Array(s.size);
      for (let j = 0; j < s.size; j++) {
        idx[j] = r() % KEYSPACE;
        keys[j] = key(idx[j]);
      }
      const vals = await c.mget(keys);
      if (!Array.isArray(vals) || vals.length !== s.size) fail(`MGET: expected ${s.size} values, got ${vals && vals.length}`);
      for (let j = 0; j < s.size; j++) expectValue(vals[j], idx[j], 'MGET');
    });
    return { ops: n * s.size };
  },

  async big(c, s, n, r, ctx) {
    // One key and one 1 MiB value per worker; the value starts with a per-process nonce so a GET
    // that returned another run's or another worker's value would be caught.
    if (!ctx.bigValues) {
      const filler = 'x'.repeat(BIG);
      ctx.bigValues = [];
      for (let w = 0; w < s.inflight; w++) {
        const head = `${ctx.nonce}:${w}:`;
        ctx.bigValues.push(head + filler.slice(head.length));
      }
    }
    const pairs = Math.ceil(n / 2);
    await pool(pairs, s.inflight, async (_, w) => {
      const k = `bench:big:${ctx.nonce}:${w}`;
      const v = ctx.bigValues[w];
      expectOk(await c.set(k, v), `SET ${k}`);
      const got = await c.get(k);
      if (got !== v) fail(`GET ${k}: got ${typeof got} of length ${got && got.length}, expected the 1 MiB value just set`);
    });
    return { ops: pairs * 2 };
  },

  async fanin(c, s, n, r) {
    for (let round = 0; round < n; round++) {
      const base = r() % KEYSPACE;
      const jobs = new Array(s.size);
      for (let j = 0; j < s.size; j++) {
        const i = (base + j) % KEYSPACE;
        jobs[j] = c.get(key(i)).then((v) => expectValue(v, i, 'GET'));
      }
      await Promise.all(jobs);
    }
    return { ops: n * s.size };
  },

  async flood(c, s, n, r) {
    return RUN.fanin(c, s, n, r);
  },
};

module.exports = { SCENARIOS, RUN, scaled, rng, key, valueOf, KEYSPACE, BIG, KEY_PREFIX };
