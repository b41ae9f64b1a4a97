// Shared by the benchmark runners (run.js: clients side by side; scale.js: 3 vs 30 masters):
// the peers' install, our release addon (found or built once per source hash), a child process
// per measurement, preloading the key space, /proc CPU accounting to detect other work on the
// machine, and the machine's description for the reports.
'use strict';

const { spawn, spawnSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

const BENCH = __dirname;
const ROOT = path.join(BENCH, '..');
const PEER_DEPS = ['ioredis', 'redis', 'redis-clustr', '@valkey/valkey-glide', 'cluster-key-slot'];
const CHILD_TIMEOUT_MS = 180000;

// ---------------------------------------------------------------------------------------------
// Peers (bench/package.json) and our release addon

function ensureDeps() {
  const missing = PEER_DEPS.filter((d) => !fs.existsSync(path.join(BENCH, 'node_modules', d, 'package.json')));
  if (missing.length === 0) return;
  console.log(`bench: installing the peers (${missing.join(', ')} missing): npm --prefix bench install`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = spawnSync(npm, ['--prefix', BENCH, 'install', '--no-audit', '--no-fund'], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('npm --prefix bench install failed');
}

function versionOf(dir) {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version;
  } catch {
    return null;
  }
}

function sourceHash() {
  const h = crypto.createHash('sha256');
  const files = [];
  const walk = (dir) => {
    if (!fs.existsSync(dir)) return;
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else files.push(p);
    }
  };
  for (const f of ['Cargo.toml', 'Cargo.lock', 'build.rs']) files.push(path.join(ROOT, f));
  walk(path.join(ROOT, 'src'));
  for (const c of fs.existsSync(path.join(ROOT, 'crates')) ? fs.readdirSync(path.join(ROOT, 'crates')) : []) {
    files.push(path.join(ROOT, 'crates', c, 'Cargo.toml'));
    walk(path.join(ROOT, 'crates', c, 'src'));
  }
  for (const f of files.sort()) {
    if (!fs.existsSync(f)) continue;
    h.update(path.relative(ROOT, f));
    h.update(fs.readFileSync(f));
  }
  return h.digest('hex').slice(0, 16);
}

function looksLikeDebugBuild(file) {
  const buf = fs.readFileSync(file);
  return buf.subarray(0, 4).toString('latin1') === '\x7fELF' && buf.indexOf('.debug_info\0', 0, 'latin1') >= 0;
}

function ensureAddon(opts) {
  let file = opts.addon || process.env.NAPI_RS_NATIVE_LIBRARY_PATH || null;
  let how;
  if (file) {
    file = path.resolve(file);
    how = opts.addon ? '--addon' : 'NAPI_RS_NATIVE_LIBRARY_PATH';
    if (!fs.existsSync(file)) throw new Error(`${how}: ${file} does not exist`);
  } else {
    const hash = sourceHash();
    const dir = path.join(os.tmpdir(), 'redis-clustr-native-bench', hash);
    const find = () => (fs.existsSync(dir) ? fs.readdirSync(dir).find((f) => f.endsWith('.node')) : null);
    if (!find()) {
      console.log(`bench: building the release addon into ${dir} (sources ${hash}; about a minute)...`);
      fs.mkdirSync(dir, { recursive: true });
      const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'build.js'), '--output-dir', dir], { cwd: ROOT, stdio: 'inherit' });
      if (r.status !== 0 || !find()) {
        fs.rmSync(dir, { recursive: true, force: true });
        throw new Error('the release build failed');
      }
    }
    file = path.join(dir, find());
    how = `release build of sources ${hash}`;
  }
  if (looksLikeDebugBuild(file)) throw new Error(`${file} has DWARF debug sections: a debug build. The benchmark only measures a release build.`);
  if (!fs.existsSync(path.join(ROOT, 'binding.js'))) {
    throw new Error('binding.js (the generated loader the shim requires) is missing at the package root: run npm install there first');
  }
  return { file, how };
}

// ---------------------------------------------------------------------------------------------
// Children

// GLIDE leaves its per-process IPC socket (glide-socket-<pid>-<uuid>.sock) in the temp dir.
function removeGlideSockets(pid) {
  const dir = os.tmpdir();
  try {
    for (const f of fs.readdirSync(dir)) if (f.startsWith(`glide-socket-${pid}-`)) fs.rmSync(path.join(dir, f), { force: true });
  } catch {
    // nothing to tidy
  }
}

// Runs `script` (child.js by default) in a fresh Node process with `args`; resolves with its last
// stdout line parsed as JSON when it exits 0. Killed after CHILD_TIMEOUT_MS (replies missing).
function runChild(args, env, script = 'child.js') {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--expose-gc', path.join(BENCH, script), ...args], {
      cwd: BENCH,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => {
      err += `\n(timed out after ${CHILD_TIMEOUT_MS / 1000} s: replies missing)`;
      child.kill('SIGKILL');
    }, CHILD_TIMEOUT_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      removeGlideSockets(child.pid);
      let result = null;
      if (code === 0) {
        try {
          result = JSON.parse(out.trim().split('\n').pop());
        } catch {
          err += `\n(unparsable output: ${out.slice(0, 200)})`;
        }
      }
      resolve({ ok: code === 0 && !!result, result, code, signal, stderr: err.trim() });
    });
  });
}

// ---------------------------------------------------------------------------------------------

async function preload(seeds, count, key, valueOf) {
  const { Cluster } = require('ioredis');
  const c = new Cluster(seeds, { enableAutoPipelining: true });
  await new Promise((resolve, reject) => {
    c.once('ready', resolve);
    c.once('error', reject);
  });
  for (let i = 0; i < count; i += 5000) {
    const jobs = [];
    for (let j = i; j < Math.min(count, i + 5000); j++) jobs.push(c.set(key(j), valueOf(j)));
    await Promise.all(jobs);
  }
  await c.quit();
}

// CPU time (µs) of the whole machine and of given pids, from /proc (Linux only; null elsewhere).
// Used to tell how much CPU something other than this run used while a client was measured.
const TICK_US = 1e6 / 100; // USER_HZ
function machineBusyUs() {
  try {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    return (f[0] + f[1] + f[2] + f[5] + f[6]) * TICK_US;
  } catch {
    return null;
  }
}
function pidsCpuUs(pids) {
  let sum = 0;
  for (const pid of pids) {
    try {
      const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      sum += (Number(f[11]) + Number(f[12])) * TICK_US; // utime stime
    } catch {
      // gone
    }
  }
  return sum;
}

function gitHead() {
  const r = spawnSync('git', ['describe', '--always', '--dirty'], { cwd: ROOT, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

function machine() {
  const cpus = os.cpus();
  return { cpu: cpus[0] ? cpus[0].model.trim() : 'unknown', cores: cpus.length, memGiB: Math.round(os.totalmem() / 2 ** 30), os: `${os.type()} ${os.release()}` };
}

module.exports = {
  BENCH,
  ROOT,
  ensureDeps,
  versionOf,
  ensureAddon,
  runChild,
  preload,
  machineBusyUs,
  pidsCpuUs,
  gitHead,
  machine,
};
