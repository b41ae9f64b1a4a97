#!/usr/bin/env node
// Generates lib/commands.d.ts — one typed method per command, lowercase and UPPERCASE, and its
// `<name>Async` promise twin — from the command table the engine is built with
// (crates/engine/src/command_table.rs), so the TypeScript surface and the methods index.js makes
// from the native commandNames() cannot drift apart. Redis 7.0 publishes no reply schemas, so
// reply types come from the hand-kept REPLIES map below; a command missing from it gets the sound
// default (`Reply<B>`, every shape a reply can take), never `any`.
//
// Usage: node scripts/gen-command-types.js            writes lib/commands.d.ts
//        node scripts/gen-command-types.js --check    exits 1 when that file is stale
// scripts/gen-command-table.js runs it after regenerating the table. No npm dependencies.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.join(__dirname, '..');
const TABLE = path.join(ROOT, 'crates', 'engine', 'src', 'command_table.rs');
const OUT = path.join(ROOT, 'lib', 'commands.d.ts');

// Reply types by command, written with B = the bulk-string type (string, or Buffer under
// return_buffers). Where options change the shape (SET … GET, LPOP … COUNT) the type is the
// union of the shapes.
const KINDS = {
  ok: "'OK'",
  status: 'string',
  int: 'number',
  intOrNil: 'number | null',
  bulk: 'B',
  bulkOrNil: 'B | null',
  bulks: 'B[]',
  bulksOrNil: '(B | null)[]',
  popped: 'B | B[] | null',
  cursor: '[B, B[]]',
  subscription: 'string | B | null',
};
const REPLIES = {
  ok: 'flushall flushdb hmset lset ltrim mset pfmerge psetex rename restore setex xsetid',
  status: 'type bgsave bgrewriteaof',
  int: `append bitcount bitop bitpos copy dbsize decr decrby del exists expire expireat expiretime
    geoadd geosearchstore getbit hdel hexists hincrby hlen hset hsetnx hstrlen incr incrby lastsave
    linsert llen lpush lpushx lrem move msetnx persist pexpire pexpireat pexpiretime pfadd pfcount
    pttl publish renamenx rpush rpushx sadd scard sdiffstore setbit setnx setrange sintercard
    sinterstore sismember smove spublish srem strlen sunionstore touch ttl unlink wait xack xdel xlen
    xtrim zcard zcount zdiffstore zintercard zinterstore zlexcount zrangestore zrem zremrangebylex
    zremrangebyrank zremrangebyscore zunionstore`,
  intOrNil: 'zrank zrevrank',
  bulk: 'echo getrange hincrbyfloat incrbyfloat info substr zincrby',
  bulkOrNil: 'blmove brpoplpush dump geodist get getdel getex getset hget lindex lmove randomkey rpoplpush xadd zscore',
  bulks: `hkeys hvals keys lrange sdiff sinter smembers sort_ro sunion time zdiff zinter zpopmax zpopmin
    zrange zrangebylex zrangebyscore zrevrange zrevrangebylex zrevrangebyscore zunion`,
  bulksOrNil: 'geohash hmget mget zmscore',
  popped: 'hrandfield lpop rpop spop srandmember zrandmember',
  cursor: 'hscan scan sscan zscan',
  subscription: 'psubscribe punsubscribe ssubscribe subscribe sunsubscribe unsubscribe',
};
// Shapes of their own.
const SPECIAL = {
  set: "'OK' | B | null",
  ping: 'string | B',
  hgetall: '{ [field: string]: B } | null',
  smismember: 'number[]',
  sort: 'B[] | number',
  lpos: 'number | number[] | null',
  blpop: '[B, B] | null',
  brpop: '[B, B] | null',
  bzpopmax: '[B, B, B] | null',
  bzpopmin: '[B, B, B] | null',
  geopos: '([B, B] | null)[]',
};
// node_redis's hmset(key, {field: value}) form (index.js accepts it for hset too).
const HASH_FORM = new Set(['hmset', 'hset']);
// Names index.js never makes command methods of (lib/batch.js and the node handles skip them
// too): the client's own quit/multi/batch, and EXEC, which only a Batch has.
const RESERVED = new Set(['quit', 'multi', 'batch', 'exec', 'send_command', 'constructor']);

/** Top-level command names of the Rust table, in its (sorted) order. */
function tableNames(source) {
  const names = [];
  for (const m of source.matchAll(/^ {4}c!\("([^"]+)"/gm)) names.push(m[1]);
  if (names.length < 100) throw new Error(`only ${names.length} commands found in ${TABLE}: has its layout changed?`);
  return names;
}

function replyTypes(names) {
  const known = new Set(names);
  const types = new Map();
  const add = (name, type, where) => {
    if (!known.has(name)) throw new Error(`${where} names ${name}, which the command table does not have`);
    if (types.has(name)) throw new Error(`${name} is given a reply type twice`);
    types.set(name, type);
  };
  for (const [kind, list] of Object.entries(REPLIES)) {
    for (const name of list.split(/\s+/).filter(Boolean)) add(name, KINDS[kind], `REPLIES.${kind}`);
  }
  for (const [name, type] of Object.entries(SPECIAL)) add(name, type, 'SPECIAL');
  return types;
}

// A property name: quoted when it is not an identifier (RESTORE-ASKING).
function prop(name) {
  return /^[A-Za-z_$][\w$]*$/.test(name) ? name : `'${name}'`;
}

function render(names) {
  const types = replyTypes(names);
  const sync = [];
  const async = [];
  let typed = 0;
  for (const name of names) {
    if (RESERVED.has(name)) continue;
    const type = types.get(name) || 'Reply<B>';
    if (types.has(name)) typed++;
    const [m, a] = HASH_FORM.has(name) ? ['HashMethod', 'HashAsyncMethod'] : ['Method', 'AsyncMethod'];
    for (const n of [name, name.toUpperCase()]) {
      sync.push(`  ${prop(n)}: ${m}<R, ${type}>;`);
      async.push(`  ${prop(`${n}Async`)}: ${a}<${type}>;`);
    }
  }
  return `// Generated by scripts/gen-command-types.js from crates/engine/src/command_table.rs (${names.length}
// commands, ${typed} with a specific reply type; the rest get Reply<B>). Do not edit by hand:
// change the REPLIES map there and run it. __test__/command-types.test.js fails when this is stale.

import RedisClustr = require('../index');

type Reply<B> = RedisClustr.Reply<B>;
type Method<R, T> = RedisClustr.Method<R, T>;
type HashMethod<R, T> = RedisClustr.HashMethod<R, T>;
type AsyncMethod<T> = RedisClustr.AsyncMethod<T>;
type HashAsyncMethod<T> = RedisClustr.HashAsyncMethod<T>;

/**
 * Every command as a method in node_redis's argument forms, returning R (the client, a node
 * handle or a batch, for chaining). B is the type of bulk replies: string, or Buffer with
 * return_buffers.
 */
export interface Commands<R, B> {
${sync.join('\n')}
}

/** The promise twin of every command (the bluebird.promisifyAll convention). */
export interface AsyncCommands<B> {
${async.join('\n')}
}
`;
}

function main() {
  const expected = render(tableNames(fs.readFileSync(TABLE, 'utf8')));
  if (process.argv.includes('--check')) {
    const current = fs.existsSync(OUT) ? fs.readFileSync(OUT, 'utf8') : '';
    if (current !== expected) {
      console.error(`${path.relative(process.cwd(), OUT)} is stale: run node scripts/gen-command-types.js`);
      process.exit(1);
    }
    return;
  }
  fs.writeFileSync(OUT, expected);
  console.log(`wrote ${path.relative(process.cwd(), OUT)}`);
}

if (require.main === module) main();

module.exports = { render, tableNames, RESERVED, TABLE, OUT };
