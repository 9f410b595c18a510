// Puppeteer and Playwright through the grid over CDP, with real Chromium.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import puppeteer from 'puppeteer-core';
import { chromium } from 'playwright-core';
import { Grid, eventually, request, servePages, sleep, withTimeout } from './harness.mjs';

let grid;
let pages;

before(async () => {
  grid = await Grid.start(['--max-sessions', '2']);
  pages = await servePages();
});

after(async () => {
  pages.close();
  await grid.stop();
});

async function idle() {
  await eventually('no session is running', async () => (await grid.status()).sessions === 0);
}

test('puppeteer connects to /cdp, works, and disconnecting frees the slot', async () => {
  const browser = await puppeteer.connect({
    browserWSEndpoint: `ws://127.0.0.1:${grid.port}/cdp?browser=chromium&--window-size=800,600`,
  });
  const [id] = await grid.sessionIds();
  assert.ok(id, 'the CDP session is listed');
  assert.ok(grid.sessionProcesses(id).length > 0);
  const page = await browser.newPage();
  await page.goto(pages.url);
  assert.equal(await page.title(), 'Gridiron page');
  assert.equal(await page.evaluate(() => document.getElementById('h').textContent), 'hello from the grid');
  assert.deepEqual(await page.evaluate(() => [window.outerWidth, window.outerHeight]), [800, 600]);
  const png = await page.screenshot();
  assert.equal(png.subarray(0, 4).toString('latin1'), '\x89PNG');
  await browser.disconnect();
  await idle();
  await eventually('its processes are gone', () => grid.sessionProcesses(id).length === 0);
});

test('playwright connectOverCDP through the grid address', async () => {
  const browser = await chromium.connectOverCDP(grid.url);
  const context = browser.contexts()[0] ?? await browser.newContext();
  const page = await context.newPage();
  await page.goto(pages.url);
  assert.equal(await page.title(), 'Gridiron page');
  assert.equal(await page.evaluate(() => 20 + 22), 42);
  const png = await page.screenshot();
  assert.equal(png.subarray(0, 4).toString('latin1'), '\x89PNG');
  await browser.close();
  await idle();
});

test('playwright with SELENIUM_REMOTE_URL follows se:cdp', async () => {
  process.env.SELENIUM_REMOTE_URL = grid.url;
  try {
    const browser = await chromium.launch();
    const page = await browser.newPage();
    await page.goto(pages.url);
    assert.equal(await page.title(), 'Gridiron page');
    await browser.close();
  } finally {
    delete process.env.SELENIUM_REMOTE_URL;
  }
  await idle();
});

test('unknown session on /se/cdp is refused before the upgrade', async () => {
  const r = await request(grid.port, 'GET', '/session/nosuchsession/se/cdp', {
    headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' },
  });
  assert.equal(r.status, 404);
  assert.match(r.headers['content-type'], /application\/json/);
  assert.equal(JSON.parse(r.body).value.error, 'invalid session id');
});

test('a CDP client that vanishes mid-message ends its session', async () => {
  const sock = net.connect(grid.port, '127.0.0.1');
  await new Promise((r) => sock.on('connect', r));
  sock.write('GET /cdp HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n'
    + 'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
  const head = await new Promise((r) => sock.once('data', (d) => r(d.toString())));
  assert.match(head, /^HTTP\/1.1 101/);
  const [id] = await grid.sessionIds();
  assert.ok(grid.sessionProcesses(id).length > 0, 'the browser runs for this client');
  // Half a masked text frame announcing 100 bytes, then gone.
  sock.write(Buffer.from([0x81, 0x80 | 100, 1, 2, 3, 4, 0x7b, 0x22]));
  sock.destroy();
  await idle();
  await eventually('its processes are gone', () => grid.sessionProcesses(id).length === 0);
});

test('a browser that dies with a websocket open closes it and ends the session', async () => {
  const browser = await puppeteer.connect({ browserWSEndpoint: `ws://127.0.0.1:${grid.port}/cdp` });
  const disconnected = new Promise((r) => browser.on('disconnected', r));
  const [id] = await grid.sessionIds();
  const pid = grid.browserPid(id);
  assert.ok(pid, 'found the browser process');
  process.kill(pid, 'SIGKILL');
  await withTimeout(disconnected, 10000, 'the websocket closed when the browser died');
  await idle();
  await eventually('its processes are gone', () => grid.sessionProcesses(id).length === 0);
  assert.ok((await grid.status()).ready, 'the slot is free again');
});

test('forwarded host is used in se:cdp', async () => {
  const r = await request(grid.port, 'POST', '/session', {
    body: JSON.stringify({ capabilities: { alwaysMatch: { browserName: 'chrome', webSocketUrl: true } } }),
    headers: { 'Content-Type': 'application/json', 'X-Forwarded-Host': 'grid.example:8443', 'X-Forwarded-Proto': 'https' },
  });
  assert.equal(r.status, 200, r.body);
  const v = JSON.parse(r.body).value;
  assert.equal(v.capabilities['se:cdp'], `wss://grid.example:8443/session/${v.sessionId}/se/cdp`);
  assert.equal(v.capabilities.webSocketUrl, `wss://grid.example:8443/session/${v.sessionId}/se/bidi`);
  const d = await request(grid.port, 'DELETE', `/session/${v.sessionId}`);
  assert.equal(d.status, 200);
});

test('several CDP connections to one WebDriver session at once', async () => {
  const r = await request(grid.port, 'POST', '/session', {
    body: JSON.stringify({ capabilities: { alwaysMatch: { browserName: 'chrome' } } }),
    headers: { 'Content-Type': 'application/json' },
  });
  assert.equal(r.status, 200, r.body);
  const v = JSON.parse(r.body).value;
  const endpoint = v.capabilities['se:cdp'];
  assert.equal(endpoint, `ws://127.0.0.1:${grid.port}/session/${v.sessionId}/se/cdp`);
  const a = await puppeteer.connect({ browserWSEndpoint: endpoint });
  const b = await puppeteer.connect({ browserWSEndpoint: endpoint });
  const [pa, pb] = await Promise.all([a.newPage(), b.newPage()]);
  await Promise.all([pa.goto(pages.url), pb.goto(pages.url)]);
  assert.deepEqual(await Promise.all([pa.title(), pb.title()]), ['Gridiron page', 'Gridiron page']);
  // Both see the same browser: each connection lists the other's page too.
  assert.ok((await a.pages()).length >= 2);
  await a.disconnect();
  assert.equal(await pb.evaluate(() => 1 + 1), 2, 'closing one connection leaves the other working');
  await b.disconnect();
  const d = await request(grid.port, 'DELETE', `/session/${v.sessionId}`);
  assert.equal(d.status, 200);
  await idle();
});

test('a CDP session without traffic ends at its idle timeout; traffic keeps it alive', async () => {
  const browser = await puppeteer.connect({ browserWSEndpoint: `ws://127.0.0.1:${grid.port}/cdp?idleTimeout=2` });
  const disconnected = new Promise((r) => browser.on('disconnected', r));
  const page = await browser.newPage();
  // Traffic every half second for 3 s: longer than the idle timeout, but never idle.
  for (let i = 0; i < 6; i++) {
    assert.equal(await page.evaluate(() => 1), 1);
    await sleep(500);
  }
  const [id] = await grid.sessionIds();
  assert.ok(id, 'still running while busy');
  await withTimeout(disconnected, 10000, 'the session ended when idle');
  await idle();
  await eventually('its processes are gone', () => grid.sessionProcesses(id).length === 0);
  const ended = new RegExp(`session ended session=${id} reason="idle_timeout"`);
  await eventually('the end is recorded as idle_timeout', () => ended.test(grid.logText()));
});
