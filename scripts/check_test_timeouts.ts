/**
 * Fails if a test in `tests/` has no timeout: every `test(...)` / `it(...)` call of node:test (and
 * `testDeno(...)` of the helpers) in
 * a `*.test.ts` file must pass an options object with `timeout`, so that a hung test fails by
 * itself, with its name, instead of holding the whole run (Deno's `describe` passes no timeout
 * down to its tests, and `deno test` has no default).
 *
 *   deno run -A scripts/check_test_timeouts.ts [FILE...]   # default: every tests/ *.test.ts
 *
 * @module
 */

// A build tool, as in scripts/build_npm.ts: kept out of deno.json's import map.
// deno-lint-ignore no-import-prefix
import ts from "npm:typescript@^5.7";
import { readdirSync, readFileSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../", import.meta.url));

/** `file:line: name` of each test call without a `timeout` option in `source`. */
export function untimedTests(file: string, source: string): string[] {
  const sf = ts.createSourceFile(file, source, ts.ScriptTarget.Latest, true);
  const found: string[] = [];
  const visit = (node: ts.Node) => {
    if (
      ts.isCallExpression(node) && ts.isIdentifier(node.expression) &&
      ["test", "it", "testDeno"].includes(node.expression.text) &&
      node.arguments.length >= 2
    ) {
      const timed = node.arguments.some((arg) =>
        ts.isObjectLiteralExpression(arg) &&
        arg.properties.some((p) => p.name !== undefined && p.name.getText(sf) === "timeout")
      );
      if (!timed) {
        const { line } = sf.getLineAndCharacterOfPosition(node.getStart(sf));
        found.push(`${file}:${line + 1}: ${node.arguments[0].getText(sf).slice(0, 90)}`);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

function testFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(root + dir, { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory() && entry.name !== "node_modules") out.push(...testFiles(path));
    else if (entry.name.endsWith(".test.ts")) out.push(path);
  }
  return out.sort();
}

if (import.meta.main) {
  const given = process.argv.slice(2);
  const files = given.length > 0 ? given : testFiles("tests").map((f) => root + f);
  const missing = files.flatMap((f) => untimedTests(f, readFileSync(f, "utf8")));
  if (missing.length > 0) {
    console.log(`tests without a timeout option (node:test { timeout: ms }):`);
    for (const m of missing) console.log(`  ${m}`);
    process.exit(1);
  }
  console.log(`every test in ${files.length} files has a timeout`);
}
