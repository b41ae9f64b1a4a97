// redis-clustr's node-level methods, kept for code written against it: getSlots, selectClient,
// getRandomConnection, getClient and onMasters. They work on the node handles the client keeps
// in `slots` / `connections`; routing of ordinary commands never goes through them.
'use strict';

const { clientError } = require('./errors');

function afterReady(self, cb, fn) {
  if (self.ready) return fn();
  self.waitFor('ready', (err) => (err ? cb(err) : fn()));
}

const methods = {
  /** Calls back with the slot table once the first map is in. */
  getSlots(cb) {
    afterReady(this, cb, () => cb && cb(null, this.slots));
  },

  /** The node a command on `key` would use (`conf.readOnly` follows the `slaves` option). */
  selectClient(key, conf = {}) {
    if (Array.isArray(key)) key = key[0];
    if (key === undefined || key === null) return this.getRandomConnection();
    // Commands put redisOptions.prefix in front of the key before routing; so must this.
    if (this._prefix) key = Buffer.concat([this._prefix, key instanceof Uint8Array ? key : Buffer.from(String(key))]);
    const nodes = this.slots[this.constructor.keySlot(key)];
    if (!nodes || nodes.length === 0) return this.getRandomConnection();
    const slaves = this.config.slaves;
    let i = 0;
    if (conf.readOnly && nodes.length > 1) {
      if (slaves === 'always') i = 1 + Math.floor(Math.random() * (nodes.length - 1));
      else if (slaves === 'share') i = Math.floor(Math.random() * nodes.length);
    }
    return nodes[i];
  },

  /** A random ready node, optionally excluding addresses, or masters only unless forceSlaves. */
  getRandomConnection(exclude, forceSlaves) {
    const pool = Object.values(this.connections).filter(
      (n) => n.ready && (!exclude || !exclude.includes(n.address)) && (forceSlaves ? !n.master : true)
    );
    return pool[Math.floor(Math.random() * pool.length)];
  },

  /** The handle of the node at host:port (created if the map does not know it yet). */
  getClient(port, host) {
    return this._handle(`${host}:${port}`);
  },

  /**
   * Runs a command on every master. As in redis-clustr: identical replies collapse to one value,
   * otherwise the callback gets the array; errors come as an array (or null).
   */
  onMasters(cmd, args, cb) {
    if (typeof args === 'function') {
      cb = args;
      args = [];
    }
    const done = typeof cb === 'function' ? cb : () => {};
    afterReady(this, done, () => {
      const masters = [...new Set(this.slots.filter(Boolean).map((n) => n[0]))];
      if (masters.length === 0) return done([clientError('NO_SLOT_MAP', 'no masters are known')]);
      let left = masters.length;
      let errs = null;
      const replies = [];
      for (const m of masters) {
        m.send_command(cmd, args || [], (err, reply) => {
          if (err) (errs || (errs = [])).push(err);
          replies.push(reply);
          if (--left) return;
          const same = replies.every((r) => r === replies[0]);
          done(errs, same ? replies[0] : replies);
        });
      }
    });
  },
};

function install(proto) {
  for (const [name, fn] of Object.entries(methods)) {
    Object.defineProperty(proto, name, { value: fn, writable: true, configurable: true });
  }
}

module.exports = { install };
