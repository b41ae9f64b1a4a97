// The commands waiting for their completion, by id: what dispatch needs to settle one (its name
// and arguments for error messages, its callback or a promise's resolve and reject, the bytes it
// holds against maxQueueBytes, and a batch's state). Kept in parallel arrays indexed by id - 1
// with a free list, not a Map of objects: with hundreds of thousands of commands a second, the
// Map entry and the object per command were a good part of what the young-generation GC had to
// copy.
// An id is reused only after its completion was taken: native code answers each id once.
'use strict';

class Pending {
  constructor() {
    this.name = [];
    this.args = [];
    this.cb = [];
    // A promise twin's reject (its resolve is in `cb`), else undefined.
    this.rej = [];
    this.bytes = [];
    this.batch = [];
    this.free = [];
    this.size = 0;
  }

  /** Registers a command; returns its id (≥ 1). */
  add(name, args, cb, bytes, batch, rej) {
    const i = this.free.length > 0 ? this.free.pop() : this.name.length;
    this.name[i] = name;
    this.args[i] = args;
    this.cb[i] = cb;
    this.bytes[i] = bytes;
    this.batch[i] = batch;
    this.rej[i] = rej;
    this.size++;
    return i + 1;
  }

  /** Whether a command waits under `id`. */
  has(id) {
    const i = id - 1;
    return i >= 0 && i < this.name.length && this.name[i] !== undefined;
  }

  /** Forgets command `id` (read its fields first) and frees the id. */
  delete(id) {
    const i = id - 1;
    this.name[i] = undefined;
    this.args[i] = undefined;
    this.cb[i] = undefined;
    this.batch[i] = undefined;
    this.rej[i] = undefined;
    this.free.push(i);
    this.size--;
  }
}

module.exports = { Pending };
