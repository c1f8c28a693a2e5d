/**
 * The CLI (`gibbs --help`, `gibbs worker --help`, `gibbs hub --help`, a hub with its HTTP
 * gateway driving a worker command end to end) and the HTTP gateway's handler, called directly
 * with `Request` objects.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { gatewayHandler, toJson } from "../src/cli/gateway.ts";
import {
  Cleanup,
  cli,
  MODELS_PATH,
  type Proc,
  settle,
  sleep,
  startHub,
  startWorker,
  waitFor,
  waitStderr,
  withTimeout,
} from "./_helpers.ts";

/** A response's JSON body, untyped (Node's `Response.json()` is typed `unknown`). */
// The gateway's JSON: the tests assert on it.
// deno-lint-ignore no-explicit-any
async function json(res: Response): Promise<any> {
  return await res.json();
}

/** Starts `gibbs hub` on free ports; returns it with its ZeroMQ port and HTTP base URL. */
async function cliHub(extra: string[] = []): Promise<{ hub: Proc; port: string; base: string }> {
  const hub = cli(["hub", "--http", "0", "--port", "0", "--heartbeat", "0.5", ...extra]);
  const line = await waitStderr(hub, /HTTP gateway on/, 20_000, "the hub's address line");
  const m = /connect to tcp:\/\/[^:]+:(\d+); HTTP gateway on (http:\/\/\S+)/.exec(line);
  assert.ok(m, line);
  return { hub, port: m[1], base: m[2] };
}

describe("gibbs CLI", () => {
  test("gibbs --help, gibbs worker --help, gibbs hub --help print usage and exit 0", {
    timeout: 60_000,
  }, async () => {
    const cases: [string[], RegExp[]][] = [
      [["--help"], [
        /Usage:/,
        /gibbs demo/,
        /gibbs hub .*\[--host H\] \[--endpoint E\]/,
        /gibbs worker .*\[--endpoint E\]/,
        /--quiet/,
        /--log-level/,
        /--log-format/,
      ]],
      [[], [/Usage:/]],
      [["worker", "--help"], [
        /MODULE/,
        /--export NAME/,
        /--port P/,
        /--heartbeat S/,
        /--args JSON/,
      ]],
      [["hub", "--help"], [
        /--http PORT/,
        /--max-body SIZE/,
        /POST \/request/,
        /GET {2}\/health/,
        /413/,
        /--log-level/,
      ]],
      [["demo", "--help"], [/--workers N/]],
    ];
    for (const [args, patterns] of cases) {
      const p = cli(args);
      try {
        const exit = await withTimeout(p.exited, 20_000, `gibbs ${args.join(" ")}`);
        assert.equal(exit.code, 0, `gibbs ${args.join(" ")}: ${p.stderr}`);
        const out = p.lines.join("\n");
        for (const re of patterns) assert.match(out, re, `gibbs ${args.join(" ")}`);
      } finally {
        await p.dispose();
      }
    }
  });

  test("gibbs hub --http drives a gibbs worker command; SIGTERM stops both with 0", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const { hub: hubProc, port, base } = await cliHub();
      c.add(() => hubProc.dispose());
      const health0 = await json(await fetch(`${base}/health`));
      assert.equal(health0.workers, 0);
      const worker = cli([
        "worker",
        MODELS_PATH,
        "--export",
        "Scaled",
        "--args",
        "[3]",
        "--host",
        "127.0.0.1",
        "--port",
        port,
        "--heartbeat",
        "0.2",
      ]);
      c.add(() => worker.dispose());
      await withTimeout(
        (async () => {
          while ((await json(await fetch(`${base}/health`))).workers < 1) await sleep(50);
        })(),
        20_000,
        "the worker joins",
      );
      const res = await fetch(`${base}/request`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ args: [5], kwargs: { offset: 1 }, timeout: 5 }),
      });
      assert.equal(res.status, 200);
      assert.deepEqual(await json(res), { result: 16 });
      worker.kill("SIGTERM");
      assert.equal((await withTimeout(worker.exited, 5000, "worker exit")).code, 0);
      assert.match(worker.stderr, /stopped after 1 request$/m, "one request, singular");
      hubProc.kill("SIGTERM");
      assert.equal((await withTimeout(hubProc.exited, 5000, "hub exit")).code, 0);
      assert.match(hubProc.stderr, /SIGTERM, shutting down/);
      // Deno.serve warns about request.signal unless deno.json opts in to its new behaviour.
      assert.doesNotMatch(hubProc.stderr, /legacy|Deno\.serve/, "no runtime warning");
    } finally {
      await c.run();
    }
  });

  test(
    "--log-format json: one object per line; --quiet: warnings only",
    { timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const hubProc = cli(["hub", "--http", "0", "--port", "0", "--log-format", "json"]);
        c.add(() => hubProc.dispose());
        const line = await waitStderr(hubProc, /hub\.listening/, 20_000, "the listening record");
        const record = JSON.parse(line);
        assert.equal(record.level, "info");
        assert.equal(record.source, "hub");
        assert.equal(record.event, "hub.listening");
        assert.match(record.http, /^http:\/\/127\.0\.0\.1:\d+$/);
        assert.match(record.endpoint, /^tcp:\/\/0\.0\.0\.0:(\d+)$/);
        assert.ok(!Number.isNaN(Date.parse(record.time)));
        const port = /:(\d+)$/.exec(record.endpoint)![1];
        const worker = cli(["worker", MODELS_PATH, "--host", "127.0.0.1", "--port", port, "-q"]);
        c.add(() => worker.dispose());
        await withTimeout(
          (async () => {
            while ((await json(await fetch(`${record.http}/health`))).workers < 1) await sleep(50);
          })(),
          20_000,
          "the quiet worker joins",
        );
        worker.kill("SIGTERM");
        assert.equal((await withTimeout(worker.exited, 5000, "worker exit")).code, 0);
        assert.equal(worker.stderr, "", "a quiet worker says nothing when all is well");
        hubProc.kill("SIGTERM");
        await withTimeout(hubProc.exited, 5000, "hub exit");
        for (const l of hubProc.stderr.split("\n").filter((l) => l !== "")) {
          assert.doesNotThrow(() => JSON.parse(l), `a JSON line: ${l}`);
        }
      } finally {
        await c.run();
      }
    },
  );

  test("through the hub's HTTP server: 413 over --max-body, big integers exact", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const { hub: hubProc, port, base } = await cliHub(["--max-body", "1KiB"]);
      c.add(() => hubProc.dispose());
      const worker = cli(["worker", MODELS_PATH, "--host", "127.0.0.1", "--port", port]);
      c.add(() => worker.dispose());
      // Declared too large: refused before the body is read.
      const big = JSON.stringify({ args: ["x".repeat(200_000)] });
      const declared = await fetch(`${base}/request`, { method: "POST", body: big });
      assert.equal(declared.status, 413);
      assert.match((await json(declared)).error, /over the limit of 1 KiB \(--max-body\)/);
      // Streamed with no length: cut off once past the limit.
      const chunks = [new TextEncoder().encode('{"args": ["'), new Uint8Array(4096).fill(120)];
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          const next = chunks.shift();
          if (next) controller.enqueue(next);
          else controller.close();
        },
      });
      const streamed = await fetch(`${base}/request`, {
        method: "POST",
        body: stream,
        duplex: "half",
      } as RequestInit);
      assert.equal(streamed.status, 413);
      assert.match((await json(streamed)).error, /^body is over the limit of 1 KiB/);
      // The gateway still serves, and integers past 2^53 reach the worker exactly.
      const exact = await fetch(`${base}/request`, {
        method: "POST",
        body: '{"args": [9007199254740993, -9007199254740993, 0.1], "timeout": 10}',
      });
      assert.equal(exact.status, 200);
      assert.deepEqual(await json(exact), {
        result: ["9007199254740993", "-9007199254740993", 0.1],
      });
      assert.doesNotMatch(hubProc.stderr, /legacy|Deno\.serve/, "no runtime warning");
    } finally {
      await c.run();
    }
  });
});

/** POSTs a JSON (or raw string) body to the handler. */
function post(body: unknown, path = "/request"): Request {
  return new Request(`http://gateway.test${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

describe("HTTP gateway handler", () => {
  test("POST /request: 200 with the result; kwargs, bytes and big ints as JSON", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const { hub, endpoint } = await startHub();
      c.add(() => hub.close());
      const w = startWorker((x: unknown, opts?: { kind?: string }) => {
        if (opts?.kind === "bytes") return new Uint8Array([104, 105]);
        if (opts?.kind === "big") return 2n ** 62n;
        if (opts?.kind === "nested") return { x, list: [1, null, "s"], f: 2.5 };
        return x;
      }, endpoint);
      c.add(() => w.stop());
      const handle = gatewayHandler(hub);
      const cases: [unknown, unknown][] = [
        [{ args: [7] }, 7],
        [{ args: [[1, 2]], kwargs: { kind: "nested" } }, {
          x: [1, 2],
          list: [1, null, "s"],
          f: 2.5,
        }],
        [{ args: [0], kwargs: { kind: "bytes" } }, { $bytes: "aGk=" }],
        [{ args: [0], kwargs: { kind: "big" } }, "4611686018427387904"],
        [{ args: ["t"], timeout: 5, retries: 1 }, "t"],
        [{}, null], // no args: the handler gets undefined, answered as nil
      ];
      for (const [body, expected] of cases) {
        const res = await withTimeout(
          Promise.resolve(handle(post(body))),
          5000,
          JSON.stringify(body),
        );
        assert.equal(res.status, 200, JSON.stringify(body));
        assert.equal(res.headers.get("content-type"), "application/json");
        assert.deepEqual(await json(res), { result: expected }, JSON.stringify(body));
      }
    } finally {
      await c.run();
    }
  });

  test(
    "POST /request: 500 with the traceback when the worker's code throws",
    { timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const { hub, endpoint } = await startHub();
        c.add(() => hub.close());
        const w = startWorker((x: number) => {
          throw new TypeError(`bad input ${x}`);
        }, endpoint);
        c.add(() => w.stop());
        const res = await withTimeout(
          Promise.resolve(gatewayHandler(hub)(post({ args: [3] }))),
          5000,
          "failing request",
        );
        assert.equal(res.status, 500);
        const body = await json(res);
        assert.match(body.error, /TypeError: bad input 3/);
        assert.match(body.traceback, /^TypeError: bad input 3\n\s+at /);
      } finally {
        await c.run();
      }
    },
  );

  test("POST /request: 504 on timeout", { timeout: 60_000 }, async () => {
    const c = new Cleanup();
    try {
      const { hub, endpoint } = await startHub();
      c.add(() => hub.close());
      const w = startWorker(async (ms: number) => {
        await sleep(ms);
        return ms;
      }, endpoint);
      c.add(() => w.stop());
      const t0 = performance.now();
      const res = await withTimeout(
        Promise.resolve(gatewayHandler(hub)(post({ args: [600], timeout: 0.2 }))),
        3000,
        "timed-out request",
      );
      assert.equal(res.status, 504);
      assert.match((await json(res)).error, /No result within 0\.2 s/);
      assert.ok(performance.now() - t0 < 1000);
    } finally {
      await c.run();
    }
  });

  test("POST /request: 400 on a malformed body or bad arguments", { timeout: 60_000 }, async () => {
    const c = new Cleanup();
    try {
      const { hub } = await startHub();
      c.add(() => hub.close());
      const handle = gatewayHandler(hub);
      const bodies: [string, RegExp][] = [
        ["{not json", /not JSON/],
        ["", /not JSON/],
        ["[1, 2]", /must be an object/],
        ["null", /must be an object/],
        ['"text"', /must be an object/],
        ['{"args": 5}', /"args" must be an array/],
        ['{"args": {"a": 1}}', /"args" must be an array/],
        ['{"kwargs": [1]}', /"kwargs" must be an object/],
        ['{"kwargs": null}', /"kwargs" must be an object/],
        ['{"timeout": -1}', /"timeout" must be a positive number/],
        ['{"timeout": "5"}', /"timeout" must be a positive number/],
        ['{"retries": 1.5}', /"retries" must be an integer/],
        ['{"retries": -2}', /"retries" must be an integer/],
      ];
      for (const [body, re] of bodies) {
        const res = await withTimeout(Promise.resolve(handle(post(body))), 2000, body);
        assert.equal(res.status, 400, body);
        assert.match((await json(res)).error, re, body);
      }
      assert.equal(hub.stats().pending, 0, "no bad body became a request");
    } finally {
      await c.run();
    }
  });

  test("POST /request: 503 when the queue is full (and when the hub is closed)", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const { hub } = await startHub({ respBufferSize: 1, overflow: "reject-new" });
      c.add(() => hub.close());
      const handle = gatewayHandler(hub);
      // No worker: the first request waits and fills the queue.
      const first = settle(Promise.resolve(handle(post({ args: [1], timeout: 1 }))));
      await waitFor(() => hub.stats().pending === 1, 1000, "one pending");
      const res = await withTimeout(Promise.resolve(handle(post({ args: [2] }))), 1000, "second");
      assert.equal(res.status, 503);
      assert.match((await json(res)).error, /Queue full/);
      await hub.close();
      const closed = await withTimeout(Promise.resolve(handle(post({ args: [3] }))), 1000);
      assert.equal(closed.status, 503);
      const f = await withTimeout(first, 2000, "first");
      assert.ok(f.ok);
      assert.equal((f.value as Response).status, 503, "closing fails the pending one with 503");
    } finally {
      await c.run();
    }
  });

  test(
    "GET /health counts the workers alive; 404 and 405 otherwise",
    { timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const { hub, endpoint } = await startHub();
        c.add(() => hub.close());
        const handle = gatewayHandler(hub);
        const health = async () => {
          const res = await handle(new Request("http://gateway.test/health"));
          assert.equal(res.status, 200);
          return await json(res);
        };
        assert.deepEqual(await health(), {
          workers: 0,
          busy: 0,
          queued: 0,
          pending: 0,
          completed: 0,
          redispatched: 0,
          services: {},
        });
        const a = startWorker((x: number) => x, endpoint);
        const b = startWorker((x: number) => x, endpoint);
        c.add(() => a.stop());
        c.add(() => b.stop());
        await waitFor(() => hub.workers === 2, 5000, "2 workers");
        assert.equal((await health()).workers, 2);
        assert.equal(await withTimeout(hub.request(1), 5000), 1);
        assert.equal((await health()).completed, 1);
        await a.stop();
        await withTimeout(
          (async () => {
            while ((await health()).workers !== 1) await sleep(20);
          })(),
          5000,
          "health counts 1 worker after one stops",
        );
        const notFound = await handle(new Request("http://gateway.test/nope"));
        assert.equal(notFound.status, 404);
        const root = await handle(new Request("http://gateway.test/"));
        assert.equal(root.status, 200); // the dashboard (tests/dashboard.test.ts)
        assert.match(root.headers.get("content-type") ?? "", /^text\/html/);
        const getRequest = await handle(new Request("http://gateway.test/request"));
        assert.equal(getRequest.status, 405);
        const postHealth = await handle(post({}, "/health"));
        assert.equal(postHealth.status, 405);
      } finally {
        await c.run();
      }
    },
  );

  test("a client that goes away aborts its request", { timeout: 60_000 }, async () => {
    const c = new Cleanup();
    try {
      const { hub } = await startHub();
      c.add(() => hub.close());
      const ac = new AbortController();
      const req = new Request("http://gateway.test/request", {
        method: "POST",
        body: JSON.stringify({ args: [1] }),
        signal: ac.signal,
      });
      const pending = settle(Promise.resolve(gatewayHandler(hub)(req)));
      await waitFor(() => hub.stats().pending === 1, 1000, "pending");
      ac.abort();
      await withTimeout(pending, 1000, "aborted gateway request");
      assert.equal(hub.stats().pending, 0);
    } finally {
      await c.run();
    }
  });

  test("POST /request: 413 past maxBodyBytes, by Content-Length or as the body streams", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const { hub, endpoint } = await startHub();
      c.add(() => hub.close());
      const w = startWorker((x: string) => x.length, endpoint);
      c.add(() => w.stop());
      const limit = 1000;
      const handle = gatewayHandler(hub, { maxBodyBytes: limit });
      const overhead = JSON.stringify({ args: [""] }).length;
      const fits = JSON.stringify({ args: ["y".repeat(limit - overhead)] });
      assert.equal(new TextEncoder().encode(fits).length, limit);
      const ok = await withTimeout(Promise.resolve(handle(post(fits))), 5000, "body at the limit");
      assert.equal(ok.status, 200, "a body of exactly the limit is read");
      assert.deepEqual(await json(ok), { result: limit - overhead });

      const over = JSON.stringify({ args: ["y".repeat(limit)] });
      const declared = await handle(
        new Request("http://gateway.test/request", {
          method: "POST",
          headers: { "content-length": String(over.length) },
          body: over,
        }),
      );
      assert.equal(declared.status, 413);
      assert.equal(declared.headers.get("connection"), "close");
      assert.match(
        (await json(declared)).error,
        /body of \d+ bytes is over the limit of 1000 bytes/,
      );

      // No Content-Length (a stream): read until the limit is passed, then cancelled.
      let pulled = 0;
      let cancelled = false;
      const endless = new ReadableStream<Uint8Array>({
        pull(controller) {
          pulled++;
          controller.enqueue(new Uint8Array(300).fill(32));
        },
        cancel() {
          cancelled = true;
        },
      });
      const streamed = await withTimeout(
        Promise.resolve(handle(
          new Request("http://gateway.test/request", {
            method: "POST",
            body: endless,
            duplex: "half",
          } as RequestInit),
        )),
        5000,
        "an endless body",
      );
      assert.equal(streamed.status, 413);
      assert.match((await json(streamed)).error, /^body is over the limit of 1000 bytes/);
      assert.ok(cancelled, "the body stream is cancelled");
      assert.ok(pulled <= 6, `read stops at the limit (${pulled} chunks pulled)`);
      assert.equal(hub.stats().pending, 0, "no oversized body became a request");
    } finally {
      await c.run();
    }
  });

  test("POST /request: integers past 2^53 arrive exactly; past 64 bits they are refused", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const { hub, endpoint } = await startHub();
      c.add(() => hub.close());
      const w = startWorker(
        (...args: unknown[]) => args.map((x) => [typeof x, String(x)]),
        endpoint,
      );
      c.add(() => w.stop());
      const handle = gatewayHandler(hub);
      const res = await withTimeout(
        Promise.resolve(handle(post(
          '{"args": [9007199254740993, -9223372036854775808, 18446744073709551615, 12, 0.1, 1e3]}',
        ))),
        5000,
        "big integers",
      );
      assert.equal(res.status, 200);
      assert.deepEqual((await json(res)).result, [
        ["bigint", "9007199254740993"],
        ["bigint", "-9223372036854775808"],
        ["bigint", "18446744073709551615"],
        ["number", "12"],
        ["number", "0.1"],
        ["number", "1000"],
      ]);
      const bodies: [string, RegExp][] = [
        [
          '{"args": [18446744073709551616]}',
          /integer 18446744073709551616 does not fit in 64 bits/,
        ],
        ['{"args": [-9223372036854775809]}', /does not fit in 64 bits/],
        ['{"args": [1], "args": [2]}', /not JSON: Duplicate key 'args'/],
      ];
      for (const [body, re] of bodies) {
        const refused = await withTimeout(Promise.resolve(handle(post(body))), 2000, body);
        assert.equal(refused.status, 400, body);
        assert.match((await json(refused)).error, re, body);
      }
      const latin1 = new Request("http://gateway.test/request", {
        method: "POST",
        body: new Uint8Array([0x7b, 0xff, 0x7d]),
      });
      const notText = await handle(latin1);
      assert.equal(notText.status, 400);
      assert.match((await json(notText)).error, /not UTF-8/);
      assert.equal(hub.stats().pending, 0);
    } finally {
      await c.run();
    }
  });

  test(
    "toJson: bytes as {$bytes: base64}, big ints as decimal strings",
    { timeout: 60_000 },
    () => {
      assert.equal(
        toJson({ b: new Uint8Array([0, 1, 255]), n: 2n ** 62n, s: 5n, l: [1.5, null] }),
        '{"b":{"$bytes":"AAH/"},"n":"4611686018427387904","s":5,"l":[1.5,null]}',
      );
      const big = new Uint8Array(100_000).fill(7);
      assert.equal(JSON.parse(toJson(big)).$bytes.length, Math.ceil(100_000 / 3) * 4);
    },
  );
});
