'use strict';
// Which declaration files TypeScript reads for each entry point, as a
// TypeScript project set up for Node ("module": "nodenext", tsc --strict)
// resolves them through package.json's "exports": an ES module importer of
// 'spanguard' and 'spanguard/otel' must get declarations that describe an
// ES module (index.mjs, otel.mjs), a CommonJS one those of index.js and
// otel.js. One "types" for both (the CommonJS index.d.ts) typed the ES
// entry as CommonJS: what TypeScript's docs on dual packages warn against
// ("each entrypoint needs its own declaration file").
const { test } = require('node:test');
const assert = require('node:assert');
const { execFileSync } = require('child_process');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');
const TSC = path.join(ROOT, 'node_modules', '.bin', 'tsc');

/**
 * tsc --explainFiles on `files` (relative to the package): each file of the
 * program read, with the lines explaining it (who imported it, and under
 * which module format), by file name.
 */
function explainedFiles(files) {
  let out;
  try {
    out = execFileSync(TSC, ['--strict', '--module', 'nodenext', '--target', 'es2022', '--noEmit', '--types', '',
      '--explainFiles', ...files], { cwd: ROOT, encoding: 'utf8' });
  } catch (err) {
    assert.fail(`tsc failed:\n${err.stdout}${err.stderr}`);
  }
  const explained = new Map();
  let current = null;
  for (const line of out.split('\n')) {
    if (line === '') continue;
    if (!line.startsWith(' ')) {
      current = [];
      explained.set(line.trim(), current);
    } else if (current) current.push(line.trim());
  }
  return explained;
}

/** The declaration file tsc read for `specifier` imported from `importer`, and whether it read it as CommonJS. */
function resolvedFor(explained, specifier, importer) {
  const via = `Imported via '${specifier}' from file '${importer}'`;
  const found = [...explained].filter(([file, why]) => !file.includes('node_modules')
    && why.some((l) => l.startsWith(via)));
  assert.strictEqual(found.length, 1, `one file for ${specifier} from ${importer}: ${found.map(([f]) => f)}`);
  const [file, why] = found[0];
  return { file, commonJS: why.some((l) => l.startsWith('File is CommonJS module')) };
}

test('an ES module importer gets ES module declarations, a CommonJS one CommonJS ones (tsc --module nodenext)', () => {
  const esm = 'test/types/what_compiles.mts';
  const cjs = 'test/types/what_compiles.cts';
  const explained = explainedFiles([esm, cjs]);
  assert.deepStrictEqual(resolvedFor(explained, 'spanguard', esm), { file: 'index.d.mts', commonJS: false });
  assert.deepStrictEqual(resolvedFor(explained, 'spanguard/otel', esm), { file: 'otel.d.mts', commonJS: false });
  assert.deepStrictEqual(resolvedFor(explained, 'spanguard', cjs), { file: 'index.d.ts', commonJS: true });
  assert.deepStrictEqual(resolvedFor(explained, 'spanguard/otel', cjs), { file: 'otel.d.ts', commonJS: true });
});
