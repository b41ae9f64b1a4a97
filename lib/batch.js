// batch() / multi(): redis-clustr's Batch. Commands are collected, then sent together on exec;
// the client's one-native-call-per-tick queue already groups them per node and pipelines them,
// so a batch needs no transport of its own: it travels as one record with one completion (one
// pending entry, one reply array) rather than a callback per command. Like redis-clustr,
// multi() is not atomic.
// exec(cb) calls back (errors[] | null, replies[]) with replies in the caller's order (a failed
// command's slot holds its Error); per-command callbacks fire too.
'use strict';

const { normalize, normalizeHash, flat, endsWithCallback } = require('./args');
const { toObject } = require('./dispatch');
const { manyMethods } = require('./methods');

class Batch {
  constructor(cluster, commands) {
    Object.defineProperty(this, '_cluster', { value: cluster });
    this.queue = [];
    if (Array.isArray(commands)) {
      for (const c of commands) {
        if (!Array.isArray(c) || typeof c[0] !== 'string') continue;
        this._add(c[0].toLowerCase(), c.slice(1), true);
      }
    }
  }

  // `owned`: `argsLike` is a fresh array of this module's (a command method's rest parameters),
  // so when flat it is kept as it is, its trailing callback popped off, instead of being copied
  // by normalize() (a copy and an object less per command of a batch).
  _add(name, argsLike, owned) {
    if (owned && name !== 'hmset' && name !== 'hset' && flat(argsLike)) {
      const cb = endsWithCallback(argsLike) ? argsLike.pop() : undefined;
      this.queue.push({ name, args: argsLike, cb: typeof cb === 'function' ? cb : undefined });
      return this;
    }
    const { args, cb } = name === 'hmset' || name === 'hset' ? normalizeHash(argsLike) : normalize(argsLike);
    this.queue.push({ name, args, cb });
    return this;
  }

  // Empties the queue for exec; an empty batch calls back (null, []) asynchronously, as
  // redis-clustr's did, and leaves nothing to send.
  _take(cb) {
    const queue = this.queue;
    this.queue = [];
    const done = typeof cb === 'function' ? cb : null;
    if (queue.length > 0) return { queue, done };
    if (done) process.nextTick(done, null, []);
    return { queue: null, done };
  }

  send_command(name, args, cb) {
    return this._add(String(name).toLowerCase(), [Array.isArray(args) ? args : [], cb]);
  }

  exec(cb) {
    const { queue, done } = this._take(cb);
    if (!queue) return this;
    const b = this._cluster._queueBatch(queue, done);
    if (b !== true) execEach(this._cluster, queue, done, b || null);
    return this;
  }

  execAsync() {
    return new Promise((resolve, reject) => {
      this.exec((errors, replies) => {
        if (!errors) return resolve(replies);
        const err = errors[0];
        err.errors = errors;
        err.replies = replies;
        reject(err);
      });
    });
  }
}

// The batch command by command, each with a callback of its own: for what one batch record
// cannot carry (see RedisClustr#_queueBatch). `checked`: prepareBatch's state when the commands
// were already checked; the ones that failed have had their callbacks and are not sent again.
function execEach(cluster, queue, done, checked) {
  const replies = checked ? checked.replies : new Array(queue.length);
  let errors = checked ? checked.errors : null;
  let left = checked ? checked.sent : queue.length;
  queue.forEach((c, i) => {
    if (checked && checked.flags[i] < 0) return;
    cluster._queue(
      c.name,
      c.args,
      (err, value) => {
        if (err) (errors || (errors = [])).push(err);
        replies[i] = err || value;
        try {
          if (c.cb) c.cb(err, value);
        } finally {
          if (--left === 0 && done) done(errors, replies);
        }
      },
      null
    );
  });
}

// A batch sent as one record: its commands checked and given their flags here; the ones that
// fail the check fail alone (their callbacks on the next tick, as for a single command) and get
// flags FAILED, which leaves them out of the record; the other `state.sent` are sent in queue
// order. `done` is exec's callback.
const FAILED = -1;

function prepareBatch(queue, done, flagsOf) {
  const n = queue.length;
  const state = { queue, flags: new Array(n), sent: 0, replies: new Array(n), errors: null, done };
  for (let i = 0; i < n; i++) {
    const c = queue[i];
    const flags = flagsOf(c);
    if (flags instanceof Error) {
      state.flags[i] = FAILED;
      (state.errors || (state.errors = [])).push(flags);
      state.replies[i] = flags;
      if (c.cb) process.nextTick(c.cb, flags);
      continue;
    }
    state.flags[i] = flags;
    state.sent++;
  }
  return state;
}

// transaction() / multi({atomic: true}): a real MULTI … EXEC on the owner of the one slot all
// its keys share, sent as one block so no other caller's command can come in between. It follows
// MOVED/ASK as a whole (EXECABORT proves nothing ran) and answers CROSSSLOT when keys span slots.
// exec(cb) calls back (err, replies) as node_redis's multi does: err for EXECABORT/CROSSSLOT,
// replies with an Error in place of each command that failed while running.
class Transaction extends Batch {
  exec(cb) {
    const { queue, done } = this._take(cb);
    if (!queue) return this;
    this._submit(queue, (err, replies) => {
      if (!err && Array.isArray(replies)) {
        // EXEC's array holds raw replies: give hgetall node_redis's object, as outside a block.
        replies = replies.map((r, i) => (queue[i].name === 'hgetall' && !(r instanceof Error) ? toObject(r) : r));
        queue.forEach((c, i) => {
          if (!c.cb) return;
          const r = replies[i];
          if (r instanceof Error) c.cb(r);
          else c.cb(null, r);
        });
      } else {
        for (const c of queue) if (c.cb) c.cb(err, null);
      }
      if (done) done(err, replies);
    });
    return this;
  }

  execAsync() {
    return new Promise((resolve, reject) => this.exec((err, replies) => (err ? reject(err) : resolve(replies))));
  }

  // Where the block goes: the shared pipeline here; a WATCH session's connection in lib/watch.js.
  _submit(queue, cb) {
    this._cluster._queueTx(queue, cb);
  }
}

// Every command as a chainable Batch method, from the same list as the client's methods.
function addCommands(names, reserved) {
  manyMethods(Batch.prototype);
  for (const name of names) {
    if (reserved.has(name)) continue;
    Batch.prototype[name] = Batch.prototype[name.toUpperCase()] = function (...args) {
      return this._add(name, args, true);
    };
  }
}

module.exports = { Batch, Transaction, addCommands, prepareBatch };
