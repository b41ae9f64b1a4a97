// Shared constants and small helpers of the local-cluster harness: the loopback host, poll and
// grace intervals, the slot count, the temp-dir prefix, sleep/timeout helpers and /proc-based
// process and log inspection.
'use strict';

const fs = require('fs');

const HOST = '127.0.0.1';
const TMP_PREFIX = 'redis-clustr-native-';
const POLL_MS = 50;
const STOP_GRACE_MS = 5000;
const SLOT_COUNT = 16384;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves true when `promise` settles within `ms`, else false; leaves no timer behind. */
function settlesWithin(promise, ms) {
  let timer;
  return Promise.race([
    promise.then(() => true),
    new Promise((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Is `pid` a live (non-zombie) process? */
function pidAlive(pid) {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return e.code === 'EPERM';
  }
  try {
    // A zombie still answers kill(0); field 3 of /proc/<pid>/stat is its state.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch (_) {
    return true; // no /proc: trust kill(0)
  }
}

function pidCmdline(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch (_) {
    return null;
  }
}

function tail(file, lines = 15) {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch (_) {
    return '';
  }
}

module.exports = {
  HOST,
  TMP_PREFIX,
  POLL_MS,
  STOP_GRACE_MS,
  SLOT_COUNT,
  sleep,
  settlesWithin,
  pidAlive,
  pidCmdline,
  tail,
};
