// Captures the raw reply bytes of a real Redis 7.0 cluster for the fuzz seed corpus
// (fuzz/seeds/*.resp): RESP2 replies of every shape the client meets (status, bulk, nil, binary
// and 64 KiB values, MGET, HGETALL, nested XRANGE, errors, MOVED, CLUSTER SLOTS/SHARDS/NODES)
// and RESP3 ones after HELLO 3 (maps, sets, doubles, nulls, pushes from SUBSCRIBE/PUBLISH).
// It starts a throwaway cluster with scripts/cluster.js and stops it at the end. Run it rarely
// (the seeds are committed), under the shared lock: `flock /tmp/rcn-heavy.lock node fuzz/capture-seeds.js`.
'use strict';

const fs = require('fs');
const net = require('net');
const path = require('path');
const { startCluster } = require('../scripts/cluster');

const OUT = path.join(__dirname, 'seeds');
const END = Buffer.from('$7\r\n__end__\r\n');

function command(args) {
  const parts = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

// One connection; `send(cmds)` writes them plus ECHO __end__ and resolves with the raw bytes of
// every reply (pushes included) before the sentinel's.
function connect(port) {
  const sock = net.connect(port, '127.0.0.1');
  let buf = Buffer.alloc(0);
  let waiter = null;
  sock.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    if (waiter && buf.length >= END.length && buf.subarray(buf.length - END.length).equals(END)) {
      const got = buf.subarray(0, buf.length - END.length);
      buf = Buffer.alloc(0);
      const w = waiter;
      waiter = null;
      w(got);
    }
  });
  return {
    send(cmds) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no sentinel from ${port}`)), 5000);
        waiter = (got) => {
          clearTimeout(timer);
          resolve(got);
        };
        sock.write(Buffer.concat([...cmds.map(command), command(['ECHO', '__end__'])]));
      });
    },
    close() {
      sock.destroy();
    },
  };
}

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  const cluster = await startCluster({ masters: 3, replicas: 1 });
  const conns = [];
  try {
    const ports = cluster.seeds.map((s) => s.port);
    const open = (p) => {
      const c = connect(p);
      conns.push(c);
      return c;
    };
    // The owner of {s} answers GET without MOVED; another master's MOVED is a seed too.
    let owner = null;
    let moved = null;
    for (const p of ports) {
      const got = await open(p).send([['GET', '{s}a']]);
      if (got.toString('latin1').startsWith('-MOVED')) moved = moved || got;
      else if (!got.toString('latin1').startsWith('-')) owner = owner || p;
    }
    const save = (name, bytes) => fs.writeFileSync(path.join(OUT, `${name}.resp`), bytes);
    save('moved', moved);
    const c = open(owner);
    const one = async (name, args) => save(name, await c.send([args]));
    const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    await c.send([['SET', '{s}a', 'hello'], ['SET', '{s}bin', binary], ['SET', '{s}big', 'x'.repeat(65000)],
      ['HSET', '{s}h', 'f1', 'v1', 'f2', 'v2'], ['RPUSH', '{s}l', 'a', 'b', 'c'], ['XADD', '{s}x', '1-1', 'f', 'v', 'g', 'w'],
      ['XADD', '{s}x', '2-1', 'f', 'v2'], ['SADD', '{s}set', 'a', 'b'], ['ZADD', '{s}z', '1.5', 'm', '-2', 'n']]);
    await one('set-ok', ['SET', '{s}ok', 'v']);
    await one('get', ['GET', '{s}a']);
    await one('get-nil', ['GET', '{s}missing']);
    await one('get-binary', ['GET', '{s}bin']);
    await one('get-64k', ['GET', '{s}big']);
    await one('mget', ['MGET', '{s}a', '{s}missing', '{s}bin']);
    await one('hgetall', ['HGETALL', '{s}h']);
    await one('lrange', ['LRANGE', '{s}l', '0', '-1']);
    await one('incr', ['INCR', '{s}n']);
    await one('wrongtype', ['GET', '{s}h']);
    await one('xrange', ['XRANGE', '{s}x', '-', '+']);
    await one('zrange-withscores', ['ZRANGE', '{s}z', '0', '-1', 'WITHSCORES']);
    await one('cluster-slots', ['CLUSTER', 'SLOTS']);
    await one('cluster-shards', ['CLUSTER', 'SHARDS']);
    await one('cluster-nodes', ['CLUSTER', 'NODES']);
    await one('pipeline', ['PING']);
    save('pipeline', await c.send([['PING'], ['GET', '{s}a'], ['GET', '{s}missing'], ['MGET', '{s}a', '{s}bin'], ['INCR', '{s}n']]));

    const r3 = open(owner);
    save('resp3-hello', await r3.send([['HELLO', '3']]));
    const one3 = async (name, args) => save(name, await r3.send([args]));
    await one3('resp3-hgetall', ['HGETALL', '{s}h']);
    await one3('resp3-smembers', ['SMEMBERS', '{s}set']);
    await one3('resp3-zscore', ['ZSCORE', '{s}z', 'm']);
    await one3('resp3-zrange-withscores', ['ZRANGE', '{s}z', '0', '-1', 'WITHSCORES']);
    await one3('resp3-null', ['GET', '{s}missing']);
    await one3('resp3-xrange', ['XRANGE', '{s}x', '-', '+']);
    await one3('resp3-cluster-slots', ['CLUSTER', 'SLOTS']);
    await one3('resp3-cluster-shards', ['CLUSTER', 'SHARDS']);
    await one3('resp3-config-get', ['CONFIG', 'GET', 'maxmemory*']);
    // Pushes: the subscription confirmation, then a message published from another connection.
    let pushes = await r3.send([['SUBSCRIBE', 'ch']]);
    await c.send([['PUBLISH', 'ch', 'message-1']]);
    pushes = Buffer.concat([pushes, await r3.send([['PING']])]);
    save('resp3-pushes', pushes);
    console.log(`wrote ${fs.readdirSync(OUT).length} seeds to ${OUT}`);
  } finally {
    conns.forEach((c) => c.close());
    await cluster.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
