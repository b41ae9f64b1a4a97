// The createClient hook (SPEC §5): the JS side of the native driver's "JS links". The driver
// still decides everything (slot, node, MOVED/ASK, retries, split/merge, fan-out, pub/sub
// bookkeeping); it asks for a link to a node (`linkOpen`), hands over commands as argv lists
// (`linkWrite`) and drops links (`linkClose`). This file carries them over the clients the
// user's factory returns — one per node, cached by "host:port", made with
// `(port, host, redisOptions)` — and reports back readiness, failures and the replies, encoded
// as RESP in command order so the driver reads them exactly like a socket's.
//
// This module never requires a Redis client itself: the factory brings its own.
'use strict';

const { clientError } = require('./errors');

// A server error (MOVED, ASK, WRONGTYPE, …) as node_redis v2/v3 and ioredis report it: the
// redis-errors ReplyError. Anything else from a client (AbortError, a closed connection, an
// invalid argument) means the link can no longer be trusted.
function isServerError(err) {
  return err instanceof Error && err.name === 'ReplyError' && typeof err.message === 'string';
}

// JS reply values → RESP, the form the driver decodes. Strings and Buffers become bulk strings,
// integers integers, null nil, arrays arrays, Errors error lines; a plain object (node_redis
// turns HGETALL into one) becomes the flat field/value array the server sent.
class ReplyWriter {
  constructor() {
    this.buf = Buffer.allocUnsafe(16 * 1024);
    this.pos = 0;
  }

  ensure(n) {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  ascii(s) {
    this.ensure(s.length);
    this.pos += this.buf.write(s, this.pos, 'latin1');
  }

  bulk(v) {
    if (typeof v === 'string') {
      const n = Buffer.byteLength(v);
      this.ascii(`$${n}\r\n`);
      this.ensure(n + 2);
      this.pos += this.buf.write(v, this.pos, 'utf8');
    } else {
      this.ascii(`$${v.length}\r\n`);
      this.ensure(v.length + 2);
      this.buf.set(v, this.pos);
      this.pos += v.length;
    }
    this.ascii('\r\n');
  }

  status(text) {
    this.ascii(`+${text}\r\n`);
  }

  value(v, depth) {
    if (depth > 64) throw new Error('reply nested deeper than 64 levels');
    if (v === null || v === undefined) this.ascii('$-1\r\n');
    else if (typeof v === 'string' || Buffer.isBuffer(v)) this.bulk(v);
    else if (typeof v === 'number') {
      if (Number.isSafeInteger(v)) this.ascii(`:${v}\r\n`);
      else this.bulk(String(v));
    } else if (Array.isArray(v)) {
      this.ascii(`*${v.length}\r\n`);
      for (const item of v) this.value(item, depth + 1);
    } else if (v instanceof Error) {
      // One line, as the server sent it.
      const line = String(v.message).replace(/[\r\n]+/g, ' ');
      const n = Buffer.byteLength(line);
      this.ensure(n + 3);
      this.buf[this.pos++] = 0x2d; // '-'
      this.pos += this.buf.write(line, this.pos, 'utf8');
      this.ascii('\r\n');
    } else if (v instanceof Uint8Array) this.bulk(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
    else if (typeof v === 'object') {
      const keys = Object.keys(v);
      this.ascii(`*${keys.length * 2}\r\n`);
      for (const k of keys) {
        this.bulk(k);
        this.value(v[k], depth + 1);
      }
    } else if (typeof v === 'boolean') this.ascii(`:${v ? 1 : 0}\r\n`);
    else this.bulk(String(v));
  }

  reset() {
    this.pos = 0;
    if (this.buf.length > 4 * 1024 * 1024) this.buf = Buffer.allocUnsafe(16 * 1024);
  }
}

// node_redis hands a status reply over like a bulk string (a string, or a Buffer with
// return_buffers/detect_buffers), yet the reply shapes depend on the difference: 'OK' stays a
// string when bulk replies are Buffers, as in native mode. These commands answer success with
// the status 'OK' (SET only without its GET option), so that exact reply is passed on as a status.
const OK_COMMANDS = new Set(
  (
    'set mset hmset setex psetex rename lset ltrim flushall flushdb multi watch unwatch discard ' +
    'readonly readwrite asking restore pfmerge swapdb migrate xgroup xsetid script cluster config ' +
    'client function select auth quit debug latency memory module acl replicaof slaveof save'
  ).split(' ')
);

// The status a command's reply should be read as ('OK', 'PONG'), '*' for TYPE (any word), or
// null when its replies are bulk strings.
function expectedStatus(argv) {
  const name = String(argv[0]).toLowerCase();
  if (name === 'ping') return argv.length === 1 ? 'PONG' : null;
  if (name === 'type') return '*';
  if (name === 'set') {
    for (let i = 3; i < argv.length; i++) if (typeof argv[i] === 'string' && argv[i].toLowerCase() === 'get') return null;
  }
  return OK_COMMANDS.has(name) ? 'OK' : null;
}

function statusText(v, expected) {
  if (typeof v !== 'string' && !Buffer.isBuffer(v)) return null;
  if (v.length > 32) return null;
  const text = String(v);
  if (expected === '*') return /^[a-z]+$/.test(text) ? text : null;
  return text === expected ? text : null;
}

function describe(v) {
  if (v === null) return 'null';
  if (typeof v !== 'object' && typeof v !== 'function') return typeof v;
  return v.constructor && v.constructor.name ? `a ${v.constructor.name}` : 'an object';
}

function isReady(client) {
  return client.ready === true || client.status === 'ready';
}

class Hook {
  constructor(cluster, factory, redisOptions, connectTimeout) {
    this._cluster = cluster;
    // A closure, not a property: redisOptions may hold a password, and util.inspect (even with
    // showHidden) must not find it on the client.
    this._create = (port, host) => factory(port, host, redisOptions);
    this._connectTimeout = connectTimeout;
    this._clients = new Map(); // "host:port" → entry (command clients, shared by links)
    this._links = new Map(); // link id → link
    this._dirty = new Set();
    this._flushScheduled = false;
    this._writer = new ReplyWriter();
    this._ended = false;
    // With detect_buffers, node_redis answers in Buffers only to commands with a Buffer
    // argument; the native side sends UTF-8 arguments as strings, so every argument goes as a
    // Buffer here and the replies stay byte-exact (the shim turns them into strings where the
    // caller passed none).
    this._argsAsBuffers = !!(redisOptions && redisOptions.detect_buffers && !redisOptions.return_buffers);
  }

  get _native() {
    return this._cluster._native;
  }

  /** Handles a link event from the driver; false when `ev` is not one. */
  event(ev) {
    switch (ev[0]) {
      case 'linkOpen':
        this._open(ev[1], ev[2], ev[3], ev[4], ev[5], ev[6]);
        return true;
      case 'linkWrite':
        this._write(this._links.get(ev[1]), ev[2]);
        return true;
      case 'linkClose':
        this._forget(this._links.get(ev[1]));
        return true;
      default:
        return false;
    }
  }

  // ---- clients ----

  _make(host, port) {
    const address = `${host.includes(':') ? `[${host}]` : host}:${port}`;
    let client;
    try {
      client = this._create(port, host);
    } catch (e) {
      const why = e && e.message ? e.message : String(e);
      throw clientError('CREATE_CLIENT_FAILED', `createClient(${port}, '${host}', redisOptions) threw: ${why}`);
    }
    if (!client || typeof client.send_command !== 'function' || typeof client.on !== 'function') {
      throw clientError(
        'CREATE_CLIENT_INVALID',
        `createClient(${port}, '${host}', redisOptions) returned ${describe(client)}, not a node_redis-compatible client (it needs send_command and on)`
      );
    }
    const entry = { client, address, links: new Set() };
    client.on('ready', () => {
      for (const link of entry.links) if (link.state === 'opening') this._handshake(link);
    });
    // Listening for 'error' also keeps an error from a node's client from crashing the process.
    client.on('error', (err) => this._lost(entry, err));
    client.on('end', () => this._lost(entry, new Error('connection closed')));
    client.on('reconnecting', () => this._lost(entry, new Error('reconnecting')));
    return entry;
  }

  _commandClient(host, port) {
    const key = `${host}:${port}`;
    let entry = this._clients.get(key);
    if (!entry) {
      entry = this._make(host, port);
      this._clients.set(key, entry);
    }
    return entry;
  }

  // A subscriber link gets a client of its own, never reused: node_redis would restore its
  // subscriptions by itself after a reconnect, and the driver already does that.
  _subscriberClient(host, port) {
    const entry = this._make(host, port);
    // Listening for 'message_buffer' is node_redis' public switch to Buffer replies, so what
    // `_takeOver` forwards is byte-exact (binary channels and payloads).
    entry.client.on('message_buffer', () => {});
    return entry;
  }

  // A subscriber link's client is ours alone. Once it is up, its raw replies — confirmations,
  // messages, and the sharded pushes node_redis v3 does not know (it would take an smessage for
  // a command's reply) — go to the driver as they come, as a socket's frames would: the driver
  // keeps the pub/sub bookkeeping. node_redis' own pub/sub handling is bypassed through its
  // parser callbacks (`return_reply` / `return_error`, present in node_redis v2 and v3).
  _takeOver(link) {
    const c = link.entry.client;
    if (typeof c.return_reply !== 'function' || typeof c.return_error !== 'function') return false;
    const queue = c.command_queue;
    const forget = queue && typeof queue.clear === 'function' ? () => queue.clear() : () => {};
    c.return_reply = (reply) => {
      forget();
      this._push(link, reply);
    };
    c.return_error = (err) => {
      forget();
      this._push(link, err);
    };
    return true;
  }

  // ---- links ----

  // `dedicated`: a WATCH session's link, which needs a client of its own (WATCH is connection
  // state that the node's shared client would mix with every other caller's commands).
  _open(id, host, port, readonly, subscriber, dedicated) {
    if (this._ended) return;
    const own = subscriber || dedicated;
    const link = { id, state: 'opening', readonly, subscriber, own, entry: null, slots: [], head: 0, timer: null };
    this._links.set(id, link);
    try {
      link.entry = subscriber ? this._subscriberClient(host, port) : dedicated ? this._make(host, port) : this._commandClient(host, port);
    } catch (e) {
      return this._down(link, e.code, e.message);
    }
    link.entry.links.add(link);
    const ms = this._connectTimeout;
    link.timer = setTimeout(() => {
      this._down(link, 'ECONNREFUSED', `the createClient client for ${link.entry.address} was not ready within ${ms} ms`);
    }, ms);
    if (link.timer.unref) link.timer.unref();
    if (isReady(link.entry.client)) this._handshake(link);
  }

  // What the native connection sends first: READONLY for replica reads, then PING, so a link
  // counts as up only once the node answered through this client.
  _handshake(link) {
    if (link.state !== 'opening' || link.shaking) return;
    link.shaking = true;
    const c = link.entry.client;
    const fail = (err) =>
      this._down(link, 'HANDSHAKE_FAILED', `handshake (READONLY/PING) with ${link.entry.address} through the createClient client failed: ${err.message}`);
    try {
      if (link.readonly) c.send_command('readonly', [], (err) => err && fail(err));
      c.send_command('ping', [], (err) => {
        if (err) return fail(err);
        if (link.state !== 'opening') return;
        if (link.subscriber && !this._takeOver(link)) {
          return this._down(link, 'CREATE_CLIENT_INVALID', `the createClient client for ${link.entry.address} cannot carry pub/sub: it is not a node_redis v2/v3 client`);
        }
        link.state = 'up';
        clearTimeout(link.timer);
        this._native.linkUp(link.id);
      });
    } catch (e) {
      fail(e);
    }
  }

  _write(link, commands) {
    if (!link || link.state !== 'up') return;
    const c = link.entry.client;
    // Synchronously, in order: node_redis writes each command to its one socket as it is
    // called, so ASKING and the command it precedes stay back-to-back.
    for (const argv of commands) {
      // A subscriber link's replies are the pushes its events deliver (`_push`), not slots.
      const slot = { done: false, value: undefined, status: expectedStatus(argv) };
      if (!link.subscriber) link.slots.push(slot);
      const name = argv[0];
      const done = (err, reply) => this._settle(link, slot, name, err, reply);
      try {
        const args = argv.slice(1);
        if (this._argsAsBuffers) for (let i = 0; i < args.length; i++) if (typeof args[i] === 'string') args[i] = Buffer.from(args[i]);
        c.send_command(name, args, done);
      } catch (e) {
        done(e);
      }
    }
  }

  _settle(link, slot, name, err, reply) {
    if (link.state !== 'up' || slot.done) return;
    if (err && !isServerError(err)) {
      const why = err.code ? `${err.message} (${err.code})` : String(err.message || err);
      return this._down(link, 'CONNECTION_LOST', `the createClient client for ${link.entry.address} failed ${String(name).toUpperCase()}: ${why}`);
    }
    // A subscriber link's replies arrive through `_takeOver`, never through callbacks.
    if (link.subscriber) return;
    slot.done = true;
    slot.value = err || reply;
    this._schedule(link);
  }

  _push(link, frame) {
    if (link.state !== 'up') return;
    link.slots.push({ done: true, value: frame });
    this._schedule(link);
  }

  _schedule(link) {
    this._dirty.add(link);
    if (!this._flushScheduled) {
      this._flushScheduled = true;
      process.nextTick(() => this._flush());
    }
  }

  // Replies go back in command order, every link's in one native call per tick.
  _flush() {
    this._flushScheduled = false;
    const w = this._writer;
    for (const link of this._dirty) {
      if (link.state !== 'up') continue;
      w.reset();
      const slots = link.slots;
      let i = link.head;
      try {
        for (; i < slots.length && slots[i].done; i++) {
          const { value, status } = slots[i];
          const text = status === undefined || status === null ? null : statusText(value, status);
          if (text !== null) w.status(text);
          else w.value(value, 0);
        }
      } catch (e) {
        this._down(link, 'PROTOCOL', `a reply from the createClient client for ${link.entry.address} could not be passed on: ${e.message}`);
        continue;
      }
      link.head = i;
      if (i === slots.length) {
        link.slots = [];
        link.head = 0;
      } else if (i > 1024) {
        link.slots = slots.slice(i);
        link.head = 0;
      }
      if (w.pos > 0) this._native.linkReplies(link.id, w.buf, w.pos);
    }
    this._dirty.clear();
  }

  _lost(entry, err) {
    for (const link of entry.links) {
      const why = err && err.message ? err.message : String(err);
      if (link.state === 'opening') {
        this._down(link, 'ECONNREFUSED', `could not connect to ${entry.address} through the createClient client: ${why}`);
      } else {
        this._down(link, 'CONNECTION_LOST', `the createClient client for ${entry.address} lost its connection: ${why}`);
      }
    }
  }

  _down(link, code, message) {
    if (link.state === 'down') return;
    this._forget(link);
    if (!this._ended) this._native.linkDown(link.id, code || 'CONNECTION_LOST', message);
  }

  _forget(link) {
    if (!link || link.state === 'down') return;
    link.state = 'down';
    clearTimeout(link.timer);
    this._links.delete(link.id);
    this._dirty.delete(link);
    if (!link.entry) return;
    link.entry.links.delete(link);
    if (link.own) close(link.entry.client);
  }

  /** After the cluster client ended: closes every client the factory made. */
  end() {
    this._ended = true;
    for (const link of [...this._links.values()]) this._forget(link);
    for (const entry of this._clients.values()) close(entry.client);
    this._clients.clear();
  }
}

// Ends a factory client: gracefully when it is connected (nothing of ours is in flight by
// now), at once when it is still trying to connect, so it does not keep the process alive.
function close(client) {
  try {
    if (isReady(client) || typeof client.end !== 'function') client.quit();
    else client.end(true);
  } catch (e) {
    // A client that cannot even be closed has nothing left for us to do.
  }
}

module.exports = { Hook };
