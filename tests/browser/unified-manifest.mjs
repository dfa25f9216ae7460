#!/usr/bin/env node
// Validates Ferry's unified JSON manifest offline with Microsoft's own validator
// (@microsoft/app-manifest, pinned by package-lock.json) against the schema it bundles for the
// manifest's `manifestVersion` — no network: the schema comes from node_modules, not from the
// `$schema` URL.
//   node unified-manifest.mjs MANIFEST.json   → prints "ok", or every error and exits 1.
import fs from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { ManifestUtil } = require('@microsoft/app-manifest');
const manifest = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const version = manifest.manifestVersion;
const schemaPath = require.resolve(
  `@microsoft/app-manifest/build/json-schemas/teams/v${version}/MicrosoftTeams.schema.json`,
);
const schema = JSON.parse(fs.readFileSync(schemaPath, 'utf8'));
const errors = await ManifestUtil.validateManifestAgainstSchema(manifest, schema);
if (errors.length > 0) {
  process.stdout.write(`${errors.join('\n')}\n`);
  process.exit(1);
}
process.stdout.write('ok\n');
