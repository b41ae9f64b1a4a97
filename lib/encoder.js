// Packs queued commands into one Buffer for the single native call per tick (see
// src/binding/submit.rs for the format). One reusable buffer: the native side copies what it
// needs during the call, so the bytes can be overwritten by the next flush.
'use strict';

const FLAG_BUFFERS = 1;
const FLAG_NODE = 2;
const FLAG_TX = 4;
const FLAG_SESSION = 8;

class Encoder {
  constructor() {
    this.buf = Buffer.allocUnsafe(64 * 1024);
    this.pos = 0;
    this.count = 0;
  }

  ensure(n) {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  // `args` are already validated strings or Buffers; `name` is the command name.
  // All or nothing: if an argument cannot be written (RangeError on a huge string), the record
  // is rolled back so the batch stays well-formed.
  // `session` (optional): the WATCH session the command belongs to.
  push(id, flags, node, name, args, session) {
    const start = this.pos;
    try {
      this.record(id, flags, node, name, args, session);
    } catch (e) {
      this.pos = start;
      throw e;
    }
    this.count++;
  }

  record(id, flags, node, name, args, session) {
    this.ensure(13);
    const b = this.buf;
    b.writeUInt32LE(id, this.pos);
    b[this.pos + 4] = flags | (node ? FLAG_NODE : 0);
    this.pos += 5;
    if (session !== undefined) this.session(session);
    if (node) this.string(node);
    this.ensure(4);
    this.buf.writeUInt32LE(args.length + 1, this.pos);
    this.pos += 4;
    this.string(name);
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      if (typeof a === 'string') this.string(a);
      else this.bytes(a);
    }
  }

  // A transaction as one record: FLAG_TX, then the commands (see src/binding/submit.rs).
  pushTx(id, flags, commands, session) {
    const start = this.pos;
    try {
      this.ensure(13);
      this.buf.writeUInt32LE(id, this.pos);
      this.buf[this.pos + 4] = flags | FLAG_TX;
      this.pos += 5;
      if (session !== undefined) this.session(session);
      this.buf.writeUInt32LE(commands.length, this.pos);
      this.pos += 4;
      for (const { name, args } of commands) {
        this.ensure(4);
        this.buf.writeUInt32LE(args.length + 1, this.pos);
        this.pos += 4;
        this.string(name);
        for (const a of args) {
          if (typeof a === 'string') this.string(a);
          else this.bytes(a);
        }
      }
    } catch (e) {
      this.pos = start;
      throw e;
    }
    this.count++;
  }

  // Ends a WATCH session: a session record with no command (nothing answers it).
  pushEnd(session) {
    this.ensure(13);
    this.buf.writeUInt32LE(0, this.pos);
    this.buf[this.pos + 4] = 0;
    this.pos += 5;
    this.session(session);
    this.buf.writeUInt32LE(0, this.pos);
    this.pos += 4;
    this.count++;
  }

  // Marks the record begun at pos - 5 as a session's and writes the session id.
  session(id) {
    this.buf[this.pos - 1] |= FLAG_SESSION;
    this.buf.writeUInt32LE(id, this.pos);
    this.pos += 4;
  }

  string(s) {
    // At most 3 bytes per UTF-16 unit (a lone surrogate becomes U+FFFD, 3 bytes).
    this.ensure(4 + s.length * 3);
    const n = this.buf.write(s, this.pos + 4, 'utf8');
    this.buf.writeUInt32LE(n, this.pos);
    this.pos += 4 + n;
  }

  bytes(u8) {
    this.ensure(4 + u8.length);
    this.buf.writeUInt32LE(u8.length, this.pos);
    this.buf.set(u8, this.pos + 4);
    this.pos += 4 + u8.length;
  }

  reset() {
    this.pos = 0;
    this.count = 0;
    // Do not keep a huge buffer around after one big value went through.
    if (this.buf.length > 4 * 1024 * 1024) this.buf = Buffer.allocUnsafe(64 * 1024);
  }
}

module.exports = { Encoder, FLAG_BUFFERS };
