#!/usr/bin/env node
// The recipient's pages as people see them, in headless Chromium (Debian's, driven by
// playwright-core): each page of a spec at 1280 px and 375 px wide, screenshot and checked by
// axe-core (WCAG 2.2 AA and best practice); then, with JavaScript disabled, every download
// link of the first page clicked and saved; and the first Download button reached and pressed
// with the keyboard alone.
//
//   node recipient-pages.mjs --spec SPEC.json --shots DIR [--timeout MS]
//
// SPEC: {"pages": [{"name": "normal-en", "url": "…", "accept_language": "en",
//                   "status": 200}, …], "download": "<url of a share page>"}
// Prints one JSON line: {"pages": [{"name", "width", "status", "lang", "h1", "screenshot",
// "violations": [...]}], "downloads": [{"name", "bytes"}], "keyboard": {"name", "bytes"}}.
// Exits 1 with the reason on stderr when a page's status differs, axe-core finds a violation,
// a console error appears, or a download fails.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const WIDTHS = [1280, 375];

const args = parseArgs({
  options: {
    spec: { type: 'string' },
    shots: { type: 'string' },
    timeout: { type: 'string', default: '60000' },
  },
  strict: true,
}).values;
for (const required of ['spec', 'shots']) {
  if (!args[required]) {
    process.stderr.write(`recipient-pages.mjs: missing --${required}\n`);
    process.exit(2);
  }
}
const spec = JSON.parse(fs.readFileSync(args.spec, 'utf8'));
const timeout = Number(args.timeout);
fs.mkdirSync(args.shots, { recursive: true });

class Failure extends Error {}
const fail = (message) => {
  throw new Failure(message);
};

async function checkPage(browser, entry, width) {
  const context = await browser.newContext({
    viewport: { width, height: 900 },
    extraHTTPHeaders: { 'Accept-Language': entry.accept_language },
  });
  try {
    const page = await context.newPage();
    page.setDefaultTimeout(timeout);
    const errors = [];
    page.on('console', (msg) => msg.type() === 'error' && errors.push(msg.text()));
    page.on('pageerror', (err) => errors.push(String(err)));
    const response = await page.goto(entry.url, { waitUntil: 'load' });
    const status = response ? response.status() : 0;
    if (status !== entry.status) fail(`${entry.name}: ${entry.url} answered ${status}, expected ${entry.status}`);
    const screenshot = path.join(args.shots, `recipient-${entry.name}-${width}.png`);
    await page.screenshot({ path: screenshot, fullPage: true });
    await page.evaluate(AXE);
    const result = await page.evaluate(() =>
      window.axe.run(document, {
        runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] },
      }),
    );
    const violations = result.violations.map(
      (v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join('; ')}`,
    );
    if (violations.length > 0) fail(`axe-core, ${entry.name} at ${width} px:\n${violations.join('\n')}`);
    // Nothing may be wider than the viewport (a phone must not scroll sideways).
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 0) fail(`${entry.name} at ${width} px is ${overflow} px wider than the screen`);
    // The browser reports a page answered with 404 or 410 as a failed load; that is the page.
    const expected = `Failed to load resource: the server responded with a status of ${entry.status} `;
    const real = errors.filter((e) => !e.startsWith(expected));
    if (real.length > 0) fail(`${entry.name}: console errors: ${real.join('; ')}`);
    return {
      name: entry.name,
      width,
      status,
      lang: await page.getAttribute('html', 'lang'),
      h1: (await page.locator('h1').innerText()).trim(),
      screenshot,
      violations,
    };
  } finally {
    await context.close();
  }
}

async function save(download, dir) {
  const failure = await download.failure();
  if (failure !== null) fail(`download of ${download.url()} failed: ${failure}`);
  const name = download.suggestedFilename();
  const saved = path.join(dir, name);
  await download.saveAs(saved);
  return { name, bytes: fs.statSync(saved).size };
}

// JavaScript off: every link with `download` on the page still gives its file.
async function downloadsWithoutJavaScript(browser, url, dir) {
  const context = await browser.newContext({ javaScriptEnabled: false, acceptDownloads: true });
  try {
    const page = await context.newPage();
    page.setDefaultTimeout(timeout);
    await page.goto(url, { waitUntil: 'load' });
    const links = page.locator('a[download]');
    const count = await links.count();
    if (count === 0) fail(`${url}: no download links`);
    const saved = [];
    for (let i = 0; i < count; i++) {
      const [download] = await Promise.all([page.waitForEvent('download'), links.nth(i).click()]);
      saved.push(await save(download, dir));
    }
    return saved;
  } finally {
    await context.close();
  }
}

// Keyboard only: Tab to the first Download button and press Enter.
async function keyboardDownload(browser, url, dir) {
  const context = await browser.newContext({ acceptDownloads: true });
  try {
    const page = await context.newPage();
    page.setDefaultTimeout(timeout);
    await page.goto(url, { waitUntil: 'load' });
    for (let i = 0; i < 40; i++) {
      await page.keyboard.press('Tab');
      const onButton = await page.evaluate(() => document.activeElement?.matches('tbody a.button') ?? false);
      if (onButton) {
        const [download] = await Promise.all([page.waitForEvent('download'), page.keyboard.press('Enter')]);
        return await save(download, dir);
      }
    }
    fail('Tab never reached a Download button');
  } finally {
    await context.close();
  }
}

async function main() {
  const executablePath = process.env.FERRY_CHROMIUM || '/usr/bin/chromium';
  const browser = await chromium.launch({
    executablePath,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-recipient-'));
  try {
    const pages = [];
    for (const entry of spec.pages) {
      for (const width of WIDTHS) pages.push(await checkPage(browser, entry, width));
    }
    const downloads = await downloadsWithoutJavaScript(browser, spec.download, path.join(dir));
    const keyDir = fs.mkdtempSync(path.join(dir, 'keyboard-'));
    const keyboard = await keyboardDownload(browser, spec.download, keyDir);
    process.stdout.write(`${JSON.stringify({ pages, downloads, keyboard })}\n`);
  } finally {
    await browser.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const deadline = setTimeout(() => {
  process.stderr.write('recipient-pages.mjs: the whole run took too long\n');
  process.exit(1);
}, timeout * 10);
main()
  .then(() => clearTimeout(deadline))
  .catch((err) => {
    clearTimeout(deadline);
    process.stderr.write(`recipient-pages.mjs: ${err instanceof Failure ? err.message : err.stack}\n`);
    process.exit(1);
  });
