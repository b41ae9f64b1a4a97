// lib/commands.d.ts (the typed command methods) must match the command table it is generated
// from, and the methods index.js really makes: a stale file, a command the addon knows but the
// types lack, or a typed method that does not exist at run time fails here. No cluster needed.
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const gen = require('../scripts/gen-command-types');
const RedisClustr = require('..');
const { Batch } = require('../lib/batch');
const { NodeHandle } = require('../lib/node');
const { commandNames } = require('../binding.js');

const generated = fs.readFileSync(gen.OUT, 'utf8');

// Member names of one interface of the generated file.
function members(iface) {
  const body = generated.slice(generated.indexOf(`export interface ${iface}`));
  const block = body.slice(body.indexOf('{') + 1, body.indexOf('\n}'));
  return [...block.matchAll(/^ {2}'?([^':]+)'?:/gm)].map((m) => m[1]);
}

test('lib/commands.d.ts is what scripts/gen-command-types.js makes of the command table', () => {
  const expected = gen.render(gen.tableNames(fs.readFileSync(gen.TABLE, 'utf8')));
  assert.ok(generated === expected, 'lib/commands.d.ts is stale: run node scripts/gen-command-types.js');
});

test('the table the types come from is the one the addon was built with', () => {
  assert.deepEqual(gen.tableNames(fs.readFileSync(gen.TABLE, 'utf8')), commandNames());
});

test('every typed method exists at run time, and every command method is typed', () => {
  const sync = members('Commands');
  const async = members('AsyncCommands');
  assert.ok(sync.length > 400, `only ${sync.length} typed methods`);
  for (const name of sync) {
    // `config` is the instance's config object on a client (the command is CONFIG there).
    if (name !== 'config') assert.equal(typeof RedisClustr.prototype[name], 'function', `client.${name}`);
    assert.equal(typeof Batch.prototype[name], 'function', `batch.${name}`);
    assert.equal(typeof NodeHandle.prototype[name], 'function', `node.${name}`);
  }
  for (const name of async) assert.equal(typeof RedisClustr.prototype[name], 'function', `client.${name}`);
  const typed = new Set(sync);
  for (const name of commandNames()) {
    if (gen.RESERVED.has(name)) continue; // quit, multi, exec: the client's and Batch's own
    assert.ok(typed.has(name) && typed.has(name.toUpperCase()), `${name} has no typed method`);
  }
});

test('the reply map only names commands of the table', () => {
  const names = gen.tableNames(fs.readFileSync(gen.TABLE, 'utf8')).filter((n) => n !== 'get');
  assert.throws(() => gen.render(names), /names get, which the command table does not have|SPECIAL names|REPLIES\.\w+ names get/);
});
