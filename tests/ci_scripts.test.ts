/**
 * The checks `.ci/run` relies on: the test setup fails under `CI=true` when a peer is missing,
 * the junit summary counts one per test (not per `describe`) and fails a CI run that skipped
 * tests, and the timeout check finds a test without one. They are Deno scripts: under Node (the
 * npm build's suite) these tests are not registered.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { isDeno, Proc, ROOT, withTimeout } from "./_helpers.ts";

/** Runs `deno run -A scripts/NAME args` with extra environment; resolves with its outcome. */
async function script(
  name: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; out: string }> {
  const p = new Proc(process.execPath, ["run", "-A", `${ROOT}scripts/${name}`, ...args], { env });
  const { code } = await withTimeout(p.exited, 60_000, `scripts/${name}`);
  return { code, out: `${p.lines.join("\n")}\n${p.stderr}` };
}

/** A Deno junit report: a test, a describe with a skipped and a passing test, a skipped describe. */
const JUNIT = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="deno test" tests="6" failures="1" errors="0" time="1.014">
    <testsuite name="./a.test.ts" tests="4" disabled="1" errors="0" failures="1">
        <testcase name="hangs" classname="./a.test.ts" time="0.505" line="2" col="1">
            <failure message="Uncaught Error: test timed out after 500ms">Error</failure>
        </testcase>
        <testcase name="group &gt; of two" classname="./a.test.ts" time="0.000" line="4" col="1">
            <skipped/>
        </testcase>
        <testcase name="group2" classname="./a.test.ts" time="0.001" line="8" col="1">
        </testcase>
    </testsuite>
    <testsuite name="ext:deno_node/testing.ts" tests="2" disabled="1" errors="0" failures="0">
        <testcase name="group2 &gt; t3" classname="ext:deno_node/testing.ts" time="0.000" line="1" col="2">
            <skipped/>
        </testcase>
        <testcase name="group2 &gt; t4" classname="ext:deno_node/testing.ts" time="0.000" line="1" col="3">
        </testcase>
    </testsuite>
</testsuites>
`;

if (isDeno) {
  describe("CI scripts", () => {
    test(
      "test setup: with CI=true a missing pyzmq fails, naming it; without CI it only warns",
      { timeout: 120_000 },
      async () => {
        const missing = { GIBBS_TEST_PYTHON: "/bin/false" };
        const ci = await script("test_setup.ts", [], { ...missing, CI: "true" });
        assert.equal(ci.code, 1, ci.out);
        assert.match(ci.out, /CI=true and an interop peer is missing/);
        assert.match(ci.out, /pyzmq: \/bin\/false cannot import zmq and msgpack/);
        const dev = await script("test_setup.ts", [], { ...missing, CI: "false" });
        assert.equal(dev.code, 0, dev.out);
        assert.match(dev.out, /will be skipped:\n\s+- pyzmq/);
      },
    );

    test(
      "junit summary: one per test, not per describe; skips fail it with --fail-on-skip",
      { timeout: 60_000 },
      async () => {
        const dir = mkdtempSync(join(tmpdir(), "gibbs-junit-"));
        try {
          const path = join(dir, "junit.xml");
          writeFileSync(path, JUNIT);
          const dev = await script("junit_summary.ts", [path]);
          assert.equal(dev.code, 0, dev.out);
          assert.match(dev.out, /^junit: 1 passed, 1 failed, 2 skipped$/m);
          assert.match(dev.out, /failed tests:\n {2}- \.\/a\.test\.ts: hangs/);
          assert.match(dev.out, /- \.\/a\.test\.ts: group2 > t3/, "a step is listed with its file");
          const ci = await script("junit_summary.ts", [path, "--fail-on-skip"]);
          assert.equal(ci.code, 2, ci.out);
          assert.match(ci.out, /CI=true: 2 skipped tests fail the run/);
          const none = await script("junit_summary.ts", [join(dir, "missing.xml")]);
          assert.equal(none.code, 1, none.out);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    );

    test(
      "timeout check: finds the tests without a timeout option",
      { timeout: 60_000 },
      async () => {
        const dir = mkdtempSync(join(tmpdir(), "gibbs-timeouts-"));
        try {
          const path = join(dir, "x.test.ts");
          writeFileSync(
            path,
            [
              `test("timed", { timeout: 5 }, () => {});`,
              `test("untimed", () => {});`,
              `describe("d", () => { it("skipped only", { skip: "why" }, () => {}); });`,
            ].join("\n"),
          );
          const r = await script("check_test_timeouts.ts", [path]);
          assert.equal(r.code, 1, r.out);
          assert.match(r.out, /x\.test\.ts:2: "untimed"/);
          assert.match(r.out, /x\.test\.ts:3: "skipped only"/);
          assert.doesNotMatch(r.out, /"timed"/);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    );
  });
}
