// redis-clustr-native: the hand-written CommonJS shim over the Rust engine, with the API of
// redis-clustr 1.7.0. It shapes arguments the node_redis way, queues commands and hands them to
// native code in one call per tick, and settles callbacks from one drain per wake-up. Routing,
// redirections, retries and connections all live in Rust (src/, crates/); with the createClient
// hook, lib/hook.js only carries the driver's node links over the factory's clients.
'use strict';

const { EventEmitter } = require('events');
const util = require('util');
const { NativeCluster, commandNames, keySlot } = require('./binding.js');
const { Encoder, FLAG_BUFFERS } = require('./lib/encoder');
const { natOptions } = require('./lib/natmap');
const { watch, addSessionCommands } = require('./lib/watch');
const { normalize, normalizeHash, check, flat } = require('./lib/args');
const { clientError, fromNative } = require('./lib/errors');
const { NodeHandle } = require('./lib/node');
const { dispatch, runCallbacks } = require('./lib/dispatch');
const { Batch, Transaction, addCommands, prepareBatch } = require('./lib/batch');
const compat = require('./lib/compat');
const { scanIterator, scanEach } = require('./lib/scan');
const { Pending } = require('./lib/pending');
const { manyMethods } = require('./lib/methods');
const { redactedConfig, nativeOptions, createClientOption, positive } = require('./lib/options');

const COMMANDS = commandNames();
// Native code makes its arrays by calling this with their elements (see src/binding/convert.rs).
const collect = (...xs) => xs;
// Methods the class defines itself: a command of the same name must not replace them.
const RESERVED = new Set(['quit', 'multi', 'batch', 'exec', 'send_command', 'constructor']);

// napi reports the native side's option checks (e.g. a TLS PEM that does not parse) with code
// 'InvalidArg'; callers get SPEC §3's INVALID_ARG like for the checks made here.
function createNative(options, wake, natFn) {
  try {
    return new NativeCluster(options, wake, natFn);
  } catch (e) {
    if (e && e.code === 'InvalidArg') throw clientError('INVALID_ARG', e.message);
    throw e;
  }
}

// The subscription commands and the set each changes (true: adds to it).
const SUBSCRIPTION = {
  subscribe: ['channels', true],
  unsubscribe: ['channels', false],
  psubscribe: ['patterns', true],
  punsubscribe: ['patterns', false],
  ssubscribe: ['shardChannels', true],
  sunsubscribe: ['shardChannels', false],
};

// Keeps `client.subscriptions` in step with what was asked (the native side restores exactly
// this set after a connection loss).
function trackSubscriptions(subs, name, args) {
  const [set, adds] = SUBSCRIPTION[name];
  const names = args.filter((a) => typeof a === 'string' || Buffer.isBuffer(a)).map(String);
  if (adds) {
    for (const n of names) if (!subs[set].includes(n)) subs[set].push(n);
  } else {
    subs[set] = names.length === 0 ? [] : subs[set].filter((n) => !names.includes(n));
  }
}

// Each client's createClient hook, kept off the instance: node_redis keeps the password on its
// clients, and util.inspect of the cluster client (even with showHidden) must not reach them.
const HOOKS = new WeakMap();

// The error for arguments that throw when merely inspected; says nothing of their content.
function unreadable(name) {
  return clientError('INVALID_ARG', `invalid arguments for ${name.toUpperCase()}: they could not be read; nothing was sent`, name);
}

// Commands at which a tick's queue is handed to native code without waiting for the tick's end
// (see _scheduleFlush). Counted, not weighed: flushing each large value on its own (a byte
// threshold) cost ~12 % more CPU in the 1 MiB SET/GET benchmark (three interleaved pairs).
const FLUSH_COUNT = 1024;
// Arguments at which a tick's queue is handed over at once when nothing else of this client's
// is in flight (see _scheduleFlush).
const EARLY_ARGS = 200;

function flush(self) {
  self._flushScheduled = false;
  const enc = self._enc;
  if (enc.count === 0) return;
  // idle: this tick's one command is all the caller has in flight, so native code may write it
  // from this thread at once (nothing of the caller's can be overtaken).
  const idle = enc.count === 1 && self._pending.size === 1;
  const blob = enc.blob();
  self._native.submit(enc.buf, enc.pos, blob, enc.large.length ? enc.large : undefined, idle);
  enc.reset();
}


class RedisClustr extends EventEmitter {
  constructor(config) {
    super();
    if (Array.isArray(config)) config = { servers: config };
    if (!config || typeof config !== 'object' || !Array.isArray(config.servers) || config.servers.length === 0) {
      throw clientError('INVALID_ARG', 'RedisClustr needs {servers: [{host, port}, ...]} with at least one server');
    }
    const nat = natOptions(config.natMap);
    const options = nativeOptions(config, nat);
    const hookFactory = createClientOption(config.createClient);
    if (hookFactory) options.hook = true;
    const ro = config.redisOptions || {};
    this.config = redactedConfig(config);
    this.slots = [];
    this.connections = {};
    this.subscriptions = { channels: [], patterns: [], shardChannels: [] };
    this.ready = false;
    this.connected = false;
    this.fullReady = false;
    this.quitting = false;
    Object.defineProperties(this, {
      _returnBuffers: { value: !!ro.return_buffers, writable: true },
      _detectBuffers: { value: !!ro.detect_buffers, writable: true },
      _prefix: { value: options.prefix || null },
      _pending: { value: new Pending() },
      _enc: { value: new Encoder() },
      _flushScheduled: { value: false, writable: true },
      _queuedBytes: { value: 0, writable: true },
      _maxInFlight: { value: positive(config.maxInFlight, 'maxInFlight') },
      _maxQueueBytes: { value: positive(config.maxQueueBytes, 'maxQueueBytes') },
      _quitCallbacks: { value: [] },
      _ended: { value: false, writable: true },
    });
    // The createClient hook's link server (lib/hook.js), only when a factory was given: without
    // it no JS Redis client is ever loaded.
    if (hookFactory) {
      const { Hook } = require('./lib/hook');
      HOOKS.set(this, new Hook(this, hookFactory, config.redisOptions || {}, options.connectTimeout || 10000));
    }
    Object.defineProperty(this, '_native', {
      value: createNative(options, () => this._wake(), nat.fn),
    });
  }

  [util.inspect.custom]() {
    return `RedisClustr { servers: ${JSON.stringify(this.config.servers)}, ready: ${this.ready} }`;
  }

  // ---- sending ----

  send_command(name, args, cb) {
    if (typeof args === 'function') {
      cb = args;
      args = [];
    }
    if (typeof name !== 'string' || name === '') {
      this._fail(clientError('INVALID_ARG', 'send_command needs a command name string'), cb);
      return this;
    }
    // node_redis treats a missing or null argument list as no arguments.
    if (args === null) args = undefined;
    if (args !== undefined && !Array.isArray(args)) args = [args];
    return this._queue(name.toLowerCase(), args ? args.slice() : [], cb, null);
  }

  sendCommand(name, args, cb) {
    return this.send_command(name, args, cb);
  }

  _call(name, argsLike) {
    let shaped;
    try {
      shaped = name === 'hmset' || name === 'hset' ? normalizeHash(argsLike) : normalize(argsLike);
    } catch (e) {
      // A hostile argument (a revoked Proxy, a throwing getter) could not even be looked at.
      const last = argsLike[argsLike.length - 1];
      this._fail(unreadable(name), typeof last === 'function' ? last : undefined);
      return this;
    }
    const { args, cb } = shaped;
    if (SUBSCRIPTION[name] && !this.quitting) trackSubscriptions(this.subscriptions, name, args);
    return this._queue(name, args, cb, null);
  }

  // `rej` (a promise twin's reject): `cb` is then its resolve, called with the reply alone, and
  // errors go to `rej`; no callback closure per command is needed to join the two.
  _queue(name, args, cb, node, session, rej) {
    if (cb !== undefined && typeof cb !== 'function') cb = undefined;
    const flags = this._flagsOf(name, args);
    if (flags instanceof Error) {
      this._fail(flags, cb, rej);
      return this;
    }
    return this._enqueue(name, args, cb, flags, node, null, session, rej);
  }

  // The flags a command's record carries (bulk replies as Buffers?), or the Error its
  // arguments fail the check with (then nothing is sent).
  _flagsOf(name, args) {
    let hasBuffer;
    try {
      hasBuffer = check(name, args);
    } catch (e) {
      return unreadable(name);
    }
    if (hasBuffer instanceof Error) return hasBuffer;
    return this._flags(hasBuffer);
  }

  _flags(hasBuffer) {
    return this._returnBuffers || (this._detectBuffers && hasBuffer) ? FLAG_BUFFERS : 0;
  }

  // Admits one command (or a transaction, `tx` = its commands): the limits are checked here, at
  // the call, so a caller over them learns it at once and nothing is queued.
  _enqueue(name, args, cb, flags, node, tx, session, rej) {
    let refusal = null;
    if (this.quitting) {
      refusal = clientError('CLOSED', `${name.toUpperCase()} after quit(): the client is closed; nothing was sent`, name, args);
    } else if (this._maxInFlight && this._pending.size >= this._maxInFlight) {
      refusal = clientError('QUEUE_FULL', `${this._maxInFlight} commands are already in flight (maxInFlight); nothing was sent`, name, args);
    } else if (this._maxQueueBytes && this._queuedBytes >= this._maxQueueBytes) {
      refusal = clientError('QUEUE_FULL', `${this._queuedBytes} bytes of commands are already queued (maxQueueBytes); nothing was sent`, name, args);
    }
    if (refusal) {
      this._fail(refusal, cb, rej);
      return this;
    }
    const start = this._enc.weight();
    // The id is taken first (the record names it) and given back if the record cannot be made.
    const id = this._pending.add(name, args, cb, 0, undefined, rej);
    try {
      if (tx) this._enc.pushTx(id, flags, tx, session);
      else this._enc.push(id, flags, node, name, args, session);
    } catch (e) {
      // Too large to encode (a string beyond what a Buffer can hold): this command fails alone.
      this._pending.delete(id);
      this._fail(clientError('INVALID_ARG', `${name.toUpperCase()} could not be encoded: ${e.message}`, name), cb, rej);
      return this;
    }
    this._admitted(id, start);
    return this;
  }

  // Command `id`'s record was written from encoder weight `start` on: its bytes count against
  // maxQueueBytes until it completes, and the flush is scheduled.
  _admitted(id, start) {
    const bytes = this._enc.weight() - start;
    this._queuedBytes += bytes;
    this._pending.bytes[id - 1] = bytes;
    this._scheduleFlush();
  }

  _scheduleFlush() {
    // A large Buffer argument is read by native code in the flush, not copied here: it must
    // happen before the caller can change the Buffer (see lib/encoder.js). A tick that queues
    // a lot is handed over in parts: 100,000 commands in one tick held their bytes three times
    // at once (this buffer, grown to 6 MiB and kept, the parsed records, the driver's copy), and
    // the io thread could not start writing until the tick ended.
    // And when the io thread has nothing of this client's (every pending command is still in
    // this tick's queue), the queue goes as soon as it holds EARLY_ARGS arguments: the servers
    // start on it while this tick goes on building the rest. Callers with a few large batches
    // or MGETs in flight get all their replies in one tick, so they would otherwise build the
    // next round whole while the servers sit idle, then wait while the servers work. In the
    // batch and mget benchmarks (4 in flight) the machine was 63-69 % busy; with this ~80 %,
    // throughput +8-30 % (mget) and +3-21 % (batch) over 6-10 interleaved rounds, CPU per
    // command within a few %. Only when idle: with commands in flight the servers have work, and
    // an early hand-over in every tick cost ~9 % more CPU in conc for no throughput.
    const enc = this._enc;
    if (enc.large.length || enc.count >= FLUSH_COUNT) flush(this);
    else if (enc.args >= EARLY_ARGS && this._pending.size === enc.count) flush(this);
    else if (!this._flushScheduled) {
      this._flushScheduled = true;
      process.nextTick(flush, this);
    }
  }

  // Ends WATCH session `session` after whatever was queued for it (see lib/watch.js).
  _endSession(session) {
    this._enc.pushEnd(session);
    this._scheduleFlush();
  }

  _fail(err, cb, rej) {
    if (rej) process.nextTick(rej, err);
    else if (cb) process.nextTick(cb, err);
    else process.nextTick(() => this.emit('error', err));
  }

  // ---- receiving ----

  _wake() {
    // Take everything now, act on it on the next tick: user code never runs inside the native
    // wake-up call.
    process.nextTick(dispatch, this, this._native.drain(collect));
  }

  _event(ev) {
    const hook = HOOKS.get(this);
    if (hook !== undefined && hook.event(ev)) return;
    switch (ev[0]) {
      case 'connect':
        this.connected = true;
        this.emit('connect');
        break;
      case 'ready':
        this.ready = true;
        this.emit('ready');
        break;
      case 'fullReady':
        this.fullReady = true;
        this.emit('fullReady');
        break;
      case 'nodeReady': {
        const n = this._handle(ev[1]);
        n.ready = n.connected = true;
        this.connected = true;
        break;
      }
      case 'nodeDown': {
        const n = this._handle(ev[1]);
        n.ready = n.connected = false;
        const err = fromNative(ev[2]);
        err.address = ev[1];
        this.emit('connectionError', err, n);
        const wasConnected = this.connected;
        this.connected = Object.values(this.connections).some((c) => c.ready);
        if (wasConnected && !this.connected) this.emit('disconnect');
        break;
      }
      case 'topology':
        this._topology(ev[1], ev[2], ev[3], ev[4]);
        break;
      case 'error':
        // Discovery failures also reach every waiting command's callback; emitting them with no
        // listener would crash the process for an error the caller already sees.
        if (this.listenerCount('error') > 0) this.emit('error', fromNative(ev[1]));
        break;
      case 'end':
        this._end();
        break;
      case 'message':
      case 'smessage':
        this.emit(ev[0], ev[1], ev[2]);
        break;
      case 'pmessage':
        this.emit('pmessage', ev[1], ev[2], ev[3]);
        break;
      case 'subscribe':
      case 'unsubscribe':
      case 'psubscribe':
      case 'punsubscribe':
      case 'ssubscribe':
      case 'sunsubscribe':
        this.emit(ev[0], ev[1], ev[2]);
        break;
      case 'resubscribed':
        this.emit('resubscribed', {
          channels: ev[1],
          patterns: ev[2],
          shardChannels: ev[3],
          from: ev[4],
          to: ev[5],
          node: ev[6],
        });
        break;
    }
  }

  _handle(address) {
    let n = this.connections[address];
    if (!n) n = this.connections[address] = new NodeHandle(this, address);
    return n;
  }

  _topology(shards, added, removed, moved) {
    const slots = new Array(16384);
    const seen = new Set();
    for (const [master, replicas, ranges] of shards) {
      const handles = [this._handle(master)].concat(replicas.map((r) => this._handle(r)));
      handles[0].master = true;
      for (let i = 1; i < handles.length; i++) handles[i].master = false;
      for (const h of handles) seen.add(h.address);
      for (let r = 0; r < ranges.length; r += 2) {
        for (let s = ranges[r]; s <= ranges[r + 1]; s++) slots[s] = handles;
      }
    }
    for (const addr of Object.keys(this.connections)) if (!seen.has(addr)) delete this.connections[addr];
    this.slots = slots;
    this.emit('topology', {
      added,
      removed,
      movedRanges: moved.map(([first, last, to]) => ({ first, last, to })),
    });
  }

  _end() {
    if (this._ended) return;
    this._ended = true;
    this.connected = false;
    for (const n of Object.values(this.connections)) n.ready = n.connected = false;
    this._native.close();
    const hook = HOOKS.get(this);
    if (hook !== undefined) hook.end();
    const calls = [];
    for (const cb of this._quitCallbacks.splice(0)) calls.push(cb, null, 'OK');
    // 'end' first: a quit callback that throws must not swallow it.
    this.emit('end');
    if (calls.length) runCallbacks(calls, 0);
  }

  // ---- lifecycle ----

  quit(cb) {
    if (typeof cb === 'function') {
      if (this._ended) process.nextTick(cb, null, 'OK');
      else this._quitCallbacks.push(cb);
    }
    if (!this.quitting) {
      this.quitting = true;
      // Commands queued this tick go out first, then the native side drains and closes.
      flush(this);
      this._native.quit();
    }
    return this;
  }

  /** redis-clustr's batch: commands sent together on exec, replies in order. */
  batch(commands) {
    return new Batch(this, commands);
  }

  /** Like redis-clustr, a batch and not a transaction; `multi({atomic: true})` is one. */
  multi(commands) {
    if (commands && !Array.isArray(commands) && commands.atomic) return new Transaction(this);
    return new Batch(this, commands);
  }

  /** A real MULTI/EXEC on one node: every key must share one slot. */
  transaction(commands) {
    return new Transaction(this, commands);
  }

  // A batch as one record with one completion (lib/batch.js): true when queued. False: it goes
  // command by command instead, for what a record cannot carry: limits counted per command,
  // subscriptions (client state), a client already closing (each command gets its own CLOSED).
  // prepareBatch's state: command by command too, but only the commands that passed their
  // check (the others have had their callbacks).
  _queueBatch(queue, done) {
    if (this.quitting || this._maxInFlight || this._maxQueueBytes) return false;
    if (queue.some((c) => SUBSCRIPTION[c.name])) return false;
    const b = prepareBatch(queue, done, (c) => this._flagsOf(c.name, c.args));
    if (b.sent === 0) {
      if (done) process.nextTick(done, b.errors, b.replies);
      return true;
    }
    const start = this._enc.weight();
    const id = this._pending.add('batch', [], undefined, 0, b);
    try {
      this._enc.pushBatch(id, queue, b.flags, b.sent);
    } catch (e) {
      // A command too large to encode: command by command, it fails alone.
      this._pending.delete(id);
      return b;
    }
    this._admitted(id, start);
    return true;
  }

  _queueTx(queue, cb, session) {
    let hasBuffer = false;
    for (const c of queue) {
      const checked = check(c.name, c.args);
      if (checked instanceof Error) return this._fail(checked, cb);
      hasBuffer = hasBuffer || checked;
    }
    return this._enqueue('exec', [], cb, this._flags(hasBuffer), null, queue, session);
  }


  waitFor(evt, already, cb) {
    if (typeof already === 'function') {
      cb = already;
      already = this[evt];
    }
    if (this.quitting) return cb(clientError('CLOSED', 'cluster is quitting'));
    if (already) return cb();
    let timer = null;
    const done = () => {
      if (timer) clearTimeout(timer);
      cb();
    };
    this.once(evt, done);
    if (this.config.wait) {
      timer = setTimeout(() => {
        this.removeListener(evt, done);
        cb(clientError('TIMEOUT', `'${evt}' did not happen within wait (${this.config.wait} ms)`));
      }, this.config.wait);
    }
  }

  // Diagnostics: redirections followed and topology work done so far.
  stats() {
    const s = this._native.stats();
    return { moved: s[0], ask: s[1], retries: s[2], refreshes: s[3], slotPatches: s[4], spinHits: s[5], spinMisses: s[6] };
  }
}



for (const m of ['watch', 'WATCH']) Object.defineProperty(RedisClustr.prototype, m, { value: watch, writable: true, configurable: true });
addSessionCommands(COMMANDS, RESERVED);
// Command method name → {name, method, plain}, for the promise twins.
const COMMAND_METHODS = new Map();
manyMethods(RedisClustr.prototype);
manyMethods(NodeHandle.prototype);
for (const name of COMMANDS) {
  for (const method of [name, name.toUpperCase()]) {
    if (RESERVED.has(name) || Object.prototype.hasOwnProperty.call(RedisClustr.prototype, method)) continue;
    const fn = function (...args) {
      return this._call(name, args);
    };
    // plain: its arguments need no shaping beyond flattening (no hash object, no subscription
    // bookkeeping), so a promise twin called with flat arguments can queue them as they are.
    const plain = !SUBSCRIPTION[name] && name !== 'hmset' && name !== 'hset';
    COMMAND_METHODS.set(method, { name, method: fn, plain });
    Object.defineProperty(RedisClustr.prototype, method, {
      value: fn,
      writable: true,
      configurable: true,
    });
  }
}
for (const name of COMMANDS) {
  if (RESERVED.has(name)) continue;
  NodeHandle.prototype[name] = NodeHandle.prototype[name.toUpperCase()] = function (...argsLike) {
    const { args, cb } = name === 'hmset' || name === 'hset' ? normalizeHash(argsLike) : normalize(argsLike);
    return this._cluster._queue(name, args, cb, this.address);
  };
}

addCommands(COMMANDS, RESERVED);
compat.install(RedisClustr.prototype);
for (const [name, fn] of Object.entries({ scanIterator, scanEach })) {
  Object.defineProperty(RedisClustr.prototype, name, { value: fn, writable: true, configurable: true });
}

// Promise twins, the bluebird.promisifyAll convention: getAsync(...) resolves with the reply.
// The methods are read from their descriptors: reading hundreds of them off the prototype
// itself would make V8 turn it "fast" again before the twins are added (see lib/methods.js).
const OWN = Object.getOwnPropertyDescriptors(RedisClustr.prototype);
for (const name of Object.keys(OWN)) {
  const fn = OWN[name].value;
  if (typeof fn !== 'function' || name === 'constructor' || name.startsWith('_') || name.endsWith('Async')) continue;
  if (['waitFor', 'stats', 'batch', 'multi', 'transaction', 'selectClient', 'getRandomConnection', 'getClient', 'scanIterator', 'scanEach'].includes(name)) continue;
  const command = COMMAND_METHODS.get(name);
  Object.defineProperty(RedisClustr.prototype, `${name}Async`, {
    // A command's twin queues its own argument array when it is flat, with the promise's
    // resolve and reject as the callbacks (no closure, copy or spread per call on the hottest
    // path); other shapes get a joining callback and go through _call's shaping.
    value:
      command !== undefined && fn === command.method
        ? function (...args) {
            return new Promise((resolve, reject) => {
              if (command.plain && flat(args)) this._queue(command.name, args, resolve, null, undefined, reject);
              else {
                args.push((err, v) => (err ? reject(err) : resolve(v)));
                this._call(command.name, args);
              }
            });
          }
        : function (...args) {
            return new Promise((resolve, reject) => fn.call(this, ...args, (err, v) => (err ? reject(err) : resolve(v))));
          },
    writable: true,
    configurable: true,
  });
}

/** The hash slot of a key (string or Buffer), computed on its bytes exactly as commands route. */
RedisClustr.keySlot = function (key) {
  if (Buffer.isBuffer(key)) return keySlot(key);
  if (key instanceof Uint8Array) return keySlot(Buffer.from(key.buffer, key.byteOffset, key.byteLength));
  return keySlot(Buffer.from(String(key)));
};

module.exports = RedisClustr;
module.exports.RedisClustr = RedisClustr;
module.exports.RedisCluster = RedisClustr;
module.exports.default = RedisClustr;
