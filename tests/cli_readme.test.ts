/**
 * The README, taken literally: the demo prints what its sample shows, and the Quick start's
 * commands, run in order in a fresh copy of the repository with `npx -y deno@2` as written,
 * print what the README says they print. Only the port changes (a free one instead of 5019, so
 * that parallel runs on one machine do not meet).
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import {
  Cleanup,
  cli,
  freePort,
  Proc,
  ROOT,
  stderrLines,
  testDeno,
  waitStderr,
  withTimeout,
} from "./_helpers.ts";

const README = readFileSync(join(ROOT, "README.md"), "utf8");

/** A fenced block of the README: its language (maybe "") and its text. */
interface Block {
  lang: string;
  text: string;
}

/** The fenced blocks between heading `from` and the next heading of the same level. */
function blocks(from: string): Block[] {
  const start = README.indexOf(from);
  assert.ok(start >= 0, `the README has "${from}"`);
  const next = README.indexOf("\n## ", start + from.length);
  const section = README.slice(start, next < 0 ? undefined : next);
  return [...section.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({
    lang: m[1],
    text: m[2],
  }));
}

/** A regex for a sample line: its numbers may differ, the rest must be exact. */
function shape(line: string): RegExp {
  const escaped = line.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`^${escaped.replace(/\d+(\\\.\d+)?/g, "\\d+(?:\\.\\d+)?")}$`);
}

describe("README", () => {
  test("the demo prints what the README's sample shows", { timeout: 120_000 }, async () => {
    const sampleAt = README.indexOf("The demo prints something like:");
    assert.ok(sampleAt >= 0);
    const sample = /```\n([\s\S]*?)```/.exec(README.slice(sampleAt))![1].trimEnd().split("\n");
    const p = cli(["demo", "--workers", "2", "--requests", "4", "--seconds", "0.05"]);
    try {
      const exit = await withTimeout(p.exited, 60_000, "the demo");
      assert.equal(exit.code, 0, p.stderr);
      assert.equal(p.lines.length, sample.length, `lines:\n${p.lines.join("\n")}`);
      for (const [i, line] of p.lines.entries()) assert.match(line, shape(sample[i]));
      assert.equal(p.stderr, "", "nothing on standard error");
    } finally {
      await p.dispose();
    }
  });

  // The Quick start runs mod.ts with Deno (npx -y deno@2): not registered under Node.
  testDeno(
    "the Quick start, command by command, in a fresh copy of the repository",
    { timeout: 120_000 },
    async () => {
      const c = new Cleanup();
      const dir = mkdtempSync(join(tmpdir(), "gibbs_readme_"));
      c.add(() => rmSync(dir, { recursive: true, force: true }));
      try {
        for (const name of ["mod.ts", "src", "deno.json", "deno.lock", "LICENSE"]) {
          cpSync(join(ROOT, name), join(dir, name), { recursive: true });
        }
        const port = String(await freePort());
        const literal = (text: string) => text.replaceAll("5019", port);
        const all = blocks("## Quick start");
        const take = (test: (b: Block) => boolean, what: string) => {
          const at = all.findIndex(test);
          assert.ok(at >= 0, `the Quick start has ${what}`);
          const [found] = all.splice(at, 1);
          return { block: found, output: all[at]?.lang === "" ? all.splice(at, 1)[0] : undefined };
        };
        /**
         * Runs a README command as a shell would, in a session of its own (setsid), so that
         * npx's children can be ended with it: npx does not pass signals on.
         */
        const run = (command: string) => {
          const p = new Proc("setsid", ["sh", "-c", literal(command)], { cwd: dir });
          c.add(async () => {
            try {
              process.kill(-p.pid, "SIGKILL");
            } catch {
              // gone
            }
            await p.dispose();
          });
          return p;
        };
        for (const file of ["model.ts", "app.ts", "spawn_app.ts"]) {
          const { block } = take((b) => b.lang === "ts" && b.text.startsWith(`// ${file}\n`), file);
          writeFileSync(join(dir, file), literal(block.text));
        }

        const workerCmd = take(
          (b) => b.lang === "sh" && b.text.includes("worker ./model.ts"),
          "a worker command",
        );
        const worker = run(workerCmd.block.text.trim());
        assert.ok(workerCmd.output, "the worker's output is shown");
        const expected = literal(workerCmd.output!.text).trimEnd().split("\n").map((line) =>
          new RegExp(
            "^" +
              line.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/[0-9a-f]{32}/, "[0-9a-f]{32}") +
              "$",
          )
        );
        await waitStderr(worker, expected.at(-1)!, 60_000, "the worker's last sample line");
        const lines = stderrLines(worker);
        assert.deepEqual(
          lines.map((l) => expected.findIndex((re) => re.test(l))),
          expected.map((_, i) => i),
          `the worker prints the sample's lines:\n${worker.stderr}`,
        );

        for (const file of ["app.ts", "spawn_app.ts"]) {
          const { block, output } = take(
            (b) => b.lang === "sh" && b.text.includes(`run -A ${file}`),
            `the command running ${file}`,
          );
          assert.ok(output, `the output of ${file} is shown`);
          const app = run(block.text.trim());
          const exit = await withTimeout(app.exited, 60_000, file);
          assert.equal(exit.code, 0, `${file}: ${app.stderr}`);
          assert.deepEqual(app.lines, output!.text.trimEnd().split("\n"), `${file} prints`);
          assert.equal(app.stderr, "", `${file}: nothing on standard error`);
        }
      } finally {
        await c.run();
      }
    },
  );
});
