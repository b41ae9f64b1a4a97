// Builds the native addon from source with the napi-rs CLI. `--if-missing` (the package's
// install step) skips the build when an addon is already present, so `npm install` in a clone
// builds once and later installs are quick. `--debug` builds without optimisation for iterating.
// The generated loader goes to binding.js / binding.d.ts: napi's default names (index.js,
// index.d.ts) are the hand-written shim and types.
'use strict';

const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const args = process.argv.slice(2);
const debug = args.includes('--debug');

function addonPresent() {
  return fs.readdirSync(root).some((f) => /^redis-clustr-native\..*\.node$/.test(f)) && fs.existsSync(path.join(root, 'binding.js'));
}

if (args.includes('--if-missing') && addonPresent()) {
  console.log('redis-clustr-native: native addon already built; skipping (npm run build rebuilds it)');
  process.exit(0);
}

const cargo = spawnSync('cargo', ['--version'], { encoding: 'utf8' });
if (cargo.status !== 0) {
  console.error(
    'redis-clustr-native: building from source needs a Rust toolchain (cargo was not found).\n' +
      'Install it with https://rustup.rs or your package manager (e.g. apt-get install cargo), then run npm run build.'
  );
  process.exit(1);
}

const cliPkg = require.resolve('@napi-rs/cli/package.json', { paths: [root] });
const cli = path.join(path.dirname(cliPkg), require(cliPkg).bin.napi);
const napiArgs = [cli, 'build', '--platform', '--js', 'binding.js', '--dts', 'binding.d.ts'];
if (!debug) napiArgs.push('--release');
console.log(`redis-clustr-native: building the native addon (${debug ? 'debug' : 'release'})...`);
const r = spawnSync(process.execPath, napiArgs, { cwd: root, stdio: 'inherit' });
process.exit(r.status === null ? 1 : r.status);
