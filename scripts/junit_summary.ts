/**
 * Counts the tests of a `deno test --junit-path` report, one per test: a `describe` with tests
 * in it is not counted itself (Deno reports it as a test case too, and a skipped `describe` as
 * one skipped case whatever it holds). Lists the failed and skipped tests.
 *
 *   deno run -A scripts/junit_summary.ts .ci/junit.xml [--fail-on-skip]
 *
 * Ends with the line `junit: N passed, N failed, N skipped`. Exits 1 if the report is missing or
 * holds no test, and with `--fail-on-skip` (what `.ci/run` passes under `CI=true`) 2 if a test
 * was skipped; otherwise 0 (failed tests are for the caller to count).
 *
 * @module
 */

import { readFileSync } from "node:fs";
import process from "node:process";

/** One test case of the report. */
export interface Case {
  /** Full name, `describe > test` for a test inside a describe. */
  name: string;
  /** The file, where the report tells (top-level cases only; steps have Deno's own). */
  file: string;
  outcome: "passed" | "failed" | "skipped";
}

const ENTITIES: Record<string, string> = {
  "&lt;": "<",
  "&gt;": ">",
  "&amp;": "&",
  "&quot;": '"',
  "&apos;": "'",
};

function unescape(text: string): string {
  return text.replace(/&(lt|gt|amp|quot|apos);/g, (e) => ENTITIES[e]);
}

/** The test cases of a Deno junit report, leaves only. */
export function leafCases(xml: string): Case[] {
  const cases: Case[] = [];
  const pattern =
    /<testcase name="([^"]*)" classname="([^"]*)"[^>]*?(\/>|>([\s\S]*?)<\/testcase>)/g;
  for (const m of xml.matchAll(pattern)) {
    const body = m[4] ?? "";
    cases.push({
      name: unescape(m[1]),
      file: unescape(m[2]),
      outcome: body.includes("<failure") || body.includes("<error")
        ? "failed"
        : body.includes("<skipped")
        ? "skipped"
        : "passed",
    });
  }
  const parents = new Set<string>();
  for (const c of cases) {
    const parts = c.name.split(" > ");
    for (let i = 1; i < parts.length; i++) parents.add(parts.slice(0, i).join(" > "));
  }
  // Steps carry Deno's own file name: give them their describe's file.
  const fileOf = new Map<string, string>();
  for (const c of cases) if (!c.name.includes(" > ")) fileOf.set(c.name, c.file);
  return cases
    .filter((c) => !parents.has(c.name))
    .map((c) => ({ ...c, file: fileOf.get(c.name.split(" > ")[0]) ?? c.file }));
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const failOnSkip = args.includes("--fail-on-skip");
  const path = args.find((a) => !a.startsWith("--")) ?? ".ci/junit.xml";
  let xml: string;
  try {
    xml = readFileSync(path, "utf8");
  } catch (error) {
    console.log(`junit: no report at ${path} (${(error as Error).message})`);
    process.exit(1);
  }
  const cases = leafCases(xml);
  const count = (o: Case["outcome"]) => cases.filter((c) => c.outcome === o);
  const [passed, failed, skipped] = [count("passed"), count("failed"), count("skipped")];
  for (const [title, list] of [["failed", failed], ["skipped", skipped]] as const) {
    if (list.length === 0) continue;
    console.log(`${title} tests:`);
    for (const c of list) console.log(`  - ${c.file}: ${c.name}`);
  }
  if (skipped.length > 0 && failOnSkip) {
    console.log(
      `CI=true: ${skipped.length} skipped tests fail the run (a missing peer is named by the ` +
        "test setup above; any other skip is a test to fix or to remove)",
    );
  }
  console.log(`junit: ${passed.length} passed, ${failed.length} failed, ${skipped.length} skipped`);
  if (cases.length === 0) process.exit(1);
  if (skipped.length > 0 && failOnSkip) process.exit(2);
}
