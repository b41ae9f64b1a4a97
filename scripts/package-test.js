// `npm run test:package` (also a step of `npm test`): proves, end to end on this machine, what a
// Node app gets when it installs the package the way npm users do.
//
//   1. builds the release addon and the generated loader into a temporary dir
//      (scripts/build.js --output-dir: napi build, sharing the repository's cargo target/), never
//      touching the repository's own binding.js or debug addon;
//   2. stages the main package (the files `npm pack` picks from package.json `files`) and the
//      napi platform dirs (npm/), places the binary with `napi artifacts`, and `npm pack`s the
//      main package and redis-clustr-native-linux-x64-gnu; checks what each tarball holds and
//      reports the sizes;
//   3. against one throwaway local Redis Cluster, installs the tarballs into fresh temporary apps
//      (npm --offline with an empty cache, so nothing can come from the registry):
//        a. main + platform package, --ignore-scripts, cargo not on PATH: the README's usage
//           example runs on the prebuilt binary, and `import` and `require` give the same class;
//        b. main + platform package, install scripts run, cargo not on PATH: the install step
//           sees the prebuilt binary and builds nothing;
//        c. main package only, install scripts run, cargo not on PATH: the install fails and says
//           what to do;
//        d. main package only, install scripts approved through npm 11's `allowScripts` (with
//           --strict-allow-scripts, so an approval that does not match fails the install) and
//           cargo on PATH: the install step builds the addon from source (cold, in the app's
//           node_modules) and the README example runs on it.
//
// Output: node:test (TAP when piped), so scripts/test.js counts its `# pass N` / `# fail N`.
// Linux x64 glibc only (it packs that platform package); elsewhere it is skipped.
// KEEP_PACKAGE_TEST_DIR=1 keeps the temporary apps for inspection.
'use strict';

const test = require('node:test');
const assert = require('node:assert');
const { spawn, spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { startCluster } = require('./cluster');

const root = path.join(__dirname, '..');
const pkg = require('../package.json');
const PLATFORM = 'linux-x64-gnu';
const TRIPLE = 'x86_64-unknown-linux-gnu';
const PLATFORM_PKG = `${pkg.name}-${PLATFORM}`;
const BINARY = `${pkg.napi.binaryName}.${PLATFORM}.node`;

function glibc() {
  try {
    return Boolean(process.report.getReport().header.glibcVersionRuntime);
  } catch {
    return false;
  }
}
const skip =
  process.platform === 'linux' && process.arch === 'x64' && glibc()
    ? false
    : `packs the ${PLATFORM} platform package, so it runs on Linux x64 (glibc) only`;

// ---------------------------------------------------------------------------------------------
// Helpers

// PATH without any directory that holds cargo (rustup's ~/.cargo/bin, /usr/bin when apt's cargo
// is there): a "server without Rust".
function pathWithoutCargo() {
  const dirs = (process.env.PATH || '').split(path.delimiter).filter(Boolean);
  const kept = dirs.filter((d) => !fs.existsSync(path.join(d, 'cargo')));
  for (const tool of ['node', 'npm']) {
    if (!kept.some((d) => fs.existsSync(path.join(d, tool)))) {
      throw new Error(`cannot hide cargo: ${tool} lives in the same directory as cargo`);
    }
  }
  return kept.join(path.delimiter);
}

// The environment of a fresh shell: none of the npm_* variables `npm test` exports (an inherited
// npm_config_prefix / local_prefix would make a nested `npm install` write into this repository).
function cleanEnv({ cargo }) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && k !== 'INIT_CWD') env[k] = v;
  if (!cargo) env.PATH = pathWithoutCargo();
  env.npm_config_update_notifier = 'false';
  return env;
}

// Runs a command, collecting stdout+stderr; resolves { code, out, ms }.
function run(cmd, args, { cwd, env, timeoutMs = 5 * 60 * 1000 } = {}) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(cmd, args, { cwd, env: env || process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (out += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: err.code, out: `${out}\n${err.message}`, ms: Date.now() - started });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code === null ? `killed by ${signal}` : code, out, ms: Date.now() - started });
    });
  });
}

function must(r, what) {
  assert.strictEqual(r.code, 0, `${what} failed (${r.code}):\n${r.out}`);
  return r;
}

const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;
const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;

// npm pack --json for a directory; returns { file, size, unpackedSize, entryCount, files[] }.
async function npmPack(dir, dest) {
  const r = must(await run('npm', ['pack', dir, '--pack-destination', dest, '--json', '--ignore-scripts'], { cwd: dest, env: cleanEnv({ cargo: true }) }), `npm pack ${dir}`);
  const info = JSON.parse(r.out.slice(r.out.indexOf('['), r.out.lastIndexOf(']') + 1))[0];
  return {
    file: path.join(dest, info.filename),
    size: info.size,
    unpackedSize: info.unpackedSize,
    entryCount: info.entryCount,
    files: info.files.map((f) => f.path),
  };
}

// The README's usage example (the ```js block under "## Usage"), pointed at the local cluster,
// wrapped so its top-level await runs in CommonJS, with a check and a quit at the end.
function readmeExample(seeds) {
  const md = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const m = /^## Usage[ \t]*$[\s\S]*?^```js[ \t]*\n([\s\S]*?)^```/m.exec(md);
  assert(m, 'README.md has no ```js block under "## Usage"');
  const servers = /servers:\s*\[[^\]]*\]/;
  assert(servers.test(m[1]), 'the README usage example has no `servers: [...]` to point at the local cluster');
  const client = /(?:const|let|var)\s+(\w+)\s*=\s*new\s+\w+\s*\(/.exec(m[1]);
  assert(client, 'the README usage example does not create a client with `const x = new ...(`');
  const v = client[1];
  return [
    "'use strict';",
    '(async () => {',
    m[1].replace(servers, `servers: ${JSON.stringify(seeds)}`),
    `  const check = await ${v}.getAsync('key');`,
    "  if (check !== 'value') throw new Error(`get key gave ${check}`);",
    `  await ${v}.quitAsync();`,
    "  console.log('addon: ' + Object.keys(require.cache).find((k) => k.endsWith('.node')));",
    '})().catch((err) => {',
    '  console.error(err);',
    '  process.exit(1);',
    '});',
    '',
  ].join('\n');
}

// `import` and `require` must give the same class (one implementation, no dual-package hazard).
const ESM_CHECK = `
import RedisClustr, { RedisClustr as named, RedisCluster, keySlot } from '${pkg.name}';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const cjs = require('${pkg.name}');
const fail = (msg) => { console.error(msg); process.exit(1); };
if (typeof RedisClustr !== 'function') fail('import default is not the class');
if (RedisClustr !== cjs || named !== cjs || RedisCluster !== cjs || cjs.default !== cjs) fail('import and require give different classes');
if (keySlot('foo') !== 12182) fail('keySlot via import is wrong');
const meta = require('${pkg.name}/package.json');
const fs = await import('node:fs');
const types = require.resolve('${pkg.name}/package.json').replace(/package\\.json$/, meta.types);
if (!fs.existsSync(types)) fail('types file missing: ' + types);
console.log('esm and cjs give the same class');
`;

// ---------------------------------------------------------------------------------------------

test(`packaging: ${pkg.name} as npm users install it`, { skip }, async (t) => {
  // Everything this run writes lives here (so concurrent runs cannot trip over each other).
  const tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), `${pkg.name}-package-test-`)));
  const stage = path.join(tmp, 'stage');
  const timings = [];
  const time = (what, ms) => timings.push(`${what}: ${secs(ms)}`);
  let packs = null;
  let cluster = null;
  const suiteStart = Date.now();

  // A fresh app with its own empty npm cache and user config; returns its dir and an npm runner.
  let appCount = 0;
  function newApp(extra = {}) {
    const dir = path.join(tmp, `app-${++appCount}`);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify(Object.assign({ name: `consumer-app-${appCount}`, version: '1.0.0', private: true }, extra), null, 2));
    fs.writeFileSync(path.join(dir, '.npmrc'), '');
    const cache = path.join(dir, '.npm-cache');
    const npmInstall = (args, env) =>
      run('npm', ['install', '--offline', '--cache', cache, '--userconfig', path.join(dir, '.npmrc'), '--no-audit', '--no-fund', '--foreground-scripts', ...args], { cwd: dir, env });
    return { dir, npmInstall };
  }

  async function runExample(app, expectBinary) {
    fs.writeFileSync(path.join(app.dir, 'example.js'), readmeExample(cluster.seeds));
    const r = must(await run(process.execPath, ['example.js'], { cwd: app.dir, env: cleanEnv({ cargo: false }), timeoutMs: 30000 }), 'the README usage example');
    assert.match(r.out, /^value$/m, `the example's get callback did not print 'value':\n${r.out}`);
    const loaded = /^addon: (.*)$/m.exec(r.out);
    assert.strictEqual(loaded && loaded[1], expectBinary, `the example loaded the wrong addon:\n${r.out}`);
    return r;
  }

  try {
    await t.test('release build into a staging dir (scripts/build.js --output-dir, napi build)', async () => {
      fs.mkdirSync(stage);
      const r = must(await run(process.execPath, [path.join(__dirname, 'build.js'), '--output-dir', path.join(stage, 'out')], { cwd: root, env: cleanEnv({ cargo: true }), timeoutMs: 8 * 60 * 1000 }), 'the release build');
      time('release build (napi build --release, warm target/)', r.ms);
      for (const f of [BINARY, 'binding.js']) assert(fs.existsSync(path.join(stage, 'out', f)), `napi build wrote no ${f}`);
    });

    await t.test(`npm pack: ${pkg.name} and ${PLATFORM_PKG} (napi artifacts)`, async (t) => {
      const started = Date.now();
      // The main package: exactly the files `npm pack` takes from this repository, with the loader
      // from the release build (the repository's binding.js may be absent or from a debug build).
      const dry = must(await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, env: cleanEnv({ cargo: true }) }), 'npm pack --dry-run');
      const listed = JSON.parse(dry.out.slice(dry.out.indexOf('['), dry.out.lastIndexOf(']') + 1))[0].files.map((f) => f.path);
      const main = path.join(stage, 'main');
      for (const f of listed) {
        fs.mkdirSync(path.dirname(path.join(main, f)), { recursive: true });
        fs.copyFileSync(path.join(root, f), path.join(main, f));
      }
      fs.copyFileSync(path.join(stage, 'out', 'binding.js'), path.join(main, 'binding.js'));
      fs.cpSync(path.join(root, 'npm'), path.join(main, 'npm'), { recursive: true });
      // napi artifacts wants a binary for every configured target: CI downloads them all from the
      // build matrix; here only this machine's target exists.
      fs.writeFileSync(path.join(stage, 'napi-local.json'), JSON.stringify({ targets: [TRIPLE] }));
      const cli = path.join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js');
      must(await run(process.execPath, [cli, 'artifacts', '--cwd', main, '--config-path', '../napi-local.json', '--output-dir', '../out', '--npm-dir', 'npm'], { cwd: stage, env: cleanEnv({ cargo: true }) }), 'napi artifacts');
      assert(fs.existsSync(path.join(main, 'npm', PLATFORM, BINARY)), `napi artifacts put no ${BINARY} into npm/${PLATFORM}`);

      const dest = path.join(stage, 'packs');
      fs.mkdirSync(dest);
      const mainPack = await npmPack(main, dest);
      const platPack = await npmPack(path.join(main, 'npm', PLATFORM), dest);
      time('staging + napi artifacts + npm pack x2', Date.now() - started);

      // What the main package holds: the shim, types, loader and the sources of the fallback build.
      const required = [
        'package.json', 'README.md', 'LICENSE', 'index.js', 'index.mjs', 'index.d.ts', 'binding.js', 'scripts/build.js',
        'Cargo.toml', 'Cargo.lock', 'build.rs', 'rustfmt.toml', 'src/lib.rs',
        'crates/engine/Cargo.toml', 'crates/engine/src/lib.rs', 'crates/io/Cargo.toml', 'crates/io/src/lib.rs',
      ];
      for (const f of required) assert(mainPack.files.includes(f), `the main package lacks ${f}`);
      for (const f of fs.readdirSync(path.join(root, 'lib'))) assert(mainPack.files.includes(`lib/${f}`), `the main package lacks lib/${f}`);
      const forbidden = [/\.node$/, /^__test__\//, /^target\//, /node_modules\//, /^\.cluster/, /^\.ci\//, /^npm\//, /^bench/, /^crates\/[^/]+\/(tests|benches)\//, /^scripts\/(?!build\.js$)/, /package-lock\.json$/, /^binding\.d\.ts$/];
      for (const f of mainPack.files) for (const re of forbidden) assert(!re.test(f), `the main package must not ship ${f}`);

      // The platform package: the binary and nothing else, with os/cpu/libc for npm to pick it.
      assert.deepStrictEqual([...platPack.files].sort(), ['LICENSE', 'README.md', BINARY, 'package.json'].sort());
      const platJson = require(path.join(main, 'npm', PLATFORM, 'package.json'));
      assert.strictEqual(platJson.name, PLATFORM_PKG);
      assert.strictEqual(platJson.version, pkg.version, `npm/${PLATFORM} is at ${platJson.version}, the package at ${pkg.version} (napi version syncs them)`);
      assert.deepStrictEqual([platJson.os, platJson.cpu, platJson.libc], [['linux'], ['x64'], ['glibc']]);
      assert.strictEqual(platJson.main, BINARY);

      // Every napi target: an npm/<platform> dir at the package's version and an exact-version
      // optionalDependency (what the loader requires on that platform).
      for (const dir of fs.readdirSync(path.join(root, 'npm'))) {
        const p = require(path.join(root, 'npm', dir, 'package.json'));
        assert.strictEqual(p.version, pkg.version, `npm/${dir} is at ${p.version}, the package at ${pkg.version}`);
        assert.strictEqual((pkg.optionalDependencies || {})[p.name], pkg.version, `optionalDependencies lacks ${p.name}@${pkg.version}`);
      }
      assert.strictEqual(fs.readdirSync(path.join(root, 'npm')).length, pkg.napi.targets.length, 'one npm/<platform> dir per napi target (napi create-npm-dirs)');

      packs = { main: mainPack, platform: platPack };
      const line = (name, p) => `${name}: ${kib(p.size)} packed, ${kib(p.unpackedSize)} unpacked, ${p.entryCount} files`;
      t.diagnostic(line(pkg.name, mainPack));
      t.diagnostic(line(PLATFORM_PKG, platPack));
    });
    if (!packs) return;

    const clusterStart = Date.now();
    cluster = await startCluster();
    time('local cluster start', Date.now() - clusterStart);

    await t.test('a. prebuilt package, --ignore-scripts, no cargo on PATH: README example runs, import === require', async () => {
      const env = cleanEnv({ cargo: false });
      assert.notStrictEqual(spawnSync('cargo', ['--version'], { env }).status, 0, 'cargo is still reachable');
      const app = newApp();
      const inst = must(await app.npmInstall(['--ignore-scripts', packs.main.file, packs.platform.file], env), 'npm install');
      time('a. npm install (prebuilt, --ignore-scripts)', inst.ms);
      assert(!fs.existsSync(path.join(app.dir, 'node_modules', pkg.name, BINARY)), 'nothing should have been built');
      const ex = await runExample(app, path.join(app.dir, 'node_modules', PLATFORM_PKG, BINARY));
      time('a. README example', ex.ms);
      fs.writeFileSync(path.join(app.dir, 'esm-check.mjs'), ESM_CHECK);
      must(await run(process.execPath, ['esm-check.mjs'], { cwd: app.dir, env }), 'the ESM/CJS check');
    });

    await t.test('b. prebuilt package, install scripts run, no cargo on PATH: the install step builds nothing', async () => {
      const env = cleanEnv({ cargo: false });
      const app = newApp();
      const inst = must(await app.npmInstall([packs.main.file, packs.platform.file], env), 'npm install');
      time('b. npm install (prebuilt, install script runs)', inst.ms);
      assert.match(inst.out, /using the prebuilt native addon/, `the install step did not report the prebuilt binary:\n${inst.out}`);
      assert(!fs.existsSync(path.join(app.dir, 'node_modules', pkg.name, BINARY)), 'nothing should have been built');
    });

    await t.test('c. no prebuilt package, install scripts run, no cargo on PATH: the install fails and says what to do', async () => {
      const env = cleanEnv({ cargo: false });
      const app = newApp();
      const inst = await app.npmInstall([packs.main.file], env);
      time('c. npm install (no prebuilt, no cargo: fails)', inst.ms);
      assert.notStrictEqual(inst.code, 0, `the install should fail without a binary and without cargo:\n${inst.out}`);
      for (const hint of ['cargo was not found', 'https://rustup.rs', `npm rebuild ${pkg.name}`, PLATFORM_PKG]) {
        assert(inst.out.includes(hint), `the failure does not mention "${hint}":\n${inst.out}`);
      }
    });

    await t.test('d. no prebuilt package, install script approved (allowScripts, --strict-allow-scripts), cargo on PATH: source build', async () => {
      // npm identifies a tarball dependency by its resolved file: spec; a registry install would
      // use the package name: "allowScripts": { "redis-clustr-native": true }.
      const app = newApp({ allowScripts: { [`file:${packs.main.file}`]: true } });
      const inst = must(await app.npmInstall(['--strict-allow-scripts', packs.main.file], cleanEnv({ cargo: true })), 'npm install with the source build');
      time('d. npm install (cold source build)', inst.ms);
      assert.match(inst.out, new RegExp(`built ${BINARY.replace(/\./g, '\\.')}`), `the install step did not build the addon:\n${inst.out}`);
      const installed = path.join(app.dir, 'node_modules', pkg.name);
      assert(!fs.existsSync(path.join(installed, 'target')), 'the source build left its target/ in node_modules');
      assert(!fs.existsSync(path.join(app.dir, 'node_modules', PLATFORM_PKG)), 'no platform package should be installed');
      const ex = await runExample(app, path.join(installed, BINARY));
      time('d. README example', ex.ms);
    });
  } finally {
    if (cluster) await cluster.stop();
    if (process.env.KEEP_PACKAGE_TEST_DIR) t.diagnostic(`kept ${tmp}`);
    else fs.rmSync(tmp, { recursive: true, force: true });
    time('total', Date.now() - suiteStart);
    for (const line of timings) t.diagnostic(line);
  }
});
