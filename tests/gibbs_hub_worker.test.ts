/**
 * Every scenario of Python gibbs 0.3's own test suite, in TypeScript, plus re-dispatch on
 * worker death (issue 5). In-process workers where possible; spawned worker processes where a
 * death, a stop or a replacement is needed.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  GibbsError,
  Hub,
  HubClosedError,
  QueueFullError,
  RequestEvictedError,
  RequestTimeoutError,
  Router,
  spawnWorkers,
  UserCodeError,
  Worker,
  type WorkerProcesses,
} from "../mod.ts";
import {
  Cleanup,
  cli,
  freePort,
  listener,
  MODELS_PATH,
  MODELS_URL,
  observe,
  rejectsWith,
  settle,
  signalPid,
  sleep,
  startHub,
  startWorker,
  waitFor,
  withTimeout,
} from "./_helpers.ts";
import { CtorFail, TWorker } from "./fixtures/models.ts";
import { pack, unpack } from "../src/gibbs/codec.ts";

/** Worker heartbeat in these tests; the hub's is 0.5 s unless a test says otherwise. */
const HB = 0.2;
/** Time allowed for spawned worker processes to start and connect. */
const SPAWN_MS = 20_000;

/** Spawns worker processes of a fixture export, quietly, and registers their killing. */
function spawn(
  cleanup: Cleanup,
  exportName: string,
  endpoint: string,
  count = 1,
  extra: { args?: unknown[]; kwargs?: Record<string, unknown> } = {},
): WorkerProcesses {
  const workers = spawnWorkers(MODELS_URL, {
    count,
    endpoint,
    export: exportName,
    heartbeatInterval: HB,
    inheritOutput: false,
    quiet: true,
    ...extra,
  });
  cleanup.add(() => {
    for (const p of workers.processes) signalPid(p.pid, "SIGCONT");
    return workers.kill();
  });
  return workers;
}

describe("hub and worker (gibbs 0.3 test suite)", () => {
  test("communication with args and kwargs: a class constructed with args + kwargs", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const { hub, endpoint } = await startHub();
      c.add(() => hub.close());
      const w = startWorker(TWorker, endpoint, { args: [1, 2], kwargs: { key1: 3, key2: 4 } });
      c.add(() => w.stop());
      const result = await withTimeout(
        hub.requestWith({ args: [4, 3], kwargs: { key1: 2.5, key2: 5 } }),
        5000,
        "TWorker request",
      );
      assert.deepEqual(result, { pos1: 4, pos2: 6, key1: 7.5, key2: 20 });
      // The positional form, served by a plain function.
      await w.stop();
      const fn = startWorker((a: number, b: string, c: unknown[]) => ({ a, b, c }), endpoint);
      c.add(() => fn.stop());
      assert.deepEqual(
        await withTimeout(hub.request(7, "x", [1, [2]]), 5000, "positional request"),
        { a: 7, b: "x", c: [1, [2]] },
      );
    } finally {
      await c.run();
    }
  });

  test("communication with a spawned worker process: constructor args and kwargs as JSON", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const { hub, endpoint } = await startHub();
      c.add(() => hub.close());
      spawn(c, "TWorker", endpoint, 1, { args: [1, 2], kwargs: { key1: 3, key2: 4 } });
      const result = await withTimeout(
        hub.requestWith({ args: [4, 3], kwargs: { key1: 2.5, key2: 5 } }),
        SPAWN_MS,
        "request to a spawned TWorker",
      );
      assert.deepEqual(result, { pos1: 4, pos2: 6, key1: 7.5, key2: 20 });
    } finally {
      await c.run();
    }
  });

  test("two workers compute in parallel: two 100 ms requests well under 200 ms", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const { hub, endpoint } = await startHub();
      c.add(() => hub.close());
      const opts = { args: [1, 2], kwargs: { key1: 3, key2: 4, wait: 0.1 } };
      const a = startWorker(TWorker, endpoint, opts);
      const b = startWorker(TWorker, endpoint, opts);
      c.add(() => a.stop());
      c.add(() => b.stop());
      await waitFor(() => hub.workers === 2, 5000, "2 workers");
      // The first requests open every code path (as gibbs's test does with one warm-up).
      await withTimeout(
        Promise.all([
          hub.requestWith({ args: [1, 1], kwargs: { key1: 1, key2: 1 } }),
          hub.requestWith({ args: [1, 1], kwargs: { key1: 1, key2: 1 } }),
        ]),
        5000,
        "warm-up",
      );
      let best = Infinity;
      let res: unknown[] = [];
      for (let attempt = 0; attempt < 3 && best >= 170; attempt++) {
        // Both workers are idle and fresh (pinged within the hub's heartbeat interval).
        await sleep(50);
        const t0 = performance.now();
        res = await withTimeout(
          Promise.all([
            hub.requestWith({ args: [4, 3], kwargs: { key1: 2.5, key2: 5 } }),
            hub.requestWith({ args: [3, 4], kwargs: { key1: 6, key2: 6 } }),
          ]),
          5000,
          "parallel requests",
        );
        best = Math.min(best, performance.now() - t0);
      }
      observe("two 100 ms requests on two workers", best, ">= 95, < 170");
      assert.ok(best < 170, `two 100 ms requests took ${best.toFixed(1)} ms, expected < 170`);
      assert.ok(best >= 95, `took ${best.toFixed(1)} ms: the model did not wait 100 ms`);
      assert.deepEqual(res, [
        { pos1: 4, pos2: 6, key1: 7.5, key2: 20 },
        { pos1: 3, pos2: 8, key1: 18, key2: 24 },
      ]);
      assert.ok(a.worker.served > 0 && b.worker.served > 0, "both workers served");
    } finally {
      await c.run();
    }
  });

  describe("response-buffer overflow", () => {
    test("fast: many quick sequential requests through a buffer of 2 all succeed", {
      timeout: 60_000,
    }, async () => {
      const c = new Cleanup();
      try {
        const { hub, endpoint } = await startHub({ respBufferSize: 2 });
        c.add(() => hub.close());
        const w = startWorker((x: number) => x + 1, endpoint);
        c.add(() => w.stop());
        for (let i = 0; i < 200; i++) {
          assert.equal(await withTimeout(hub.request(i), 5000, `request ${i}`), i + 1);
        }
        assert.equal(hub.stats().completed, 200);
        assert.equal(hub.stats().pending, 0);
      } finally {
        await c.run();
      }
    });

    test("slow: the oldest of too many concurrent requests fail at once with RequestEvictedError", {
      timeout: 60_000,
    }, async () => {
      const c = new Cleanup();
      try {
        const { hub, endpoint } = await startHub({ respBufferSize: 3 });
        c.add(() => hub.close());
        for (let i = 0; i < 2; i++) {
          const w = startWorker(async (x: number) => {
            await sleep(200);
            return x * 10;
          }, endpoint);
          c.add(() => w.stop());
        }
        await waitFor(() => hub.workers === 2, 5000, "2 workers");
        const t0 = performance.now();
        const outcomes = await withTimeout(
          Promise.all(Array.from({ length: 5 }, (_, i) => settle(hub.request(i)))),
          10_000,
          "5 requests",
        );
        // Requests 0 and 1 were pushed out by requests 3 and 4: they fail, and at once, before
        // any worker (200 ms per request) answered anything.
        const firstAnswer = Math.min(...outcomes.filter((o) => o.ok).map((o) => o.at));
        for (const i of [0, 1]) {
          const o = outcomes[i];
          assert.ok(!o.ok, `request ${i} should have been evicted`);
          assert.ok(o.error instanceof RequestEvictedError, `request ${i}: ${o.error}`);
          assert.ok(o.error instanceof GibbsError);
          assert.match((o.error as Error).message, /respBufferSize=3/);
          assert.ok(
            o.at < firstAnswer,
            `evicted request ${i} failed after ${(o.at - t0).toFixed(0)} ms, once a worker ` +
              `had answered (${(firstAnswer - t0).toFixed(0)} ms): not at once`,
          );
        }
        for (const i of [2, 3, 4]) {
          const o = outcomes[i];
          assert.ok(o.ok, `request ${i} failed: ${!o.ok && o.error}`);
          assert.equal(o.value, i * 10);
        }
        await waitFor(() => hub.stats().pending === 0, 2000, "nothing pending");
      } finally {
        await c.run();
      }
    });

    test(
      'overflow: "reject-new" fails the new request with QueueFullError',
      { timeout: 60_000 },
      async () => {
        const c = new Cleanup();
        try {
          const { hub, endpoint } = await startHub({ respBufferSize: 2, overflow: "reject-new" });
          c.add(() => hub.close());
          const w = startWorker(async (x: number) => {
            await sleep(100);
            return -x;
          }, endpoint);
          c.add(() => w.stop());
          const first = hub.request(1);
          const second = hub.request(2);
          const error = await rejectsWith(hub.request(3), QueueFullError, 100, "third request");
          assert.ok(error instanceof GibbsError);
          assert.deepEqual(await withTimeout(Promise.all([first, second]), 5000, "first two"), [
            -1,
            -2,
          ]);
          // Room again once they are done.
          assert.equal(await withTimeout(hub.request(4), 5000, "fourth"), -4);
        } finally {
          await c.run();
        }
      },
    );
  });

  describe("closing a hub", () => {
    test(
      "right after construction, before its receive loop ever ran",
      { timeout: 60_000 },
      async () => {
        const hub = new Hub({ endpoint: "tcp://127.0.0.1:0", logger: () => {} });
        await withTimeout(hub.close(), 2000, "close");
        await withTimeout(hub.close(), 2000, "second close");
        await rejectsWith(hub.request(1), HubClosedError, 500, "request after close");
      },
    );

    test("with a started receive loop: pending requests fail with HubClosedError", {
      timeout: 60_000,
    }, async () => {
      const c = new Cleanup();
      try {
        const { hub, endpoint } = await startHub();
        c.add(() => hub.close());
        const w = startWorker(async (x: number) => {
          await sleep(x);
          return x;
        }, endpoint);
        c.add(() => w.stop());
        assert.equal(await withTimeout(hub.request(1), 5000, "served request"), 1);
        const held = hub.request(800); // a worker computes it
        const waiting = hub.request(800); // waits for a worker
        await waitFor(() => hub.stats().busy === 1, 2000, "one request computing");
        const closing = hub.close();
        await rejectsWith(held, HubClosedError, 1000, "request held by a worker");
        await rejectsWith(waiting, HubClosedError, 1000, "queued request");
        await withTimeout(closing, 2000, "close");
        await rejectsWith(hub.request(1), HubClosedError, 500, "request after close");
        await rejectsWith(
          hub.requestWith({ args: [1], timeout: 1 }),
          HubClosedError,
          500,
          "requestWith after close",
        );
      } finally {
        await c.run();
      }
    });

    test("with one worker computing and another idle: close() resolves, the request fails", {
      timeout: 60_000,
    }, async () => {
      const c = new Cleanup();
      try {
        const { hub, endpoint } = await startHub();
        c.add(() => hub.close().catch(() => {}));
        for (let i = 0; i < 2; i++) {
          const w = startWorker(async (ms: number) => {
            await sleep(ms);
            return ms;
          }, endpoint);
          c.add(() => w.stop());
        }
        await waitFor(() => hub.workers === 2, 5000, "2 workers");
        const held = settle(hub.request(500));
        await waitFor(() => hub.stats().busy === 1, 2000, "one request computing");
        // Closing drops the busy worker's connection; the hub must not try to re-dispatch
        // its request through the closed socket.
        await withTimeout(hub.close(), 2000, "close");
        const outcome = await withTimeout(held, 1000, "the held request settles");
        assert.ok(
          !outcome.ok && outcome.error instanceof HubClosedError,
          outcome.ok ? "it resolved" : String(outcome.error),
        );
      } finally {
        await c.run();
      }
    });

    test(
      "after await hub.close() its port can be bound again at once",
      { timeout: 60_000 },
      async () => {
        const c = new Cleanup();
        try {
          const { hub, endpoint } = await startHub();
          c.add(() => hub.close());
          const w = startWorker((x: number) => x, endpoint);
          c.add(() => w.stop());
          assert.equal(await withTimeout(hub.request(1), 5000, "served request"), 1);
          await hub.close();
          // No delay: close() resolved, so the listening socket must be gone.
          const again = new Hub({ endpoint, logger: () => {} });
          c.add(() => again.close());
          await withTimeout(again.ready, 2000, "rebinding the closed hub's port");
        } finally {
          await c.run();
        }
      },
    );
  });

  describe("exception in the constructor", () => {
    test("new Worker(ClassThatThrows) throws the constructor's error", { timeout: 60_000 }, () => {
      assert.throws(
        () => new Worker(CtorFail, { endpoint: "tcp://127.0.0.1:1", logger: () => {} }),
        /CtorFail: simulated crash in the constructor/,
      );
      // TWorker without its kwargs: the destructuring fails in the constructor.
      assert.throws(
        () => new Worker(TWorker, { endpoint: "tcp://127.0.0.1:1", args: [1, 2] }),
        TypeError,
      );
    });

    test(
      "a spawned worker of such a class exits non-zero, never connecting",
      { timeout: 60_000 },
      async () => {
        const c = new Cleanup();
        try {
          // A bare listener where the hub would be: it counts connection attempts.
          const hub = await listener();
          c.add(() => hub.close());
          const workers = spawn(c, "CtorFail", hub.endpoint);
          const exit = await withTimeout(workers.processes[0].exited, SPAWN_MS, "worker exit");
          assert.notEqual(exit.code, 0, `exit ${JSON.stringify(exit)}`);
          assert.equal(exit.signal, null);
          assert.equal(hub.accepted(), 0, "the worker connected before its constructor ran");
        } finally {
          await c.run();
        }
      },
    );

    test(
      "the worker command prints the constructor's error on stderr",
      { timeout: 60_000 },
      async () => {
        const c = new Cleanup();
        try {
          const { hub, port } = await startHub();
          c.add(() => hub.close());
          const p = cli([
            "worker",
            MODELS_PATH,
            "--export",
            "CtorFail",
            "--host",
            "127.0.0.1",
            "--port",
            String(port),
          ]);
          c.add(() => p.dispose());
          const exit = await withTimeout(p.exited, SPAWN_MS, "worker command exit");
          assert.equal(exit.code, 1, `exit ${JSON.stringify(exit)}; stderr: ${p.stderr}`);
          assert.match(p.stderr, /failed to start/);
          assert.match(p.stderr, /CtorFail: simulated crash in the constructor/);
          assert.match(p.stderr, /models\.(ts|js)/, "the stack names the module");
        } finally {
          await c.run();
        }
      },
    );
  });

  test("exception in the call: UserCodeError at the caller with the remote stack", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const { hub, endpoint } = await startHub();
      c.add(() => hub.close());
      const { fail } = await import("./fixtures/models.ts");
      const w = startWorker(fail, endpoint);
      c.add(() => w.stop());
      const error = await rejectsWith(hub.request(1, "a"), UserCodeError, 5000, "failing request");
      assert.ok(error instanceof GibbsError);
      assert.equal(error.name, "UserCodeError");
      assert.match(error.traceback, /^RangeError: ts boom: \[1,"a"\]/);
      assert.match(error.traceback, /\n\s+at fail .*models\.(ts|js)/);
      assert.match(error.message, /RangeError: ts boom/);
      // A throw of a non-Error, and an async rejection.
      const odd = startWorker(async (x: unknown) => {
        await sleep(1);
        if (typeof x === "number") return x;
        throw x;
      }, endpoint);
      c.add(() => odd.stop());
      await w.stop(); // only `odd` serves from now on
      const e2 = await rejectsWith(hub.request("plain"), UserCodeError, 5000, "thrown string");
      assert.match(e2.traceback, /plain/);
      // The same worker still serves after its failure (it is the only one connected).
      assert.equal(hub.workers, 1);
      assert.equal(await withTimeout(hub.request(5), 5000, "after the failure"), 5);
      assert.equal(odd.worker.served, 2, "both requests went to the worker that failed");
    } finally {
      await c.run();
    }
  });

  test("requests spread over workers: 3 workers, 30 concurrent requests, all serve", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const { hub, endpoint } = await startHub();
      c.add(() => hub.close());
      for (const name of ["w0", "w1", "w2"]) {
        const w = startWorker(async (i: number) => {
          await sleep(20);
          return [i, name];
        }, endpoint);
        c.add(() => w.stop());
      }
      await waitFor(() => hub.workers === 3, 5000, "3 workers");
      const results = (await withTimeout(
        Promise.all(Array.from({ length: 30 }, (_, i) => hub.request(i))),
        10_000,
        "30 requests",
      )) as [number, string][];
      const counts = new Map<string, number>();
      results.forEach(([i, name], k) => {
        assert.equal(i, k);
        counts.set(name, (counts.get(name) ?? 0) + 1);
      });
      assert.deepEqual([...counts.keys()].sort(), ["w0", "w1", "w2"], JSON.stringify([...counts]));
      for (const [name, n] of counts) assert.ok(n >= 5, `${name} served only ${n} of 30`);
    } finally {
      await c.run();
    }
  });

  test(
    "a stopped (SIGSTOP) worker is skipped after the heartbeat interval",
    { timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const { hub, endpoint } = await startHub({ heartbeatInterval: 0.4 });
        c.add(() => hub.close());
        const workers = spawn(c, "pid", endpoint, 2);
        await withTimeout(
          waitFor(() => hub.workers === 2, SPAWN_MS, "2 spawned workers"),
          SPAWN_MS + 1000,
        );
        const [a, b] = workers.processes;
        signalPid(a.pid, "SIGSTOP");
        c.add(() => signalPid(a.pid, "SIGCONT"));
        await sleep(600); // > the hub's heartbeat interval: a's last ping is stale now
        const t0 = performance.now();
        for (let i = 0; i < 10; i++) {
          const served = await withTimeout(hub.request(0), 3000, `request ${i} (a is stopped)`);
          assert.equal(served, b.pid, `request ${i} went to the stopped worker`);
        }
        observe("10 requests, one worker stopped", performance.now() - t0, "< 3000");
        assert.ok(performance.now() - t0 < 3000);
        // Back from the dead, it serves again.
        signalPid(a.pid, "SIGCONT");
        const seen = new Set<unknown>();
        await withTimeout(
          (async () => {
            while (!seen.has(a.pid)) {
              for (const pid of await Promise.all([hub.request(0.05), hub.request(0.05)])) {
                seen.add(pid);
              }
            }
          })(),
          5000,
          "the resumed worker serves again",
        );
      } finally {
        await c.run();
      }
    },
  );

  test("a killed worker is skipped: requests go to the live one", { timeout: 60_000 }, async () => {
    const c = new Cleanup();
    try {
      const { hub, endpoint } = await startHub();
      c.add(() => hub.close());
      const workers = spawn(c, "pid", endpoint, 2);
      await waitFor(() => hub.workers === 2, SPAWN_MS, "2 spawned workers");
      const [a, b] = workers.processes;
      a.kill("SIGKILL");
      await withTimeout(a.exited, 5000, "killed worker exit");
      for (let i = 0; i < 10; i++) {
        assert.equal(await withTimeout(hub.request(), 3000, `request ${i}`), b.pid);
      }
      await waitFor(() => hub.workers === 1, 3000, "hub counts 1 worker");
    } finally {
      await c.run();
    }
  });

  test("a killed worker is replaced and the waiting request served (no caller timeout)", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const { hub, endpoint } = await startHub();
      c.add(() => hub.close());
      const workers = spawn(c, "slowDouble", endpoint, 1);
      await waitFor(() => hub.workers === 1, SPAWN_MS, "spawned worker");
      const first = workers.processes[0];
      const request = settle(hub.request(21, 1.0));
      await waitFor(() => hub.stats().busy === 1, 3000, "the request is computing");
      first.kill("SIGKILL");
      await withTimeout(first.exited, 5000, "killed worker exit");
      const second = workers.add();
      const outcome = await withTimeout(request, SPAWN_MS, "the waiting request");
      assert.ok(outcome.ok, `request failed: ${!outcome.ok && outcome.error}`);
      assert.deepEqual(outcome.value, [42, second.pid]);
      assert.ok(hub.stats().redispatched >= 1, JSON.stringify(hub.stats()));
    } finally {
      await c.run();
    }
  });

  test(
    "a worker started before its hub keeps the connection the hub accepts: pings sent into " +
      "the void count for nothing",
    { timeout: 60_000 },
    async () => {
      // gibbs's hub never re-sends a request: one sent as its worker drops the connection is
      // lost. A worker that counted the pings it sent with no hub there as missed pongs reset
      // the fresh connection at its next check, within one heartbeat interval.
      const c = new Cleanup();
      try {
        for (let round = 0; round < 3; round++) {
          const port = await freePort();
          const w = startWorker((x: number) => x + 1, `tcp://127.0.0.1:${port}`, {
            heartbeatInterval: 0.5,
          });
          c.add(() => w.stop());
          await sleep(1300 + 170 * round); // pinging into the void, resetting now and then
          const hub = new Router({ linger: 0 });
          c.add(() => hub.close());
          await hub.bind(`tcp://127.0.0.1:${port}`);
          const [id] = await withTimeout(hub.receive(), 5000, "the worker's first ping");
          const resets = w.worker.resets;
          // A hub that says nothing for a while after the connection (no pong: gibbs answers
          // pings, but an application's first request may come first), then sends a request.
          await sleep(600);
          await hub.send([id, "", pack(["r".repeat(32), [41], {}])]);
          const answer = await withTimeout(
            (async () => {
              while (true) {
                const [, , payload] = await hub.receive();
                if (payload !== undefined && payload.length > 0) return unpack(payload);
              }
            })(),
            3000,
            `round ${round}: the answer (the worker reset ${w.worker.resets - resets} times)`,
          );
          assert.deepEqual(answer, ["r".repeat(32), 0, 42]);
          assert.equal(w.worker.resets, resets, "the worker reset the connection");
          await w.stop();
          hub.close();
        }
      } finally {
        await c.run();
      }
    },
  );

  test("hub restarted: workers reconnect by themselves", { timeout: 60_000 }, async () => {
    const c = new Cleanup();
    try {
      const first = await startHub({ heartbeatInterval: 0.5 });
      c.add(() => first.hub.close());
      const inproc = startWorker((x: number) => ["in-process", x], first.endpoint);
      c.add(() => inproc.stop());
      const workers = spawn(c, "pid", first.endpoint, 1);
      await waitFor(() => first.hub.workers === 2, SPAWN_MS, "2 workers");
      await withTimeout(first.hub.request(1), 3000, "request to the first hub");
      await first.hub.close();
      await sleep(1000); // the workers retry meanwhile, at least once per heartbeat interval
      // With no hub connected there is nothing to reset: the worker says why and retries.
      assert.equal(inproc.worker.resets, 0, "no socket reset while no hub is connected");
      assert.ok(inproc.log.has("cannot reach the hub"), inproc.log.lines.join("\n"));
      const second = await startHub({ endpoint: first.endpoint, heartbeatInterval: 0.5 });
      c.add(() => second.hub.close());
      const t0 = performance.now();
      // Requests made before any worker is back wait for one, then complete.
      const results = await withTimeout(
        Promise.all(
          Array.from({ length: 6 }, () => second.hub.requestWith({ args: [0.05], timeout: 5 })),
        ),
        5000,
        "requests to the restarted hub",
      );
      const took = performance.now() - t0;
      observe("requests to a restarted hub", took, "< 1000");
      assert.ok(took < 1000, `served after ${took.toFixed(0)} ms: > 2 heartbeat intervals`);
      const pid = workers.processes[0].pid;
      for (const r of results) {
        assert.ok(r === pid || JSON.stringify(r) === '["in-process",0.05]', JSON.stringify(r));
      }
      await waitFor(() => second.hub.workers === 2, 1000, "both workers back");
    } finally {
      await c.run();
    }
  });

  test(
    "request timeout: RequestTimeoutError, with and without retries",
    { timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const { hub, endpoint } = await startHub();
        c.add(() => hub.close());
        const w = startWorker(async (ms: number) => {
          await sleep(ms);
          return ms;
        }, endpoint);
        c.add(() => w.stop());
        await waitFor(() => hub.workers === 1, 5000, "worker");
        let t0 = performance.now();
        const e1 = await rejectsWith(
          hub.requestWith({ args: [1000], timeout: 0.2 }),
          RequestTimeoutError,
          2000,
          "timed-out request",
        );
        let took = performance.now() - t0;
        observe("timeout 0.2 s", took, ">= 190, < 800");
        assert.ok(took >= 190 && took < 800, `timed out after ${took} ms`);
        assert.ok(e1 instanceof GibbsError);
        assert.match(e1.message, /0\.2 s \(1 attempt\)/);
        // No worker is free now (it computes the 1 s request): a retry waits its turn too.
        t0 = performance.now();
        const e2 = await rejectsWith(
          hub.requestWith({ args: [10], timeout: 0.15, retries: 2 }),
          RequestTimeoutError,
          3000,
          "timed-out request with retries",
        );
        took = performance.now() - t0;
        assert.match(e2.message, /3 attempts/);
        observe("3 attempts of 0.15 s", took, ">= 440, < 1500");
        assert.ok(took >= 440 && took < 1500, `3 attempts of 0.15 s took ${took} ms`);
        assert.equal(hub.stats().pending, 0);
      } finally {
        await c.run();
      }
    },
  );

  test("retries after a worker dies (redispatch off: gibbs's timeout + retry path)", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const { hub, endpoint } = await startHub({ redispatch: false });
      c.add(() => hub.close());
      const workers = spawn(c, "slowDouble", endpoint, 1);
      await waitFor(() => hub.workers === 1, SPAWN_MS, "spawned worker");
      const t0 = performance.now();
      const request = settle(hub.requestWith({ args: [5, 0.5], timeout: 1.2, retries: 2 }));
      await waitFor(() => hub.stats().busy === 1, 3000, "the spawned worker computes it");
      const spare = startWorker(async (x: number) => {
        await sleep(10);
        return [x * 2, "spare"];
      }, endpoint);
      c.add(() => spare.stop());
      await waitFor(() => hub.workers === 2, 3000, "spare worker");
      const victim = workers.processes[0];
      victim.kill("SIGKILL");
      await withTimeout(victim.exited, 5000, "victim exit");
      const outcome = await withTimeout(request, 8000, "the retried request");
      const took = performance.now() - t0;
      assert.ok(outcome.ok, `request failed: ${!outcome.ok && outcome.error}`);
      assert.deepEqual(outcome.value, [10, "spare"]);
      observe("retry after a worker death", took, ">= 1150");
      assert.ok(took >= 1150, `answered after ${took} ms: before the timeout, so not by a retry`);
      assert.equal(hub.stats().redispatched, 0);
      assert.equal(spare.worker.served, 1);
    } finally {
      await c.run();
    }
  });

  test("infinite retries until a worker appears", { timeout: 60_000 }, async () => {
    const c = new Cleanup();
    try {
      const { hub, endpoint } = await startHub();
      c.add(() => hub.close());
      const t0 = performance.now();
      const request = settle(hub.requestWith({ args: [4], timeout: 0.1, retries: -1 }));
      await sleep(500);
      assert.equal(hub.stats().pending, 1, "still waiting after 5 timeouts");
      const w = startWorker((x: number) => x * x, endpoint);
      c.add(() => w.stop());
      const outcome = await withTimeout(request, 5000, "request with retries: -1");
      assert.ok(outcome.ok, `request failed: ${!outcome.ok && outcome.error}`);
      assert.equal(outcome.value, 16);
      assert.ok(outcome.at - t0 >= 500);
      // Without retries and without workers, the same request times out.
      await w.stop();
      await sleep(600); // the stopped worker is stale now
      await rejectsWith(
        hub.requestWith({ args: [4], timeout: 0.1 }),
        RequestTimeoutError,
        2000,
        "request with no worker and no retries",
      );
    } finally {
      await c.run();
    }
  });

  test("AbortSignal aborts a queued request, a computing one, and refuses an aborted one", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const { hub, endpoint } = await startHub();
      c.add(() => hub.close());
      // Aborted before the call.
      const reason = new Error("already aborted");
      await assert.rejects(
        withTimeout(hub.requestWith({ args: [1], signal: AbortSignal.abort(reason) }), 500),
        (e) => e === reason,
      );
      // Queued (no worker yet), then aborted.
      const ac = new AbortController();
      const queued = hub.requestWith({ args: [1], signal: ac.signal });
      await sleep(50);
      const why = new Error("caller gave up");
      ac.abort(why);
      await assert.rejects(withTimeout(queued, 500, "aborted queued request"), (e) => e === why);
      assert.equal(hub.stats().pending, 0);
      // Computing, then aborted: the caller is released; the late answer is dropped.
      let calls = 0;
      const w = startWorker(async (ms: number) => {
        calls++;
        await sleep(ms);
        return ms;
      }, endpoint);
      c.add(() => w.stop());
      const ac2 = new AbortController();
      const computing = hub.requestWith({ args: [300], signal: ac2.signal });
      await waitFor(() => hub.stats().busy === 1, 3000, "computing");
      ac2.abort();
      await assert.rejects(withTimeout(computing, 500), (e: Error) => e.name === "AbortError");
      assert.equal(hub.stats().pending, 0);
      // The worker finishes, answers (dropped) and serves the next request.
      assert.equal(await withTimeout(hub.request(1), 3000, "next request"), 1);
      assert.equal(calls, 2);
      // A timeout signal works too.
      await assert.rejects(
        withTimeout(hub.requestWith({ args: [500], signal: AbortSignal.timeout(100) }), 1000),
        (e: Error) => e.name === "TimeoutError",
      );
    } finally {
      await c.run();
    }
  });
});

describe("re-dispatch when a worker dies (issue 5)", () => {
  test("a worker SIGKILLed while holding requests: each answered once, right, no timeout", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const { hub, endpoint } = await startHub();
      c.add(() => hub.close());
      const workers = spawn(c, "slowDouble", endpoint, 3);
      await waitFor(() => hub.workers === 3, SPAWN_MS, "3 spawned workers");
      const N = 12;
      const requests = Array.from({ length: N }, (_, i) => settle(hub.request(i, 0.4)));
      await waitFor(() => hub.stats().busy === 3, 3000, "3 requests computing");
      const victim = workers.processes[0];
      victim.kill("SIGKILL");
      const outcomes = await withTimeout(Promise.all(requests), 15_000, "all requests");
      const pids = new Set(workers.processes.map((p) => p.pid));
      outcomes.forEach((o, i) => {
        assert.ok(o.ok, `request ${i} failed: ${!o.ok && o.error}`);
        const [value, pid] = o.value as [number, number];
        assert.equal(value, i * 2, `request ${i}`);
        assert.ok(pids.has(pid) && pid !== victim.pid, `request ${i} answered by ${pid}`);
      });
      const stats = hub.stats();
      assert.ok(stats.redispatched >= 1, JSON.stringify(stats));
      assert.equal(stats.completed, N, "exactly one result per request");
      assert.equal(stats.pending, 0);
    } finally {
      await c.run();
    }
  });

  test("with redispatch: false the request is not re-sent", { timeout: 60_000 }, async () => {
    const c = new Cleanup();
    try {
      const { hub, endpoint } = await startHub({ redispatch: false });
      c.add(() => hub.close());
      const workers = spawn(c, "slowDouble", endpoint, 1);
      await waitFor(() => hub.workers === 1, SPAWN_MS, "spawned worker");
      const ac = new AbortController();
      const request = settle(hub.requestWith({ args: [1, 0.5], signal: ac.signal }));
      await waitFor(() => hub.stats().busy === 1, 3000, "computing");
      const victim = workers.processes[0];
      victim.kill("SIGKILL");
      await withTimeout(victim.exited, 5000, "victim exit");
      let calls = 0;
      const spare = startWorker((x: number) => {
        calls++;
        return [x * 2, "spare"];
      }, endpoint);
      c.add(() => spare.stop());
      await waitFor(() => hub.workers === 1 && hub.stats().busy === 0, 3000, "spare alone");
      await sleep(800);
      assert.equal(calls, 0, "the lost request was re-sent");
      assert.equal(hub.stats().redispatched, 0);
      assert.equal(hub.stats().pending, 1);
      ac.abort(new Error("done waiting"));
      const outcome = await withTimeout(request, 1000, "aborted request");
      assert.ok(!outcome.ok);
      // The spare serves new requests.
      assert.deepEqual(await withTimeout(hub.request(3), 3000), [6, "spare"]);
    } finally {
      await c.run();
    }
  });

  test(
    "chaos: a random worker SIGKILLed every 400 ms and replaced; every request answered once, " +
      "those the dead held re-dispatched",
    { timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const { hub, endpoint } = await startHub();
        c.add(() => hub.close());
        const workers = spawn(c, "slowDouble", endpoint, 3);
        await waitFor(() => hub.workers === 3, SPAWN_MS, "3 spawned workers");
        // Eight callers keep requests in flight until the fifth kill, so every worker always
        // holds one: each kill takes a request down with it, which only re-dispatch recovers.
        const outcomes: Awaited<ReturnType<typeof settle>>[] = [];
        let killing = true;
        const lanes = Promise.all(Array.from({ length: 8 }, async () => {
          while (killing) {
            const i = outcomes.length;
            outcomes.push(undefined as never);
            outcomes[i] = await settle(hub.request(i, 0.005));
          }
        }));
        const dead = new Set<number>();
        let kills = 0;
        for (; kills < 5; kills++) {
          await sleep(400);
          const alive = workers.processes.filter((p) => !dead.has(p.pid));
          const victim = alive[Math.floor(Math.random() * alive.length)];
          dead.add(victim.pid);
          victim.kill("SIGKILL");
          workers.add();
        }
        killing = false;
        await withTimeout(lanes, 60_000, "chaos requests");
        const N = outcomes.length;
        assert.ok(N >= 100, `only ${N} requests in 2 s`);
        outcomes.forEach((o, i) => {
          assert.ok(o.ok, `request ${i} failed: ${!o.ok && o.error}`);
          assert.equal((o.value as [number, number])[0], i * 2, `request ${i}`);
        });
        const stats = hub.stats();
        assert.equal(stats.completed, N, "one result per request");
        assert.ok(
          stats.redispatched >= 1,
          `${kills} workers killed while holding requests, none re-dispatched: ${
            JSON.stringify(stats)
          }`,
        );
      } finally {
        await c.run();
      }
    },
  );
});
