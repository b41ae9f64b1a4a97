// natMap: which address to dial for an address the cluster announces (clusters behind NAT, in
// Docker or Kubernetes announce addresses the client cannot reach). Given as an object
// `{"10.0.0.5:7000": {host, port}}` or a function `("host:port") => {host, port} | null`.
// The object becomes a table the native side looks up; the function is wrapped so that whatever
// it does (throw, answer nonsense) becomes a clear message for that connection, never a crash.
// Node identity stays the announced address: the slot map, MOVED and `connections` keys use it.
'use strict';

const { clientError } = require('./errors');

function target(v, where) {
  const ok = v && typeof v === 'object' && typeof v.host === 'string' && v.host !== '' && Number.isInteger(Number(v.port)) && Number(v.port) >= 1 && Number(v.port) <= 65535;
  if (!ok) throw clientError('INVALID_ARG', `${where} must be {host: string, port: 1..65535}`);
  return { host: v.host, port: Number(v.port) };
}

function splitAddress(key) {
  const i = key.lastIndexOf(':');
  const port = Number(key.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) return null;
  return { host: key.slice(0, i).replace(/^\[|\]$/g, ''), port };
}

// → { entries (for the native options), fn (for the native constructor) }.
function natOptions(natMap) {
  if (natMap === undefined || natMap === null) return { entries: undefined, fn: undefined };
  if (typeof natMap === 'function') {
    const fn = (key) => {
      let answer;
      try {
        answer = natMap(key);
      } catch (e) {
        throw new Error('the natMap function threw');
      }
      if (answer === undefined || answer === null) return null;
      return target(answer, 'the natMap function result');
    };
    return { entries: undefined, fn };
  }
  if (typeof natMap !== 'object') throw clientError('INVALID_ARG', 'natMap must be an object {"host:port": {host, port}} or a function');
  const entries = Object.keys(natMap).map((key) => {
    const from = splitAddress(key);
    if (!from) throw clientError('INVALID_ARG', 'natMap keys must be "host:port"');
    const to = target(natMap[key], 'each natMap value');
    return { fromHost: from.host, fromPort: from.port, host: to.host, port: to.port };
  });
  return { entries, fn: undefined };
}

module.exports = { natOptions };
