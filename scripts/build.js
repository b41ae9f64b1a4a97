// Builds the native addon from source. Three ways in:
//
//   node scripts/build.js [--debug] [--output-dir DIR] [--target TRIPLE]
//       Contributors (`npm run build`): the napi-rs CLI (a devDependency) builds the addon as
//       redis-clustr-native.<platform>.node plus the generated loader binding.js / binding.d.ts
//       (napi's default names, index.js / index.d.ts, are the hand-written shim and types).
//       `--output-dir` puts all three somewhere else and `--target` cross-builds (the release
//       artefacts of CI's build matrix, one per package.json napi.targets entry).
//
//   node scripts/build.js --if-missing
//       The package's `install` script. Does nothing when the loader already finds a binary: a
//       prebuilt platform package (redis-clustr-native-linux-x64-gnu, ...) or an addon built
//       earlier. Only when none matches does it build from source, and when it cannot (no cargo)
//       it says what to do and fails the install rather than leaving a package that cannot load.
//       In an installed package the napi CLI is usually absent: the loader (binding.js) ships in
//       the package, so plain `cargo build` is enough; its target/ is removed afterwards so
//       node_modules does not keep ~100 MB of build files.
'use strict';

const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const PKG = 'redis-clustr-native';
const root = path.join(__dirname, '..');
const args = process.argv.slice(2);
const debug = args.includes('--debug');
const ifMissing = args.includes('--if-missing');
function option(name) {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  if (!args[i + 1] || args[i + 1].startsWith('--')) fail(`${name} needs a value`);
  return args[i + 1];
}
const outputDir = option('--output-dir');
const target = option('--target');

const installed = root.split(path.sep).includes('node_modules');

function log(msg) {
  console.log(`${PKG}: ${msg}`);
}

function fail(msg) {
  console.error(`${PKG}: ${msg}`);
  process.exit(1);
}

function isMusl() {
  if (process.platform !== 'linux') return false;
  try {
    return !process.report.getReport().header.glibcVersionRuntime;
  } catch {
    return false;
  }
}

// The platform part of napi's file and package names, as the generated loader spells it
// (redis-clustr-native.<suffix>.node, redis-clustr-native-<suffix>).
function platformSuffix() {
  const { platform, arch } = process;
  if (platform === 'linux') {
    const libc = isMusl() ? 'musl' : 'gnu';
    if (arch === 'arm') return `linux-arm-${libc}eabihf`;
    if (arch === 'ppc64' || arch === 's390x') return `linux-${arch}-gnu`;
    return `linux-${arch}-${libc}`;
  }
  if (platform === 'win32') return `win32-${arch}-msvc`;
  if (platform === 'android') return arch === 'arm' ? 'android-arm-eabi' : `android-${arch}`;
  return `${platform}-${arch}`;
}

// Does the generated loader find a binary? Checked in a child process so a failed load leaves
// nothing behind in this one. Returns the file it loaded, or null and why not: "not found" when
// every candidate was simply absent, else the real load errors (a wrong glibc, a corrupt file...).
function loadedBinary() {
  const probe = `
    try {
      const b = require('./binding.js');
      if (typeof b.NativeCluster !== 'function') throw new Error('binding.js loaded without NativeCluster');
      console.log(JSON.stringify({ file: Object.keys(require.cache).find((k) => k.endsWith('.node')) || '(unknown)' }));
    } catch (e) {
      const errors = [];
      for (let c = e; c; c = c.cause) if (!/Cannot find (module|native binding)/.test(c.message)) errors.push(c.message.split('\\n')[0]);
      console.log(JSON.stringify({ file: null, error: errors.length ? errors.join('; ') : 'not found' }));
    }`;
  const r = spawnSync(process.execPath, ['-e', probe], { cwd: root, encoding: 'utf8' });
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop());
  } catch {
    return { file: null, error: `the loader check failed (${r.status === null ? r.signal : `exit ${r.status}`}): ${(r.stderr || '').trim()}` };
  }
}

function napiCli() {
  try {
    const cliPkg = require.resolve('@napi-rs/cli/package.json', { paths: [root] });
    return path.join(path.dirname(cliPkg), require(cliPkg).bin.napi);
  } catch {
    return null;
  }
}

// The oldest Rust the locked dependencies build with (napi 3 declares rust-version 1.88).
const MIN_RUST = [1, 88];

function requireCargo(why) {
  const cargo = spawnSync('cargo', ['--version'], { encoding: 'utf8' });
  const install = `install Rust ${MIN_RUST.join('.')} or newer with https://rustup.rs (distribution packages are often older: Debian 12's cargo is 1.65)`;
  if (cargo.status === 0) {
    const v = /cargo (\d+)\.(\d+)/.exec(cargo.stdout);
    if (v && (Number(v[1]) < MIN_RUST[0] || (Number(v[1]) === MIN_RUST[0] && Number(v[2]) < MIN_RUST[1]))) {
      fail(`${why}: building it from source needs Rust ${MIN_RUST.join('.')} or newer, and ${cargo.stdout.trim()} is older.\nPlease ${install}, then run: npm rebuild ${PKG}`);
    }
    return;
  }
  const lines = [
    `${why}: building it from source needs a Rust toolchain, and cargo was not found on PATH.`,
    'Either:',
    `  - ${install}, then run: npm rebuild ${PKG}`,
  ];
  if (installed) {
    lines.push(
      `  - or install the prebuilt binary package for this platform, ${PKG}-${platformSuffix()}, if it exists:`,
      '    it is an optionalDependency, so it is skipped by --omit=optional / --no-optional and',
      '    by lockfiles written on another platform (https://github.com/npm/cli/issues/4828);',
      '    reinstalling without those (e.g. after removing package-lock.json and node_modules) fetches it.'
    );
  }
  fail(lines.join('\n'));
}

// napi build: the contributor path; also writes the loader.
function napiBuild(cli) {
  const napiArgs = [cli, 'build', '--platform', '--js', 'binding.js', '--dts', 'binding.d.ts'];
  if (!debug) napiArgs.push('--release');
  if (outputDir) napiArgs.push('--output-dir', path.resolve(outputDir));
  if (target) napiArgs.push('--target', target);
  log(`building the native addon with the napi CLI (${debug ? 'debug' : 'release'})${outputDir ? ` into ${outputDir}` : ''}...`);
  const r = spawnSync(process.execPath, napiArgs, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) fail(`napi build failed (${r.status === null ? r.signal : `exit ${r.status}`})`);
}

// Plain cargo: the installed-package path, next to the shipped loader.
function cargoBuild() {
  const env = Object.assign({}, process.env);
  // napi's CLI does this for musl targets: a cdylib cannot link the C runtime statically.
  if (isMusl() && !/target-feature=-crt-static/.test(env.RUSTFLAGS || '')) {
    env.RUSTFLAGS = `${env.RUSTFLAGS || ''} -C target-feature=-crt-static`.trim();
  }
  const ownTargetDir = !env.CARGO_TARGET_DIR && installed;
  const cargoArgs = ['build', '--lib', '--locked', '--message-format=json-render-diagnostics'];
  if (!debug) cargoArgs.push('--release');
  const started = Date.now();
  log(`building the native addon from source with cargo (${debug ? 'debug' : 'release'}; about a minute)...`);
  const r = spawnSync('cargo', cargoArgs, {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  if (r.status !== 0) fail(`cargo build failed (${r.status === null ? r.signal : `exit ${r.status}`}); see the compiler output above`);
  let lib = null;
  for (const line of r.stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    const msg = JSON.parse(line);
    if (msg.reason === 'compiler-artifact' && msg.target && msg.target.crate_types.includes('cdylib') && msg.target.name === 'redis_clustr_native') {
      lib = msg.filenames.find((f) => /\.(so|dylib|dll)$/.test(f)) || lib;
    }
  }
  if (!lib) fail('cargo build finished but reported no cdylib artefact');
  const dest = path.join(root, `${PKG}.${platformSuffix()}.node`);
  fs.copyFileSync(lib, dest);
  log(`built ${path.basename(dest)} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  if (ownTargetDir) fs.rmSync(path.join(root, 'target'), { recursive: true, force: true });
}

if (ifMissing) {
  const found = fs.existsSync(path.join(root, 'binding.js')) ? loadedBinary() : { file: null, error: 'binding.js (the generated loader) is missing' };
  if (found.file) {
    const rel = path.relative(root, found.file);
    const prebuilt = rel.split(path.sep).includes('node_modules') || rel.startsWith('..');
    log(`${prebuilt ? 'using the prebuilt native addon' : 'native addon already built'} (${rel}); no source build needed${prebuilt ? '' : ' (npm run build rebuilds it)'}`);
    process.exit(0);
  }
  log(`no prebuilt binary for ${platformSuffix()} (${found.error}); building from source`);
}

const why = ifMissing
  ? `no prebuilt binary matches this platform (${platformSuffix()}, Node ${process.version})`
  : 'cannot build the native addon';
const cli = napiCli();
if (cli) {
  requireCargo(why);
  napiBuild(cli);
} else if (fs.existsSync(path.join(root, 'binding.js'))) {
  if (outputDir || target) fail('--output-dir and --target need the napi CLI (npm install in the repository installs it)');
  requireCargo(why);
  cargoBuild();
} else {
  fail('the napi CLI (@napi-rs/cli, a devDependency) is not installed and binding.js is missing: run npm install in the repository first');
}

if (ifMissing) {
  const after = loadedBinary();
  if (!after.file) fail(`the build finished but the addon does not load: ${after.error}`);
}
