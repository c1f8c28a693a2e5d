/**
 * A new machine's first commands: Deno's first run (a fresh `DENO_DIR`, so every npm package is
 * downloaded) prints no warning, and the npm package built from the sources installs as a
 * folder (`npm install path/to/npm`, which npm links rather than copies) into a new project
 * whose imports, `require()` and `npx gibbs` then work, with no `npm install` inside the folder
 * first. Both build or download with Deno, so they run under `deno test` only; the Node suite
 * runs from an installed package already.
 */

import { describe } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { MOD_PATH, ROOT, testDeno } from "./_helpers.ts";

// These build and download with Deno: run by deno test, not registered under Node.

/** Runs a command to its end (bounded); returns its exit code and output. */
function run(
  command: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; timeout?: number } = {},
) {
  const r = spawnSync(command, args, {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, ...options.env },
    encoding: "utf8",
    timeout: options.timeout ?? 120_000,
  });
  const what = `${command} ${
    args.join(" ")
  }: exit ${r.status}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
  return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "", what };
}

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

describe("first run", () => {
  testDeno("Deno with an empty DENO_DIR: downloads, and not one warning", {
    timeout: 300_000,
  }, () => {
    const denoDir = mkdtempSync(join(tmpdir(), "gibbs_deno_dir_"));
    try {
      const r = run(process.execPath, ["run", "-A", MOD_PATH, "--help"], {
        env: { DENO_DIR: denoDir, NO_COLOR: "1" },
      });
      assert.equal(r.status, 0, r.what);
      assert.match(r.stdout, /^gibbs — scale a model/, r.what);
      const lines = r.stderr.replace(ANSI, "").split("\n").filter((l) => l.trim() !== "");
      assert.ok(lines.length > 0, `a fresh DENO_DIR downloads the packages: ${r.what}`);
      for (const line of lines) assert.match(line, /^Download https?:\/\/\S+$/, r.what);
    } finally {
      rmSync(denoDir, { recursive: true, force: true });
    }
  });

  testDeno("npm install of the built folder into a new project: import, require, npx gibbs", {
    timeout: 300_000,
  }, () => {
    const work = mkdtempSync(join(tmpdir(), "gibbs_folder_install_"));
    try {
      const pkg = join(work, "npm");
      const build = run(process.execPath, [
        "run",
        "-A",
        join(ROOT, "scripts/build_npm.ts"),
        "--out",
        pkg,
      ], { timeout: 300_000 });
      assert.equal(build.status, 0, build.what);
      assert.doesNotMatch(build.stdout + build.stderr, /type error|warning/i, build.what);
      assert.ok(!existsSync(join(pkg, "package-lock.json")), "no npm install ran in the folder");

      const app = join(work, "app");
      run("mkdir", ["-p", app]);
      writeFileSync(join(app, "package.json"), '{ "name": "app", "private": true }\n');
      const install = run("npm", ["install", "--no-audit", "--no-fund", pkg], { cwd: app });
      assert.equal(install.status, 0, install.what);

      writeFileSync(
        join(app, "round_trip.mjs"),
        `import { Hub, Worker } from "gibbs-zmq";
const hub = new Hub({ endpoint: "tcp://127.0.0.1:0", logger: () => {} });
const worker = new Worker((x) => x * 2, { endpoint: await hub.ready, logger: () => {} });
const done = worker.run();
console.log(await hub.requestWith({ args: [21], timeout: 10 }));
worker.stop();
await done;
await hub.close();
`,
      );
      const esm = run("node", ["round_trip.mjs"], { cwd: app, timeout: 30_000 });
      assert.equal(esm.status, 0, esm.what);
      assert.equal(esm.stdout, "42\n", esm.what);
      assert.equal(esm.stderr, "", esm.what);

      const cjs = run("node", ["-e", 'console.log(typeof require("gibbs-zmq").Hub)'], {
        cwd: app,
      });
      assert.equal(cjs.status, 0, cjs.what);
      assert.equal(cjs.stdout, "function\n", cjs.what);

      const bin = run("npx", ["--no-install", "gibbs", "--help"], { cwd: app });
      assert.equal(bin.status, 0, bin.what);
      assert.match(bin.stdout, /^gibbs — scale a model/, bin.what);
      assert.equal(bin.stderr, "", bin.what);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
