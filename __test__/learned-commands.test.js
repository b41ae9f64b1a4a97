// Commands the built-in table lacks (a module's) are learned from the server's COMMAND LIST /
// COMMAND INFO after the first slot map, and then route by their key from the first try. A
// real 7.0 server without modules cannot show this, so two scripted nodes split the slots and
// both offer a module-like `json.get`: before learning, a keyless guess would reach the wrong node
// about half the time (MOVED); once learned, every call goes straight to the key's owner.
'use strict';

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('net');
const h = require('./helpers');

// Reads the multibulk requests a client sends (that is all it ever sends).
function requests(buf) {
  const out = [];
  let pos = 0;
  for (;;) {
    const start = pos;
    if (buf[pos] !== 0x2a) break;
    let eol = buf.indexOf('\r\n', pos);
    if (eol < 0) break;
    const n = Number(buf.toString('latin1', pos + 1, eol));
    pos = eol + 2;
    const args = [];
    for (let i = 0; i < n; i++) {
      eol = buf.indexOf('\r\n', pos);
      if (eol < 0) return { out, rest: buf.subarray(start) };
      const len = Number(buf.toString('latin1', pos + 1, eol));
      if (buf.length < eol + 2 + len + 2) return { out, rest: buf.subarray(start) };
      args.push(buf.toString('utf8', eol + 2, eol + 2 + len));
      pos = eol + 2 + len + 2;
    }
    out.push(args);
  }
  return { out, rest: buf.subarray(pos) };
}

const bulk = (s) => `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
const arr = (items) => `*${items.length}\r\n${items.join('')}`;

function fakeNode(name, nodes) {
  const seen = [];
  const server = net.createServer((sock) => {
    let buf = Buffer.alloc(0);
    sock.on('error', () => {});
    sock.on('data', (d) => {
      const { out, rest } = requests(Buffer.concat([buf, d]));
      buf = rest;
      for (const args of out) {
        const cmd = args.map((a, i) => (i < 2 ? a.toLowerCase() : a));
        seen.push(cmd);
        sock.write(answer(cmd));
      }
    });
  });
  const answer = (cmd) => {
    const [c0, c1] = cmd;
    if (c0 === 'ping') return '+PONG\r\n';
    if (c0 === 'cluster' && c1 === 'slots') {
      return arr(nodes.map((n) => arr([`:${n.from}\r\n`, `:${n.to}\r\n`, arr([bulk('127.0.0.1'), `:${n.port}\r\n`, bulk(n.name)])])));
    }
    if (c0 === 'cluster') return '-ERR unknown subcommand\r\n';
    if (c0 === 'command' && c1 === 'list') return arr(['get', 'json.get'].map(bulk));
    if (c0 === 'command' && c1 === 'info') {
      return arr([arr([bulk('json.get'), ':-2\r\n', arr(['+readonly\r\n', '+module\r\n']), ':1\r\n', ':1\r\n', ':1\r\n', arr([]), arr([])])]);
    }
    if (c0 === 'json.get') {
      const slot = h.RedisClustr.keySlot(cmd[1]);
      const owner = nodes.find((n) => slot >= n.from && slot <= n.to);
      return owner.name === name ? bulk(`${name}:${cmd[1]}`) : `-MOVED ${slot} 127.0.0.1:${owner.port}\r\n`;
    }
    return '-ERR unknown command\r\n';
  };
  return { server, seen };
}

const servers = [];
after(() => {
  for (const s of servers) s.close();
});

test('a command only the server knows is learned and routed by its key', async () => {
  const nodes = [
    { name: 'a', from: 0, to: 8191 },
    { name: 'b', from: 8192, to: 16383 },
  ];
  const fakes = nodes.map((n) => fakeNode(n.name, nodes));
  for (const [i, f] of fakes.entries()) {
    servers.push(f.server);
    await new Promise((resolve) => f.server.listen(0, '127.0.0.1', resolve));
    nodes[i].port = f.server.address().port;
  }
  const client = await h.connect([{ host: '127.0.0.1', port: nodes[0].port }]);
  try {
    const infoServed = () => fakes.some((f) => f.seen.some((c) => c[0] === 'command' && c[1] === 'info'));
    await h.until(infoServed, { what: 'COMMAND INFO asked' });
    // The reply is learned on the io thread; a round trip through it settles that.
    await h.call(client, 'ping');
    const keys = Array.from({ length: 40 }, (_, i) => `doc:${i}`).filter((k) => h.RedisClustr.keySlot(k) >= 8192);
    const replies = await Promise.all(keys.map((k) => h.call(client, 'send_command', 'json.get', [k])));
    assert.deepEqual(replies, keys.map((k) => `b:${k}`));
    const toA = fakes[0].seen.filter((c) => c[0] === 'json.get').length;
    assert.equal(toA, 0, 'no json.get went to the node that does not own the key');
    assert.equal(client.stats().moved, 0);
  } finally {
    await h.quit(client);
  }
});
