// The checker of RELIABILITY.md §1: once the cluster is healthy again it reads the final state of
// every key the workload touched and compares it with what the workload recorded. lost = an `ok`
// effect missing; duplicate = a list value present twice; phantom = a value never sent; noack =
// an effect beyond what ok + info ops can explain (a `fail` op that ran). It also derives the
// timing figures from the op log: p99/max latency, recovery time, errors after recovery.
'use strict';

const CHUNK = 200;

// A read the checker must get: retried (the cluster is healthy, but a client that just followed
// a failover may need a moment) until `deadline`; the last error is thrown.
async function must(fn, deadline) {
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

const promisify = (fn) => new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v))));

/**
 * Reads the final state and compares it with the workload's records.
 * @param {RedisClustr} client
 * @param {import('./workload').Workload} wl
 * @returns {Promise<object>} {lost, duplicate, phantom, noack, durableLost, wrongFinal, ...}
 */
async function checkFinalState(client, wl) {
  const deadline = Date.now() + 20000;
  const out = { lost: 0, lostCounters: 0, lostList: 0, lostListAt: [], lostW3: wl.w3Lost, duplicate: 0, phantom: 0, noack: 0, durableLost: 0, wrongFinal: 0, samples: [] };
  const sample = (s) => {
    if (out.samples.length < 10) out.samples.push(s);
  };

  // Counters (W1 and the transactions' INCR): ok <= value <= ok + info.
  const keys = [...wl.counters.keys()];
  for (let i = 0; i < keys.length; i += CHUNK) {
    const chunk = keys.slice(i, i + CHUNK);
    const values = await must(() => promisify((cb) => client.mget(chunk, cb)), deadline);
    chunk.forEach((k, j) => {
      const c = wl.counters.get(k);
      const raw = values[j];
      if (raw !== null && !/^\d+$/.test(raw)) {
        out.wrongFinal++;
        sample(`${k} holds ${JSON.stringify(raw)}`);
        return;
      }
      const v = raw === null ? 0 : Number(raw);
      if (v < c.ok) {
        out.lostCounters += c.ok - v;
        sample(`${k}: ${v} < ${c.ok} acknowledged INCRs`);
      }
      if (v > c.ok + c.info) {
        out.noack += v - c.ok - c.info;
        sample(`${k}: ${v} > ${c.ok} ok + ${c.info} unknown INCRs (${c.fail} failed)`);
      }
    });
  }

  // Lists (W2 and the transactions' RPUSH).
  const lists = [...wl.lists.keys()];
  for (let i = 0; i < lists.length; i += 50) {
    const chunk = lists.slice(i, i + 50);
    const contents = await Promise.all(chunk.map((k) => must(() => promisify((cb) => client.lrange(k, 0, -1, cb)), deadline)));
    chunk.forEach((k, j) => {
      const sent = wl.lists.get(k);
      const seen = new Map();
      for (const v of contents[j]) {
        seen.set(v, (seen.get(v) || 0) + 1);
      }
      for (const [v, n] of seen) {
        const rec = sent.get(v);
        if (!rec) {
          if (!v.startsWith(`${k}|`)) out.wrongFinal++;
          out.phantom++;
          sample(`${k}: value never sent ${JSON.stringify(v)}`);
          continue;
        }
        if (n > 1) {
          out.duplicate += n - 1;
          sample(`${k}: ${v} present ${n} times`);
        }
        if (rec.st === 'fail') {
          out.noack++;
          sample(`${k}: ${v} present although its RPUSH failed definitely`);
        }
      }
      for (const [v, rec] of sent) {
        if (rec.st === 'ok' && !seen.has(v)) {
          out.lostList++;
          out.lostListAt.push(rec.t0);
          if (rec.durable) out.durableLost++;
          sample(`${k}: acknowledged ${v} missing${rec.durable ? ' (WAIT-durable)' : ''}`);
        }
      }
    });
  }
  out.lost = out.lostCounters + out.lostList + out.lostW3;
  return out;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

/**
 * Figures from the op log.
 * @param {import('./workload').Workload} wl
 * @param {object} o
 * @param {number} [o.faultAt] ms timestamp of the fault
 * @param {(slot: number) => boolean} [o.affected] slots the fault affects (default: all)
 * @param {number} [o.tailFrom] errors are counted among ops issued from here on (after recovery)
 */
function opFigures(wl, { faultAt = 0, affected = () => true, tailFrom = 0 } = {}) {
  const f = { ops: wl.ops.length, ok: 0, fail: 0, info: 0, okWrites: 0, p99Ms: 0, maxMs: 0, recoveryMs: null, tailErrors: 0 };
  const lat = [];
  let firstOk = Infinity;
  for (const o of wl.ops) {
    f[o.st]++;
    const ms = o.t1 - o.t0;
    if (o.st === 'ok') {
      lat.push(ms);
      if (o.k === 'incr' || o.k === 'rpush' || o.k === 'mset' || o.k === 'tx') f.okWrites++;
      // Strictly after: an op issued in the same millisecond may have been sent before the fault.
      if (faultAt && o.t0 > faultAt && o.s >= 0 && affected(o.s) && o.t1 < firstOk) firstOk = o.t1;
    }
    if (ms > f.maxMs) f.maxMs = ms;
    if (tailFrom && o.t0 >= tailFrom && o.st !== 'ok') f.tailErrors++;
  }
  lat.sort((a, b) => a - b);
  f.p99Ms = percentile(lat, 99);
  if (faultAt && firstOk !== Infinity) f.recoveryMs = firstOk - faultAt;
  return f;
}

/** Ops (optionally filtered) by class in a time window [from, to) of issue time. */
function window(wl, from, to, filter = () => true) {
  const w = { ops: 0, ok: 0, fail: 0, info: 0, codes: {} };
  for (const o of wl.ops) {
    if (o.t0 < from || o.t0 >= to || !filter(o)) continue;
    w.ops++;
    w[o.st]++;
    if (o.code) w.codes[o.code] = (w.codes[o.code] || 0) + 1;
  }
  return w;
}

module.exports = { checkFinalState, opFigures, window, percentile };
