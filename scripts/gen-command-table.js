#!/usr/bin/env node
// Regenerates crates/engine/src/command_table.rs from a live Redis server's COMMAND reply.
//
// Starts a throwaway `redis-server` (no persistence) on a random free port in a temp dir, sends
// COMMAND over a raw socket, parses the RESP2 reply with the tiny reader below, and writes the
// built-in command table the engine falls back to, then lib/commands.d.ts from it (see
// scripts/gen-command-types.js). Node 20, no npm dependencies.
//
// Usage: node scripts/gen-command-table.js [path-to-redis-server]
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const OUT = path.join(__dirname, '..', 'crates', 'engine', 'src', 'command_table.rs');
const REDIS_SERVER = process.argv[2] || 'redis-server';

// COMMAND flag -> the const of crates/engine/src/command.rs. An unknown flag stops the script:
// it has to be given a bit in command.rs first, so the table never silently loses information.
const FLAGS = {
  write: 'WRITE',
  readonly: 'READONLY',
  denyoom: 'DENYOOM',
  module: 'MODULE',
  admin: 'ADMIN',
  pubsub: 'PUBSUB',
  noscript: 'NOSCRIPT',
  blocking: 'BLOCKING',
  loading: 'LOADING',
  stale: 'STALE',
  skip_monitor: 'SKIP_MONITOR',
  skip_slowlog: 'SKIP_SLOWLOG',
  asking: 'ASKING',
  fast: 'FAST',
  no_auth: 'NO_AUTH',
  may_replicate: 'MAY_REPLICATE',
  no_mandatory_keys: 'NO_MANDATORY_KEYS',
  no_async_loading: 'NO_ASYNC_LOADING',
  no_multi: 'NO_MULTI',
  allow_busy: 'ALLOW_BUSY',
  movablekeys: 'MOVABLE_KEYS',
};

const REQUEST_POLICIES = {
  all_nodes: 'AllNodes',
  all_shards: 'AllShards',
  multi_shard: 'MultiShard',
  special: 'Special',
};

const RESPONSE_POLICIES = {
  one_succeeded: 'OneSucceeded',
  all_succeeded: 'AllSucceeded',
  agg_logical_and: 'AggLogicalAnd',
  agg_logical_or: 'AggLogicalOr',
  agg_min: 'AggMin',
  agg_max: 'AggMax',
  agg_sum: 'AggSum',
  special: 'Special',
};

// ---- a tiny RESP2 reader -------------------------------------------------------------------

class Incomplete extends Error {}

// Parses one reply at `pos`; returns [value, nextPos] or throws Incomplete.
function parse(buf, pos) {
  const eol = buf.indexOf('\r\n', pos);
  if (eol < 0) throw new Incomplete();
  const type = String.fromCharCode(buf[pos]);
  const line = buf.toString('utf8', pos + 1, eol);
  const next = eol + 2;
  switch (type) {
    case '+':
      return [line, next];
    case '-':
      return [new Error(line), next];
    case ':':
      return [Number(line), next];
    case '$': {
      const len = Number(line);
      if (len < 0) return [null, next];
      if (buf.length < next + len + 2) throw new Incomplete();
      return [buf.toString('utf8', next, next + len), next + len + 2];
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return [null, next];
      const items = [];
      let p = next;
      for (let i = 0; i < n; i++) {
        const [v, q] = parse(buf, p);
        items.push(v);
        p = q;
      }
      return [items, p];
    }
    default:
      throw new Error(`unexpected RESP type byte ${JSON.stringify(type)} at ${pos}`);
  }
}

function encode(args) {
  let s = `*${args.length}\r\n`;
  for (const a of args) s += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
  return s;
}

function request(port, args) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    sock.on('connect', () => sock.write(encode(args)));
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      try {
        const [value] = parse(buf, 0);
        sock.end();
        if (value instanceof Error) reject(value);
        else resolve(value);
      } catch (e) {
        if (!(e instanceof Incomplete)) {
          sock.destroy();
          reject(e);
        }
      }
    });
    sock.on('error', reject);
    sock.on('close', () => reject(new Error('connection closed before a full reply')));
  });
}

// ---- the throwaway server ------------------------------------------------------------------

function portIsFree(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

async function freePort() {
  for (let i = 0; i < 100; i++) {
    const port = 20000 + Math.floor(Math.random() * 25000);
    if (await portIsFree(port)) return port;
  }
  throw new Error('no free port found in 20000-44999');
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitForServer(port, child) {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with code ${child.exitCode}`);
    try {
      if ((await request(port, ['PING'])) === 'PONG') return;
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  throw new Error('redis-server did not answer PING within 5s');
}

// ---- COMMAND reply -> specs ----------------------------------------------------------------

// One COMMAND entry (7.0 layout): [name, arity, flags, first, last, step, acl categories,
// tips, key specs, subcommands].
function toSpec(entry, container) {
  const [rawName, arity, flags, first, last, step, , tips, , subs] = entry;
  let name = rawName.toLowerCase();
  if (container) {
    const prefix = `${container}|`;
    if (!name.startsWith(prefix)) throw new Error(`subcommand ${name} is not under ${container}`);
    name = name.slice(prefix.length);
  }
  const flagNames = (flags || []).map((f) => {
    const c = FLAGS[f.toLowerCase()];
    if (!c) throw new Error(`unknown COMMAND flag ${f} on ${rawName}: add it to command.rs and FLAGS`);
    return c;
  });
  let request = 'Default';
  let response = 'Default';
  for (const tip of tips || []) {
    const [k, v] = tip.toLowerCase().split(':');
    if (k === 'request_policy') {
      request = REQUEST_POLICIES[v];
      if (!request) throw new Error(`unknown request_policy ${v} on ${rawName}`);
    } else if (k === 'response_policy') {
      response = RESPONSE_POLICIES[v];
      if (!response) throw new Error(`unknown response_policy ${v} on ${rawName}`);
    }
  }
  const subcommands = (subs || []).map((s) => toSpec(s, name));
  subcommands.sort(byName);
  return { name, arity, first, last, step, flagNames, request, response, subcommands };
}

function byName(a, b) {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function line(s) {
  const flags = s.flagNames.length ? s.flagNames.join(' | ') : '0';
  const head = `c!(${JSON.stringify(s.name)}, ${s.arity}, ${s.first}, ${s.last}, ${s.step}, ${flags}, ${s.request}, ${s.response}`;
  if (!s.subcommands.length) return `    ${head}, []),`;
  const subs = s.subcommands.map((sub) => `    ${line(sub)}`).join('\n');
  return `    ${head}, [\n${subs}\n    ]),`;
}

function render(specs, version) {
  return `//! Generated by scripts/gen-command-table.js from Redis 7.0's COMMAND reply; do not edit by hand.
//!
//! Source: redis-server ${version}, ${specs.length} commands. Columns: name, arity, first key,
//! last key, key step, flags, request policy, response policy, subcommands.

// A glob keeps this line stable whatever flags the server reports (and rustfmt-proof).
use crate::command::*;

// A struct literal (not a const fn) so the nested subcommand arrays are promoted to 'static.
macro_rules! c {
    ($n:expr, $a:expr, $f:expr, $l:expr, $s:expr, $fl:expr, $rq:ident, $rs:ident, [$($c:expr),* $(,)?]) => {
        CommandSpec {
            name: $n,
            arity: $a,
            first_key: $f,
            last_key: $l,
            step: $s,
            flags: $fl,
            request_policy: RequestPolicy::$rq,
            response_policy: ResponsePolicy::$rs,
            subcommands: &[$($c),*],
        }
    };
}

/// Every command of the server, sorted by (lowercase) name; each container's subcommands are
/// sorted too.
#[rustfmt::skip]
pub(crate) static COMMANDS: &[CommandSpec] = &[
${specs.map(line).join('\n')}
];
`;
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gen-command-table-'));
  const port = await freePort();
  const child = spawn(
    REDIS_SERVER,
    ['--port', String(port), '--save', '', '--appendonly', 'no', '--daemonize', 'no'],
    { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const exited = new Promise((r) => child.once('exit', r));
  try {
    await waitForServer(port, child);
    const info = await request(port, ['INFO', 'server']);
    const version = /redis_version:(\S+)/.exec(info)[1];
    if (!version.startsWith('7.0.')) {
      console.warn(`warning: redis-server is ${version}; the table is meant to come from 7.0`);
    }
    const reply = await request(port, ['COMMAND']);
    const specs = reply.map((e) => toSpec(e, null));
    specs.sort(byName);
    for (let i = 1; i < specs.length; i++) {
      if (specs[i].name === specs[i - 1].name) throw new Error(`duplicate command ${specs[i].name}`);
    }
    const table = render(specs, version);
    fs.writeFileSync(OUT, table);
    // The TypeScript methods come from the same table, so they are regenerated with it.
    const types = require('./gen-command-types');
    fs.writeFileSync(types.OUT, types.render(types.tableNames(table)));
    const subs = specs.reduce((n, s) => n + s.subcommands.length, 0);
    console.log(`wrote ${path.relative(process.cwd(), OUT)}: ${specs.length} commands, ${subs} subcommands (redis ${version})`);
  } finally {
    if (child.exitCode === null) {
      process.kill(child.pid, 'SIGTERM');
      await exited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
