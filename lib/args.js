// node_redis v2/v3 argument shapes → a flat argument list and an optional callback, and the type
// check every argument passes before anything is queued. Error messages name the position and
// the type of a bad argument, never its value (it may be a secret).
'use strict';

const { clientError } = require('./errors');

// Whether a flat argument list ends in node_redis's callback slot: a function, or undefined.
function endsWithCallback(a) {
  const n = a.length;
  return n !== 0 && (typeof a[n - 1] === 'function' || a[n - 1] === undefined);
}

// Whether an argument list is already flat: the node_redis array forms ([a, b] or key, [b, c])
// need flattening first. A hostile value that throws when inspected (a revoked Proxy) counts as
// not flat, so it takes normalize(), which reports it.
function flat(args) {
  try {
    return !Array.isArray(args[0]) && !Array.isArray(args[1]);
  } catch (e) {
    return false;
  }
}

// (a, b, c, cb) | ([a, b, c], cb) | (key, [b, c], cb); a trailing undefined is the callback slot,
// exactly as node_redis treats it.
function normalize(argsLike) {
  const len = argsLike.length;
  let arr;
  let cb;
  if (Array.isArray(argsLike[0])) {
    arr = argsLike[0].slice();
    cb = argsLike[1];
  } else if (Array.isArray(argsLike[1])) {
    if (len === 3) cb = argsLike[2];
    arr = [argsLike[0]].concat(argsLike[1]);
  } else {
    let n = len;
    if (endsWithCallback(argsLike)) {
      n--;
      cb = argsLike[n];
    }
    arr = new Array(n);
    for (let i = 0; i < n; i++) arr[i] = argsLike[i];
  }
  return { args: arr, cb: typeof cb === 'function' ? cb : undefined };
}

// hmset/hset(key, {field: value}, cb) → key, field, value, ...
function normalizeHash(argsLike) {
  const obj = argsLike[1];
  if (
    argsLike.length >= 2 &&
    obj !== null &&
    typeof obj === 'object' &&
    !Array.isArray(obj) &&
    !Buffer.isBuffer(obj) &&
    (argsLike.length === 2 || (argsLike.length === 3 && (typeof argsLike[2] === 'function' || argsLike[2] === undefined)))
  ) {
    const arr = [argsLike[0]];
    for (const field of Object.keys(obj)) arr.push(field, obj[field]);
    return { args: arr, cb: typeof argsLike[2] === 'function' ? argsLike[2] : undefined };
  }
  return normalize(argsLike);
}

function describe(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a nested array';
  return typeof v === 'object' || typeof v === 'function' ? `a value of type ${typeof v}` : typeof v;
}

// Converts args in place to strings/Buffers; returns an Error for the first bad one, or null.
// `hasBuffer` is reported so detect_buffers can pick the reply type.
function check(name, args) {
  let hasBuffer = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const t = typeof a;
    if (t === 'string') continue;
    if (t === 'number') {
      if (!Number.isFinite(a)) return invalid(name, args, i, `a non-finite number`);
      args[i] = String(a);
    } else if (t === 'bigint') {
      args[i] = String(a);
    } else if (a instanceof Uint8Array) {
      hasBuffer = true;
      // Not copied: the encoder takes its snapshot within the call (lib/encoder.js), so a Buffer
      // the caller mutates afterwards does not change what is sent. A copy here cost a third
      // pass over a big value on the JS thread. A plain Uint8Array is viewed as a Buffer.
      if (!Buffer.isBuffer(a)) args[i] = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
    } else {
      return invalid(name, args, i, describe(a));
    }
  }
  return hasBuffer;
}

function invalid(name, args, i, what) {
  return clientError(
    'INVALID_ARG',
    `invalid argument ${i + 1} for ${name.toUpperCase()}: ${what} is not a string, number or Buffer; nothing was sent`,
    name,
    args.map((a) => (typeof a === 'string' || Buffer.isBuffer(a) ? a : `<${describe(a)}>`))
  );
}

module.exports = { normalize, normalizeHash, check, flat, endsWithCallback };
