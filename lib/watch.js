// client.watch(keys, cb): optimistic transactions (WATCH … MULTI … EXEC) on a cluster. WATCH
// is connection state, which the shared pipeline cannot hold for one caller (any other caller's
// EXEC would clear it), so each watch() gets a session: a connection of its own to the owner of
// the keys' slot (see crates/io/src/session.rs). The session runs commands at once, in order,
// like a node_redis client between WATCH and MULTI; `session.multi()` queues the transaction
// and `exec` sends MULTI … EXEC down the same connection and ends the session. As in node_redis,
// exec calls back `(null, null)` when a watched key changed (nothing ran): retry the whole thing.
//
//   client.watch('{user:1}:balance', (err, tx) => {
//     tx.get('{user:1}:balance', (err, balance) => {
//       tx.multi().set('{user:1}:balance', Number(balance) - 10).exec((err, replies) => {
//         // replies === null: someone changed the balance in between; start again
//       });
//     });
//   });
'use strict';

const { normalize, normalizeHash } = require('./args');
const { Transaction } = require('./batch');
const { clientError } = require('./errors');
const { manyMethods } = require('./methods');

let nextSession = 1;

function ended(name) {
  return clientError('CLOSED', `${name.toUpperCase()} on a WATCH session that has ended (exec, unwatch, end or a failure ends it); nothing was sent`, name);
}

class WatchSession {
  constructor(cluster, id) {
    Object.defineProperty(this, '_cluster', { value: cluster });
    Object.defineProperty(this, '_id', { value: id });
    this.ended = false;
  }

  _send(name, argsLike) {
    let shaped;
    try {
      shaped = name === 'hmset' || name === 'hset' ? normalizeHash(argsLike) : normalize(argsLike);
    } catch (e) {
      shaped = { args: [], cb: typeof argsLike[argsLike.length - 1] === 'function' ? argsLike[argsLike.length - 1] : undefined, bad: true };
    }
    if (this.ended || shaped.bad) {
      this._cluster._fail(shaped.bad ? clientError('INVALID_ARG', `${name.toUpperCase()}: arguments could not be read`, name) : ended(name), shaped.cb);
      return this;
    }
    this._cluster._queue(name, shaped.args, shaped.cb, null, this._id);
    return this;
  }

  send_command(name, args, cb) {
    if (typeof args === 'function') {
      cb = args;
      args = [];
    }
    return this._send(String(name).toLowerCase(), [Array.isArray(args) ? args.slice() : args === undefined || args === null ? [] : [args], cb]);
  }

  /** The transaction: queued commands, sent as MULTI … EXEC on this session by exec(). */
  multi() {
    return new SessionTransaction(this);
  }

  transaction() {
    return this.multi();
  }

  /** Gives up: UNWATCH, then the session's connection closes. */
  unwatch(cb) {
    if (this.ended) {
      this._cluster._fail(ended('unwatch'), typeof cb === 'function' ? cb : undefined);
      return this;
    }
    this._send('unwatch', typeof cb === 'function' ? [cb] : []);
    this.end();
    return this;
  }

  /** Closes the session's connection after what was already sent on it is answered. */
  end() {
    if (this.ended) return;
    this.ended = true;
    this._cluster._endSession(this._id);
  }
}

// A transaction bound to a session: exec sends it on the session's connection and ends it.
class SessionTransaction extends Transaction {
  constructor(session) {
    super(session._cluster);
    Object.defineProperty(this, '_session', { value: session });
  }

  exec(cb) {
    const s = this._session;
    if (s.ended) {
      const { queue, done } = this._take(cb);
      const err = ended('exec');
      if (queue) for (const c of queue) if (c.cb) process.nextTick(c.cb, err);
      if (done) process.nextTick(done, err, null);
      return this;
    }
    super.exec(cb);
    s.end();
    return this;
  }
}

WatchSession.prototype.UNWATCH = WatchSession.prototype.unwatch;

SessionTransaction.prototype._submit = function (queue, cb) {
  this._cluster._queueTx(queue, cb, this._session._id);
};

// Session command methods from the same list as the client's.
function addSessionCommands(names, reserved) {
  manyMethods(WatchSession.prototype);
  for (const name of names) {
    if (reserved.has(name) || name === 'multi' || name === 'unwatch') continue;
    WatchSession.prototype[name] = WatchSession.prototype[name.toUpperCase()] = function (...args) {
      return this._send(name, args);
    };
  }
  // Promise twins, as on the client.
  // From the descriptors, not the prototype: see lib/methods.js.
  const own = Object.getOwnPropertyDescriptors(WatchSession.prototype);
  for (const name of Object.keys(own)) {
    const fn = own[name].value;
    if (typeof fn !== 'function' || name === 'constructor' || name.startsWith('_') || ['multi', 'transaction', 'end'].includes(name)) continue;
    WatchSession.prototype[`${name}Async`] = function (...args) {
      return new Promise((resolve, reject) => fn.call(this, ...args, (err, v) => (err ? reject(err) : resolve(v))));
    };
  }
}

/** client.watch(...keys, cb(err, session)): WATCH on a connection of the transaction's own. */
function watch(...argsLike) {
  let shaped;
  try {
    shaped = normalize(argsLike);
  } catch (e) {
    shaped = { args: [], cb: undefined };
  }
  const { args, cb } = shaped;
  if (args.length === 0) {
    this._fail(clientError('INVALID_ARG', 'watch needs at least one key', 'watch'), cb);
    return this;
  }
  const session = new WatchSession(this, nextSession);
  nextSession = nextSession >= 0x7fffffff ? 1 : nextSession + 1;
  this._queue(
    'watch',
    args,
    (err) => {
      if (err) {
        session.end();
        if (cb) cb(err);
        else this.emit('error', err);
        return;
      }
      if (cb) cb(null, session);
      else session.end();
    },
    null,
    session._id
  );
  return this;
}

module.exports = { watch, WatchSession, addSessionCommands };
