#!/usr/bin/env node
// Upload one file to a tus 1.0 endpoint with tus-js-client, the way a browser or Node app would.
//
//   node tus_upload.mjs --endpoint URL --key KEY --file PATH --chunk-size N [--name NAME]
//                       [--creation-with-upload]
//
// On success prints one JSON line {"url": "<upload url>"} and exits 0; on failure prints the
// error to stderr and exits 1 (2 for usage errors). As soon as the upload exists it prints
// `upload url: <url>` to stderr, so a test can watch the upload's progress on the server.
// Used by Ferry's end-to-end tests.

import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as tus from 'tus-js-client';

const USAGE =
  'usage: node tus_upload.mjs --endpoint URL --key KEY --file PATH --chunk-size N ' +
  '[--name NAME] [--creation-with-upload]';

function usage(message) {
  if (message) process.stderr.write(`tus_upload.mjs: ${message}\n`);
  process.stderr.write(`${USAGE}\n`);
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      endpoint: { type: 'string' },
      key: { type: 'string' },
      file: { type: 'string' },
      'chunk-size': { type: 'string' },
      name: { type: 'string' },
      'creation-with-upload': { type: 'boolean', default: false },
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
for (const required of ['endpoint', 'key', 'file', 'chunk-size']) {
  if (args[required] === undefined) usage(`missing --${required}`);
}
const chunkSize = Number(args['chunk-size']);
if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0) {
  usage(`--chunk-size must be a positive integer, got ${args['chunk-size']}`);
}

let size;
try {
  size = fs.statSync(args.file).size;
} catch (err) {
  process.stderr.write(`tus_upload.mjs: cannot read ${args.file}: ${err.message}\n`);
  process.exit(1);
}

// An fs.ReadStream with a path lets tus-js-client re-open the file at any offset, so retries
// after a dropped connection resume from the server's offset instead of failing.
const input = fs.createReadStream(args.file);

const upload = new tus.Upload(input, {
  endpoint: args.endpoint,
  chunkSize,
  uploadSize: size,
  // Retries cover a server restart in the middle of an upload; never retry forever.
  retryDelays: [0, 250, 500, 1000, 2000, 3000, 5000],
  uploadDataDuringCreation: args['creation-with-upload'],
  headers: { Authorization: `Bearer ${args.key}` },
  metadata: {
    filename: args.name ?? path.basename(args.file),
    filetype: 'application/octet-stream',
  },
  onUploadUrlAvailable() {
    process.stderr.write(`upload url: ${upload.url}\n`);
  },
  onError(error) {
    const detail = error?.originalResponse
      ? ` (HTTP ${error.originalResponse.getStatus()}: ${error.originalResponse.getBody()})`
      : '';
    process.stderr.write(`tus_upload.mjs: upload failed: ${error}${detail}\n`);
    process.exit(1);
  },
  onSuccess() {
    process.stdout.write(`${JSON.stringify({ url: upload.url })}\n`);
    process.exit(0);
  },
});

upload.start();
