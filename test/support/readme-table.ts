/**
 * A README table rendered from a table in the code: the test fails when they
 * differ, and `UPDATE_DOCS=1 npx vitest run <test>` rewrites the README's copy.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { expect } from "vitest";

export function expectReadmeTable(begin: string, end: string, rendered: string): void {
  const readme = readFileSync("README.md", "utf8");
  const start = readme.indexOf(begin);
  const stop = readme.indexOf(end);
  expect(start, `README.md lacks the marker ${begin}`).toBeGreaterThan(0);
  if (process.env.UPDATE_DOCS) writeFileSync("README.md", `${readme.slice(0, start + begin.length)}\n${rendered}\n${readme.slice(stop)}`);
  else expect(readme.slice(start + begin.length, stop).trim(), "run with UPDATE_DOCS=1 to rewrite the README's table").toBe(rendered);
}
