#!/usr/bin/env node
// A recipient in a real browser: open a Ferry share link in headless Chromium (Debian's, driven
// by playwright-core, which downloads no browser of its own), click every Download button in
// turn and save each download under the name the browser suggests.
//
//   node recipient.mjs --url SHARE_URL --out DIR [--screenshot PATH] [--timeout MS]
//
// Chromium: FERRY_CHROMIUM, default /usr/bin/chromium (scripts/install-test-tools installs it).
// Every run uses a fresh, temporary user-data directory, removed afterwards.
//
// On success prints one JSON line and exits 0:
//   {"title": page title, "status": HTTP status of the page, "headers": {the page's response
//    headers, lower-case}, "console": [console messages of type error/warning and page errors],
//    "files": [{"name": suggested filename, "path": saved path, "row_text": text of the table
//    row, "url": the URL downloaded}]}
// On any failure (page not 200, a console error or uncaught page error, a download that fails,
// a suggested name that is not a plain file name, two downloads with one name) prints the
// reason to stderr and exits 1 (2 for usage errors). Used by Ferry's end-to-end tests.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const USAGE = 'usage: node recipient.mjs --url SHARE_URL --out DIR [--screenshot PATH] [--timeout MS]';

// Exactly the flags the tests want; Playwright adds its own automation flags besides.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function usage(message) {
  if (message) process.stderr.write(`recipient.mjs: ${message}\n`);
  process.stderr.write(`${USAGE}\n`);
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      url: { type: 'string' },
      out: { type: 'string' },
      screenshot: { type: 'string' },
      timeout: { type: 'string', default: '60000' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  }).values;
} catch (err) {
  usage(err.message);
}
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
for (const required of ['url', 'out']) {
  if (args[required] === undefined) usage(`missing --${required}`);
}
const timeout = Number(args.timeout);
if (!Number.isSafeInteger(timeout) || timeout <= 0) {
  usage(`--timeout must be a positive integer (milliseconds), got ${args.timeout}`);
}
const executablePath = process.env.FERRY_CHROMIUM || '/usr/bin/chromium';

class Failure extends Error {}
const fail = (message) => {
  throw new Failure(message);
};

// Console messages and uncaught errors of the page, in order.
const problems = [];
const consoleErrors = () => problems.filter((p) => p.type === 'error' || p.type === 'pageerror');
function checkConsole(when) {
  const errors = consoleErrors();
  if (errors.length > 0) {
    fail(
      `${errors.length} console error(s) ${when}:\n` +
        errors.map((e) => `  [${e.type}] ${e.text}${e.location ? ` (${e.location})` : ''}`).join('\n'),
    );
  }
}

// A suggested filename must be one plain path component, so it can only land inside DIR.
function checkName(name) {
  if (!name || name === '.' || name === '..' || /[/\\\0]/.test(name)) {
    fail(`the browser suggested an unsafe file name ${JSON.stringify(name)}`);
  }
}

async function run(context, outDir) {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(timeout);
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') {
      const loc = msg.location();
      problems.push({
        type: msg.type(),
        text: msg.text(),
        location: loc && loc.url ? `${loc.url}:${loc.lineNumber}:${loc.columnNumber}` : undefined,
      });
    }
  });
  page.on('pageerror', (err) => problems.push({ type: 'pageerror', text: String(err) }));
  const response = await page.goto(args.url, { waitUntil: 'load' });
  if (!response) fail(`no response for ${args.url}`);
  const status = response.status();
  const headers = await response.allHeaders();
  if (status !== 200) fail(`GET ${args.url} answered ${status}, expected 200`);
  const title = await page.title();
  checkConsole('while loading the page');

  if (args.screenshot) {
    fs.mkdirSync(path.dirname(path.resolve(args.screenshot)), { recursive: true });
    await page.screenshot({ path: args.screenshot, fullPage: true });
  }

  const rows = page.locator('table tbody tr');
  const count = await rows.count();
  if (count === 0) fail(`the page at ${args.url} lists no files (no table body rows)`);
  const files = [];
  const seen = new Set();
  for (let i = 0; i < count; i++) {
    const row = rows.nth(i);
    const rowText = (await row.innerText()).trim();
    const button = row.locator('a.button', { hasText: 'Download' });
    const buttons = await button.count();
    if (buttons !== 1) fail(`row ${i + 1} (${JSON.stringify(rowText)}) has ${buttons} Download buttons, expected 1`);
    const [download] = await Promise.all([page.waitForEvent('download'), button.click()]);
    const failure = await download.failure(); // waits until the download ends
    if (failure !== null) fail(`row ${i + 1} (${JSON.stringify(rowText)}): download of ${download.url()} failed: ${failure}`);
    const name = download.suggestedFilename();
    checkName(name);
    if (seen.has(name)) fail(`two downloads suggested the same file name ${JSON.stringify(name)}`);
    seen.add(name);
    const saved = path.join(outDir, name);
    await download.saveAs(saved);
    files.push({ name, path: saved, row_text: rowText, url: download.url() });
  }
  checkConsole('while downloading');
  return { title, status, headers, console: problems, files };
}

async function main() {
  const outDir = path.resolve(args.out);
  fs.mkdirSync(outDir, { recursive: true });
  if (!fs.existsSync(executablePath)) {
    fail(`no Chromium at ${executablePath}: run scripts/install-test-tools or set FERRY_CHROMIUM`);
  }
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      args: CHROMIUM_ARGS,
      acceptDownloads: true,
      timeout,
    });
    const result = await run(context, outDir);
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    if (context) await context.close().catch(() => {});
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
}

// The whole run, not only each step, has a deadline: a hung browser must not hang the test.
const deadline = setTimeout(() => {
  process.stderr.write(`recipient.mjs: gave up after ${2 * timeout} ms\n`);
  process.exit(1);
}, 2 * timeout);
deadline.unref();

try {
  await main();
  process.exitCode = 0;
} catch (err) {
  const message = err instanceof Failure ? err.message : (err?.stack ?? String(err));
  // Playwright's call logs are coloured; the test prints them into plain text.
  process.stderr.write(`recipient.mjs: ${message.replace(/\x1b\[[0-9;]*m/g, '')}\n`);
  process.exitCode = 1;
}
