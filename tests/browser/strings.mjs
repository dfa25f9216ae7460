#!/usr/bin/env node
// The task pane's catalogues (addin/pane/strings.js): every language has every key of every
// other language, none empty, with the same {placeholders}; every data-t key of
// taskpane.html and every say("…") key of taskpane.js exists.
//   node strings.mjs ADDIN_PANE_DIR   → prints "ok", or the missing keys and exits 1.
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';

const dir = process.argv[2];
const sandbox = { window: {} };
vm.createContext(sandbox);
vm.runInContext(fs.readFileSync(path.join(dir, 'strings.js'), 'utf8'), sandbox);
const catalogues = sandbox.window.FerryStrings;
const problems = [];
const languages = Object.keys(catalogues);
for (const required of ['en', 'nl', 'de', 'fr']) {
  if (!languages.includes(required)) problems.push(`no ${required} catalogue`);
}
const keys = new Set(languages.flatMap((l) => Object.keys(catalogues[l])));
const placeholders = (text) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort().join(',');
for (const key of keys) {
  for (const language of languages) {
    const text = catalogues[language][key];
    if (typeof text !== 'string' || text.trim() === '') {
      problems.push(`${language} lacks ${key}`);
    } else if (placeholders(text) !== placeholders(catalogues.en[key] ?? '')) {
      problems.push(`${language}.${key} has other placeholders than en`);
    }
  }
}
const html = fs.readFileSync(path.join(dir, 'taskpane.html'), 'utf8');
for (const [, key] of html.matchAll(/data-t="(\w+)"/g)) {
  if (!keys.has(key)) problems.push(`taskpane.html uses ${key}, which no catalogue has`);
}
const js = fs.readFileSync(path.join(dir, 'taskpane.js'), 'utf8');
for (const [, key] of js.matchAll(/(?:say|message|count)\("(\w+)"/g)) {
  if (!keys.has(key)) problems.push(`taskpane.js uses ${key}, which no catalogue has`);
}
for (const [, key] of js.matchAll(/count\("(\w+)"/g)) {
  if (!keys.has(`${key}One`)) problems.push(`taskpane.js counts ${key}, which has no singular ${key}One`);
}
if (problems.length) {
  process.stdout.write(`${problems.join('\n')}\n`);
  process.exit(1);
}
process.stdout.write('ok\n');
