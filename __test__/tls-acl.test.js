// Security against real servers (RELIABILITY §7), each case on clusters of its own:
// - TLS: certificates made with the `openssl` CLI at test time (a CA, a server cert with SAN
//   `DNS:localhost, IP:127.0.0.1`, an unknown CA, a client cert). The nodes serve both a
//   plaintext port (only the harness's own probes use it) and a TLS port, with
//   `tls-cluster yes`, so CLUSTER SHARDS carries each node's `tls-port`. A client seeded on one
//   TLS port reaches every node over TLS; an unknown CA fails with code TLS; the insecure switch
//   works only when asked for and warns once; `tls-auth-clients yes` wants a client certificate.
// - ACL: a restricted user works on its keys, gets NOPERM outside them, a wrong password fails the
//   handshake, and no password ever shows up in an error, a stack or util.inspect.
'use strict';

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const util = require('node:util');
const { startCluster, sendCommand } = require('../scripts/cluster');
const { TLS_OFFSET, makeCerts, tlsArgs } = require('../scripts/cluster/tls');
const h = require('./helpers');

const HOST = '127.0.0.1';

/** Resolves with the error of a client that can get no slot map (a command issued before ready). */
function firstError(client) {
  return h.callError(client, 'get', 'never-routed');
}

/** The client connections (not the one asking, not replicas) a node sees: `[{laddr, flags}]`. */
async function clientConnections(port) {
  const list = await sendCommand(port, ['CLIENT', 'LIST']);
  return String(list)
    .split('\n')
    .filter(Boolean)
    .map((line) => Object.fromEntries(line.split(' ').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])))
    .filter((c) => c.cmd !== 'client|list' && !c.flags.includes('S') && !c.flags.includes('M'));
}

/** One key per master (by the cluster's own slot ranges) with the given prefix. */
async function keyPerMaster(masters, prefix) {
  const keys = [];
  for (const m of masters) {
    for (let i = 0; ; i++) {
      const k = `${prefix}${i}`;
      const slot = h.RedisClustr.keySlot(k);
      if (m.slots.some(([a, b]) => slot >= a && slot <= b)) {
        keys.push(k);
        break;
      }
    }
  }
  return keys;
}

describe('TLS cluster (tls-auth-clients optional)', () => {
  let certs;
  let c;
  before(async () => {
    certs = makeCerts();
    c = await startCluster({ masters: 3, replicas: 1, extraArgs: tlsArgs(certs, 'optional'), portOffsets: [10000, TLS_OFFSET] });
  });
  after(async () => {
    if (c) await c.stop();
    if (certs) certs.remove();
  });

  test('a client seeded on one TLS port reaches every node over TLS, pub/sub included', async () => {
    const seed = c.seeds[0];
    const tlsSeed = { host: HOST, port: seed.port + TLS_OFFSET };
    const client = await h.connect([tlsSeed], { redisOptions: { tls: { ca: certs.ca } } });
    try {
      const masters = await c.masters();
      const keys = await keyPerMaster(masters, `tls:${process.pid}:`);
      for (const k of keys) {
        assert.equal(await h.call(client, 'set', k, `v-${k}`), 'OK');
        assert.equal(await h.call(client, 'get', k), `v-${k}`);
      }
      // The map itself names the TLS ports: nodes other than the seed were discovered there.
      const tlsPorts = new Set(c.nodes.map((n) => n.port + TLS_OFFSET));
      const mapped = Object.keys(client.connections);
      assert.ok(mapped.length >= 3, `connections: ${mapped}`);
      for (const addr of mapped) assert.ok(tlsPorts.has(Number(addr.split(':')[1])), `${addr} is not a TLS port`);
      // The subscriber connection goes over TLS too.
      const rec = h.recordPubsub(client);
      const channel = `tls-chan:${process.pid}`;
      await h.call(client, 'subscribe', channel);
      await h.call(client, 'publish', channel, 'over-tls');
      await rec.waitFor('message', (ch, msg) => h.str(ch) === channel && h.str(msg) === 'over-tls');
      // Every connection the servers see from anyone but the harness is on a TLS port.
      let ours = 0;
      for (const m of masters) {
        for (const conn of await clientConnections(m.port)) {
          const port = Number(conn.laddr.split(':').pop());
          assert.equal(port, m.port + TLS_OFFSET, `a connection on ${m.port} is not on its TLS port: ${conn.laddr}`);
          ours++;
        }
      }
      assert.ok(ours >= masters.length, `expected our TLS connections on every master, saw ${ours}`);
      assert.deepEqual(rec.errors, []);
    } finally {
      await h.quit(client);
    }
  });

  test('an unknown CA fails with code TLS, clearly and without a crash', async () => {
    const servers = [{ host: HOST, port: c.seeds[0].port + TLS_OFFSET }];
    const client = new h.RedisClustr({ servers, redisOptions: { tls: { ca: certs.otherCa } } });
    const connectionErrors = [];
    client.on('connectionError', (e) => connectionErrors.push(e));
    client.on('error', () => {});
    try {
      const err = await firstError(client);
      assert.equal(err.code, 'NO_SLOT_MAP');
      assert.ok(err.errors && err.errors.length >= 1, 'each seed says what failed');
      for (const e of err.errors) {
        assert.equal(e.code, 'TLS', e.message);
        assert.match(e.message, /certificate/i);
        assert.match(e.message, /UnknownIssuer/);
        assert.match(e.message, /redisOptions\.tls\.ca/, 'says what to check');
      }
    } finally {
      await h.quit(client);
    }
  });

  test('rejectUnauthorized: false accepts the unknown CA and warns once', async () => {
    const warnings = [];
    const onWarning = (w) => {
      if (w.code === 'REDIS_CLUSTR_NATIVE_INSECURE_TLS') warnings.push(w);
    };
    process.on('warning', onWarning);
    const servers = [{ host: HOST, port: c.seeds[1].port + TLS_OFFSET }];
    const tls = { ca: certs.otherCa, rejectUnauthorized: false };
    const a = await h.connect(servers, { redisOptions: { tls } });
    const b = await h.connect(servers, { redisOptions: { tls } });
    try {
      const masters = await c.masters();
      for (const k of await keyPerMaster(masters, `insecure:${process.pid}:`)) {
        assert.equal(await h.call(a, 'set', k, 'x'), 'OK');
        assert.equal(await h.call(b, 'get', k), 'x');
      }
      await new Promise((r) => setImmediate(r));
      assert.equal(warnings.length, 1, 'one warning per process, not per client');
    } finally {
      process.off('warning', onWarning);
      await h.quit(a);
      await h.quit(b);
    }
  });

  test('bad TLS options are refused at construction, naming the option and not its content', () => {
    const servers = [{ host: HOST, port: 1 }];
    const secret = '-----BEGIN PRIVATE KEY-----\nS3cr3t-MARKER\n-----END PRIVATE KEY-----\n';
    for (const tls of [
      { ca: 'not a certificate' },
      { cert: certs.clientCert },
      { cert: certs.clientCert, key: secret },
      { key: { secret } },
      { passphrase: 'S3cr3t-MARKER' },
      { servername: 42 },
    ]) {
      assert.throws(
        () => new h.RedisClustr({ servers, redisOptions: { tls } }),
        (e) => e.code === 'INVALID_ARG' && /redisOptions\.tls/.test(e.message) && !/S3cr3t/.test(util.inspect(e))
      );
    }
  });
});

describe('TLS cluster (tls-auth-clients yes)', () => {
  let certs;
  let c;
  before(async () => {
    certs = makeCerts();
    c = await startCluster({ masters: 3, replicas: 0, extraArgs: tlsArgs(certs, 'yes'), portOffsets: [10000, TLS_OFFSET] });
  });
  after(async () => {
    if (c) await c.stop();
    if (certs) certs.remove();
  });

  test('a client without a certificate is rejected; one with cert/key works', async () => {
    const servers = [{ host: HOST, port: c.seeds[0].port + TLS_OFFSET }];
    const anonymous = new h.RedisClustr({ servers, redisOptions: { tls: { ca: certs.ca } } });
    anonymous.on('error', () => {});
    try {
      const err = await firstError(anonymous);
      assert.equal(err.code, 'NO_SLOT_MAP');
      for (const e of err.errors) {
        assert.equal(e.code, 'TLS', e.message);
        assert.match(e.message, /client certificate/);
      }
    } finally {
      await h.quit(anonymous);
    }

    const tls = { ca: [Buffer.from(certs.ca)], cert: certs.clientCert, key: Buffer.from(certs.clientKey) };
    const client = await h.connect(servers, { redisOptions: { tls } });
    try {
      for (const k of await keyPerMaster(await c.masters(), `mtls:${process.pid}:`)) {
        assert.equal(await h.call(client, 'set', k, 'y'), 'OK');
        assert.equal(await h.call(client, 'get', k), 'y');
      }
      // The private key is a secret like a password: never shown.
      const keyBody = certs.clientKey.split('\n')[1];
      assert.ok(!util.inspect(client, { depth: 10 }).includes(keyBody));
      assert.ok(!JSON.stringify(client.config).includes(keyBody));
      assert.equal(client.config.redisOptions.tls.key, '[redacted]');
    } finally {
      await h.quit(client);
    }
  });
});

describe('ACL', () => {
  const MARKER = 'S3cr3t-MARKER-⚡';
  let c;
  before(async () => {
    c = await startCluster({ masters: 3, replicas: 0 });
    // Two passwords: the brief's `pw`, and a marker that is easy to search for in outputs.
    const rule = ['ACL', 'SETUSER', 'app', 'on', '>pw', `>${MARKER}`, '~app:*', '+@all', '-@dangerous'];
    for (const n of c.nodes) assert.equal(await sendCommand(n.port, rule), 'OK');
  });
  after(async () => {
    if (c) await c.stop();
  });

  /** Throws if the marker shows anywhere a user could print. */
  function assertNoSecret(...things) {
    for (const t of things) {
      for (const text of [util.inspect(t, { depth: 10, showHidden: true }), t && t.stack, t && t.message, safeJson(t)]) {
        if (typeof text === 'string') assert.ok(!text.includes(MARKER) && !text.includes('Wr0ng'), `secret leaked in: ${text}`);
      }
      if (t && Array.isArray(t.errors)) assertNoSecret(...t.errors);
    }
  }

  function safeJson(x) {
    try {
      return JSON.stringify(x);
    } catch {
      return undefined;
    }
  }

  test('user app works on app:* keys on every master and gets NOPERM elsewhere', async () => {
    const client = await h.connect(c.seeds, { redisOptions: { user: 'app', password: 'pw' } });
    try {
      const masters = await c.masters();
      for (const k of await keyPerMaster(masters, `app:${process.pid}:`)) {
        assert.equal(await h.call(client, 'set', k, 'ok'), 'OK');
        assert.equal(await h.call(client, 'get', k), 'ok');
        assert.equal(await h.call(client, 'del', k), 1);
      }
      const err = await h.callError(client, 'set', `other:${process.pid}`, 'no');
      assert.equal(err.code, 'NOPERM');
      // Nothing was written under the forbidden key (the refusal is not retried into a success).
      assert.equal(await h.call(client, 'ping'), 'PONG');
    } finally {
      await h.quit(client);
    }
  });

  test('the username option and a marker password: NOPERM without leaking the password', async () => {
    const client = await h.connect(c.seeds, { redisOptions: { username: 'app', password: MARKER } });
    try {
      const err = await h.callError(client, 'get', `elsewhere:${process.pid}`);
      assert.equal(err.code, 'NOPERM');
      assertNoSecret(err, client, client.config);
    } finally {
      await h.quit(client);
    }
  });

  test('a wrong password fails the handshake on every seed and never shows up anywhere', async () => {
    const wrong = `Wr0ng-${MARKER}`;
    const client = new h.RedisClustr({ servers: c.seeds, redisOptions: { user: 'app', password: wrong } });
    const seen = [];
    client.on('error', (e) => seen.push(e));
    client.on('connectionError', (e) => seen.push(e));
    try {
      const err = await firstError(client);
      assert.equal(err.code, 'NO_SLOT_MAP');
      assert.ok(err.errors.length >= 1);
      for (const e of err.errors) {
        assert.equal(e.code, 'HANDSHAKE_FAILED', e.message);
        assert.match(e.message, /WRONGPASS/);
      }
      assertNoSecret(err, client, client.config, ...seen);
    } finally {
      await h.quit(client);
    }
    // A password of the wrong type is refused without echoing it.
    assert.throws(
      () => new h.RedisClustr({ servers: c.seeds, redisOptions: { password: { MARKER } } }),
      (e) => e.code === 'INVALID_ARG' && !util.inspect(e).includes(MARKER)
    );
  });
});
