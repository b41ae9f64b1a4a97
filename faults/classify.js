// Classifies the outcome of one operation the way RELIABILITY.md §1 does: `ok` (acknowledged),
// `fail` (definitely not applied) or `info` (outcome unknown). The checker relies on this split:
// an effect found for a `fail` op is a classification bug (noack), an effect of an `info` op is
// allowed. The lists follow the README's error table (SPEC §3).
'use strict';

// Client codes that guarantee the command was not applied: refused before sending (INVALID_ARG,
// NO_KEY, CLOSED, QUEUE_FULL, NO_SLOT_MAP, NOT_A_CLUSTER), never reached a node that could apply
// it (ECONNREFUSED, HANDSHAKE_FAILED, TLS), or the last node that saw it refused it
// (MAX_REDIRECTIONS: the last hop answered MOVED/ASK; CLUSTERDOWN: the retry budget ran out on
// CLUSTERDOWN/TRYAGAIN-style answers).
const DEFINITE_CLIENT = new Set([
  'INVALID_ARG',
  'NO_KEY',
  'CLOSED',
  'QUEUE_FULL',
  'NO_SLOT_MAP',
  'NOT_A_CLUSTER',
  'ECONNREFUSED',
  'HANDSHAKE_FAILED',
  'TLS',
  'MAX_REDIRECTIONS',
  'CLUSTERDOWN',
]);

// Client codes whose command may or may not have run: the deadline passed (TIMEOUT), the
// connection dropped after the write (CONNECTION_LOST), the reply stream broke (PROTOCOL).
const UNKNOWN_CLIENT = new Set(['TIMEOUT', 'CONNECTION_LOST', 'PROTOCOL']);

/**
 * @param {Error|null} err the error a command's callback received, or null
 * @returns {'ok'|'fail'|'info'}
 */
function classify(err) {
  if (!err) return 'ok';
  const code = err.code;
  if (UNKNOWN_CLIENT.has(code)) return 'info';
  if (DEFINITE_CLIENT.has(code)) return 'fail';
  // A server error reply (its code is the reply's first word, e.g. MOVED, TRYAGAIN, LOADING,
  // EXECABORT, READONLY, WRONGTYPE): the server refused the command, so it did not run.
  if (typeof code === 'string' && /^[A-Z][A-Z_]*$/.test(code) && typeof err.message === 'string') return 'fail';
  // Anything else is unexplained: treat the outcome as unknown rather than assume.
  return 'info';
}

module.exports = { classify, DEFINITE_CLIENT, UNKNOWN_CLIENT };
