// TLS for local test clusters: certificates made with the `openssl` CLI in a fresh temp dir (a
// CA, a server cert with SAN `DNS:localhost, IP:127.0.0.1`, an unknown CA, a client cert), and
// the per-node redis-server arguments of a cluster that serves TLS next to plaintext with
// `tls-cluster yes` (the harness's own probes keep using the plaintext port). Shared by the TLS
// tests (__test__/tls-acl.test.js) and the fault harness's TLS runs (faults/run.js --tls).
'use strict';

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

// startCluster checks P, P+10000 and (told so with portOffsets) the TLS port P+20000 free for
// every node (base 20000-44999). With tls-cluster yes the bus port would follow the TLS port (P+30000, possibly past
// 65535), so it is pinned to the P+10000 the harness checked.
const TLS_OFFSET = 20000;

/** Makes the certificates in a fresh temp dir; returns their paths and PEM contents. */
function makeCerts() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rcn-tls-'));
  const run = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  // EC keys: much faster to generate than RSA, and both Redis and rustls take them.
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  for (const ca of ['ca', 'other-ca']) {
    run('req', '-x509', ...newKey, '-keyout', `${ca}.key`, '-out', `${ca}.crt`, '-days', '2', '-subj', `/CN=rcn test ${ca}`);
  }
  const leaf = (name, cn, ca, ext) => {
    fs.writeFileSync(path.join(dir, `${name}.ext`), ext);
    run('req', ...newKey, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial',
      '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`);
  };
  const usage = 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n';
  // The server cert also serves as the nodes' client cert on the TLS cluster bus.
  leaf('server', 'localhost', 'ca', `subjectAltName=DNS:localhost,IP:127.0.0.1\n${usage}extendedKeyUsage=serverAuth,clientAuth\n`);
  leaf('client', 'rcn-client', 'ca', `${usage}extendedKeyUsage=clientAuth\n`);
  const file = (n) => path.join(dir, n);
  const read = (n) => fs.readFileSync(file(n), 'utf8');
  return {
    dir,
    file,
    ca: read('ca.crt'),
    otherCa: read('other-ca.crt'),
    clientCert: read('client.crt'),
    clientKey: read('client.key'),
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

/** Per-node redis-server arguments for a cluster serving TLS next to plaintext. */
function tlsArgs(certs, authClients) {
  return (port) => [
    '--tls-port', port + TLS_OFFSET,
    '--cluster-port', port + 10000,
    '--tls-cluster', 'yes',
    '--tls-replication', 'yes',
    '--tls-cert-file', certs.file('server.crt'),
    '--tls-key-file', certs.file('server.key'),
    '--tls-ca-cert-file', certs.file('ca.crt'),
    '--tls-auth-clients', authClients,
  ];
}

module.exports = { TLS_OFFSET, makeCerts, tlsArgs };
