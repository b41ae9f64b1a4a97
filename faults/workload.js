// The load generator of RELIABILITY.md §1: ~50 logical workers, each sequential on its own keys,
// paced to a total rate, driving the public API (callbacks) with W1 counters (GET then INCR on
// hot and cold keys), W2 list appends (RPUSH of unique `key|worker:seq` values, periodic LRANGE),
// W3 multi-key (MSET/MGET on {tag} keys, transaction() of INCR+RPUSH on one slot), W4 durable
// writes (`WAIT 1 200` after every 20th append, on the owner's node handle) and ECHO nonces.
// Every op is recorded with its start/end time, slot and ok/fail/info class; replies are checked
// on arrival (wrong type, wrong key, wrong nonce) and ops not settled by deadline + grace are hung.
// What the final state must contain is kept per key for the checker (faults/checker.js).
'use strict';

const RedisClustr = require('..');
const { classify } = require('./classify');

const HOT = 1000;
const COLD = 10000;
const LISTS_PER_WORKER = 4;
const TAGS_PER_WORKER = 2;

const slotCache = new Map();
function slotOf(key) {
  let s = slotCache.get(key);
  if (s === undefined) {
    s = RedisClustr.keySlot(key);
    slotCache.set(key, s);
  }
  return s;
}

class Workload {
  /**
   * @param {RedisClustr} client
   * @param {object} [o]
   * @param {number} [o.workers=50]
   * @param {number} [o.rate=4000] total requests per second the workers are paced to
   * @param {number} [o.deadlineMs=1000] when an op must have settled (the client's commandTimeout
   *   or what the scenario promises); hung = not settled by deadline + graceMs
   * @param {number} [o.graceMs=2000]
   * @param {boolean} [o.wait=true] W4: WAIT 1 200 after every 20th append
   * @param {(slot: number) => boolean} [o.avoidSlot] keys in these slots are not used
   */
  constructor(client, o = {}) {
    this.client = client;
    this.workers = o.workers || 50;
    this.rate = o.rate || 4000;
    this.deadlineMs = o.deadlineMs || 1000;
    this.graceMs = o.graceMs === undefined ? 2000 : o.graceMs;
    this.useWait = o.wait !== false;
    this.avoidSlot = o.avoidSlot || (() => false);
    /** Every request: {k: kind, s: slot (-1 keyless), t0, t1, st: ok|fail|info, code} */
    this.ops = [];
    /** counter key -> {ok, info, fail} (INCRs by class) */
    this.counters = new Map();
    /** list key -> Map(value -> {st, durable, t0: when it was sent}) */
    this.lists = new Map();
    this.wrong = 0;
    this.wrongSamples = [];
    this.w3Lost = 0;
    this.staleReads = 0;
    this.aheadReads = 0;
    this.hung = 0;
    this.hungSamples = [];
    this.waits = { sent: 0, durable: 0, notDurable: 0, errors: 0, skipped: 0 };
    this.codes = {};
    this._pending = new Map();
    this._nextOp = 1;
    this._stopping = false;
    this._running = [];
    this._sweep = null;
    this.startedAt = 0;
  }

  start() {
    this.startedAt = Date.now();
    this._sweep = setInterval(() => this._sweepHung(), 250);
    for (let w = 0; w < this.workers; w++) this._running.push(this._worker(w));
  }

  /** Stops issuing; resolves when every worker's last op settled (or was declared hung). */
  async stop() {
    this._stopping = true;
    const limit = this.deadlineMs + this.graceMs + 1000;
    let timer;
    const done = await Promise.race([
      Promise.all(this._running).then(() => true),
      new Promise((r) => (timer = setTimeout(() => r(false), limit))),
    ]);
    clearTimeout(timer);
    this._sweepHung(true);
    clearInterval(this._sweep);
    this.stoppedAt = Date.now();
    return done;
  }

  _sweepHung(final = false) {
    const now = Date.now();
    for (const [id, p] of this._pending) {
      if (p.hung) continue;
      if (final || now > p.t0 + this.deadlineMs + this.graceMs) {
        p.hung = true;
        this.hung++;
        if (this.hungSamples.length < 5) this.hungSamples.push(`${p.k} slot ${p.s} pending ${now - p.t0} ms`);
        if (final) this._pending.delete(id);
      }
    }
  }

  _badReply(what) {
    this.wrong++;
    if (this.wrongSamples.length < 10) this.wrongSamples.push(what);
  }

  // One request: calls `send(cb)`, records it, resolves with {err, value, st}.
  _op(kind, slot, send) {
    const id = this._nextOp++;
    const rec = { k: kind, s: slot, t0: Date.now(), t1: 0, st: '', code: '' };
    this._pending.set(id, rec);
    return new Promise((resolve) => {
      let settled = false;
      const cb = (err, value) => {
        if (settled) {
          this._badReply(`${kind}: callback called twice`);
          return;
        }
        settled = true;
        this._pending.delete(id);
        rec.t1 = Date.now();
        rec.st = classify(err);
        if (err) {
          rec.code = String(err.code);
          this.codes[rec.code] = (this.codes[rec.code] || 0) + 1;
          // A TIMEOUT says what the command was last retried after (a failover's CLUSTERDOWN
          // reads very differently from a server that never answered): kept for the samples.
          if (rec.code === 'TIMEOUT') rec.why = (/; (retried [^;]+)/.exec(String(err.message)) || [])[1] || 'not retried';
        }
        this.ops.push(rec);
        resolve({ err, value, st: rec.st });
      };
      try {
        send(cb);
      } catch (e) {
        cb(Object.assign(new Error(`threw synchronously: ${e.message}`), { code: 'THREW' }));
      }
    });
  }

  _counter(key) {
    let c = this.counters.get(key);
    if (!c) this.counters.set(key, (c = { ok: 0, info: 0, fail: 0 }));
    return c;
  }

  _list(key) {
    let l = this.lists.get(key);
    if (!l) this.lists.set(key, (l = new Map()));
    return l;
  }

  // Keys of worker `w`: hot/cold counters, lists and tags, skipping avoided slots.
  _keys(w) {
    const ok = (k) => !this.avoidSlot(slotOf(k));
    const hot = [];
    for (let i = w; i < HOT; i += this.workers) if (ok(`c:h:${i}`)) hot.push(`c:h:${i}`);
    const cold = [];
    for (let i = w; i < COLD; i += this.workers) if (ok(`c:c:${i}`)) cold.push(`c:c:${i}`);
    const lists = [];
    for (let j = 0; lists.length < LISTS_PER_WORKER; j++) if (ok(`l:${w}:${j}`)) lists.push(`l:${w}:${j}`);
    const tags = [];
    for (let j = 0; tags.length < TAGS_PER_WORKER; j++) if (ok(`{m:${w}:${j}}`)) tags.push(`{m:${w}:${j}}`);
    return { hot, cold, lists, tags };
  }

  async _worker(w) {
    const keys = this._keys(w);
    const interval = (1000 * this.workers) / this.rate; // ms between this worker's requests
    let next = Date.now() + Math.random() * interval;
    let seq = 0;
    let appends = 0;
    const pace = async (requests) => {
      next += interval * requests;
      const wait = next - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      else if (wait < -1000) next = Date.now(); // far behind (a fault stalled us): no burst after it
    };
    while (!this._stopping) {
      seq++;
      if (seq % 50 === 0) {
        await this._echo(w, seq);
        await pace(1);
        continue;
      }
      switch (seq % 10) {
        case 0:
        case 1:
        case 2:
        case 3: {
          const pool = Math.random() < 0.8 || keys.cold.length === 0 ? keys.hot : keys.cold;
          await this._w1(pool[Math.floor(Math.random() * pool.length)]);
          await pace(2);
          break;
        }
        case 4:
        case 5:
        case 6:
        case 7: {
          appends++;
          const n = await this._w2(keys.lists[appends % keys.lists.length], w, seq, appends);
          await pace(n);
          break;
        }
        case 8:
          await this._w3(keys.tags[seq % keys.tags.length], w, seq);
          await pace(2);
          break;
        default:
          await this._tx(keys.tags[(seq >> 1) % keys.tags.length], w, seq);
          await pace(1);
      }
    }
  }

  async _echo(w, seq) {
    const nonce = `nonce:${w}:${seq}:${Math.random().toString(36).slice(2)}`;
    const r = await this._op('echo', -1, (cb) => this.client.echo(nonce, cb));
    if (r.st === 'ok' && r.value !== nonce) this._badReply(`ECHO ${nonce} answered ${JSON.stringify(r.value)}`);
  }

  // W1: read, then INCR. The read is checked against what this worker knows was applied.
  async _w1(key) {
    const c = this._counter(key);
    const slot = slotOf(key);
    const before = { ok: c.ok, info: c.info };
    const g = await this._op('get', slot, (cb) => this.client.get(key, cb));
    if (g.st === 'ok') {
      if (g.value !== null && !(typeof g.value === 'string' && /^\d+$/.test(g.value))) {
        this._badReply(`GET ${key} answered ${JSON.stringify(g.value)}`);
      } else {
        const v = g.value === null ? 0 : Number(g.value);
        if (v < before.ok) this.staleReads++;
        if (v > before.ok + before.info) this.aheadReads++;
      }
    }
    const r = await this._op('incr', slot, (cb) => this.client.incr(key, cb));
    c[r.st]++;
    if (r.st === 'ok' && !Number.isInteger(r.value)) this._badReply(`INCR ${key} answered ${JSON.stringify(r.value)}`);
  }

  // W2 (+W4): one RPUSH of a unique value; every 10th also reads the tail back, every 20th asks
  // WAIT 1 200 on the node that owns the list. Returns the number of requests made.
  async _w2(key, w, seq, appends) {
    const slot = slotOf(key);
    const value = `${key}|${w}:${seq}`;
    const list = this._list(key);
    const entry = { st: 'pending', durable: false, t0: Date.now() };
    list.set(value, entry);
    const ownerBefore = this._owner(slot);
    const r = await this._op('rpush', slot, (cb) => this.client.rpush(key, value, cb));
    entry.st = r.st;
    if (r.st === 'ok' && !Number.isInteger(r.value)) this._badReply(`RPUSH ${key} answered ${JSON.stringify(r.value)}`);
    let requests = 1;
    if (appends % 10 === 0) {
      requests++;
      const l = await this._op('lrange', slot, (cb) => this.client.lrange(key, -3, -1, cb));
      if (l.st === 'ok') {
        if (!Array.isArray(l.value)) this._badReply(`LRANGE ${key} answered ${JSON.stringify(l.value)}`);
        else {
          for (const v of l.value) {
            if (typeof v !== 'string' || !v.startsWith(`${key}|`)) this._badReply(`LRANGE ${key} holds ${JSON.stringify(v)}`);
          }
        }
      }
    }
    if (this.useWait && appends % 20 === 0 && r.st === 'ok') {
      // WAIT counts the replicas that acknowledged everything written on *this connection*, so it
      // must go to the node that took the append: skipped when the owner changed meanwhile.
      const owner = this._owner(slot);
      if (!owner || owner !== ownerBefore) this.waits.skipped++;
      else {
        requests++;
        this.waits.sent++;
        const wr = await this._op('wait', slot, (cb) => owner.send_command('wait', ['1', '200'], cb));
        if (wr.st !== 'ok') this.waits.errors++;
        else if (!Number.isInteger(wr.value)) this._badReply(`WAIT answered ${JSON.stringify(wr.value)}`);
        else if (wr.value >= 1) {
          entry.durable = true;
          this.waits.durable++;
        } else this.waits.notDurable++;
      }
    }
    return requests;
  }

  _owner(slot) {
    const shard = this.client.slots[slot];
    return shard && shard[0];
  }

  // W3: MSET two keys of one tag, then MGET them back: an acknowledged MSET must be read back.
  async _w3(tag, w, seq) {
    const a = `${tag}a`;
    const b = `${tag}b`;
    const slot = slotOf(a);
    const va = `${a}|${w}:${seq}`;
    const vb = `${b}|${w}:${seq}`;
    const m = await this._op('mset', slot, (cb) => this.client.mset(a, va, b, vb, cb));
    if (m.st === 'ok' && m.value !== 'OK') this._badReply(`MSET ${tag} answered ${JSON.stringify(m.value)}`);
    const g = await this._op('mget', slot, (cb) => this.client.mget(a, b, cb));
    if (g.st !== 'ok') return;
    if (!Array.isArray(g.value) || g.value.length !== 2) {
      this._badReply(`MGET ${tag} answered ${JSON.stringify(g.value)}`);
      return;
    }
    const [ra, rb] = g.value;
    for (const [k, v] of [[a, ra], [b, rb]]) {
      if (v !== null && (typeof v !== 'string' || !v.startsWith(`${k}|`))) this._badReply(`MGET ${k} answered ${JSON.stringify(v)}`);
    }
    if (m.st === 'ok' && (ra !== va || rb !== vb)) this.w3Lost++;
  }

  // W3 transaction: INCR + RPUSH on one slot, all or nothing; the checker sees both effects.
  async _tx(tag, w, seq) {
    const n = `${tag}n`;
    const l = `${tag}l`;
    const slot = slotOf(n);
    const value = `${l}|${w}:${seq}`;
    const c = this._counter(n);
    const entry = { st: 'pending', durable: false, t0: Date.now() };
    this._list(l).set(value, entry);
    const r = await this._op('tx', slot, (cb) => this.client.transaction().incr(n).rpush(l, value).exec(cb));
    c[r.st]++;
    entry.st = r.st;
    if (r.st === 'ok') {
      const ok = Array.isArray(r.value) && r.value.length === 2 && Number.isInteger(r.value[0]) && Number.isInteger(r.value[1]);
      if (!ok) this._badReply(`transaction on ${tag} answered ${String(r.value)}`);
    }
  }
}

module.exports = { Workload, slotOf };
