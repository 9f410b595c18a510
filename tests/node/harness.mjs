// Starts the real gridiron binary for a test and checks it leaves nothing behind.
import { spawn } from 'node:child_process';
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

/** Pids whose environment contains `entry` (e.g. GRIDIRON_SESSION=abc). */
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

export class Grid {
  static async start(extra = []) {
    const g = new Grid();
    g.dataDir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'gridiron-node-')));
    g.port = await freePort();
    g.log = fs.openSync(path.join(g.dataDir, 'grid.log'), 'w');
    g.proc = spawn(BIN, ['standalone', '--host', '127.0.0.1', '--port', String(g.port),
      '--data-dir', g.dataDir, ...extra], { stdio: ['ignore', 'ignore', g.log] });
    g.exited = new Promise((r) => g.proc.on('exit', (code) => r(code)));
    await eventually('grid answers /status', async () => {
      try { return (await request(g.port, 'GET', '/status')).status === 200; } catch { return false; }
    }, 20000);
    return g;
  }

  get url() { return `http://127.0.0.1:${this.port}`; }

  async status() {
    return JSON.parse((await request(this.port, 'GET', '/status')).body).value;
  }

  /** Ids of running sessions, from /status. */
  async sessionIds() {
    const st = await this.status();
    return st.nodes.flatMap((n) => n.slots).filter((s) => s.session).map((s) => s.session.sessionId);
  }

  processes() { return processesWithEnv(`GRIDIRON_DATA_DIR=${this.dataDir}`); }

  sessionProcesses(id) { return processesWithEnv(`GRIDIRON_SESSION=${id}`); }

  /** The browser's main process of a session (not a helper process). */
  browserPid(id) {
    return this.sessionProcesses(id).find((p) => comm(p) === 'chromium' && !cmdline(p).includes('--type='));
  }

  logText() { return fs.readFileSync(path.join(this.dataDir, 'grid.log'), 'utf8'); }

  /** SIGTERM, wait, and assert nothing is left. */
  async stop() {
    this.proc.kill('SIGTERM');
    const code = await Promise.race([this.exited, sleep(15000).then(() => 'timeout')]);
    if (code !== 0) throw new Error(`grid exit ${code}\n${this.logText()}`);
    await eventually('no grid processes remain', () => this.processes().length === 0, 5000);
    const left = fs.existsSync(path.join(this.dataDir, 'sessions'))
      ? fs.readdirSync(path.join(this.dataDir, 'sessions')) : [];
    if (left.length) throw new Error(`session dirs remain: ${left}`);
    fs.rmSync(this.dataDir, { recursive: true, force: true });
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
