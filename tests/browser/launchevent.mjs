#!/usr/bin/env node
// Ferry's OnMessageSend handler (addin/pane/launchevent.js) under Node, with a stand-in for
// the Office object it uses, as Outlook's JavaScript-only runtime would run it:
//   node launchevent.mjs ADDIN_PANE_DIR
// A draft with unfinished files is held (allowEvent false, a message in the display
// language naming the files, the button that opens the pane); a draft with none, without
// sessionData, or with unreadable session data is let go. Each answer comes within 1 s and
// without any network use. Prints "ok" and exits 0, or the failure and exits 1.
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import assert from 'node:assert/strict';

const dir = process.argv[2];
const source = fs.readFileSync(path.join(dir, 'launchevent.js'), 'utf8');

function run({ language = 'en-US', session, withSessionData = true }) {
  return new Promise((resolve, reject) => {
    let associated = null;
    const Office = {
      AsyncResultStatus: { Succeeded: 'succeeded', Failed: 'failed' },
      actions: { associate: (name, fn) => { associated = { name, fn }; } },
      context: {
        displayLanguage: language,
        mailbox: {
          item: {
            sessionData: withSessionData
              ? {
                  getAsync: (key, callback) =>
                    setTimeout(() => callback(session === undefined
                      ? { status: 'failed', error: { code: 9057 } }
                      : { status: 'succeeded', value: session[key] }), 0),
                }
              : undefined,
          },
        },
      },
    };
    const sandbox = { Office, setTimeout, fetch: () => reject(new Error('the handler used the network')) };
    sandbox.globalThis = sandbox;
    vm.createContext(sandbox);
    vm.runInContext(source, sandbox);
    assert.equal(associated?.name, 'onMessageSendHandler', 'the handler is associated by name');
    const started = Date.now();
    const timer = setTimeout(() => reject(new Error('no answer within 1 s')), 1000);
    associated.fn({
      completed: (options) => {
        clearTimeout(timer);
        resolve({ options, ms: Date.now() - started, messages: sandbox.FerryLaunchMessages });
      },
    });
  });
}

const unfinished = JSON.stringify({ unfinished: [{ name: 'scan.pdf', size: 10, sent: 5 }] });
const held = await run({ session: { ferry: unfinished } });
assert.equal(held.options.allowEvent, false);
assert.match(held.options.errorMessage, /still uploading/);
assert.match(held.options.errorMessage, /scan\.pdf/);
assert.equal(held.options.commandId, 'Ferry.Compose.OpenPane');
assert.equal(held.options.cancelLabel, 'Open Ferry');

for (const [language, word] of [['nl-NL', 'geüpload'], ['de-DE', 'hochgeladen'], ['fr-FR', 'envoi']]) {
  const result = await run({ language, session: { ferry: unfinished } });
  assert.equal(result.options.allowEvent, false, language);
  assert.ok(result.options.errorMessage.includes(word), `${language}: ${result.options.errorMessage}`);
}

for (const [what, setup] of [
  ['nothing unfinished', { session: { ferry: JSON.stringify({ unfinished: [] }) } }],
  ['no session data yet', { session: undefined }],
  ['unreadable session data', { session: { ferry: '{not json' } }],
  ['no sessionData (old Outlook)', { withSessionData: false }],
]) {
  const result = await run(setup);
  assert.equal(result.options.allowEvent, true, what);
}
const languages = Object.keys(held.messages.messages).sort();
assert.deepEqual(languages, ['de', 'en', 'fr', 'nl']);
assert.deepEqual(Object.keys(held.messages.openPane).sort(), languages);
process.stdout.write('ok\n');
