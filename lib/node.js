// Node handles: what `connections["host:port"]` and `slots[n]` hold. redis-clustr exposed raw
// node_redis clients there; code written for it reads `address`, `host`, `port`, `master`,
// `ready`, `connected` and calls commands on one node. Commands sent through a handle are pinned
// to that node: no slot routing, and a MOVED/ASK comes back as the error, as from a raw client.
'use strict';

class NodeHandle {
  constructor(cluster, address) {
    const i = address.lastIndexOf(':');
    Object.defineProperty(this, '_cluster', { value: cluster, enumerable: false });
    this.address = address;
    this.host = address.slice(0, i).replace(/^\[|\]$/g, '');
    this.port = Number(address.slice(i + 1));
    this.master = false;
    this.ready = false;
    this.connected = false;
  }

  send_command(name, args, cb) {
    if (typeof args === 'function') {
      cb = args;
      args = [];
    }
    const list = args === undefined || args === null ? [] : Array.isArray(args) ? args.slice() : [args];
    return this._cluster._queue(String(name).toLowerCase(), list, cb, this.address);
  }

  sendCommand(name, args, cb) {
    return this.send_command(name, args, cb);
  }

  // redis-clustr called quit() on clients that left the map; a handle holds no socket of its own,
  // so there is nothing to close: the cluster client owns the connection.
  quit(cb) {
    if (typeof cb === 'function') process.nextTick(cb, null, 'OK');
    return true;
  }
}

module.exports = { NodeHandle };
