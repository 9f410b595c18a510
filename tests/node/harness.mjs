// The one helper module of the Node suite: free ports, waiting, process scans,
// and the processes under test (a standalone grid, redis-server, hubs and nodes),
// each started on loopback with its own log and stopped with a leak check.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const BIN = process.env.GRIDIRON_BIN
  ?? path.join(process.env.CARGO_TARGET_DIR ?? path.join(os.homedir(), '.cache/gridiron-target'), 'debug/gridiron');

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function eventually(what, cond, ms = 10000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await sleep(100);
  }
  throw new Error(`not within ${ms} ms: ${what}`);
}

/** `promise`, or a rejection naming `what` if it has not settled within `ms`. */
export async function withTimeout(promise, ms, what) {
  let timer;
  const late = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`not within ${ms} ms: ${what}`)), ms); });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

export function request(port, method, p, { body, headers } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers }, (res) => {
      let data = '';
      res.on('data', (c) => (data += c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
    });
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

/**
 * The variables every process a grid starts carries (crates/provision/src/lib.rs):
 * the grid's data dir and the session id. Private names, so that no setting an
 * operator exports (GRIDIRON_DATA_DIR) marks a process for the grid's sweeps.
 */
export const MARK_ENV = '__GRIDIRON_SWEEP_MARK';
export const SESSION_ENV = '__GRIDIRON_SWEEP_SESSION';

/** Pids whose environment contains `entry` (e.g. `${SESSION_ENV}=abc`). */
export function processesWithEnv(entry) {
  const out = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const env = fs.readFileSync(`/proc/${name}/environ`);
      if (env.toString('latin1').split('\0').includes(entry)) out.push(Number(name));
    } catch { /* gone or not ours */ }
  }
  return out;
}

export function comm(pid) {
  try { return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim(); } catch { return ''; }
}

export function cmdline(pid) {
  try { return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' '); } catch { return ''; }
}

/** The browser's main processes among `pids` (not its helper processes). */
export const browserMains = (pids) => pids.filter((p) => comm(p) === 'chromium' && !cmdline(p).includes('--type='));

/** `value` of GET /status on a port. */
export async function statusOf(port, headers) {
  return JSON.parse((await request(port, 'GET', '/status', { headers })).body).value;
}

/** Whether GET /status on a port answers 200 now. */
export async function answers(port, headers) {
  try { return (await request(port, 'GET', '/status', { headers })).status === 200; } catch { return false; }
}

/**
 * One child process with its stderr in `logPath` and stdout discarded;
 * `exited` resolves to its exit code (or the signal that ended it).
 */
export function spawnLogged(argv, logPath, env = {}) {
  const log = fs.openSync(logPath, 'a');
  const proc = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', log], env: { ...process.env, ...env } });
  fs.closeSync(log);
  proc.exited = new Promise((r) => proc.on('exit', (code, sig) => r(code ?? sig)));
  return proc;
}

/** Sends `signal`, waits up to 15 s for the exit, and throws (with the log) unless it exited 0. */
async function stopLogged(proc, signal, logPath, what) {
  proc.kill(signal);
  const code = await Promise.race([proc.exited, sleep(15000).then(() => 'timeout')]);
  if (code === 'timeout') {
    proc.kill('SIGKILL');
    await proc.exited;
  }
  if (code !== 0) throw new Error(`${what} exit ${code} after ${signal}\n${fs.readFileSync(logPath, 'utf8')}`);
}

const tempDir = (prefix) => fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), prefix)));

export class Grid {
  static async start(extra = []) {
    const g = new Grid();
    g.dataDir = tempDir('gridiron-node-');
    g.port = await freePort();
    g.logPath = path.join(g.dataDir, 'grid.log');
    g.proc = spawnLogged([BIN, 'standalone', '--host', '127.0.0.1', '--port', String(g.port),
      '--data-dir', g.dataDir, ...extra], g.logPath);
    await eventually('grid answers /status', () => answers(g.port), 20000);
    return g;
  }

  get url() { return `http://127.0.0.1:${this.port}`; }

  status() { return statusOf(this.port); }

  /** Ids of running sessions, from /status. */
  async sessionIds() {
    const st = await this.status();
    return st.nodes.flatMap((n) => n.slots).filter((s) => s.session).map((s) => s.session.sessionId);
  }

  processes() { return processesWithEnv(`${MARK_ENV}=${this.dataDir}`); }

  sessionProcesses(id) { return processesWithEnv(`${SESSION_ENV}=${id}`); }

  /** The browser's main process of a session (not a helper process). */
  browserPid(id) { return browserMains(this.sessionProcesses(id))[0]; }

  logText() { return fs.readFileSync(this.logPath, 'utf8'); }

  /** SIGTERM, wait, and assert nothing is left. */
  async stop() {
    await stopLogged(this.proc, 'SIGTERM', this.logPath, 'grid');
    await eventually('no grid processes remain', () => this.processes().length === 0, 5000);
    const left = fs.existsSync(path.join(this.dataDir, 'sessions'))
      ? fs.readdirSync(path.join(this.dataDir, 'sessions')) : [];
    if (left.length) throw new Error(`session dirs remain: ${left}`);
    fs.rmSync(this.dataDir, { recursive: true, force: true });
  }
}

export const CLUSTER_SECRET = 'node-test-cluster-secret';

/**
 * The headers a hub signs a body-less request to a node with (see
 * crates/grid/src/cluster/signing.rs): HMAC-SHA256 keyed by the cluster
 * secret over length-prefixed fields, with a fresh timestamp and nonce.
 */
export function hubSignature(method, pathAndQuery, secret = CLUSTER_SECRET) {
  const ts = BigInt(Date.now());
  const nonce = crypto.randomBytes(16).toString('hex');
  const mac = crypto.createHmac('sha256', secret);
  const field = (b) => {
    const len = Buffer.alloc(8);
    len.writeBigUInt64BE(BigInt(b.length));
    mac.update(len);
    mac.update(b);
  };
  const tsBytes = Buffer.alloc(8);
  tsBytes.writeBigUInt64BE(ts);
  field(Buffer.from('gridiron-hub-request-v1'));
  field(Buffer.from(method));
  field(Buffer.from(pathAndQuery));
  field(tsBytes);
  field(Buffer.from(nonce));
  field(crypto.createHash('sha256').update(Buffer.alloc(0)).digest());
  field(Buffer.from('x-gridiron-end-reason'));
  field(Buffer.from('absent'));
  return {
    'x-gridiron-timestamp': ts.toString(),
    'x-gridiron-nonce': nonce,
    'x-gridiron-signature': mac.digest('hex'),
  };
}

/**
 * The scaled-out grid: a redis-server, then nodes and hubs added with
 * `node()` and `hub()`; `stop()` stops them all and checks no node left a process.
 */
export class Cluster {
  static async start() {
    const c = new Cluster();
    c.dir = tempDir('gridiron-cluster-');
    c.nodes = [];
    c.hubs = [];
    c.redisPort = await freePort();
    c.redis = spawnLogged(['redis-server', '--port', String(c.redisPort), '--bind', '127.0.0.1',
      '--save', '', '--appendonly', 'no', '--dir', c.dir], path.join(c.dir, 'redis.log'));
    await eventually('redis accepts connections', () => new Promise((resolve) => {
      const conn = net.connect(c.redisPort, '127.0.0.1', () => { conn.end(); resolve(true); });
      conn.on('error', () => resolve(false));
    }));
    return c;
  }

  get store() { return `redis://127.0.0.1:${this.redisPort}/0`; }

  #spawn(name, args) {
    const logPath = path.join(this.dir, `${name}.log`);
    return { logPath, proc: spawnLogged([BIN, ...args, '--store', this.store], logPath, { GRIDIRON_CLUSTER_SECRET: CLUSTER_SECRET }) };
  }

  /** A node with its own data dir; resolves once it answers. */
  async node(extra = []) {
    const name = `node${this.nodes.length + 1}`;
    const port = await freePort();
    const dataDir = path.join(this.dir, name);
    const n = this.#spawn(name, ['node', '--host', '127.0.0.1', '--port', String(port),
      '--advertise-url', `http://127.0.0.1:${port}`, '--data-dir', dataDir, ...extra]);
    Object.assign(n, { name, port, dataDir });
    n.processes = () => processesWithEnv(`${MARK_ENV}=${dataDir}`);
    n.browsers = () => n.processes().filter((p) => comm(p) === 'chromium');
    this.nodes.push(n);
    await eventually(`${name} answers`, () => answers(port, hubSignature('GET', '/status')), 20000);
    return n;
  }

  /** A hub; resolves once it answers. */
  async hub(extra = []) {
    const name = `hub${this.hubs.length + 1}`;
    const port = await freePort();
    const h = this.#spawn(name, ['hub', '--host', '127.0.0.1', '--port', String(port), ...extra]);
    Object.assign(h, { name, port, status: () => statusOf(port) });
    this.hubs.push(h);
    await eventually(`${name} answers`, () => answers(port), 20000);
    return h;
  }

  /** Ctrl-C every hub and node (each must exit 0), then Redis; no node process may remain. */
  async stop() {
    const errors = [];
    for (const p of [...this.hubs, ...this.nodes]) {
      try { await stopLogged(p.proc, 'SIGINT', p.logPath, p.name); } catch (e) { errors.push(e.message); }
    }
    this.redis.kill('SIGKILL');
    await this.redis.exited;
    for (const n of this.nodes) {
      await eventually(`no process of ${n.name} remains`, () => n.processes().length === 0, 5000);
    }
    if (errors.length) throw new Error(errors.join('\n\n'));
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A local page server (there is no internet here). */
export async function servePages() {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html' });
    res.end('<!doctype html><title>Gridiron page</title><h1 id="h">hello from the grid</h1>');
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => server.close() };
}
