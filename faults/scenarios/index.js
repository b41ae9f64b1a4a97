// Every fault scenario, in ID order (R1, R2, ..., R4, R4b, R5, ...). A scenario is {id, title, fault, must,
// passFigure, quick?, tls? (has a TLS run), cluster?, client?, workload?, run(ctx),
// check?(ctx, figures), summary(figures)}; see faults/harness.js for what ctx holds.
'use strict';

module.exports = [
  ...require('./baseline'),
  ...require('./failover'),
  ...require('./migration'),
  ...require('./membership'),
  ...require('./connection'),
  ...require('./restart'),
  ...require('./stale'),
].sort((a, b) => parseInt(a.id.slice(1), 10) - parseInt(b.id.slice(1), 10) || a.id.localeCompare(b.id));
