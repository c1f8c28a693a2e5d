/**
 * Model serving (issue 11): streamed results, cancellation that reaches the worker, dynamic
 * batching and named services — between our hub and our workers, and each one's fallback with
 * Python gibbs peers (a streaming handler served to a Python hub answers once, with the list of
 * its chunks; a Python worker's stream has one chunk; a Python worker cannot be cancelled, its
 * late answer is dropped; every Python worker serves "default").
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  batched,
  GibbsError,
  Hub,
  requestSignal,
  RequestTimeoutError,
  UserCodeError,
} from "../mod.ts";
import { gatewayHandler } from "../src/cli/gateway.ts";
import {
  Cleanup,
  cliWorker,
  pyzmqMissing,
  sleep,
  startHub,
  startWorker,
  waitFor,
  withTimeout,
} from "./_helpers.ts";
import { startPyHub, startPyWorker } from "./_gibbs_py.ts";

const pythonSkip = pyzmqMissing();

describe("streaming", () => {
  for (const where of ["a handler thread", "the connection's thread"]) {
    test(`5 chunks 200 ms apart: the first within 300 ms, all in order (${where})`, {
      timeout: 60_000,
    }, async () => {
      const c = new Cleanup();
      try {
        const h = await startHub();
        c.add(() => h.hub.close());
        cliWorker(c, h.endpoint, "tokens", where === "a handler thread" ? [] : ["--threads", "0"]);
        await waitFor(() => h.hub.workers === 1, 15_000, "the worker");
        await h.hub.stream(1, 0).toArray(); // warm: the first call also opens every code path
        const t0 = performance.now();
        const arrivals: number[] = [];
        const chunks: unknown[] = [];
        for await (const chunk of h.hub.stream(5, 200)) {
          arrivals.push(performance.now() - t0);
          chunks.push(chunk);
        }
        assert.deepEqual(chunks, ["t0", "t1", "t2", "t3", "t4"]);
        assert.ok(arrivals[0] < 300, `first chunk after ${Math.round(arrivals[0])} ms`);
        assert.ok(arrivals[4] >= 950, "the chunks came as they were made, not all at the end");
      } finally {
        await c.run();
      }
    });
  }

  test("an error mid-stream arrives after the chunks before it", { timeout: 60_000 }, async () => {
    const c = new Cleanup();
    try {
      const h = await startHub();
      c.add(() => h.hub.close());
      cliWorker(c, h.endpoint, "tokens");
      await waitFor(() => h.hub.workers === 1, 15_000, "the worker");
      const got: unknown[] = [];
      let caught: unknown;
      try {
        for await (const chunk of h.hub.stream(5, 0, 2)) got.push(chunk);
      } catch (error) {
        caught = error;
      }
      assert.deepEqual(got, ["t0", "t1"]);
      assert.ok(caught instanceof UserCodeError, `${caught}`);
      assert.match(caught.traceback, /tokens: failed at 2/);
    } finally {
      await c.run();
    }
  });

  test("a slow reader makes the worker wait: no more than a window is ever ahead", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const h = await startHub();
      c.add(() => h.hub.close());
      let produced = 0;
      const w = startWorker(async function* () {
        for (let i = 0; i < 1000; i++) {
          produced++;
          yield i;
        }
      }, h.endpoint);
      c.add(() => w.stop());
      await waitFor(() => h.hub.workers === 1, 5000, "the worker");
      const stream = h.hub.stream();
      const first = await stream.next();
      assert.equal(first.value, 0);
      await sleep(300); // the reader pauses: the generator must pause too
      assert.ok(produced <= 1 + stream.window + 1, `produced ${produced} while the reader slept`);
      let count = 1;
      for await (const _ of stream) count++;
      assert.equal(count, 1000);
      assert.equal(produced, 1000);
    } finally {
      await c.run();
    }
  });

  test(
    "a handler that returns one value gives a stream of one chunk",
    { timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const h = await startHub();
        c.add(() => h.hub.close());
        const w = startWorker((x: number) => x + 1, h.endpoint);
        c.add(() => w.stop());
        await waitFor(() => h.hub.workers === 1, 5000, "the worker");
        assert.deepEqual(await withTimeout(h.hub.stream(41).toArray(), 5000, "stream"), [42]);
        assert.deepEqual(await withTimeout(h.hub.request(41), 5000, "request"), 42);
      } finally {
        await c.run();
      }
    },
  );

  test("a streaming handler asked with request() answers the list of its chunks", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const h = await startHub();
      c.add(() => h.hub.close());
      cliWorker(c, h.endpoint, "tokens");
      await waitFor(() => h.hub.workers === 1, 15_000, "the worker");
      assert.deepEqual(await withTimeout(h.hub.request(3, 0), 10_000, "request"), [
        "t0",
        "t1",
        "t2",
      ]);
    } finally {
      await c.run();
    }
  });

  test("leaving the loop early cancels the stream on the worker", { timeout: 60_000 }, async () => {
    const c = new Cleanup();
    try {
      const h = await startHub();
      c.add(() => h.hub.close());
      let produced = 0;
      let closed = false;
      let sawSignal = false;
      const w = startWorker(async function* () {
        const signal = requestSignal();
        signal.addEventListener("abort", () => (sawSignal = true));
        try {
          for (let i = 0; i < 1_000_000; i++) {
            await sleep(1);
            produced++;
            yield i;
          }
        } finally {
          closed = true; // the worker closes the generator when its caller gives up
        }
      }, h.endpoint);
      c.add(() => w.stop());
      await waitFor(() => h.hub.workers === 1, 5000, "the worker");
      for await (const chunk of h.hub.stream()) if ((chunk as number) >= 3) break;
      await waitFor(() => w.worker.inFlight === 0, 5000, "the worker's slot freed");
      assert.ok(closed, "the generator was closed");
      assert.ok(sawSignal, "the handler's requestSignal() aborted");
      const at = produced;
      await sleep(100);
      assert.equal(produced, at, "nothing more is produced");
      assert.ok(produced < 100, `produced ${produced}`);
      assert.equal(h.hub.stats().busy, 0);
    } finally {
      await c.run();
    }
  });

  test("POST /stream answers Server-Sent Events or NDJSON; the first event within 300 ms", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const h = await startHub();
      c.add(() => h.hub.close());
      cliWorker(c, h.endpoint, "tokens");
      await waitFor(() => h.hub.workers === 1, 15_000, "the worker");
      const handle = gatewayHandler(h.hub);
      const post = (accept: string, body: unknown) =>
        handle(
          new Request("http://gateway.test/stream", {
            method: "POST",
            headers: { accept, "content-type": "application/json" },
            body: JSON.stringify(body),
          }),
        );
      await (await post("application/x-ndjson", { args: [1, 0] })).text(); // warm
      const t0 = performance.now();
      const sse = await post("text/event-stream", { args: [5, 200] });
      assert.equal(sse.headers.get("content-type"), "text/event-stream");
      const reader = sse.body!.getReader();
      const firstRead = await reader.read();
      const firstAt = performance.now() - t0;
      let text = new TextDecoder().decode(firstRead.value);
      for (let r = await reader.read(); !r.done; r = await reader.read()) {
        text += new TextDecoder().decode(r.value);
      }
      assert.ok(firstAt < 300, `first event after ${Math.round(firstAt)} ms`);
      assert.equal(
        text,
        ["t0", "t1", "t2", "t3", "t4"].map((t) => `event: chunk\ndata: "${t}"\n\n`).join("") +
          "event: end\ndata: true\n\n",
      );
      const nd = await (await post("application/x-ndjson", { args: [3, 0, 1] })).text();
      const lines = nd.trim().split("\n").map((l) => JSON.parse(l));
      assert.deepEqual(lines[0], { chunk: "t0" });
      assert.match(lines[1].error.traceback, /failed at 1/);
    } finally {
      await c.run();
    }
  });
});

describe("cancellation", () => {
  test("aborting a 10 s request frees its worker within 50 ms; the handler saw its signal", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const h = await startHub({ prefetch: 1 });
      c.add(() => h.hub.close());
      let sawAbort = false;
      let nextStartedAt = -1;
      const w = startWorker(async (what: string) => {
        if (what === "next") {
          nextStartedAt = performance.now();
          return "next";
        }
        const signal = requestSignal();
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 10_000);
          signal.addEventListener("abort", () => {
            sawAbort = true;
            clearTimeout(timer);
            resolve();
          });
        });
        signal.throwIfAborted();
        return "long";
      }, h.endpoint);
      c.add(() => w.stop());
      await waitFor(() => h.hub.workers === 1, 5000, "the worker");
      await h.hub.request("next"); // warm
      const controller = new AbortController();
      const long = h.hub.requestWith({ args: ["long"], signal: controller.signal });
      await waitFor(() => w.worker.inFlight === 1, 5000, "the long request running");
      const next = h.hub.request("next");
      await sleep(100);
      const abortedAt = performance.now();
      controller.abort(new Error("the caller left"));
      await assert.rejects(long, /the caller left/);
      assert.equal(await withTimeout(next, 5000, "the next request"), "next");
      const freedIn = nextStartedAt - abortedAt;
      assert.ok(sawAbort, "the handler saw its signal abort");
      assert.ok(freedIn < 50, `the next request started ${freedIn.toFixed(1)} ms after the abort`);
    } finally {
      await c.run();
    }
  });

  test("a timeout cancels on the worker too (handler thread)", { timeout: 60_000 }, async () => {
    const c = new Cleanup();
    try {
      const h = await startHub({ prefetch: 1 });
      c.add(() => h.hub.close());
      cliWorker(c, h.endpoint, "abortable");
      await waitFor(() => h.hub.workers === 1, 15_000, "the worker");
      await assert.rejects(
        h.hub.requestWith({ args: [10_000], timeout: 0.3 }),
        RequestTimeoutError,
      );
      // The worker's one slot is free again at once: the next request is served in well under
      // the 10 s the cancelled one would have taken.
      const t0 = performance.now();
      assert.equal(await withTimeout(h.hub.request(10), 5000, "next"), "finished");
      assert.ok(performance.now() - t0 < 2000);
    } finally {
      await c.run();
    }
  });

  test("a request cancelled before it started is answered at once by the worker", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const h = await startHub({ prefetch: 4 });
      c.add(() => h.hub.close());
      const started: number[] = [];
      const w = startWorker(async (x: number) => {
        started.push(x);
        await sleep(200);
        return x;
      }, h.endpoint);
      c.add(() => w.stop());
      await waitFor(() => h.hub.workers === 1, 5000, "the worker");
      const controllers = [0, 1, 2].map(() => new AbortController());
      const requests = [0, 1, 2].map((x) =>
        h.hub.requestWith({ args: [x], signal: controllers[x].signal })
      );
      await waitFor(() => started.length === 1, 5000, "the first running");
      controllers[1].abort(new Error("no longer needed"));
      await assert.rejects(requests[1], /no longer needed/);
      assert.deepEqual(await withTimeout(Promise.all([requests[0], requests[2]]), 5000, "rest"), [
        0,
        2,
      ]);
      assert.deepEqual(started, [0, 2], "the cancelled request never ran");
    } finally {
      await c.run();
    }
  });

  test(
    "a Python worker cannot be told: its late answer is dropped and it serves the next",
    { skip: pythonSkip, timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const h = await startHub();
        c.add(() => h.hub.close());
        await startPyWorker(c, h.port, "sleep");
        await waitFor(() => h.hub.workers === 1, 5000, "the python worker");
        const controller = new AbortController();
        const first = h.hub.requestWith({ args: [0.5], signal: controller.signal });
        await sleep(100);
        controller.abort(new Error("gave up"));
        await assert.rejects(first, /gave up/);
        const second = await withTimeout(h.hub.request(0), 10_000, "the next request");
        assert.notEqual(second, undefined);
        assert.equal(h.hub.stats().pending, 0);
      } finally {
        await c.run();
      }
    },
  );
});

describe("dynamic batching", () => {
  test("up to maxSize requests per call; each answered on its own; an Error fails one", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const h = await startHub();
      c.add(() => h.hub.close());
      const sizes: number[] = [];
      const w = startWorker(
        batched((items: [number][]) => {
          sizes.push(items.length);
          return items.map(([x]) => (x < 0 ? new RangeError(`negative: ${x}`) : x * 10));
        }),
        h.endpoint,
        { batch: { maxSize: 4, maxWaitMs: 50 } },
      );
      c.add(() => w.stop());
      await waitFor(() => h.hub.workers === 1, 5000, "the worker");
      const outcomes = await withTimeout(
        Promise.allSettled([1, 2, -3, 4, 5, 6, 7, 8].map((x) => h.hub.request(x))),
        5000,
        "8 requests",
      );
      const values = outcomes.map((o) => (o.status === "fulfilled" ? o.value : "failed"));
      assert.deepEqual(values, [10, 20, "failed", 40, 50, 60, 70, 80]);
      assert.match(
        String((outcomes[2] as PromiseRejectedResult).reason.traceback),
        /negative: -3/,
      );
      assert.ok(sizes.every((n) => n <= 4), `batch sizes ${sizes}`);
      assert.ok(sizes.length <= 3, `8 requests in ${sizes.length} batches: ${sizes}`);
      assert.equal(w.worker.capacity, 4, "capacity announced: the batch size");
    } finally {
      await c.run();
    }
  });

  test("a lone request waits at most maxWaitMs for company", { timeout: 60_000 }, async () => {
    const c = new Cleanup();
    try {
      const h = await startHub();
      c.add(() => h.hub.close());
      const w = startWorker(
        batched((items: [number][]) => items.map(([x]) => x)),
        h.endpoint,
        { batch: { maxSize: 16, maxWaitMs: 100 } },
      );
      c.add(() => w.stop());
      await waitFor(() => h.hub.workers === 1, 5000, "the worker");
      const t0 = performance.now();
      assert.equal(await withTimeout(h.hub.request(7), 5000, "lone request"), 7);
      const took = performance.now() - t0;
      assert.ok(took >= 95 && took < 1000, `took ${Math.round(took)} ms`);
    } finally {
      await c.run();
    }
  });

  test(
    "a batching worker under a Python gibbs hub gathers requests by pinging",
    { skip: pythonSkip, timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const hub = await startPyHub(c, { heartbeat: 1 });
        const proc = cliWorker(c, `tcp://127.0.0.1:${hub.port}`, "Tenfold", [
          "--batch-size",
          "4",
          "--batch-wait-ms",
          "200",
        ]);
        await hub.waitWorkers(1);
        const answers = await hub.callAll([[1], [2], [3], [4]]);
        assert.deepEqual(answers.map((a) => a.result), [10, 20, 30, 40], JSON.stringify(answers));
        const bad = await hub.call([-1]);
        assert.equal(bad.ok, false);
        // The hub still serves after everything our worker sent it.
        assert.equal((await hub.call([5])).result, 50);
        assert.equal(proc.child.exitCode, null);
        await hub.assertReceiving();
      } finally {
        await c.run();
      }
    },
  );
});

describe("services", () => {
  test("a worker serving b never gets a's requests; a's wait for a worker of a", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const h = await startHub();
      c.add(() => h.hub.close());
      const seen: string[] = [];
      const b = startWorker((x: string) => (seen.push(`b:${x}`), `b:${x}`), h.endpoint, {
        service: "b",
      });
      c.add(() => b.stop());
      await waitFor(() => h.hub.workers === 1, 5000, "b's worker");
      const forA = h.hub.service("a").request("x");
      assert.equal(await withTimeout(h.hub.service("b").request("y"), 5000, "b"), "b:y");
      await sleep(200);
      assert.deepEqual(seen, ["b:y"], "b's worker never saw a's request");
      assert.equal(h.hub.stats().services.a.queued, 1);
      const a = startWorker((x: string) => `a:${x}`, h.endpoint, { service: "a" });
      c.add(() => a.stop());
      assert.equal(await withTimeout(forA, 5000, "a's request"), "a:x");
      const stats = h.hub.stats();
      assert.equal(stats.services.a.completed, 1);
      assert.equal(stats.services.b.completed, 1);
      assert.equal(stats.workers, 2);
      // The metrics break requests down by service too.
      const byService = new Map(h.hub.metrics().services.map((s) => [s.service, s]));
      assert.equal(byService.get("a")?.requests.ok, 1);
      assert.equal(byService.get("b")?.requests.ok, 1);
      assert.equal(byService.get("a")?.workers, 1);
      // The default service has no worker here: a plain request waits, bounded by its timeout.
      await assert.rejects(h.hub.requestWith({ args: [1], timeout: 0.2 }), RequestTimeoutError);
    } finally {
      await c.run();
    }
  });

  test("POST /services/NAME/request reaches that service only", { timeout: 60_000 }, async () => {
    const c = new Cleanup();
    try {
      const h = await startHub();
      c.add(() => h.hub.close());
      const w = startWorker((x: number) => x * 3, h.endpoint, { service: "triple" });
      c.add(() => w.stop());
      await waitFor(() => h.hub.workers === 1, 5000, "the worker");
      const handle = gatewayHandler(h.hub);
      const res = await handle(
        new Request("http://gateway.test/services/triple/request", {
          method: "POST",
          body: JSON.stringify({ args: [5] }),
        }),
      );
      assert.deepEqual(await res.json(), { result: 15 });
      const timedOut = await handle(
        new Request("http://gateway.test/request", {
          method: "POST",
          body: JSON.stringify({ args: [5], timeout: 0.2 }),
        }),
      );
      assert.equal(timedOut.status, 504, "no worker serves the default service");
      const bad = await handle(
        new Request("http://gateway.test/services/no%20such/request", {
          method: "POST",
          body: JSON.stringify({ args: [] }),
        }),
      );
      assert.equal(bad.status, 400);
    } finally {
      await c.run();
    }
  });

  test(
    "Python workers serve the default service; our hub streams them a single chunk",
    { skip: pythonSkip, timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const h = await startHub();
        c.add(() => h.hub.close());
        await startPyWorker(c, h.port, "echo");
        await waitFor(() => h.hub.workers === 1, 5000, "the python worker");
        // The echo model answers [args, kwargs]: that whole answer is the one chunk.
        assert.deepEqual(await withTimeout(h.hub.stream("hi").toArray(), 10_000, "stream"), [
          [["hi"], {}],
        ]);
        assert.equal(h.hub.stats().services.default.workers, 1);
        const other = await h.hub.service("gpu").requestWith({ args: [1], timeout: 0.2 })
          .then(() => null, (e) => e);
        assert.ok(other instanceof RequestTimeoutError, "no Python worker serves gpu");
      } finally {
        await c.run();
      }
    },
  );

  test(
    "a streaming handler served to a Python gibbs hub answers once, with its chunks",
    { skip: pythonSkip, timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const hub = await startPyHub(c, { heartbeat: 1 });
        cliWorker(c, `tcp://127.0.0.1:${hub.port}`, "tokens", ["--service", "llm"]);
        await hub.waitWorkers(1);
        const answer = await hub.call([3, 10]);
        assert.deepEqual([answer.ok, answer.result], [true, ["t0", "t1", "t2"]]);
        assert.deepEqual((await hub.call([1, 0])).result, ["t0"], "it still receives");
        await hub.assertReceiving();
      } finally {
        await c.run();
      }
    },
  );
});

describe("typed failures", () => {
  test("a stream whose worker dies mid-stream fails with a GibbsError after its chunks", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const h = await startHub();
      c.add(() => h.hub.close());
      const proc = cliWorker(c, h.endpoint, "tokens");
      await waitFor(() => h.hub.workers === 1, 15_000, "the worker");
      const stream = h.hub.stream(100, 50);
      const got: unknown[] = [];
      let caught: unknown;
      try {
        for await (const chunk of stream) {
          got.push(chunk);
          if (got.length === 3) proc.kill("SIGKILL");
        }
      } catch (error) {
        caught = error;
      }
      assert.ok(got.length >= 3 && got.length < 100);
      assert.ok(caught instanceof GibbsError, `${caught}`);
      assert.match((caught as Error).message, /Stream interrupted/);
    } finally {
      await c.run();
    }
  });

  test("a hub closing ends its streams with HubClosedError", { timeout: 60_000 }, async () => {
    const hub = new Hub({ endpoint: "tcp://127.0.0.1:0", logger: () => {} });
    await hub.ready;
    const stream = hub.stream(1);
    await hub.close();
    await assert.rejects(stream.next(), /Hub is closed/);
  });
});
