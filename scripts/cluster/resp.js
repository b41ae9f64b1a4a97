// Minimal RESP2 client (one connection per call; fine for harness polling): command encoding,
// reply parsing, ReplyError, pipeline() and sendCommand(), plus parseInfo() for INFO replies.
'use strict';

const net = require('net');
const { HOST } = require('./util');

/** An error reply (`-ERR ...`, `-MOVED ...`) from a Redis server. `code` is its first word. */
class ReplyError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ReplyError';
    this.code = message.split(' ', 1)[0];
  }
}

function encodeCommand(args) {
  const parts = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/**
 * Parses one RESP2 value at `pos`. Returns `{ value, pos }`, or `null` when `buf` ends first.
 * Error replies become ReplyError values (not thrown); bulk strings are utf8 strings unless
 * `buffers` is true.
 */
function parseReply(buf, pos, buffers, depth = 0) {
  if (depth > 64) throw new Error('RESP nesting too deep');
  if (pos >= buf.length) return null;
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[pos]);
  const line = buf.toString('utf8', pos + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+':
      return { value: line, pos: next };
    case '-':
      return { value: new ReplyError(line), pos: next };
    case ':': {
      if (!/^-?\d+$/.test(line)) throw new Error(`bad RESP integer ${JSON.stringify(line)}`);
      return { value: Number(line), pos: next };
    }
    case '$': {
      if (!/^-?\d+$/.test(line)) throw new Error(`bad RESP bulk length ${JSON.stringify(line)}`);
      const len = Number(line);
      if (len < 0) return { value: null, pos: next };
      if (buf.length < next + len + 2) return null;
      const raw = buf.subarray(next, next + len);
      return { value: buffers ? Buffer.from(raw) : raw.toString('utf8'), pos: next + len + 2 };
    }
    case '*': {
      if (!/^-?\d+$/.test(line)) throw new Error(`bad RESP array length ${JSON.stringify(line)}`);
      const n = Number(line);
      if (n < 0) return { value: null, pos: next };
      const arr = [];
      let p = next;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, p, buffers, depth + 1);
        if (!r) return null;
        arr.push(r.value);
        p = r.pos;
      }
      return { value: arr, pos: p };
    }
    default:
      throw new Error(`unexpected RESP type byte 0x${buf[pos].toString(16)}`);
  }
}

/**
 * Sends several commands on one fresh connection to `host:port` (pipelined) and resolves with
 * their replies in order. Error replies are ReplyError objects *in the array* (not rejected).
 * Rejects on connection errors, protocol errors, or when `timeoutMs` passes (code ETIMEDOUT).
 * @param {number} port
 * @param {Array<Array<string|number|Buffer>>} commands
 * @param {{host?: string, timeoutMs?: number, buffers?: boolean}} [opts]
 * @returns {Promise<any[]>}
 */
function pipeline(port, commands, { host = HOST, timeoutMs = 10000, buffers = false } = {}) {
  return new Promise((resolve, reject) => {
    const replies = [];
    let buf = Buffer.alloc(0);
    let done = false;
    const socket = net.createConnection({ host, port });
    const finish = (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(replies);
    };
    const timer = setTimeout(() => {
      const e = new Error(`timeout after ${timeoutMs} ms waiting for ${host}:${port}`);
      e.code = 'ETIMEDOUT';
      finish(e);
    }, timeoutMs);
    socket.setNoDelay(true);
    socket.on('connect', () => socket.write(Buffer.concat(commands.map(encodeCommand))));
    socket.on('data', (chunk) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      try {
        let r;
        while (replies.length < commands.length && (r = parseReply(buf, 0, buffers))) {
          replies.push(r.value);
          buf = buf.subarray(r.pos);
        }
      } catch (e) {
        finish(e);
        return;
      }
      if (replies.length === commands.length) finish(null);
    });
    socket.on('error', (e) => finish(e));
    socket.on('close', () => finish(new Error(`connection to ${host}:${port} closed before all replies arrived`)));
  });
}

/**
 * Sends one command to `host:port` on a fresh connection. Resolves with the parsed reply
 * (status → string, integer → number, bulk → string or Buffer, nil → null, array → array whose
 * nested error replies are ReplyError *values*). A top-level error reply REJECTS with a
 * ReplyError (`err.code` = 'ERR', 'MOVED', 'ASK', ...; `err.message` = the full line).
 * @param {number} port
 * @param {Array<string|number|Buffer>} args
 * @param {{host?: string, timeoutMs?: number, buffers?: boolean}} [opts]
 * @returns {Promise<any>}
 */
async function sendCommand(port, args, opts) {
  const [reply] = await pipeline(port, [args], opts);
  if (reply instanceof ReplyError) throw reply;
  return reply;
}

/** Parses `key:value` lines of an INFO / CLUSTER INFO reply into an object. */
function parseInfo(text) {
  const out = {};
  for (const line of String(text).split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0 && line[0] !== '#') out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

module.exports = { ReplyError, pipeline, sendCommand, parseInfo };
