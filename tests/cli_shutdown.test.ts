/**
 * Shutdowns as a user meets them, with signals sent to a pid (never a process group): the hub
 * exits within a second of one SIGTERM or SIGINT with requests pending, whose HTTP callers get
 * 503; an app that started workers with spawnWorkers takes them along however it ends (signal,
 * exit, uncaught error, SIGKILL); a worker whose parent is gone stops by itself; a second
 * Ctrl-C makes a busy worker quit; a worker says why it cannot reach its hub, once.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import {
  Cleanup,
  cli,
  EXT,
  MODELS_PATH,
  Proc,
  processAlive,
  PYTHON,
  pyzmqMissing,
  script,
  settle,
  signalPid,
  startHub,
  stderrLines,
  waitFor,
  waitStderr,
  withTimeout,
} from "./_helpers.ts";

const pythonSkip = pyzmqMissing();

const SPAWN_APP = fileURLToPath(new URL(`./fixtures/spawn_app${EXT}`, import.meta.url));

/** A Python CURVE server (pyzmq ROUTER) on a free port; prints `{"port": N}` then serves. */
const CURVE_SERVER = `
import json, sys, zmq
ctx = zmq.Context()
s = ctx.socket(zmq.ROUTER)
public, secret = zmq.curve_keypair()
s.curve_server = True
s.curve_secretkey = secret
s.curve_publickey = public
port = s.bind_to_random_port("tcp://127.0.0.1")
print(json.dumps({"port": port}), flush=True)
sys.stdin.read()
`;

/** The pids of a process's children, from Linux's /proc. */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) children.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return children;
}

describe("hub shutdown", () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    test(`one ${signal} with requests pending: 503 to their callers, exit 0 within a second`, {
      timeout: 60_000,
    }, async () => {
      const c = new Cleanup();
      try {
        const hub = cli(["hub", "--http", "0", "--port", "0"]);
        c.add(() => hub.dispose());
        const line = await waitStderr(hub, /HTTP gateway on/, 20_000, "the hub's address line");
        const base = /HTTP gateway on (http:\/\/\S+)/.exec(line)![1];
        // No worker: both requests wait, the way gibbs's do without a timeout.
        const pending = [1, 2].map((x) =>
          settle(fetch(`${base}/request`, { method: "POST", body: JSON.stringify({ args: [x] }) }))
        );
        await withTimeout(
          (async () => {
            while (
              (await (await fetch(`${base}/health`)).json() as { pending: number }).pending < 2
            ) {
              await new Promise((resolve) => setTimeout(resolve, 20));
            }
          })(),
          10_000,
          "two requests pending",
        );
        const t0 = performance.now();
        hub.kill(signal);
        const exit = await withTimeout(hub.exited, 5000, `hub exit after ${signal}`);
        const took = performance.now() - t0;
        assert.equal(exit.code, 0, hub.stderr);
        // One second of shutdown at most, plus what a loaded machine adds to a process's exit.
        assert.ok(took < 2000, `exited ${Math.round(took)} ms after ${signal}`);
        for (const result of await Promise.all(pending)) {
          assert.ok(
            result.ok,
            `the caller got an answer: ${String((result as { error?: unknown }).error)}`,
          );
          const res = result.value as Response;
          assert.equal(res.status, 503);
          assert.match((await res.json() as { error: string }).error, /Hub is closed/);
        }
        assert.match(
          hub.stderr,
          new RegExp(`${signal}, shutting down: 2 pending requests answered with HTTP 503`),
        );
      } finally {
        await c.run();
      }
    });
  }
});

describe("demo shutdown", () => {
  test(
    "SIGTERM mid-run: the demo stops its workers and its hub, exit 143",
    { timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const demo = cli(["demo", "--workers", "2", "--requests", "20", "--seconds", "1"]);
        c.add(() => demo.dispose());
        await demo.waitLine((l) => /workers connected/.test(l), 30_000, "the workers connected");
        const children = childrenOf(demo.pid);
        c.add(() => children.forEach((pid) => signalPid(pid, "SIGKILL")));
        assert.equal(children.length, 2, "the demo's two worker processes");
        demo.kill("SIGTERM");
        const exit = await withTimeout(demo.exited, 10_000, "the demo's exit");
        assert.equal(exit.code, 143, demo.stderr);
        assert.match(demo.stderr, /SIGTERM, stopping the workers/);
        await waitFor(() => !children.some(processAlive), 5000, "the demo's workers gone", 50);
      } finally {
        await c.run();
      }
    },
  );
});

describe("workers stop with the app that started them", () => {
  /** Starts the app, waits for its workers, ends it by `how`; no worker may outlive it. */
  async function endApp(mode: string, how: (app: ReturnType<typeof script>) => void) {
    const c = new Cleanup();
    try {
      const app = script(SPAWN_APP, [mode]);
      c.add(() => app.dispose());
      const { pids } = await app.waitJson((v) => Array.isArray(v.pids), 30_000, "worker pids");
      c.add(() => pids.forEach((pid: number) => signalPid(pid, "SIGKILL")));
      assert.equal(pids.length, 2);
      assert.ok(pids.every(processAlive), "workers running");
      how(app);
      await withTimeout(app.exited, 10_000, "app exit");
      await waitFor(
        () => !pids.some(processAlive),
        5000,
        `workers ${pids.join(", ")} gone after the app ended (${mode})`,
        50,
      );
    } finally {
      await c.run();
    }
  }

  test("the app killed by SIGTERM (no handler of its own)", { timeout: 60_000 }, async () => {
    await endApp("wait", (app) => app.kill("SIGTERM"));
  });

  test(
    "the app killed by SIGKILL: the workers notice their parent is gone",
    { timeout: 60_000 },
    async () => {
      await endApp("wait", (app) => app.kill("SIGKILL"));
    },
  );

  test("the app calls Deno.exit / process.exit", { timeout: 60_000 }, async () => {
    await endApp("exit", (app) => app.send("end"));
  });

  test("the app dies of an uncaught error", { timeout: 60_000 }, async () => {
    await endApp("throw", (app) => app.send("end"));
  });
});

describe("worker command", () => {
  test(
    "--parent PID: the worker stops once that process is gone",
    { timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const { hub, port } = await startHub();
        c.add(() => hub.close());
        // Not the worker's own parent: watched by its pid.
        const parent = spawn("sleep", ["60"], { stdio: "ignore" });
        c.add(() => parent.kill("SIGKILL"));
        const worker = cli([
          "worker",
          MODELS_PATH,
          "--host",
          "127.0.0.1",
          "--port",
          String(port),
          "--parent",
          String(parent.pid),
        ]);
        c.add(() => worker.dispose());
        await waitFor(() => hub.workers === 1, 20_000, "the worker joins");
        parent.kill("SIGKILL");
        const exit = await withTimeout(worker.exited, 5000, "the orphaned worker exits");
        assert.equal(exit.code, 0, worker.stderr);
        assert.match(
          worker.stderr,
          new RegExp(`parent process ${parent.pid} has exited: stopping`),
        );
      } finally {
        await c.run();
      }
    },
  );

  test(
    "a second SIGINT makes a busy worker quit at once (exit 130)",
    { timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const { hub, port } = await startHub();
        c.add(() => hub.close());
        const worker = cli([
          "worker",
          MODELS_PATH,
          "--export",
          "announced",
          "--host",
          "127.0.0.1",
          "--port",
          String(port),
        ]);
        c.add(() => worker.dispose());
        await waitFor(() => hub.workers === 1, 20_000, "the worker joins");
        const request = settle(hub.request(1, 60)); // a minute of work
        c.add(() => hub.close());
        await worker.waitJson((v) => v.started === 1, 10_000, "the worker is busy");
        worker.kill("SIGINT");
        await waitStderr(worker, /SIGINT: finishing the request in hand/, 5000);
        assert.equal(worker.child.exitCode, null, "still finishing after the first SIGINT");
        worker.kill("SIGINT");
        const exit = await withTimeout(worker.exited, 5000, "exit after the second SIGINT");
        assert.equal(exit.code, 130, worker.stderr);
        assert.match(worker.stderr, /second SIGINT: quitting without answering/);
        await hub.close();
        assert.equal((await request).ok, false);
      } finally {
        await c.run();
      }
    },
  );

  test("hub down: 'cannot reach the hub (connection refused), retrying', said once", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      // A port nobody listens on: bind one, then let it go.
      const { hub, port } = await startHub();
      await hub.close();
      const worker = cli([
        "worker",
        MODELS_PATH,
        "--host",
        "127.0.0.1",
        "--port",
        String(port),
        "--heartbeat",
        "0.2",
      ]);
      c.add(() => worker.dispose());
      await waitStderr(
        worker,
        /cannot reach the hub at .* \(connection refused\), retrying/,
        20_000,
      );
      // Ten heartbeats later: no "hub silent" resets and no repeats while it is down.
      await new Promise((resolve) => setTimeout(resolve, 2000));
      const lines = stderrLines(worker);
      assert.equal(lines.filter((l) => /cannot reach the hub/.test(l)).length, 1, worker.stderr);
      assert.ok(!lines.some((l) => /silent/.test(l)), worker.stderr);
      // The hub comes up on that port: the worker connects and says so.
      const back = await startHub({ endpoint: `tcp://127.0.0.1:${port}` });
      c.add(() => back.hub.close());
      await waitFor(() => back.hub.workers === 1, 10_000, "the worker joins the new hub");
      await waitStderr(worker, /connected to the hub at/, 5000);
      worker.kill("SIGTERM");
      assert.equal((await withTimeout(worker.exited, 5000, "worker exit")).code, 0);
      assert.match(worker.stderr, /stopped after 0 requests/);
    } finally {
      await c.run();
    }
  });

  test(
    "a CURVE hub (pyzmq): the worker says why once, and backs off",
    { skip: pythonSkip, timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const server = new Proc(PYTHON, ["-c", CURVE_SERVER]);
        c.add(() => server.dispose());
        const { port } = await server.waitJson((v) => typeof v.port === "number", 20_000);
        const worker = cli(["worker", MODELS_PATH, "--host", "127.0.0.1", "--port", String(port)]);
        c.add(() => worker.dispose());
        await waitStderr(
          worker,
          /no handshake with the hub at .*security mechanisms differ/,
          20_000,
        );
        await new Promise((resolve) => setTimeout(resolve, 3000));
        const said = stderrLines(worker).filter((l) => /no handshake/.test(l));
        assert.equal(said.length, 1, worker.stderr);
      } finally {
        await c.run();
      }
    },
  );

  test(
    "a libzmq CURVE or PLAIN client at our NULL hub: the hub logs why it refused it",
    {
      // Our listener names its mechanism only after the client's greeting arrived (libzmq hangs
      // up as soon as it reads another mechanism than its own), so the refusal always has a
      // reason to tell.
      skip: pythonSkip,
      timeout: 60_000,
    },
    async () => {
      const c = new Cleanup();
      try {
        const { hub, port, log } = await startHub();
        c.add(() => hub.close());
        for (const mechanism of ["curve", "plain"]) {
          const before = log.lines.length;
          const client = new Proc(PYTHON, [
            "-c",
            `
import time, zmq
s = zmq.Context().socket(zmq.DEALER)
if "${mechanism}" == "curve":
    public, secret = zmq.curve_keypair()
    server, _ = zmq.curve_keypair()
    s.curve_publickey, s.curve_secretkey, s.curve_serverkey = public, secret, server
else:
    s.plain_username, s.plain_password = b"user", b"secret"
s.connect("tcp://127.0.0.1:${port}")
time.sleep(30)
`,
          ]);
          try {
            await waitFor(
              () => log.lines.slice(before).some((l) => /refused peer .*mechanisms differ/.test(l)),
              20_000,
              `the hub says why it refused a ${mechanism} client: ${log.lines.join("\n")}`,
            );
          } finally {
            await client.dispose();
          }
        }
        assert.ok(!log.has("dropped peer"), `each refusal said once: ${log.lines.join("\n")}`);
      } finally {
        await c.run();
      }
    },
  );
});
