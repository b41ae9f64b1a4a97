// Chaos soak (RELIABILITY.md §2; on demand, not in CI): one cluster, one client and the fault
// workload for `--minutes` (20 by default). Every 15–30 s one fault, picked at random from R2
// (manual failover), R3 (SIGKILL a master, restart it 10 s later), R4 (SIGSTOP a master for
// 12 s), R5 (reshard 1,000 slots), R8 (CLIENT KILL), R9 (CLIENT PAUSE 3 s) and R10 (DEBUG SLEEP
// 1.5 s), hits a random master of the moment, and is healed (cluster healthy again) before the
// next. Pass: the global conditions of every scenario (0 duplicate, phantom, noack, wrong, hung,
// unhandled); 0 errors among the ops issued while no fault is in force (before the first,
// between a fault's healing and the next, at least 3 s, after the last); each fault kind's own
// rule over the ops in flight while it is in force (kindRule); acknowledged writes lost only
// around a SIGKILL/SIGSTOP (R3/R4) and never a WAIT-durable one (see check); memory outside the
// JS heap grows < 64 MiB (the op log and list records of a long run sit in the JS heap, so
// the client's JS-side memory is not bounded here: the scenarios' own RSS bound covers it).
//
// usage: node faults/soak.js [--minutes 20] [--seed N] [--rate 1000]
// One JSON line with every event's figures, then `soak: pass|FAIL ...` and `# pass`/`# fail`.
'use strict';

const c = require('./cluster');
const { runScenario } = require('./harness');
const { window } = require('./checker');
const { rng: xorshift } = require('../bench/workloads');

const GAP_MIN_MS = 15000;
const GAP_SPREAD_MS = 15000;
const QUIET_MIN_MS = 3000;

// The benchmark's xorshift32 (plain code, no dependencies), scaled to [0, 1): a seed replays the
// same sequence of fault kinds and victims.
function rng(seed) {
  const next = xorshift(seed);
  return () => next() / 4294967296;
}

const pick = (rnd, xs) => xs[Math.floor(rnd() * xs.length)];

// Each fault injects and heals (the soak then waits for the cluster to be healthy), and may
// return figures of its own. `m` is the victim master ({port, id, slots, replicas}) chosen from
// the masters of the moment.
const FAULTS = {
  async R2(ctx, m) {
    const r = m.replicas[0];
    await c.replicasInSync(ctx.cluster, m.port);
    await c.sendCommand(r, ['CLUSTER', 'FAILOVER'], { timeoutMs: 5000 });
    await c.promoted(r, 10000);
  },
  async R3(ctx, m) {
    await c.replicasInSync(ctx.cluster, m.port);
    const killedAt = Date.now();
    await ctx.cluster.killNode(m.port, 'SIGKILL');
    await c.promoted(m.replicas[0]);
    await c.at(killedAt + 10000);
    await ctx.cluster.restartNode(m.port);
    await c.backAsReplica(m.port, 30000);
  },
  async R4(ctx, m) {
    await c.replicasInSync(ctx.cluster, m.port);
    const stoppedAt = Date.now();
    await ctx.cluster.killNode(m.port, 'SIGSTOP');
    try {
      await c.promoted(m.replicas[0]);
      await c.at(stoppedAt + 12000);
    } finally {
      await ctx.cluster.killNode(m.port, 'SIGCONT');
    }
    await c.backAsReplica(m.port, 30000);
  },
  async R5(ctx, m, rnd) {
    const masters = await ctx.cluster.masters();
    const via = pick(rnd, masters.filter((x) => x.port !== m.port)) || m;
    // redis-cli refuses to reshard until every node's view of the cluster is the same (its
    // check), which can take a few seconds more than healthy().
    const agreed = (what) => c.until(() => c.check(via.port).then(() => true), { timeout: 30000, interval: 500, what });
    await agreed('every node to agree before the reshard');
    const t = Date.now();
    await c.reshard(via.port, { from: 'all', to: m.id, slots: 1000 });
    const reshardMs = Date.now() - t;
    // Also after it: no open slot left, every node knows where the slots went.
    await agreed('every node to agree after the reshard');
    return { reshardMs };
  },
  async R8(ctx, m) {
    await c.sendCommand(m.port, ['CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes']);
  },
  async R9(ctx, m) {
    await c.sendCommand(m.port, ['CLIENT', 'PAUSE', '3000', 'ALL']);
    await c.until(() => c.sendCommand(m.port, ['PING'], { timeoutMs: 200 }).then((r) => r === 'PONG'), {
      timeout: 10000,
      what: 'the pause to end',
    });
  },
  async R10(ctx, m) {
    await c.sendCommand(m.port, ['DEBUG', 'SLEEP', '1.5'], { timeoutMs: 10000 });
  },
};

const W12 = ['get', 'incr', 'rpush', 'lrange'];
const W3 = ['mset', 'mget', 'tx'];
// As opFigures (checker.js) counts acknowledged writes.
const WRITES = ['incr', 'rpush', 'mset', 'tx'];
// The soak's client deadline (harness.js CLIENT_DEFAULTS): a TRYAGAIN that outlasts it surfaces
// as TIMEOUT before the 5 s retry budget is spent.
const DEADLINE_MS = 1000;
// A write acknowledged this long before a SIGKILL/SIGSTOP may not have reached the replica yet.
const REPLICATION_LAG_MS = 2000;

/** Ops in flight at any moment of [from, to): issued before `to`, settled at or after `from`. */
const inFlight = (wl, from, to, filter = () => true) => window(wl, -Infinity, to, (o) => o.t1 >= from && filter(o));

// A fault kind's own rule (from the pass figures of its scenario) over the ops in flight while
// it was in force, including those already sent when it began; null when it holds.
function kindRule(kind, wl, e, affected) {
  const during = (filter) => inFlight(wl, e.from, e.healed, filter);
  switch (kind) {
    case 'R2': {
      const w = during();
      return w.fail + w.info ? `${w.fail} fail / ${w.info} info during a manual failover (must be 0): ${JSON.stringify(w.codes)}` : null;
    }
    case 'R5': {
      const w12 = during((o) => W12.includes(o.k));
      if (w12.fail + w12.info) return `${w12.fail + w12.info} W1/W2 errors during a reshard (must be 0): ${JSON.stringify(w12.codes)}`;
      // W3 may meet TRYAGAIN while a slot moves; it surfaces only if it lasts past the deadline.
      const w3 = during((o) => W3.includes(o.k));
      const excused = e.reshardMs > DEADLINE_MS && Object.keys(w3.codes).every((k) => k === 'TRYAGAIN' || k === 'TIMEOUT');
      if (w3.fail + w3.info && !excused) return `${w3.fail + w3.info} W3 errors during a reshard of ${e.reshardMs} ms: ${JSON.stringify(w3.codes)}`;
      return null;
    }
    case 'R8':
    case 'R10': {
      const w = during();
      return w.fail ? `${w.fail} definite failures (a ${kind === 'R8' ? 'killed connection' : 'sleeping node'} must not fail commands definitely): ${JSON.stringify(w.codes)}` : null;
    }
    case 'R9': {
      const w = during((o) => o.s >= 0 && !affected(o.s));
      return w.fail + w.info ? `${w.fail + w.info} errors on shards the pause did not touch: ${JSON.stringify(w.codes)}` : null;
    }
    default:
      return null; // R3/R4: errors on the victim's slots are expected; reported only
  }
}

function soakDef({ minutes, seed }) {
  const rnd = rng(seed);
  return {
    id: 'soak',
    title: 'chaos soak',
    memoryOutsideHeap: true,
    async run(ctx) {
      const { figures, wl } = ctx;
      const endAt = ctx.t0 + minutes * 60000;
      const events = (figures.events = []);
      const kinds = Object.keys(FAULTS);
      const pruned = (figures.pruned = { ops: 0, ok: 0, fail: 0, info: 0, okWrites: 0, maxMs: 0 });
      // Stretches of load with no fault in force (before the first, between healing and the
      // next, after the last): every op issued there must succeed.
      const quiet = (figures.quiet = { ops: 0, errors: 0, codes: {} });
      const checkQuiet = (from, to) => {
        const w = window(wl, from, to);
        quiet.ops += w.ops;
        quiet.errors += w.fail + w.info;
        for (const [k, n] of Object.entries(w.codes)) quiet.codes[k] = (quiet.codes[k] || 0) + n;
        return w.fail + w.info;
      };
      // The op log of a 20-minute run would hold millions of records: what was checked is
      // counted and dropped. An op issued before `upTo` that is still in flight is pushed when
      // it settles, and then falls in the next fault's window (in flight when it began).
      const prune = (upTo) => {
        const keep = [];
        for (const o of wl.ops) {
          if (o.t0 < upTo) {
            pruned.ops++;
            pruned[o.st]++;
            if (o.st === 'ok' && WRITES.includes(o.k)) pruned.okWrites++;
            if (o.t1 - o.t0 > pruned.maxMs) pruned.maxMs = o.t1 - o.t0;
          } else keep.push(o);
        }
        wl.ops = keep;
      };
      figures.seed = seed;
      let quietFrom = ctx.t0;
      let next = ctx.t0 + 5000;
      // Leave room for the longest fault (R3/R4 with their waits: under a minute) before the end.
      while (next + 60000 < endAt) {
        await c.at(next);
        const kind = pick(rnd, kinds);
        const masters = await ctx.cluster.masters();
        const m = pick(rnd, kind === 'R2' || kind === 'R3' || kind === 'R4' ? masters.filter((x) => x.replicas.length) : masters);
        const e = { kind, port: m.port, from: Date.now() };
        const quietErrors = checkQuiet(quietFrom, e.from);
        prune(e.from);
        const affected = kind === 'R5' ? () => true : c.inRanges(m.slots);
        Object.assign(e, await FAULTS[kind](ctx, m, rnd));
        await c.healthy(ctx.cluster);
        e.healed = Date.now();
        // Updated as it goes: a soak that stops on an error is not then called invalid for
        // failovers it made itself.
        ctx.expectMasters = await c.masterPorts(ctx.cluster);
        quietFrom = e.healed;
        next = Math.max(e.from + GAP_MIN_MS + Math.floor(rnd() * GAP_SPREAD_MS), e.healed + QUIET_MIN_MS);
        await c.at(next);
        const during = inFlight(wl, e.from, e.healed);
        events.push({
          kind,
          port: m.port,
          from: e.from,
          healMs: e.healed - e.from,
          reshardMs: e.reshardMs,
          during: { ok: during.ok, fail: during.fail, info: during.info, codes: during.codes },
          quietErrorsBefore: quietErrors,
          rule: kindRule(kind, wl, e, affected),
        });
      }
      await c.at(endAt);
      figures.quietErrorsAtEnd = checkQuiet(quietFrom, endAt);
      prune(endAt);
    },
    check(ctx, f) {
      for (const k of ['ops', 'ok', 'fail', 'info', 'okWrites']) f[k] += f.pruned[k];
      f.maxMs = Math.max(f.maxMs, f.pruned.maxMs);
      delete f.p99Ms; // of the last window only: not a figure of the run
      if (f.quiet.errors) ctx.fail(`${f.quiet.errors} errors among ${f.quiet.ops} ops issued with no fault in force (must be 0): ${JSON.stringify(f.quiet.codes)}`);
      for (const [i, e] of f.events.entries()) {
        if (e.rule) ctx.fail(`event ${i + 1} (${e.kind} on ${e.port}): ${e.rule}`);
      }
      // Lost acknowledged writes: only from a SIGKILL or SIGSTOP of a master (asynchronous
      // replication), never a WAIT-durable one. A list value is placed in time (sent within
      // REPLICATION_LAG_MS before such a fault, or while it was in force); a counter or an
      // MSET cannot be, so those pass when any such fault ran.
      const kills = f.events.filter((e) => e.kind === 'R3' || e.kind === 'R4').map((e) => [e.from - REPLICATION_LAG_MS, e.from + e.healMs]);
      const d = f.lostDetail || {};
      if (d.durable) ctx.fail(`${d.durable} durable (W4) writes lost`);
      const outside = (ctx.lostListAt || []).filter((t) => !kills.some(([a, b]) => t >= a && t <= b)).length;
      if (outside) ctx.fail(`${outside} acknowledged list values lost that were not sent around a SIGKILL/SIGSTOP`);
      if ((d.counters || d.w3) && !kills.length) ctx.fail(`lost INCRs/MSETs (${d.counters}/${d.w3}) with no SIGKILL or SIGSTOP in the run`);
      for (const e of f.events) delete e.from;
      if (f.events.length === 0) ctx.fail('no fault was injected (the run is too short)');
    },
  };
}

function parseArgs(argv) {
  const o = { minutes: 20, seed: Date.now() >>> 0, rate: 1000 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=');
    const value = inline !== undefined ? inline : argv[++i];
    const n = Number(value);
    if (!['--minutes', '--seed', '--rate'].includes(flag) || !Number.isFinite(n) || n < 0 || (n === 0 && flag !== '--seed')) {
      throw new Error(`bad argument ${argv[i]} (use --minutes M, --seed N, --rate R)`);
    }
    o[flag.slice(2)] = n;
  }
  return o;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const r = await runScenario(soakDef(o), { rate: o.rate });
  console.log(JSON.stringify(r));
  const kinds = {};
  for (const e of r.events || []) kinds[e.kind] = (kinds[e.kind] || 0) + 1;
  console.log(
    `soak: ${r.pass ? 'pass' : 'FAIL'} — ${o.minutes} min, seed ${o.seed}, ${(r.events || []).length} faults ${JSON.stringify(kinds)}, ` +
      `ops ${r.ops} (fail ${r.fail}, info ${r.info}), lost ${r.lost}, outside-heap RSS +${r.outsideHeapDeltaMiB} MiB` +
      (r.pass ? '' : `: ${r.reasons.join('; ')}`) +
      (r.invalid ? ` (invalid: ${r.invalid})` : ''),
  );
  console.log(`# pass ${r.pass ? 1 : 0}`);
  console.log(`# fail ${r.pass ? 0 : 1}`);
  if (!r.pass) process.exitCode = 1;
}

main().then(
  () => process.exit(),
  (e) => {
    console.error(e && e.stack ? e.stack : e);
    process.exit(1);
  },
);
