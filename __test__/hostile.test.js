// Hostile server, end to end through the JS surface (RELIABILITY.md §4; the Rust suites in
// crates/io/tests cover every case in depth). A net.createServer poses as a one-node cluster that
// owns all 16384 slots: it answers the client's handshake (PING, AUTH, READONLY) and discovery
// (CLUSTER SHARDS → unknown subcommand, as before 7.0, so the client falls back to CLUSTER SLOTS)
// like a real server, then answers `SET trigger` with malformed bytes. For each case: the command
// fails with code PROTOCOL quickly, the client closes that socket, the next command succeeds on a
// fresh connection, Array.prototype and Object.prototype are untouched, and nothing is unhandled.
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('net');
const h = require('./helpers');

// RELIABILITY asks for 1 s; a debug build on a loaded 2-core box gets slack.
const SETTLE_MS = 3000;

const unhandled = [];
const onUnhandled = (e) => unhandled.push(e);
const protoNames = () => [Object.getOwnPropertyNames(Array.prototype).sort(), Object.getOwnPropertyNames(Object.prototype).sort()];
let protoBefore;

before(() => {
  process.on('unhandledRejection', onUnhandled);
  process.on('uncaughtException', onUnhandled);
  protoBefore = protoNames();
});

after(() => {
  process.off('unhandledRejection', onUnhandled);
  process.off('uncaughtException', onUnhandled);
});

/** Splits complete RESP arrays of bulk strings (what a client sends) off the front of `st.buf`. */
function takeCommands(st) {
  const out = [];
  for (;;) {
    let pos = 0;
    const line = () => {
      const end = st.buf.indexOf('\r\n', pos);
      if (end < 0) return null;
      const text = st.buf.toString('latin1', pos + 1, end);
      pos = end + 2;
      return text;
    };
    if (st.buf.length === 0 || st.buf[0] !== 0x2a) return out;
    const n = line();
    if (n === null) return out;
    const args = [];
    for (let i = 0; i < Number(n); i++) {
      const len = line();
      if (len === null || st.buf.length < pos + Number(len) + 2) return out;
      args.push(st.buf.subarray(pos, pos + Number(len)).toString('latin1'));
      pos += Number(len) + 2;
    }
    st.buf = st.buf.subarray(pos);
    out.push(args);
  }
}

/** The fake node. `script` holds the bytes for the next `SET trigger`s, in order. */
async function fakeNode() {
  const node = { script: [], served: [], closedByClient: new Set(), sockets: [] };
  const server = net.createServer((sock) => {
    const conn = node.sockets.push(sock) - 1;
    const st = { buf: Buffer.alloc(0) };
    sock.on('data', (d) => {
      st.buf = Buffer.concat([st.buf, d]);
      for (const args of takeCommands(st)) sock.write(node.respond(conn, args));
    });
    sock.on('end', () => node.closedByClient.add(conn));
    sock.on('close', () => node.closedByClient.add(conn));
    sock.on('error', () => node.closedByClient.add(conn));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  node.port = server.address().port;
  node.respond = (conn, args) => {
    const [cmd, sub] = [args[0].toUpperCase(), (args[1] || '').toUpperCase()];
    if (cmd === 'PING') return '+PONG\r\n';
    if (cmd === 'AUTH' || cmd === 'READONLY') return '+OK\r\n';
    if (cmd === 'CLUSTER' && sub === 'SHARDS') return "-ERR unknown subcommand 'SHARDS'. Try CLUSTER HELP.\r\n";
    if (cmd === 'CLUSTER' && sub === 'SLOTS') {
      const id = '0123456789abcdef0123456789abcdef01234567';
      return `*1\r\n*3\r\n:0\r\n:16383\r\n*3\r\n$9\r\n127.0.0.1\r\n:${node.port}\r\n$40\r\n${id}\r\n`;
    }
    node.served.push({ conn, args });
    if (args[1] === 'trigger' && node.script.length) return node.script.shift();
    return cmd === 'GET' ? '$5\r\nvalue\r\n' : '+OK\r\n';
  };
  node.lastConn = (key) => node.served.filter((s) => s.args[1] === key).map((s) => s.conn).pop();
  node.close = () => {
    node.sockets.forEach((s) => s.destroy());
    return new Promise((resolve) => server.close(resolve));
  };
  return node;
}

const CASES = [
  ['unknown type byte', Buffer.from('&x\r\n')],
  ['NUL type byte', Buffer.from([0, 0x0d, 0x0a])],
  ['RESP3 map when RESP2 was negotiated', Buffer.from('%4611686018427387904\r\n')],
  ['bulk length -2', Buffer.from('$-2\r\n')],
  ['length with a plus', Buffer.from('$+3\r\nabc\r\n')],
  ['integer overflow', Buffer.from(':99999999999999999999\r\n')],
  ['bulk above the limit', Buffer.from('$1073741824\r\n')],
  ['array count 2^32', Buffer.from('*4294967296\r\n')],
  ['nesting 100,000 deep', Buffer.from('*1\r\n'.repeat(100000))],
  ['CR without LF', Buffer.from('+OK\rX')],
  ['bulk without its CRLF', Buffer.from('$2\r\nabXY')],
  ['1 MiB error line', Buffer.concat([Buffer.from('-ERR '), Buffer.alloc(1 << 20, 'x'), Buffer.from('\r\n')])],
];

for (const [name, bytes] of CASES) {
  test(`${name}: PROTOCOL, socket closed, the next command succeeds on a fresh connection`, async () => {
    const node = await fakeNode();
    const client = await h.connect([{ host: '127.0.0.1', port: node.port }]);
    try {
      node.script.push(bytes);
      const started = Date.now();
      const err = await h.within(h.callError(client, 'set', 'trigger', 'v'), SETTLE_MS, `${name}: the SET to settle`);
      assert.equal(err.code, 'PROTOCOL', `${name}: ${err.message}`);
      assert.ok(Date.now() - started < SETTLE_MS);
      assert.match(err.message, /could not be parsed/);
      assert.match(err.message, /may or may not have been applied/, 'a write: outcome unknown');
      assert.ok(err.message.length < 400 && !err.message.includes('xxxx'), `reply bytes quoted: ${err.message.slice(0, 200)}`);
      const broken = node.lastConn('trigger');
      await h.until(() => node.closedByClient.has(broken), { timeout: SETTLE_MS, what: 'the client to close the socket' });
      assert.equal(await h.call(client, 'set', 'after', 'v'), 'OK');
      assert.ok(node.lastConn('after') > broken, 'the next command went over a fresh connection');
      assert.equal(await h.call(client, 'get', 'after'), 'value');
    } finally {
      await h.quit(client);
      await node.close();
    }
    assert.deepEqual(protoNames(), protoBefore, 'Array.prototype / Object.prototype changed');
    assert.deepEqual(unhandled, [], 'unhandled rejections or exceptions');
  });
}

test('a reply nobody asked for closes the connection and the next command still succeeds', async () => {
  const node = await fakeNode();
  const client = await h.connect([{ host: '127.0.0.1', port: node.port }]);
  try {
    // After discovery the command connection is idle: anything it sends now is unsolicited.
    const idle = node.sockets.length - 1;
    node.sockets[idle].write('+SURPRISE\r\n');
    await h.until(() => node.closedByClient.has(idle), { timeout: SETTLE_MS, what: 'the client to close the socket' });
    assert.equal(await h.call(client, 'set', 'after', 'v'), 'OK');
    assert.ok(node.lastConn('after') > idle);
  } finally {
    await h.quit(client);
    await node.close();
  }
  assert.deepEqual(unhandled, []);
});
