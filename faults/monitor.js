// Process-level observation for one scenario: uncaught exceptions and unhandled rejections
// (counted, never allowed to kill the run), Rust panics (the binding's panicCount()), RSS,
// process CPU over a window, and the client's topology events and stats() counters.
'use strict';

const binding = require('../binding.js');

let hooks = null;

// One set of process hooks for the whole run; each Monitor reads the difference.
function installHooks() {
  if (hooks) return hooks;
  hooks = { uncaught: 0, rejections: 0, samples: [] };
  process.on('uncaughtException', (e) => {
    hooks.uncaught++;
    if (hooks.samples.length < 5) hooks.samples.push(`uncaughtException: ${e && e.stack ? e.stack : e}`);
  });
  process.on('unhandledRejection', (e) => {
    hooks.rejections++;
    if (hooks.samples.length < 5) hooks.samples.push(`unhandledRejection: ${e && e.stack ? e.stack : e}`);
  });
  return hooks;
}

const panicCount = () => (typeof binding.panicCount === 'function' ? binding.panicCount() : 0);

function outsideHeap() {
  const m = process.memoryUsage();
  return m.rss - m.heapTotal;
}

class Monitor {
  constructor() {
    this._h = installHooks();
    this._base = { uncaught: this._h.uncaught, rejections: this._h.rejections, panics: panicCount() };
    this._samplesFrom = this._h.samples.length;
    this.rssStart = process.memoryUsage().rss;
    this.rssMax = this.rssStart;
    // RSS outside V8's heap: the client's native side (Rust allocations, buffers), without the
    // op log and list records a long run piles up in the JS heap (the soak checks this one).
    this.outsideHeapStart = outsideHeap();
    this.outsideHeapMax = this.outsideHeapStart;
    this._timer = setInterval(() => this._sample(), 500);
    this._timer.unref();
    this.topologyEvents = 0;
    this.client = null;
    this.statsStart = null;
  }

  /** Starts counting the client's topology events and stats() deltas. */
  watch(client) {
    this.client = client;
    this.statsStart = client.stats();
    client.on('topology', () => this.topologyEvents++);
  }

  /** stats() counters of the client now, minus those at watch(). */
  statsDelta() {
    const now = this.client.stats();
    const out = {};
    for (const k of Object.keys(now)) out[k] = now[k] - this.statsStart[k];
    return out;
  }

  unhandled() {
    return {
      uncaught: this._h.uncaught - this._base.uncaught,
      rejections: this._h.rejections - this._base.rejections,
      panics: panicCount() - this._base.panics,
      samples: this._h.samples.slice(this._samplesFrom),
    };
  }

  _sample() {
    this.rssMax = Math.max(this.rssMax, process.memoryUsage().rss);
    this.outsideHeapMax = Math.max(this.outsideHeapMax, outsideHeap());
  }

  stop() {
    clearInterval(this._timer);
    this._sample();
  }
}

/** Measures this process's CPU (all threads, incl. the io thread) as a fraction of one core. */
function cpuMeter() {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  return () => {
    const c = process.cpuUsage(c0);
    const wallUs = Number(process.hrtime.bigint() - t0) / 1000;
    return wallUs > 0 ? (c.user + c.system) / wallUs : 0;
  };
}

module.exports = { Monitor, cpuMeter, panicCount };
