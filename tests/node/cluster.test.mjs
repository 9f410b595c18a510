// Puppeteer and Playwright through a hub of the scaled-out grid: a real
// redis-server, one node with real Chromium, one hub.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import puppeteer from 'puppeteer-core';
import { chromium } from 'playwright-core';
import { BIN, eventually, freePort, processesWithEnv, request, servePages, sleep } from './harness.mjs';

const SECRET = 'node-test-cluster-secret';
let dir;
let redis;
let node;
let hub;
let hubPort;
let pages;

function run(args, name) {
  const log = fs.openSync(path.join(dir, `${name}.log`), 'w');
  const proc = spawn(args[0], args.slice(1), {
    stdio: ['ignore', 'ignore', log],
    env: { ...process.env, GRIDIRON_CLUSTER_SECRET: SECRET },
  });
  proc.exited = new Promise((r) => proc.on('exit', (code) => r(code)));
  return proc;
}

async function hubStatus() {
  return JSON.parse((await request(hubPort, 'GET', '/status')).body).value;
}

before(async () => {
  dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'gridiron-cluster-')));
  const redisPort = await freePort();
  redis = run(['redis-server', '--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], 'redis');
  const store = `redis://127.0.0.1:${redisPort}/0`;
  await eventually('redis accepts connections', () => new Promise((resolve) => {
    const c = net.connect(redisPort, '127.0.0.1', () => { c.end(); resolve(true); });
    c.on('error', () => resolve(false));
  }));
  const nodePort = await freePort();
  node = run([BIN, 'node', '--host', '127.0.0.1', '--port', String(nodePort), '--store', store,
    '--advertise-url', `http://127.0.0.1:${nodePort}`, '--max-sessions', '2', '--data-dir', path.join(dir, 'node')], 'node');
  hubPort = await freePort();
  hub = run([BIN, 'hub', '--host', '127.0.0.1', '--port', String(hubPort), '--store', store], 'hub');
  await eventually('the hub sees the node', async () => {
    try { return (await hubStatus()).ready === true; } catch { return false; }
  }, 30000);
  pages = await servePages();
});

after(async () => {
  pages?.close();
  for (const [p, name] of [[hub, 'hub'], [node, 'node']]) {
    if (!p) continue;
    p.kill('SIGINT');
    const code = await Promise.race([p.exited, sleep(15000).then(() => 'timeout')]);
    assert.equal(code, 0, fs.readFileSync(path.join(dir, `${name}.log`), 'utf8'));
  }
  redis?.kill('SIGKILL');
  await eventually('no node processes remain',
    () => processesWithEnv(`GRIDIRON_DATA_DIR=${path.join(dir, 'node')}`).length === 0, 5000);
  fs.rmSync(dir, { recursive: true, force: true });
});

const nodeProcesses = () => processesWithEnv(`GRIDIRON_DATA_DIR=${path.join(dir, 'node')}`);
const browsers = () => nodeProcesses().filter((p) => {
  try { return fs.readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'chromium'; } catch { return false; }
});

test('puppeteer gets a browser on a node through the hub; disconnecting ends it', async () => {
  const browser = await puppeteer.connect({
    browserWSEndpoint: `ws://127.0.0.1:${hubPort}/cdp?browser=chromium&--window-size=800,600`,
  });
  assert.equal((await hubStatus()).sessions, 1);
  assert.ok(browsers().length > 0, 'the node runs the browser');
  const page = await browser.newPage();
  await page.goto(pages.url);
  assert.equal(await page.title(), 'Gridiron page');
  assert.deepEqual(await page.evaluate(() => [window.outerWidth, window.outerHeight]), [800, 600]);
  await browser.disconnect();
  await eventually('the browser is gone', () => browsers().length === 0);
  await eventually('the slot is back', async () => (await hubStatus()).sessions === 0);
});

test('playwright connectOverCDP with the hub address', async () => {
  const browser = await chromium.connectOverCDP(`http://127.0.0.1:${hubPort}`);
  const context = browser.contexts()[0] ?? await browser.newContext();
  const page = await context.newPage();
  await page.goto(pages.url);
  assert.equal(await page.evaluate(() => document.getElementById('h').textContent), 'hello from the grid');
  await browser.close();
  await eventually('the browser is gone', () => browsers().length === 0);
});
