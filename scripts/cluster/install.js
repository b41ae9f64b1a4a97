// Locating (or, as root on Debian/Ubuntu, apt-installing) redis-server and redis-cli >= 7.0:
// ensureRedis(), memoised for the process.
'use strict';

const childProcess = require('child_process');
const fs = require('fs');
const path = require('path');

const INSTALL_HINT = 'sudo apt-get install -y redis-server redis-tools';

function which(cmd) {
  for (const d of (process.env.PATH || '').split(path.delimiter)) {
    if (!d) continue;
    const p = path.join(d, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch (_) {
      // not here
    }
  }
  return null;
}

let ensured = null;

/**
 * Makes sure `redis-server` and `redis-cli` (Redis >= 7.0) are on PATH. When either is missing
 * and the process runs as root, runs `apt-get update` and
 * `apt-get install -y redis-server redis-tools` with inherited stdio; when not root, throws an
 * Error whose message says to run `sudo apt-get install -y redis-server redis-tools`.
 * Synchronous; the result is memoised for the process.
 * @returns {{redisServer: string, redisCli: string, version: string}} absolute paths and version
 * @throws {Error} when Redis is missing and cannot be installed, or is older than 7.0
 */
function ensureRedis() {
  if (ensured) return ensured;
  let redisServer = which('redis-server');
  let redisCli = which('redis-cli');
  if (!redisServer || !redisCli) {
    const missing = [!redisServer && 'redis-server', !redisCli && 'redis-cli'].filter(Boolean);
    const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
    if (!isRoot || !which('apt-get')) {
      throw new Error(
        `${missing.join(' and ')} not found on PATH. Install Redis (>= 7.0) with:\n` +
          `  ${INSTALL_HINT}\n` +
          '(Debian/Ubuntu; elsewhere install Redis >= 7.0 so that redis-server and redis-cli are on PATH.)',
      );
    }
    console.error(`[cluster] ${missing.join(' and ')} missing; installing Debian's redis-server and redis-tools`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    try {
      childProcess.execFileSync('apt-get', ['update'], { stdio: 'inherit', env });
      childProcess.execFileSync('apt-get', ['install', '-y', 'redis-server', 'redis-tools'], { stdio: 'inherit', env });
    } catch (e) {
      throw new Error(`installing Redis with apt-get failed (${e.message}); install it yourself: ${INSTALL_HINT}`);
    }
    redisServer = which('redis-server');
    redisCli = which('redis-cli');
    if (!redisServer || !redisCli) {
      throw new Error(`apt-get finished but redis-server/redis-cli are still not on PATH; try: ${INSTALL_HINT}`);
    }
  }
  const out = childProcess.execFileSync(redisServer, ['--version'], { encoding: 'utf8' });
  const m = /v=(\d+)\.(\d+)\.(\d+)/.exec(out);
  const version = m ? `${m[1]}.${m[2]}.${m[3]}` : 'unknown';
  if (!m || Number(m[1]) < 7) {
    throw new Error(`redis-server ${version} found at ${redisServer}; Redis >= 7.0 is required (${INSTALL_HINT})`);
  }
  ensured = { redisServer, redisCli, version };
  return ensured;
}

module.exports = { ensureRedis };
