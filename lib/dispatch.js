// Settling what native code drained: events in order, then the callbacks of completed commands,
// run on their own tick outside the native wake-up so user code never runs inside it and an
// exception it throws is an ordinary uncaught exception that costs no other callback.
'use strict';

const { fromNative, fromServer } = require('./errors');

// Runs settled callbacks outside the native wake-up, so an exception thrown by user code is an
// ordinary uncaught exception (as with node_redis) and the remaining callbacks still run.
function runCallbacks(list, start) {
  for (let i = start; i < list.length; i += 3) {
    try {
      list[i](list[i + 1], list[i + 2]);
    } catch (e) {
      if (i + 3 < list.length) process.nextTick(runCallbacks, list, i + 3);
      throw e;
    }
  }
}

function toObject(reply) {
  if (!Array.isArray(reply) || reply.length === 0) return null;
  const obj = {};
  for (let i = 0; i < reply.length; i += 2) obj[String(reply[i])] = reply[i + 1];
  return obj;
}

// A listener that throws must not cost the other events and the callbacks drained with them:
// its exception is rethrown on its own tick, as an uncaught exception.
function emitSafely(self, ev) {
  try {
    self._event(ev);
  } catch (e) {
    process.nextTick(() => {
      throw e;
    });
  }
}

// Settles a batch record's completion: `result` is [values, failed] (src/binding/convert.rs),
// `failure` a client-side error for the whole record. Per-command callbacks first, then exec's.
// The record holds the commands whose `b.flags` are not negative, in queue order (lib/batch.js).
function settleBatch(b, result, failure, calls) {
  const { queue, flags, replies } = b;
  let errors = b.errors;
  const values = result ? result[0] : null;
  const failed = result ? result[1] : null;
  let f = 0;
  let k = -1;
  for (let i = 0; i < queue.length; i++) {
    if (flags[i] < 0) continue;
    k++;
    const c = queue[i];
    let err = null;
    let value;
    if (failure) err = fromNative(failure, c.name, c.args);
    else if (failed !== null && failed[f] === k) {
      f++;
      err = fromNative(values[k], c.name, c.args);
    } else if (values[k] instanceof Error) err = fromServer(values[k], c.name, c.args);
    else value = c.name === 'hgetall' ? toObject(values[k]) : values[k];
    if (err) (errors || (errors = [])).push(err);
    replies[i] = err || value;
    if (c.cb) calls.push(c.cb, err, value);
  }
  if (b.done) calls.push(b.done, errors, replies);
}

function dispatch(self, out) {
  const calls = [];
  let ended = false;
  for (let i = 0; i < out.length; i += 2) {
    const id = out[i];
    const v = out[i + 1];
    if (id === 0) {
      // 'end' comes with the last replies: their callbacks run first, then quit's.
      if (v[0] === 'end') ended = true;
      else emitSafely(self, v);
      continue;
    }
    const key = id > 0 ? id : -id;
    const pending = self._pending;
    if (!pending.has(key)) continue;
    const at = key - 1;
    const name = pending.name[at];
    const args = pending.args[at];
    const cb = pending.cb[at];
    const batch = pending.batch[at];
    const rej = pending.rej[at];
    self._queuedBytes -= pending.bytes[at];
    pending.delete(key);
    if (batch !== undefined) {
      if (id < 0) settleBatch(batch, null, v, calls);
      else settleBatch(batch, v, null, calls);
      continue;
    }
    let err = null;
    let value;
    if (id < 0) err = fromNative(v, name, args);
    else if (v instanceof Error) err = fromServer(v, name, args);
    else value = name === 'hgetall' ? toObject(v) : v;
    if (rej !== undefined) {
      // A promise's own resolve or reject: it never throws or runs user code here (reactions
      // are microtasks, after this dispatch), so it is called now rather than listed.
      if (err) rej(err);
      else cb(value);
    } else if (cb) calls.push(cb, err, value);
    else if (err) calls.push((e) => self.emit('error', e), err, undefined);
  }
  if (!ended) {
    if (calls.length) runCallbacks(calls, 0);
    return;
  }
  try {
    if (calls.length) runCallbacks(calls, 0);
  } finally {
    self._end();
  }
}

module.exports = { dispatch, runCallbacks, toObject };
