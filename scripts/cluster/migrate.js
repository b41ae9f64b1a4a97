// migrateSlot(): moves one slot live between two masters, step by step, the way
// `redis-cli --cluster reshard` does.
'use strict';

const { HOST, SLOT_COUNT } = require('./util');
const { ReplyError, sendCommand } = require('./resp');

/**
 * Moves one slot live, the way `redis-cli --cluster reshard` does: `CLUSTER SETSLOT <slot>
 * IMPORTING <fromId>` on the target, `... MIGRATING <toId>` on the source, then
 * `CLUSTER GETKEYSINSLOT <slot> 100` + `MIGRATE 127.0.0.1 <toPort> "" 0 5000 KEYS ...` until the
 * slot is empty, then `CLUSTER SETSLOT <slot> NODE <toId>` on the target, the source and every
 * other master (a node that answers "Please use SETSLOT only with masters" is skipped, as in
 * redis-cli). Node ids come from CLUSTER MYID. `onStep(name, info)` is awaited after each step,
 * so a test can issue traffic while the slot is half-moved. Step names, in order:
 * 'importing', 'migrating', 'batch' (after each MIGRATE; info.keys = keys moved so far),
 * 'migrated', 'node-target', 'node-source', 'node-all'.
 * @param {LocalCluster} cluster the cluster the ports belong to (commands go straight to
 *   127.0.0.1:<port> on fresh connections, so any object is accepted)
 * @param {number} slot 0..16383
 * @param {number} fromPort current owner (master)
 * @param {number} toPort new owner (master)
 * @param {{onStep?: (name: string, info: {slot: number, keys: number}) => any}} [opts]
 * @returns {Promise<{slot: number, fromId: string, toId: string, keys: number}>}
 */
async function migrateSlot(cluster, slot, fromPort, toPort, { onStep } = {}) {
  if (!Number.isInteger(slot) || slot < 0 || slot >= SLOT_COUNT) throw new Error(`bad slot ${slot}`);
  let keys = 0;
  const step = async (name) => {
    if (onStep) await onStep(name, { slot, keys });
  };
  const [fromId, toId] = await Promise.all([
    sendCommand(fromPort, ['CLUSTER', 'MYID']),
    sendCommand(toPort, ['CLUSTER', 'MYID']),
  ]);
  await sendCommand(toPort, ['CLUSTER', 'SETSLOT', slot, 'IMPORTING', fromId]);
  await step('importing');
  await sendCommand(fromPort, ['CLUSTER', 'SETSLOT', slot, 'MIGRATING', toId]);
  await step('migrating');
  for (;;) {
    const batch = await sendCommand(fromPort, ['CLUSTER', 'GETKEYSINSLOT', slot, 100], { buffers: true });
    if (batch.length === 0) break;
    await sendCommand(fromPort, ['MIGRATE', HOST, toPort, '', 0, 5000, 'KEYS', ...batch]);
    keys += batch.length;
    await step('batch');
  }
  await step('migrated');
  const tolerate = (e) => {
    if (!(e instanceof ReplyError) || !/only with masters/i.test(e.message)) throw e;
  };
  await sendCommand(toPort, ['CLUSTER', 'SETSLOT', slot, 'NODE', toId]);
  await step('node-target');
  await sendCommand(fromPort, ['CLUSTER', 'SETSLOT', slot, 'NODE', toId]).catch(tolerate);
  await step('node-source');
  const nodesText = await sendCommand(toPort, ['CLUSTER', 'NODES']);
  const others = [];
  for (const line of nodesText.split('\n')) {
    const f = line.split(' ');
    if (f.length < 8 || !/(^|,)master(,|$)/.test(f[2]) || /fail|noaddr|handshake/.test(f[2])) continue;
    const port = Number(f[1].split('@')[0].split(':').pop());
    if (port && port !== fromPort && port !== toPort) others.push(port);
  }
  await Promise.all(others.map((p) => sendCommand(p, ['CLUSTER', 'SETSLOT', slot, 'NODE', toId]).catch(tolerate)));
  await step('node-all');
  return { slot, fromId, toId, keys };
}

module.exports = { migrateSlot };
