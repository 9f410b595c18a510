// CDP round trip through the grid versus straight to the browser, in one run.
//
//   node bench/cdp_overhead.mjs [--grid-bin PATH] [--iterations N] [--quick]
//
// Direct: a Chromium started here with --remote-debugging-port=0.
// Grid:   a CDP-only session of a release-built grid (ws://.../cdp).
// Both run `Runtime.evaluate 1+1` on a page target over one websocket, in
// alternating blocks so machine noise hits both alike, then measure messages
// per second with 64 requests in flight. Needs `npm ci --prefix tests/node`
// (for the `ws` package).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(path.join(path.dirname(new URL(import.meta.url).pathname), '../tests/node/package.json'));
const WebSocket = require('ws');

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const quick = args.includes('--quick');
const ITER = Number(opt('--iterations', quick ? 400 : 4000));
const BLOCKS = quick ? 4 : 10;
const THROUGHPUT_MSGS = quick ? 2000 : 20000;
const GRID_BIN = opt('--grid-bin', process.env.GRIDIRON_BIN
  ?? path.join(process.env.CARGO_TARGET_DIR ?? path.join(os.homedir(), '.cache/gridiron-target'), 'release/gridiron'));
const CHROMIUM = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
  '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const children = [];
const tmpdirs = [];
function cleanup() {
  for (const c of children) { try { process.kill(-c.pid, 'SIGKILL'); } catch { /* gone */ } }
  for (const d of tmpdirs) fs.rmSync(d, { recursive: true, force: true });
}
process.on('exit', cleanup);
process.on('SIGINT', () => process.exit(130));

function tmp(prefix) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpdirs.push(d);
  return d;
}

async function startChromium() {
  const dir = tmp('cdpb-');
  const c = spawn('/usr/bin/chromium', [...CHROMIUM, `--user-data-dir=${dir}/p`, '--remote-debugging-port=0', 'about:blank'],
    { detached: true, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, TMPDIR: dir } });
  children.push(c);
  return new Promise((resolve, reject) => {
    let buf = '';
    c.stderr.on('data', (d) => {
      buf += d;
      const m = buf.match(/DevTools listening on (ws:\/\/\S+)/);
      if (m) resolve(m[1]);
    });
    c.on('exit', () => reject(new Error(`chromium exited: ${buf}`)));
  });
}

async function startGrid() {
  const dir = tmp('cdpg-');
  const port = 20000 + Math.floor(Math.random() * 20000);
  const g = spawn(GRID_BIN, ['standalone', '--host', '127.0.0.1', '--port', String(port), '--data-dir', dir, '--max-sessions', '2'],
    { detached: true, stdio: ['ignore', 'ignore', 'ignore'] });
  children.push(g);
  for (let i = 0; i < 200; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/status`);
      if (r.ok) return { port, proc: g };
    } catch { /* not yet */ }
    await sleep(50);
  }
  throw new Error('grid did not start');
}

class Cdp {
  constructor(ws) {
    this.ws = ws;
    this.next = 1;
    this.pending = new Map();
    ws.on('message', (data) => {
      const msg = JSON.parse(data);
      const p = this.pending.get(msg.id);
      if (p) { this.pending.delete(msg.id); p(msg); }
    });
  }
  static open(url) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      ws.on('open', () => resolve(new Cdp(ws)));
      ws.on('error', reject);
    });
  }
  send(method, params = {}, sessionId) {
    const id = this.next++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    });
  }
  async page() {
    const { result } = await this.send('Target.createTarget', { url: 'about:blank' });
    const att = await this.send('Target.attachToTarget', { targetId: result.targetId, flatten: true });
    return att.result.sessionId;
  }
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

async function roundTrips(cdp, sid, n, out) {
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    const r = await cdp.send('Runtime.evaluate', { expression: '1+1' }, sid);
    out.push(Number(process.hrtime.bigint() - t) / 1e6);
    if (r.result?.result?.value !== 2) throw new Error(`bad answer ${JSON.stringify(r)}`);
  }
}

async function throughput(cdp, sid, total, window = 64) {
  const t = process.hrtime.bigint();
  let sent = 0;
  const lane = async () => {
    while (sent < total) {
      sent++;
      await cdp.send('Runtime.evaluate', { expression: '1+1' }, sid);
    }
  };
  await Promise.all(Array.from({ length: window }, lane));
  return total / (Number(process.hrtime.bigint() - t) / 1e9);
}

const directUrl = await startChromium();
const grid = await startGrid();
const direct = await Cdp.open(directUrl);
const viaGrid = await Cdp.open(`ws://127.0.0.1:${grid.port}/cdp`);
const dsid = await direct.page();
const gsid = await viaGrid.page();
await roundTrips(direct, dsid, 200, []);
await roundTrips(viaGrid, gsid, 200, []);
const d = [];
const g = [];
for (let b = 0; b < BLOCKS; b++) {
  await roundTrips(direct, dsid, ITER / BLOCKS, d);
  await roundTrips(viaGrid, gsid, ITER / BLOCKS, g);
}
const dTput = await throughput(direct, dsid, THROUGHPUT_MSGS);
const gTput = await throughput(viaGrid, gsid, THROUGHPUT_MSGS);

const row = (name, xs, tput) => `${name.padEnd(8)} p50 ${pct(xs, 50).toFixed(3)} ms  p99 ${pct(xs, 99).toFixed(3)} ms  ${Math.round(tput)} msg/s`;
console.log(`CDP Runtime.evaluate 1+1, ${ITER} round trips each, ${THROUGHPUT_MSGS} pipelined messages`);
console.log(row('direct', d, dTput));
console.log(row('grid', g, gTput));
const added50 = pct(g, 50) - pct(d, 50);
console.log(`added   p50 ${added50.toFixed(3)} ms  p99 ${(pct(g, 99) - pct(d, 99)).toFixed(3)} ms  throughput ratio ${(gTput / dTput).toFixed(2)}`);
console.log(`target  < 0.2 ms added at p50: ${added50 < 0.2 ? 'PASS' : 'MISS'}`);
if (args.includes('--json')) {
  console.log(JSON.stringify({ direct: { p50: pct(d, 50), p99: pct(d, 99), msgsPerSec: dTput }, grid: { p50: pct(g, 50), p99: pct(g, 99), msgsPerSec: gTput } }));
}
direct.ws.close();
viaGrid.ws.close();
grid.proc.kill('SIGTERM');
await new Promise((r) => grid.proc.on('exit', r));
process.exit(0);
