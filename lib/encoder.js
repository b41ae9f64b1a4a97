// Packs queued commands into one Buffer for the single native call per tick (see
// src/binding/submit.rs for the format). One reusable buffer: the native side copies what it
// needs during the call, so the bytes can be overwritten by the next flush.
// Byte arguments of LARGE bytes or more are not copied into it: the record names them by index
// in `large`, handed to native code with the batch, which copies them once into the command's
// wire bytes. Copying a 64 MiB value twice into fresh memory on the JS thread (here, then there)
// stalled the event loop for over 100 ms. Since they are read in the native call, a batch holding
// one must be flushed before the caller gets control back (the caller may change the Buffer).
// String arguments up to BLOB_MAX characters are not written into their records either: the
// record holds their length and the strings are joined and written once per flush, after the
// records (the "blob", see blob(); only when one is not ASCII are they written one by one).
// Keys built by concatenation (`user:${id}`, 13+ characters) are V8 cons strings, and reading
// one character by character first makes V8 flatten it in the runtime: ~130 ns per key, against
// ~15 ns for a flat string. `join` copies every part into one flat string in a single pass and
// one write encodes it. The encoder alone, on the batch benchmark's commands (fresh keys
// `bench:k:<n>`, 32-character values): ~150 → ~110 ns per command in a micro-benchmark.
'use strict';

const FLAG_BUFFERS = 1;
const FLAG_NODE = 2;
const FLAG_TX = 4;
const FLAG_SESSION = 8;
const FLAG_BATCH = 16;
const LARGE = 1024 * 1024;
// In place of an argument's length: the argument is `large[next u32]`. No inline argument is
// this long (strings encode to under 2 GiB, byte arrays this size take the large path).
const LARGE_REF = 0xffffffff;
// In place of an argument's length: BLOB_BIT + n, the argument is the next n bytes of the blob.
// Inline lengths stay below it (strings too long for the blob are under 2 GiB once encoded,
// byte arrays under LARGE), and blob lengths are at most 3 × BLOB_MAX, so never LARGE_REF.
const BLOB_BIT = 0x80000000;
// The longest string that goes into the blob: a longer one costs one call to write either way.
const BLOB_MAX = 4096;
// The most characters the blob of one flush holds, so the joined string stays far below V8's
// string length limit; strings past it are written into their record as before.
const BLOB_CAP = 16 * 1024 * 1024;

class Encoder {
  constructor() {
    this.buf = Buffer.allocUnsafe(64 * 1024);
    this.pos = 0;
    this.count = 0;
    // Arguments (command names included) in the queued records: what the servers will have to
    // work through, the measure for handing a tick's queue over early (see index.js).
    this.args = 0;
    this.large = [];
    this.largeBytes = 0;
    // The blob's strings (the first nstrs of strs), the record position of each one's length,
    // and their characters. The lists are reused from flush to flush (cut to size, and let go
    // only after a huge flush): made anew each time, they were most of what the encoder
    // allocated (~180 bytes per command of a batch).
    this.strs = [];
    this.nstrs = 0;
    this.lenAt = new Uint32Array(1024);
    this.blobChars = 0;
    // Bytes the last blob() wrote after the records: part of what a flush used (see reset()).
    this.blobBytes = 0;
    this.markPos = this.markLarge = this.markLargeBytes = this.markStrs = this.markChars = 0;
    // Flushes in a row that used under an eighth of a grown buffer (see reset()).
    this.idle = 0;
  }

  /**
   * What the queued commands weigh: the batch bytes plus the large arguments and the blob's
   * strings they name (counted in characters: their bytes are not known before the flush).
   */
  weight() {
    return this.pos + this.largeBytes + this.blobChars;
  }

  // Where a record starts (kept in fields, not an object: push() runs once per command), to
  // undo it with rollback() if it cannot be written whole.
  mark() {
    this.markPos = this.pos;
    this.markLarge = this.large.length;
    this.markLargeBytes = this.largeBytes;
    this.markStrs = this.nstrs;
    this.markChars = this.blobChars;
  }

  rollback() {
    this.pos = this.markPos;
    this.large.length = this.markLarge;
    this.largeBytes = this.markLargeBytes;
    this.strs.fill(undefined, this.markStrs, this.nstrs);
    this.nstrs = this.markStrs;
    this.blobChars = this.markChars;
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
    this.mark();
    try {
      this.record(id, flags, node, name, args, session);
    } catch (e) {
      this.rollback();
      throw e;
    }
    this.count++;
    this.args += args.length + 1;
  }

  record(id, flags, node, name, args, session) {
    this.ensure(13);
    const b = this.buf;
    b.writeUInt32LE(id, this.pos);
    b[this.pos + 4] = flags | (node ? FLAG_NODE : 0);
    this.pos += 5;
    if (session !== undefined) this.session(session);
    if (node) this.string(node);
    this.argv(name, args);
  }

  // `argc | name | args...`: one command's part of a record, in every kind of record.
  argv(name, args) {
    this.ensure(4);
    this.buf.writeUInt32LE(args.length + 1, this.pos);
    this.pos += 4;
    this.arg(name);
    for (let i = 0; i < args.length; i++) {
      const a = args[i];
      if (typeof a === 'string') this.arg(a);
      else this.bytes(a);
    }
  }

  // A string argument: into the blob when it fits there, else written into the record.
  arg(s) {
    const len = s.length;
    if (len > BLOB_MAX || this.blobChars + len > BLOB_CAP) {
      this.string(s);
      return;
    }
    this.ensure(4);
    const b = this.buf;
    const p = this.pos;
    const n = this.nstrs;
    if (n === this.lenAt.length) {
      const grown = new Uint32Array(n * 2);
      grown.set(this.lenAt);
      this.lenAt = grown;
    }
    this.lenAt[n] = p;
    this.strs[n] = s;
    this.nstrs = n + 1;
    // BLOB_BIT + len, byte by byte: the sum is not a small integer, and writeUInt32LE of it
    // measured slower. len < 2^24 (BLOB_MAX).
    b[p] = len;
    b[p + 1] = len >>> 8;
    b[p + 2] = len >>> 16;
    b[p + 3] = BLOB_BIT >>> 24;
    this.pos = p + 4;
    this.blobChars += len;
  }

  /**
   * Writes the blob after the records (at `pos`, which it leaves alone) and returns its length
   * in bytes. When every string is ASCII (the joined string encodes to as many bytes as it has
   * characters) the lengths already in the records are right; otherwise each string is written
   * again on its own and its record gets its length in bytes.
   */
  blob() {
    this.blobBytes = this.writeBlob();
    return this.blobBytes;
  }

  writeBlob() {
    const strs = this.strs;
    const count = this.nstrs;
    if (this.blobChars === 0) return 0;
    // The list may be longer than this flush's strings (a larger flush before): cut to size.
    if (strs.length > count) strs.length = count;
    const joined = count === 1 ? strs[0] : strs.join('');
    // Counted first, so an ASCII blob reserves what it needs, not three times that.
    const n = Buffer.byteLength(joined, 'utf8');
    if (n === joined.length) {
      this.ensure(n);
      this.buf.write(joined, this.pos, 'latin1');
      return n;
    }
    // At most 3 bytes per UTF-16 unit (a lone surrogate becomes U+FFFD, 3 bytes).
    this.ensure(this.blobChars * 3);
    let p = this.pos;
    for (let i = 0; i < count; i++) {
      const w = this.buf.write(strs[i], p, 'utf8');
      this.buf.writeUInt32LE(BLOB_BIT + w, this.lenAt[i]);
      p += w;
    }
    return p - this.pos;
  }

  // A transaction as one record: FLAG_TX, then the commands (see src/binding/submit.rs).
  pushTx(id, flags, commands, session) {
    this.mark();
    try {
      this.ensure(13);
      this.buf.writeUInt32LE(id, this.pos);
      this.buf[this.pos + 4] = flags | FLAG_TX;
      this.pos += 5;
      if (session !== undefined) this.session(session);
      this.buf.writeUInt32LE(commands.length, this.pos);
      this.pos += 4;
      for (const { name, args } of commands) this.argv(name, args);
    } catch (e) {
      this.rollback();
      throw e;
    }
    this.count++;
    for (const { args } of commands) this.args += args.length + 1;
  }

  // A batch as one record: FLAG_BATCH, then each command with its own flags (see
  // src/binding/submit.rs). `cmds[i]` is {name, args}; `flags[i]` its flags, or negative for a
  // command left out (it failed its check); `count` commands are written.
  pushBatch(id, cmds, flags, count) {
    let argc = 0;
    this.mark();
    try {
      this.ensure(9);
      this.buf.writeUInt32LE(id, this.pos);
      this.buf[this.pos + 4] = FLAG_BATCH;
      this.buf.writeUInt32LE(count, this.pos + 5);
      this.pos += 9;
      for (let i = 0; i < cmds.length; i++) {
        if (flags[i] < 0) continue;
        this.ensure(1);
        this.buf[this.pos++] = flags[i];
        this.argv(cmds[i].name, cmds[i].args);
        argc += cmds[i].args.length + 1;
      }
    } catch (e) {
      this.rollback();
      throw e;
    }
    this.count++;
    this.args += argc;
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

  // A string written into its record: a node address, or an argument the blob does not take
  // (longer than BLOB_MAX, or past BLOB_CAP).
  string(s) {
    // At most 3 bytes per UTF-16 unit (a lone surrogate becomes U+FFFD, 3 bytes).
    this.ensure(4 + s.length * 3);
    const n = this.buf.write(s, this.pos + 4, 'utf8');
    this.buf.writeUInt32LE(n, this.pos);
    this.pos += 4 + n;
  }

  bytes(u8) {
    if (u8.length >= LARGE) {
      this.ensure(8);
      this.buf.writeUInt32LE(LARGE_REF, this.pos);
      this.buf.writeUInt32LE(this.large.length, this.pos + 4);
      this.pos += 8;
      // The native side reads Buffers; a plain Uint8Array is viewed as one, not copied.
      this.large.push(Buffer.isBuffer(u8) ? u8 : Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength));
      this.largeBytes += u8.length;
      return;
    }
    this.ensure(4 + u8.length);
    this.buf.writeUInt32LE(u8.length, this.pos);
    this.buf.set(u8, this.pos + 4);
    this.pos += 4 + u8.length;
  }

  reset() {
    // A grown buffer is kept while batches still need a good part of it: with large values in
    // every tick, dropping it after each flush meant growing it again (fresh pages, copies) each
    // time. It goes once 64 flushes in a row used under an eighth of it, or at once when huge.
    const size = this.buf.length;
    if (size > 4 * 1024 * 1024) {
      this.idle = (this.pos + this.blobBytes) * 8 < size ? this.idle + 1 : 0;
      if (this.idle >= 64 || size > 64 * 1024 * 1024) {
        this.buf = Buffer.allocUnsafe(64 * 1024);
        this.idle = 0;
      }
    }
    this.pos = 0;
    this.count = 0;
    this.args = 0;
    this.large = [];
    this.largeBytes = 0;
    // The strings are let go (a flush's arguments must not be kept alive until the next one);
    // the lists' room is kept, but not a huge one.
    if (this.nstrs > 65536) {
      this.strs = [];
      this.lenAt = new Uint32Array(1024);
    } else this.strs.fill(undefined, 0, this.nstrs);
    this.nstrs = 0;
    this.blobChars = 0;
    this.blobBytes = 0;
  }
}

module.exports = { Encoder, FLAG_BUFFERS };
