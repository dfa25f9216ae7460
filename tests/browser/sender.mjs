#!/usr/bin/env node
// A sender in Outlook's compose window, played in headless Chromium: Ferry's task pane
// (served by the ferry under test) with a stand-in for Office.js (office-standin.js, answered
// for Microsoft's CDN URL), driven by keyboard only.
//
//   node sender.mjs --base URL --files A,B[,…] --shots DIR --scenario send|interrupt
//                   [--lang en-US] [--width 320] [--key API_KEY | --token ENTRA_TOKEN]
//                   [--to a,b] [--cc c] [--bcc d] [--throttle BYTES_PER_S] [--timeout MS]
//                   [--body html|text] [--cancel NAME]
//
// Prints JSON lines on stdout: {"event": …} as it goes, and last {"event": "result", …}.
// Scenario `send`: idle → pick every file (and cancel NAME at once) → uploading → pause the
// first → paused (no bytes move while paused) → resume → the link is inserted. Scenario `interrupt`: pick the first
// file; once 48 MiB are acknowledged print {"event": "kill"} and wait for a line on stdin
// (the test SIGKILLs and restarts ferry); the upload must go on by itself; past 120 MiB the
// pane is closed and opened again on the same draft, which must list the file as
// unfinished; picking it again resumes it (not from 0) and the link is inserted.
// Screenshots `<state>-<lang>.png` go to --shots; axe-core checks each state (WCAG 2.2 AA
// tags) and any violation fails the run, as does a console error.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const STANDIN = fs.readFileSync(new URL('./office-standin.js', import.meta.url), 'utf8');
const OFFICE_JS = 'https://appsforoffice.microsoft.com/lib/1/hosted/office.js';
const MiB = 1024 * 1024;

const args = parseArgs({
  options: {
    base: { type: 'string' },
    files: { type: 'string' },
    shots: { type: 'string' },
    scenario: { type: 'string', default: 'send' },
    lang: { type: 'string', default: 'en-US' },
    width: { type: 'string', default: '320' },
    key: { type: 'string' },
    token: { type: 'string' },
    to: { type: 'string', default: 'gp@praktijk.example' },
    cc: { type: 'string', default: '' },
    bcc: { type: 'string', default: '' },
    throttle: { type: 'string', default: String(24 * MiB) },
    body: { type: 'string', default: 'html' },
    cancel: { type: 'string' },
    timeout: { type: 'string', default: '240000' },
  },
  strict: true,
}).values;
for (const required of ['base', 'files', 'shots']) {
  if (!args[required]) {
    process.stderr.write(`sender.mjs: missing --${required}\n`);
    process.exit(2);
  }
}
const timeout = Number(args.timeout);
const files = args.files.split(',');
const lang = args.lang.slice(0, 2);
const list = (text) => text.split(',').map((s) => s.trim()).filter(Boolean);
const emit = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);
const problems = [];
// While the test has ferry killed, the browser rightly logs failed requests (tus-js-client
// retries them); those, and only those, are not problems then.
let serverDown = false;
// Which error a dead server gives depends on the moment (refused, reset, closed, not
// connected…): any network error counts, nothing else does.
const NETWORK_ERROR = /^Failed to load resource: net::ERR_[A-Z_]+$/;

class Failure extends Error {}
const fail = (message) => {
  throw new Failure(message);
};

const stdinLines = readline.createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => stdinLines.once('line', resolve));

async function openPane(context) {
  const page = await context.newPage();
  page.setDefaultTimeout(timeout);
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    if (serverDown && NETWORK_ERROR.test(msg.text())) return;
    problems.push(`[console] ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`[pageerror] ${err}`));
  await page.route(OFFICE_JS, (route) =>
    route.fulfill({ status: 200, contentType: 'text/javascript', body: STANDIN }),
  );
  // Nothing else may leave for a third party.
  page.on('request', (request) => {
    const url = request.url();
    if (!url.startsWith(args.base) && url !== OFFICE_JS && !url.startsWith('data:')) {
      problems.push(`[third-party request] ${url}`);
    }
  });
  const setup = {
    displayLanguage: args.lang,
    to: list(args.to),
    cc: list(args.cc),
    bcc: list(args.bcc),
    bodyType: args.body,
    roaming: args.key ? { ferryApiKey: args.key } : {},
    ssoToken: args.token || null,
  };
  await page.addInitScript((value) => {
    window.__officeStandIn = value;
  }, setup);
  const response = await page.goto(`${args.base}/addin/taskpane.html`);
  if (!response || response.status() !== 200) fail(`the pane answered ${response?.status()}`);
  await page.waitForSelector('body[data-ready="true"]');
  const cdp = await context.newCDPSession(page);
  const throttle = async (bytesPerSecond) =>
    cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: bytesPerSecond,
    });
  return { page, throttle, headers: await response.allHeaders() };
}

async function shoot(page, state) {
  const file = path.join(args.shots, `${state}-${lang}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

async function axe(page, state) {
  await page.evaluate(AXE);
  const result = await page.evaluate(() =>
    window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] },
    }),
  );
  if (result.violations.length > 0) {
    fail(
      `axe-core, ${state}: ` +
        result.violations
          .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join('; ')}`)
          .join('\n'),
    );
  }
}

// Keyboard only: Tab until `selector` has the focus, then press `key`.
async function press(page, selector, key = 'Enter') {
  for (let i = 0; i < 60; i++) {
    if (await page.evaluate((s) => document.activeElement?.matches(s) ?? false, selector)) {
      await page.keyboard.press(key);
      return;
    }
    await page.keyboard.press('Tab');
  }
  fail(`Tab never reached ${selector}`);
}

async function pick(page, paths) {
  const [chooser] = await Promise.all([page.waitForEvent('filechooser'), press(page, '#choose')]);
  await chooser.setFiles(paths);
}

const row = (name) => `#uploads li[data-name=${JSON.stringify(name)}]`;
const sentOf = async (page, file) =>
  page.$eval(`${row(path.basename(file))} progress`, (bar, size) => Math.floor((bar.value / 1000) * size), fs.statSync(file).size);

async function waitSent(page, file, atLeast) {
  const name = path.basename(file);
  const size = fs.statSync(file).size;
  await page.waitForFunction(
    ([selector, bytes, total]) => {
      const bar = document.querySelector(`${selector} progress`);
      return bar && (bar.value / 1000) * total >= bytes;
    },
    [row(name), atLeast, size],
    { polling: 100 },
  );
}

async function inserted(page) {
  await page.waitForFunction(() => window.__officeInserted.length > 0, null, { polling: 200 });
  return page.evaluate(() => window.__officeInserted);
}

async function send(context) {
  const { page, throttle, headers } = await openPane(context);
  const shots = [];
  shots.push(await shoot(page, 'idle'));
  await axe(page, 'idle');
  const retention = await page.$$eval('#retention option', (options) =>
    options.map((o) => ({ value: o.value, text: o.textContent, selected: o.selected })),
  );
  const alerts = await page.$eval('#alerts', (n) => n.textContent);
  await throttle(Number(args.throttle));
  await pick(page, files);
  if (args.cancel) {
    await press(page, `${row(args.cancel)} button.cancel`, 'Enter');
    await page.waitForSelector(row(args.cancel), { state: 'detached' });
  }
  const first = files[0];
  await waitSent(page, first, 16 * MiB);
  shots.push(await shoot(page, 'uploading'));
  await axe(page, 'uploading');
  const firstRow = row(path.basename(first));
  await press(page, `${firstRow} button.toggle`, 'Enter');
  await page.waitForSelector(`${firstRow}[data-state="paused"]`);
  const pausedAt = await page.$eval(`${firstRow} progress`, (bar) => bar.value);
  await page.waitForTimeout(1500);
  const stillAt = await page.$eval(`${firstRow} progress`, (bar) => bar.value);
  if (stillAt !== pausedAt) fail(`bytes moved while paused: ${pausedAt} → ${stillAt} (per mille)`);
  shots.push(await shoot(page, 'paused'));
  await axe(page, 'paused');
  await throttle(-1);
  await page.$eval(`${firstRow} button.toggle`, (b) => b.focus());
  await page.keyboard.press('Enter');
  const blocks = await inserted(page);
  await page.waitForSelector('#messages p');
  shots.push(await shoot(page, 'done'));
  await axe(page, 'done');
  const states = await page.$$eval('#uploads li', (items) => items.map((li) => li.getAttribute('data-state')));
  const message = await page.$eval('#messages', (n) => n.textContent);
  const draft = await page.evaluate(() => window.localStorage.getItem('standin:sessionData'));
  return { headers, retention, alerts, pausedAt, states, message, inserted: blocks, shots, draft };
}

async function interrupt(context) {
  const file = files[0];
  const name = path.basename(file);
  let { page, throttle } = await openPane(context);
  await throttle(Number(args.throttle));
  await pick(page, [file]);
  await waitSent(page, file, 48 * MiB);
  serverDown = true;
  emit({ event: 'kill', sent: await sentOf(page, file) });
  await nextLine(); // the test killed ferry with SIGKILL and started it again
  await waitSent(page, file, 120 * MiB);
  serverDown = false;
  const before = await page.evaluate(() => window.localStorage.getItem('standin:sessionData'));
  await page.close(); // the sender closes the pane mid-upload
  emit({ event: 'closed' });
  ({ page, throttle } = await openPane(context));
  await page.waitForSelector('#unfinished:not([hidden])');
  const unfinished = await page.$eval('#unfinished-list', (n) => n.textContent);
  const shots = [await shoot(page, 'reopened')];
  await axe(page, 'reopened');
  await pick(page, [file]);
  await page.waitForSelector(`${row(name)}[data-resumed-at]`);
  const resumedAt = Number(await page.$eval(row(name), (li) => li.getAttribute('data-resumed-at')));
  const blocks = await inserted(page);
  return { unfinished, resumedAt, inserted: blocks, shots, draftBeforeClose: before };
}

async function main() {
  fs.mkdirSync(args.shots, { recursive: true });
  const executablePath = process.env.FERRY_CHROMIUM || '/usr/bin/chromium';
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-pane-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
      viewport: { width: Number(args.width), height: 900 },
      timeout,
    });
    const result = args.scenario === 'interrupt' ? await interrupt(context) : await send(context);
    if (problems.length > 0) fail(`the page reported:\n${problems.join('\n')}`);
    emit({ event: 'result', ...result });
  } finally {
    if (context) await context.close().catch(() => {});
    fs.rmSync(userDataDir, { recursive: true, force: true });
    stdinLines.close();
  }
}

const deadline = setTimeout(() => {
  process.stderr.write(`sender.mjs: gave up after ${3 * timeout} ms\n`);
  process.exit(1);
}, 3 * timeout);
deadline.unref();

try {
  await main();
  process.exitCode = 0;
} catch (err) {
  const message = err instanceof Failure ? err.message : (err?.stack ?? String(err));
  process.stderr.write(`sender.mjs: ${message.replace(/\x1b\[[0-9;]*m/g, '')}\n`);
  if (problems.length) process.stderr.write(`page problems:\n${problems.join('\n')}\n`);
  process.exitCode = 1;
}
