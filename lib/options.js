// The constructor's options: redis-clustr's config checked and turned into what the native side
// takes (seeds, limits, TLS PEMs, natMap entries, the key prefix), and the config as the client
// shows it, with its secrets redacted. Each bad option gets INVALID_ARG naming the option, never
// its value.
'use strict';

const { clientError } = require('./errors');

// The config as `client.config` shows it: passwords and private keys replaced.
function redactedConfig(config) {
  const copy = Object.assign({}, config);
  if (config.redisOptions) {
    copy.redisOptions = Object.assign({}, config.redisOptions);
    for (const k of ['password', 'auth_pass']) if (k in copy.redisOptions) copy.redisOptions[k] = '[redacted]';
    const tls = copy.redisOptions.tls;
    if (tls && typeof tls === 'object') {
      // A private key is as secret as a password.
      copy.redisOptions.tls = Object.assign({}, tls);
      for (const k of ['key', 'passphrase', 'pfx']) if (k in tls) copy.redisOptions.tls[k] = '[redacted]';
    }
  }
  return copy;
}

let insecureTlsWarned = false;

// Node's `tls` options → what the native side takes: PEM as one Buffer per option (Node accepts a
// string, a Buffer or an array of them), the name to verify, and whether to verify at all.
function tlsOptions(tls) {
  if (tls === undefined || tls === null || tls === false) return undefined;
  if (tls === true) tls = {};
  if (typeof tls !== 'object') throw clientError('INVALID_ARG', 'redisOptions.tls must be an object of Node TLS options');
  for (const k of ['pfx', 'passphrase']) {
    if (tls[k] !== undefined && tls[k] !== null) {
      throw clientError('INVALID_ARG', `redisOptions.tls.${k} is not supported: give a PEM cert and an unencrypted PEM key`);
    }
  }
  const pem = (v, name) => {
    if (v === undefined || v === null) return undefined;
    const list = Array.isArray(v) ? v : [v];
    const parts = [];
    for (const item of list) {
      if (typeof item !== 'string' && !Buffer.isBuffer(item)) {
        // Names the option, never shows its value (it may be a key).
        throw clientError('INVALID_ARG', `redisOptions.tls.${name} must be a PEM string, a Buffer or an array of them`);
      }
      parts.push(Buffer.from(item), Buffer.from('\n'));
    }
    return Buffer.concat(parts);
  };
  if (tls.servername !== undefined && tls.servername !== null && typeof tls.servername !== 'string') {
    throw clientError('INVALID_ARG', 'redisOptions.tls.servername must be a string');
  }
  const rejectUnauthorized = tls.rejectUnauthorized !== false;
  if (!rejectUnauthorized && !insecureTlsWarned) {
    insecureTlsWarned = true;
    process.emitWarning(
      'redis-clustr-native: redisOptions.tls.rejectUnauthorized is false, so server certificates are not verified ' +
        '(anyone on the network path can impersonate the cluster)',
      { code: 'REDIS_CLUSTR_NATIVE_INSECURE_TLS' }
    );
  }
  return {
    ca: pem(tls.ca, 'ca'),
    cert: pem(tls.cert, 'cert'),
    key: pem(tls.key, 'key'),
    servername: tls.servername || undefined,
    rejectUnauthorized,
  };
}

// `nat`: natOptions(config.natMap), made once (its function goes to the native constructor).
function nativeOptions(config, nat) {
  const ro = config.redisOptions || {};
  const password = ro.password !== undefined ? ro.password : ro.auth_pass;
  if (password !== undefined && password !== null && typeof password !== 'string') {
    throw clientError('INVALID_ARG', 'redisOptions.password must be a string');
  }
  const num = (v, name) => {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !(v >= 0)) throw clientError('INVALID_ARG', `${name} must be a non-negative number`);
    return v;
  };
  if (config.slaves !== undefined && !['never', 'share', 'always'].includes(config.slaves)) {
    throw clientError('INVALID_ARG', "slaves must be 'never', 'share' or 'always'");
  }
  return {
    seeds: config.servers.map((s, i) => {
      if (!s || typeof s.host !== 'string' || !Number.isInteger(Number(s.port))) {
        throw clientError('INVALID_ARG', `servers[${i}] must be {host: string, port: number}`);
      }
      return { host: s.host, port: Number(s.port) };
    }),
    username: ro.user !== undefined ? String(ro.user) : ro.username !== undefined ? String(ro.username) : undefined,
    password: password || undefined,
    connectTimeout: num(ro.connect_timeout, 'redisOptions.connect_timeout'),
    slaves: config.slaves,
    slotInterval: num(config.slotInterval, 'slotInterval'),
    maxQueueLength: num(config.maxQueueLength, 'maxQueueLength'),
    queueShift: config.queueShift === undefined ? undefined : config.queueShift !== false,
    wait: num(config.wait, 'wait'),
    maxRedirections: num(config.maxRedirections, 'maxRedirections'),
    retryBudget: num(config.retryBudget, 'retryBudget'),
    commandTimeout: num(config.commandTimeout, 'commandTimeout'),
    spinMicros: num(config.spinMicros, 'spinMicros'),
    tls: tlsOptions(ro.tls),
    natMap: nat.entries,
    prefix: prefixBytes(ro.prefix),
  };
}

// redisOptions.prefix as the bytes put in front of every key (native code knows which arguments
// are keys); a string is taken as UTF-8, a Buffer as is.
function prefixBytes(prefix) {
  if (prefix === undefined || prefix === null || prefix === '') return undefined;
  if (typeof prefix === 'string') return Buffer.from(prefix);
  if (prefix instanceof Uint8Array) return prefix.length ? Buffer.from(prefix) : undefined;
  throw clientError('INVALID_ARG', 'redisOptions.prefix must be a string or a Buffer');
}

// The createClient option: a function, or absent. Anything else is a mistake worth saying.
function createClientOption(v) {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'function') {
    throw clientError('INVALID_ARG', 'createClient must be a function (port, host, options) returning a node_redis client');
  }
  return v;
}

// A limit option: a positive number, or 0/undefined for none.
function positive(v, name) {
  if (v === undefined || v === null || v === 0) return 0;
  if (typeof v !== 'number' || !(v > 0)) throw clientError('INVALID_ARG', `${name} must be a positive number`);
  return v;
}

module.exports = { redactedConfig, nativeOptions, createClientOption, positive };
