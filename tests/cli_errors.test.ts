/**
 * The CLI's failures, run as a user would run the commands: each is one line `gibbs: …` on
 * standard error naming what failed, exit code 2 for a usage mistake and 1 for a runtime
 * failure, and no stack trace unless `--log-level debug`; nothing is printed as started before
 * the arguments are known to be good.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Router, Worker } from "../mod.ts";
import { Cleanup, cli, MODELS_PATH, portOf, stderrLines, withTimeout } from "./_helpers.ts";

/** Runs `gibbs ARGS`, expects exit `code` and one stderr line matching `re`; returns it. */
async function fails(args: string[], code: number, re: RegExp): Promise<string> {
  const p = cli(args);
  try {
    const exit = await withTimeout(p.exited, 30_000, `gibbs ${args.join(" ")}`);
    const what = `gibbs ${args.join(" ")}: exit ${exit.code}; stderr:\n${p.stderr}`;
    assert.equal(exit.code, code, what);
    const lines = stderrLines(p);
    assert.equal(lines.length, 1, `one line: ${what}`);
    assert.match(lines[0], /^gibbs: /, what);
    assert.match(lines[0], re, what);
    assert.doesNotMatch(p.stderr, /Uncaught|^\s+at /m, `no stack: ${what}`);
    assert.equal(p.lines.length, 0, `nothing on stdout: ${p.lines.join("\n")}`);
    return lines[0];
  } finally {
    await p.dispose();
  }
}

describe("CLI errors", () => {
  test("usage mistakes: one line naming the flag, exit 2", { timeout: 60_000 }, async () => {
    const cases: [string[], RegExp][] = [
      [["frobnicate"], /unknown command "frobnicate"/],
      [["hub"], /--http PORT is required/],
      [["hub", "--http"], /--http/],
      [["hub", "--frob", "1"], /unknown option --frob/],
      [["hub", "--http", "70000"], /--http must be a port number from 0 to 65535, got 70000/],
      [["hub", "--http", "0", "--port", "99999"], /--port must be a port number/],
      [["hub", "--http", "0", "--resp-buffer", "0"], /--resp-buffer must be an integer >= 1/],
      [["hub", "--http", "0", "--heartbeat", "0"], /--heartbeat must be > 0/],
      [["hub", "--http", "0", "--max-body", "lots"], /--max-body must be a size/],
      [["hub", "--http", "0", "--endpoint", "udp://x:1"], /--endpoint: .*unsupported transport/],
      [["hub", "--http", "0", "--log-level", "loud"], /--log-level must be one of debug/],
      [["hub", "--http", "0", "--log-format", "xml"], /--log-format must be text or json/],
      [["demo", "--workers", "0"], /--workers must be an integer >= 1/],
      [["demo", "stray"], /stray/],
      [["worker"], /expected one MODULE/],
      [["worker", MODELS_PATH, "--args", "{not json"], /--args is not valid JSON/],
      [["worker", MODELS_PATH, "--args", '{"a": 1}'], /--args has the wrong shape/],
      [["worker", MODELS_PATH, "--export", "nope"], /has no export "nope" \(its exports: /],
      [["worker", MODELS_PATH, "--port", "abc"], /--port must be a number, got "abc"/],
      [["worker", MODELS_PATH, "--port", "99999"], /--port must be a port number/],
      [["worker", MODELS_PATH, "--reset-after", "0"], /--reset-after must be an integer >= 1/],
      [["worker", MODELS_PATH, "--endpoint", "tcp://nohost"], /--endpoint: .*HOST:PORT/],
      [["worker", MODELS_PATH, "--parent", "0"], /--parent must be an integer >= 1/],
      [["worker", "./no/such/model.ts"], /cannot import \.\/no\/such\/model\.ts: /],
    ];
    for (const [args, re] of cases) await fails(args, 2, re);
  });

  test(
    "a module that fails to load or to start: one line naming it, exit 1",
    { timeout: 60_000 },
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "gibbs_cli_errors_"));
      try {
        const file = (name: string, text: string) => {
          writeFileSync(join(dir, name), text);
          return join(dir, name);
        };
        const throws = file("throws.mjs", 'throw new Error("broken at import");\n');
        const syntax = file("syntax.mjs", "export default function (x) { return x +; }\n");
        const number = file("number.mjs", "export default 42;\n");
        await fails(["worker", throws], 1, /cannot import .*throws\.mjs: .*broken at import/);
        // Deno reports a syntax error as a module it cannot load (exit 2), Node as a failure (1).
        const p = cli(["worker", syntax]);
        try {
          const exit = await withTimeout(p.exited, 30_000, "syntax error");
          assert.ok(exit.code === 1 || exit.code === 2, `exit ${exit.code}`);
          assert.equal(stderrLines(p).length, 1, p.stderr);
          assert.match(p.stderr, /^gibbs: cannot import .*syntax\.mjs: .*(Syntax|Unexpected)/);
        } finally {
          await p.dispose();
        }
        await fails(["worker", number], 2, /export "default" is a number, not a function/);
        const line = await fails(
          ["worker", MODELS_PATH, "--export", "CtorFail"],
          1,
          /models\.(ts|js) \(CtorFail\) failed to start: Error: CtorFail: simulated crash/,
        );
        assert.match(line, /\(at file:\/\/.*models\.(ts|js):\d+:\d+\)$/, "where it threw");
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  test(
    "ports in use: one line naming the address and the flag, exit 1",
    { timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const router = new Router();
        c.add(() => router.close());
        const zmqPort = portOf(await router.bind("tcp://127.0.0.1:0"));
        const server = createServer();
        c.add(() => new Promise((resolve) => server.close(resolve)));
        await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
        const httpPort = (server.address() as { port: number }).port;
        await fails(
          ["hub", "--http", "0", "--host", "127.0.0.1", "--port", String(zmqPort)],
          1,
          new RegExp(
            `cannot listen on tcp://127\\.0\\.0\\.1:${zmqPort} \\(workers, --port\\): ` +
              "address already in use",
          ),
        );
        await fails(
          ["hub", "--http", String(httpPort), "--port", "0"],
          1,
          new RegExp(
            `cannot listen on http://127\\.0\\.0\\.1:${httpPort} \\(the HTTP gateway, --http\\): ` +
              "address already in use",
          ),
        );
        await fails(
          ["demo", "--port", String(zmqPort)],
          1,
          /cannot listen on tcp:\/\/127\.0\.0\.1:\d+ \(the demo's hub, --port\): address already in use/,
        );
      } finally {
        await c.run();
      }
    },
  );

  test("new Worker refuses resetAfterNMiss below 1 (the CLI's --reset-after 0)", {
    timeout: 60_000,
  }, () => {
    for (const n of [0, -1, 1.5]) {
      assert.throws(
        () => new Worker((x: unknown) => x, { resetAfterNMiss: n }),
        /resetAfterNMiss must be an integer >= 1/,
      );
    }
  });

  test(
    "--log-level debug adds the stack trace after the one line",
    { timeout: 60_000 },
    async () => {
      const p = cli(["worker", MODELS_PATH, "--export", "CtorFail", "--log-level", "debug"]);
      try {
        const exit = await withTimeout(p.exited, 30_000, "CtorFail with debug");
        assert.equal(exit.code, 1, p.stderr);
        const lines = stderrLines(p);
        const at = lines.findIndex((l) => l.startsWith("gibbs: "));
        assert.ok(at >= 0, p.stderr);
        assert.match(lines[at], /failed to start/);
        assert.ok(lines.slice(at + 1).some((l) => /^\s+at .*models\.(ts|js)/.test(l)), p.stderr);
      } finally {
        await p.dispose();
      }
    },
  );
});
