#!/usr/bin/env node
// Sums the JSON reports every project's vitest run writes to test-output/vitest/ and prints one
// closing line, "tests: N passed, N failed[, N skipped]", so a CI log says plainly what ran.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../test-output/vitest');
let passed = 0;
let failed = 0;
let skipped = 0;
const perProject = [];
for (const file of existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.json')) : []) {
  const report = JSON.parse(readFileSync(path.join(dir, file), 'utf8'));
  passed += report.numPassedTests ?? 0;
  // A file that fails to load has no failed tests but a failed suite: count it too.
  failed += (report.numFailedTests ?? 0) || (report.numFailedTestSuites ?? 0);
  skipped += (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  perProject.push(`${file.replace(/\.json$/, '')}: ${report.numPassedTests ?? 0}/${report.numTotalTests ?? 0}`);
}
process.stdout.write(`per project: ${perProject.join(', ') || 'none'}\n`);
process.stdout.write(`tests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
if (passed === 0 || failed > 0) process.exit(1);
