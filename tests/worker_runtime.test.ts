/**
 * The worker runtime (issue 9): handlers on threads survive long synchronous computations,
 * workers serve several requests at once, announce their capacity to our hub and ask a Python
 * gibbs hub for work by pinging, and reconnect as libzmq does (every 100 ms, no backoff).
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  Dealer,
  HandlerStartError,
  Hub,
  Router,
  type SocketEvent,
  UserCodeError,
  Worker,
} from "../mod.ts";
import {
  Cleanup,
  cliWorker,
  freePort,
  MODELS_URL,
  pyzmqMissing,
  sleep,
  startHub,
  startWorker,
  waitFor,
  withTimeout,
} from "./_helpers.ts";
import { startPyHub } from "./_gibbs_py.ts";

const pythonSkip = pyzmqMissing();

/** Seconds a "long" synchronous computation lasts: past the hub's 10 s dead-peer limit. */
const LONG_S = 15;

function countFile(c: Cleanup): string {
  const dir = mkdtempSync(join(tmpdir(), "gibbs-count-"));
  c.add(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, "runs");
}

function runs(file: string): number {
  try {
    return readFileSync(file, "utf8").split("\n").filter((l) => l !== "").length;
  } catch {
    return 0;
  }
}

describe("handlers on threads", () => {
  test(
    `a handler computing synchronously for ${LONG_S} s completes once through our hub (defaults)`,
    { timeout: 90_000 },
    async () => {
      const c = new Cleanup();
      try {
        // Default hub options: a connection silent for 10 s is dropped.
        const hub = new Hub({ endpoint: "tcp://127.0.0.1:0", logger: () => {} });
        c.add(() => hub.close());
        const endpoint = await hub.ready;
        const file = countFile(c);
        cliWorker(c, endpoint, "spinFor");
        await waitFor(() => hub.workers === 1, 15_000, "the worker");
        const result = await withTimeout(
          hub.requestWith({ args: [LONG_S, 21, file] }),
          (LONG_S + 30) * 1000,
          "the long request",
        );
        assert.equal(result, 42);
        assert.equal(runs(file), 1, "computed exactly once");
        assert.equal(hub.stats().redispatched, 0);
        assert.equal(hub.workers, 1, "the worker stayed connected");
      } finally {
        await c.run();
      }
    },
  );

  test(
    `the same ${LONG_S} s handler completes once through a Python gibbs hub`,
    { skip: pythonSkip, timeout: 90_000 },
    async () => {
      const c = new Cleanup();
      try {
        const hub = await startPyHub(c, { heartbeat: 1 });
        const file = countFile(c);
        cliWorker(c, `tcp://127.0.0.1:${hub.port}`, "spinFor");
        await hub.waitWorkers(1);
        const answer = await hub.call([LONG_S, 21, file], (LONG_S + 30) * 1000);
        assert.deepEqual([answer.ok, answer.result], [true, 42]);
        assert.equal(runs(file), 1, "computed exactly once");
        // The hub still receives: a second request is served.
        const again = await hub.call([0, 5, file], 15_000);
        assert.deepEqual([again.ok, again.result], [true, 10]);
        await hub.assertReceiving();
      } finally {
        await c.run();
      }
    },
  );

  test(
    "a class that throws in its constructor fails run() before connecting",
    { timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const events: SocketEvent[] = [];
        const router = new Router({ onEvent: (e) => events.push(e) });
        c.add(() => router.close());
        const endpoint = await router.bind("tcp://127.0.0.1:0");
        const worker = new Worker(MODELS_URL, { export: "CtorFail", endpoint, logger: () => {} });
        const error = await withTimeout(worker.run().then(() => null, (e) => e), 15_000, "run()");
        assert.ok(error instanceof HandlerStartError, `run() rejected with ${error}`);
        assert.equal(error.kind, "handler");
        assert.match(error.detail, /CtorFail: simulated crash in the constructor/);
        await sleep(300);
        assert.equal(events.filter((e) => e.type === "accept").length, 0, "it never connected");
        const missing = new Worker(MODELS_URL, { export: "nope", endpoint, logger: () => {} });
        const notFound = await withTimeout(
          missing.run().then(() => null, (e) => e),
          15_000,
          "run()",
        );
        assert.ok(notFound instanceof HandlerStartError);
        assert.equal(notFound.kind, "module");
        assert.match(notFound.message, /has no export "nope"/);
      } finally {
        await c.run();
      }
    },
  );

  test("a thread that dies fails only its request; a new thread serves the next", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const h = await startHub();
      c.add(() => h.hub.close());
      const worker = new Worker(MODELS_URL, {
        export: "spinFor",
        endpoint: h.endpoint,
        threads: 1,
        logger: () => {},
      });
      const crashing = new Worker(MODELS_URL, {
        export: "crashThread",
        endpoint: h.endpoint,
        threads: 1,
        logger: () => {},
      });
      const done = [worker.run(), crashing.run()];
      c.add(async () => {
        worker.stop();
        crashing.stop();
        await withTimeout(Promise.allSettled(done), 10_000, "workers stop");
      });
      await waitFor(() => h.hub.workers === 2, 15_000, "both workers");
      // Each worker is handed requests until the crashing one has failed one.
      const outcomes = await Promise.allSettled(
        Array.from({ length: 6 }, (_, i) => withTimeout(h.hub.request(0, i), 15_000, `req ${i}`)),
      );
      const failed = outcomes.filter((o) => o.status === "rejected");
      assert.ok(failed.length >= 1, "the crash failed its request");
      for (const f of failed) {
        const reason = (f as PromiseRejectedResult).reason;
        assert.ok(reason instanceof UserCodeError, `${reason}`);
        assert.match(reason.traceback, /handler thread failed/);
      }
      for (const [i, o] of outcomes.entries()) {
        if (o.status === "fulfilled") assert.equal(o.value, i * 2);
      }
    } finally {
      await c.run();
    }
  });
});

describe("many requests at once", () => {
  test(
    "--concurrency 4 serves 4 one-second requests at once through our hub",
    { timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const h = await startHub();
        c.add(() => h.hub.close());
        cliWorker(c, h.endpoint, "slowDouble", ["--concurrency", "4"]);
        await waitFor(() => h.hub.workers === 1, 15_000, "the worker");
        await h.hub.request(0, 0); // warm
        const t0 = performance.now();
        const results = await withTimeout(
          Promise.all([1, 2, 3, 4].map((x) => h.hub.request(x, 1))),
          10_000,
          "4 requests",
        );
        const elapsed = performance.now() - t0;
        assert.deepEqual(results.map((r) => (r as number[])[0]), [2, 4, 6, 8]);
        assert.equal(new Set(results.map((r) => (r as number[])[1])).size, 1, "one process");
        assert.ok(elapsed < 1500, `4 requests took ${Math.round(elapsed)} ms`);
        assert.equal(h.hub.stats().redispatched, 0, "pings while computing are not lost requests");
      } finally {
        await c.run();
      }
    },
  );

  test(
    "--concurrency 4 serves 4 one-second requests at once through a Python gibbs hub",
    { skip: pythonSkip, timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const hub = await startPyHub(c, { heartbeat: 1 });
        cliWorker(c, `tcp://127.0.0.1:${hub.port}`, "slowDouble", ["--concurrency", "4"]);
        await hub.waitWorkers(1);
        await hub.call([0, 0], 10_000);
        const t0 = performance.now();
        const answers = await hub.callAll([[1, 1], [2, 1], [3, 1], [4, 1]], 10_000);
        const elapsed = performance.now() - t0;
        assert.deepEqual(answers.map((a) => [a.ok, (a.result as number[])[0]]), [
          [true, 2],
          [true, 4],
          [true, 6],
          [true, 8],
        ]);
        assert.ok(elapsed < 1500, `4 requests took ${Math.round(elapsed)} ms`);
        // Nothing our worker sent broke the hub's receive loop: it still serves.
        const again = await hub.call([5, 0], 10_000);
        assert.equal((again.result as number[])[0], 10);
        await hub.assertReceiving();
      } finally {
        await c.run();
      }
    },
  );

  test("our hub gives a worker exactly its capacity, and more when it announces more", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const h = await startHub({ prefetch: 1 });
      c.add(() => h.hub.close());
      const gates: (() => void)[] = [];
      const w = startWorker(
        (x: number) => new Promise((resolve) => gates.push(() => resolve(x))),
        h.endpoint,
        { concurrency: 3 },
      );
      c.add(() => {
        for (const open of gates.splice(0)) open();
        return w.stop();
      });
      await waitFor(() => h.hub.workers === 1, 5000, "the worker");
      const requests = Array.from({ length: 7 }, (_, i) => h.hub.request(i));
      await waitFor(() => w.worker.inFlight === 3, 5000, "3 in flight");
      await sleep(200);
      assert.equal(w.worker.inFlight, 3, "no more than its capacity");
      assert.equal(h.hub.stats().queued, 4);
      w.worker.setConcurrency(5);
      await waitFor(() => w.worker.inFlight === 5, 5000, "5 in flight after the announcement");
      while (gates.length > 0 || w.worker.inFlight > 0) {
        for (const open of gates.splice(0)) open();
        await sleep(10);
      }
      assert.deepEqual(await withTimeout(Promise.all(requests), 5000, "all"), [
        0,
        1,
        2,
        3,
        4,
        5,
        6,
      ]);
      assert.equal(w.worker.peakInFlight, 5);
    } finally {
      await c.run();
    }
  });

  test("a handler that throws fails its own request only", { timeout: 60_000 }, async () => {
    const c = new Cleanup();
    try {
      const h = await startHub();
      c.add(() => h.hub.close());
      const w = startWorker(
        async (x: number) => {
          await sleep(50);
          if (x === 2) throw new Error("two is bad");
          return x;
        },
        h.endpoint,
        { concurrency: 4 },
      );
      c.add(() => w.stop());
      await waitFor(() => h.hub.workers === 1, 5000, "the worker");
      const outcomes = await withTimeout(
        Promise.allSettled([1, 2, 3, 4].map((x) => h.hub.request(x))),
        5000,
        "4 requests",
      );
      assert.deepEqual(outcomes.map((o) => o.status), [
        "fulfilled",
        "rejected",
        "fulfilled",
        "fulfilled",
      ]);
      assert.match(String((outcomes[1] as PromiseRejectedResult).reason.traceback), /two is bad/);
    } finally {
      await c.run();
    }
  });
});

describe("reconnecting as libzmq does", () => {
  test("a worker started 3 s before its hub joins it within a reconnect interval", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const endpoint = `tcp://127.0.0.1:${await freePort()}`; // nobody listens there
      const w = startWorker((x: number) => x, endpoint);
      c.add(() => w.stop());
      await sleep(3000);
      const hub = new Hub({ endpoint, logger: () => {} });
      c.add(() => hub.close());
      await hub.ready;
      const t0 = performance.now();
      assert.equal(await withTimeout(hub.request(7), 5000, "first request"), 7);
      const joined = performance.now() - t0;
      // 100 ms between attempts: on a quiet machine it answers in about that (see the note).
      assert.ok(joined < 400, `first request answered ${Math.round(joined)} ms after the bind`);
    } finally {
      await c.run();
    }
  });

  test(
    "reconnect attempts stay 100 ms apart: no backoff by default",
    { timeout: 60_000 },
    async () => {
      const endpoint = `tcp://127.0.0.1:${await freePort()}`; // nobody listens there
      const events: SocketEvent[] = [];
      const dealer = new Dealer({ onEvent: (e) => events.push(e) });
      try {
        dealer.connect(endpoint);
        await waitFor(
          () => events.filter((e) => e.type === "connect:retry").length >= 8,
          5000,
          "8 attempts",
        );
        const intervals = events.filter((e) => e.type === "connect:retry").map((e) => e.interval);
        assert.ok(intervals.every((i) => i === 100), `intervals: ${intervals}`);
        const backoffEvents: SocketEvent[] = [];
        const backoff = new Dealer({
          reconnectMaxInterval: 800,
          onEvent: (e) => backoffEvents.push(e),
        });
        backoff.connect(endpoint);
        await waitFor(
          () => backoffEvents.filter((e) => e.type === "connect:retry").length >= 4,
          5000,
          "4 attempts with backoff",
        );
        backoff.close();
        assert.deepEqual(
          backoffEvents.filter((e) => e.type === "connect:retry").slice(0, 4).map((e) =>
            e.interval
          ),
          [100, 200, 400, 800],
        );
      } finally {
        dealer.close();
      }
    },
  );
});
