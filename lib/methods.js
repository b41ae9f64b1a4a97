// Preparing a prototype for the hundreds of command methods the client, its batches, sessions and
// node handles each get (one per command name, its upper-case alias, and promise twins).
'use strict';

// V8 gives a prototype with few properties a "fast" layout, in which every added property copies
// the whole descriptor array: adding ~1,000 methods one at a time left about 12 MiB of garbage
// per prototype (26 MiB in all at require time), and the heap, and so the process's RSS, stayed
// that much bigger for its whole life. Deleting a property switches the object to a dictionary,
// where adding is cheap; V8 makes the prototype fast again in one step when it is first used.
function manyMethods(proto) {
  proto.__manyMethodsA = undefined;
  proto.__manyMethodsB = undefined;
  delete proto.__manyMethodsA;
  delete proto.__manyMethodsB;
}

module.exports = { manyMethods };
