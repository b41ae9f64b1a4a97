// Process bookkeeping: the set of redis-server children still running and of temp dirs not yet
// removed, and the exit/signal hooks that SIGKILL and remove them if this process dies.
'use strict';

const fs = require('fs');

const liveChildren = new Set(); // ChildProcess
const ownedDirs = new Set(); // temp dirs of clusters not yet stopped
let hooksInstalled = false;

/** Synchronously SIGKILLs every child still running and removes the temp dirs we created. */
function cleanupSync() {
  for (const child of liveChildren) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch (_) {
      // already gone
    }
  }
  liveChildren.clear();
  for (const d of ownedDirs) {
    try {
      fs.rmSync(d, { recursive: true, force: true });
    } catch (_) {
      // a dying server may still be writing; best effort
    }
  }
  ownedDirs.clear();
}

function installExitHooks() {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', cleanupSync);
  // 'exit' does not run when a signal kills the process. If nobody else handles the signal,
  // kill our servers and re-raise it so the default behaviour (terminate) still happens.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    const handler = () => {
      if (process.listenerCount(sig) > 1) return; // someone else decides; 'exit' still covers us
      cleanupSync();
      process.removeListener(sig, handler);
      process.kill(process.pid, sig);
    };
    process.on(sig, handler);
  }
}

module.exports = { liveChildren, ownedDirs, installExitHooks };
