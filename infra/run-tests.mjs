#!/usr/bin/env node
// The whole test suite, as `npm test` runs it: vitest over test/**, then one
// plain closing line "N passed, N failed" taken from vitest's own JSON report.
// Exits with vitest's exit code.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";

const report = ".cache/test-results.json";
rmSync(report, { force: true });

const result = spawnSync(process.execPath, ["node_modules/vitest/vitest.mjs", "run", ...process.argv.slice(2)], {
  stdio: "inherit",
});

let passed = 0;
let failed = 0;
if (existsSync(report)) {
  const json = JSON.parse(readFileSync(report, "utf8"));
  passed = json.numPassedTests ?? 0;
  failed = (json.numFailedTests ?? 0) + (json.success === false && json.numFailedTests === 0 ? 1 : 0);
} else {
  // vitest died before reporting: that is a failure, not "0 failed".
  failed = 1;
}
const code = result.status ?? 1;
if (code !== 0 && failed === 0) failed = 1;
console.log(`${passed} passed, ${failed} failed`);
process.exit(code);
