// Error objects as node_redis users know them: `.code` (server error's first word or a client
// code from SPEC §3), `.command` (uppercase) and `.args`.
'use strict';

function clientError(code, message, command, args) {
  const err = new Error(message);
  err.code = code;
  if (command !== undefined) err.command = String(command).toUpperCase();
  if (args !== undefined) err.args = args;
  return err;
}

// A failure from native: [code, message, causes].
function fromNative(failure, command, args) {
  const err = clientError(failure[0], failure[1], command, args);
  const causes = failure[2];
  if (causes && causes.length) {
    err.errors = causes.map((c) => {
      const e = new Error(`${c[0]}: ${c[2]}`);
      e.code = c[1];
      e.address = c[0];
      return e;
    });
  }
  return err;
}

// A server error reply arrives as an Error whose message is the whole line; give it node_redis'
// shape.
function fromServer(err, command, args) {
  err.command = String(command).toUpperCase();
  err.args = args;
  return err;
}

module.exports = { clientError, fromNative, fromServer };
