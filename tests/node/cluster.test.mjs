// Puppeteer and Playwright through a hub of the scaled-out grid: a real
// redis-server, one node with real Chromium, one hub.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import puppeteer from 'puppeteer-core';
import { chromium } from 'playwright-core';
import { Cluster, eventually, servePages } from './harness.mjs';

let cluster;
let node;
let hub;
let hubPort;
let pages;

const hubStatus = () => hub.status();
const browsers = () => node.browsers();

before(async () => {
  cluster = await Cluster.start();
  node = await cluster.node(['--max-sessions', '2']);
  hub = await cluster.hub();
  hubPort = hub.port;
  await eventually('the hub sees the node', async () => {
    try { return (await hubStatus()).ready === true; } catch { return false; }
  }, 30000);
  pages = await servePages();
});

after(async () => {
  pages?.close();
  await cluster?.stop();
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
