/**
 * Wire compatibility with Python gibbs 0.3, both directions, against tests/peers/gibbs_py.py
 * (pyzmq + msgpack, behaving as gibbs 0.3's Hub and Worker do): our Hub driving Python workers,
 * and a Python hub driving our workers.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { RequestTimeoutError, spawnWorkers, UserCodeError, type WorkerProcesses } from "../mod.ts";
import {
  Cleanup,
  MODELS_URL,
  type Proc,
  python,
  pythonSkip,
  rejectsWith,
  settle,
  sleep,
  startHub,
  waitFor,
  withTimeout,
} from "./_helpers.ts";

const skip = pythonSkip;
const START_MS = 20_000;

/** Starts a Python worker of `model` for the hub on `port`; waits until the hub answered it. */
async function pyWorker(
  c: Cleanup,
  port: number,
  model: string,
  extra: string[] = [],
  waitReady = true,
): Promise<Proc> {
  const p = python([
    "worker",
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    "--heartbeat",
    "0.2",
    "--model",
    model,
    ...extra,
  ]);
  c.add(() => p.dispose());
  if (waitReady) {
    await p.waitJson((v) => v.ready === true, START_MS, `python ${model} worker ready`);
  }
  return p;
}

/** The bytes 0x00 0x01 0xff, and their base64 in tagged JSON. */
const BYTES = new Uint8Array([0, 1, 255]);
const BYTES_TAG = { $bytes: "AAH/" };

describe("TS hub ↔ Python gibbs 0.3 workers", () => {
  test("args, kwargs, nested maps and arrays, bytes, floats, null", { skip }, async () => {
    const c = new Cleanup();
    try {
      const { hub, port } = await startHub();
      c.add(() => hub.close());
      await pyWorker(c, port, "echo");
      const args = [
        1,
        -7,
        "two",
        "ünïcødé ✓",
        [3, [4, new Uint8Array([9])]],
        { a: { b: [1, 2.5], c: null }, d: [] },
        null,
        2.5,
        -0.125,
        BYTES,
        true,
        false,
        {},
      ];
      const kwargs = { k: new Uint8Array([7, 8]), n: null, f: 1.5, nested: { x: ["y"] } };
      const result = await withTimeout(hub.requestWith({ args, kwargs }), 5000, "echo request");
      // The Python echo model returns [list(args), kwargs].
      assert.deepEqual(result, [args, kwargs]);
      const [gotArgs] = result as [unknown[], unknown];
      assert.ok(gotArgs[9] instanceof Uint8Array, "bytes come back as a Uint8Array");
      // No kwargs: the model gets none (an empty map on the wire).
      assert.deepEqual(await withTimeout(hub.request("x"), 5000), [["x"], {}]);
      assert.deepEqual(await withTimeout(hub.request(), 5000), [[], {}]);
    } finally {
      await c.run();
    }
  });

  test(
    "64-bit integers: 2n**62n as bigint and 2**40 as number reach Python as int",
    { skip },
    async () => {
      const c = new Cleanup();
      try {
        const { hub, port } = await startHub();
        c.add(() => hub.close());
        await pyWorker(c, port, "echo");
        const big = [2n ** 62n, -(2n ** 62n), 2n ** 64n - 1n, 2 ** 40, -(2 ** 40), 2 ** 53 - 1];
        assert.deepEqual(await withTimeout(hub.request(...big), 5000, "echo of big ints"), [
          [2n ** 62n, -(2n ** 62n), 2n ** 64n - 1n, 2 ** 40, -(2 ** 40), 2 ** 53 - 1],
          {},
        ]);
        // What Python really received: the fail model puts repr(args) in its traceback.
        const other = await startHub();
        c.add(() => other.hub.close());
        await pyWorker(c, other.port, "fail");
        const error = await rejectsWith(
          other.hub.request(2n ** 62n, 2 ** 40, -(2 ** 40), 2 ** 53 - 1, 2 ** 32, 3, 2.5),
          UserCodeError,
          5000,
          "fail request",
        );
        assert.match(
          error.traceback,
          /boom: \(4611686018427387904, 1099511627776, -1099511627776, 9007199254740991, 4294967296, 3, 2\.5\)/,
          `Python must see ints, not floats like 1099511627776.0; it saw:\n${error.traceback}`,
        );
      } finally {
        await c.run();
      }
    },
  );

  test(
    "64-bit integers from Python: int64 as bigint, exact 2**40 as number",
    { skip },
    async () => {
      const c = new Cleanup();
      try {
        const { hub, port } = await startHub();
        c.add(() => hub.close());
        await pyWorker(c, port, "scaled", [
          "--args",
          JSON.stringify([{ $int: String(2n ** 62n) }]),
        ]);
        assert.equal(await withTimeout(hub.request(1), 5000), 2n ** 62n);
        assert.equal(await withTimeout(hub.request(-1), 5000), -(2n ** 62n));
        await c.run();
        const again = await startHub();
        c.add(() => again.hub.close());
        await pyWorker(c, again.port, "scaled", ["--args", "[1099511627776]"]);
        assert.equal(await withTimeout(again.hub.request(1), 5000), 2 ** 40);
        assert.equal(await withTimeout(again.hub.request(2.5), 5000), 2.5 * 2 ** 40);
      } finally {
        await c.run();
      }
    },
  );

  test("constructor args and kwargs; call args and kwargs", { skip }, async () => {
    const c = new Cleanup();
    try {
      const a = await startHub();
      c.add(() => a.hub.close());
      await pyWorker(c, a.port, "scaled", ["--args", "[3]"]);
      assert.equal(await withTimeout(a.hub.request(5), 5000), 15);
      const b = await startHub();
      c.add(() => b.hub.close());
      await pyWorker(c, b.port, "scaled", ["--kwargs", '{"factor": 4}']);
      assert.equal(await withTimeout(b.hub.request(2.5), 5000), 10);
      const d = await startHub();
      c.add(() => d.hub.close());
      await pyWorker(c, d.port, "add");
      assert.equal(
        await withTimeout(d.hub.requestWith({ args: [1, 2, 3], kwargs: { offset: 10 } }), 5000),
        16,
      );
      assert.equal(await withTimeout(d.hub.request(0.5, 0.25), 5000), 0.75);
    } finally {
      await c.run();
    }
  });

  test("a Python exception: UserCodeError with the Python traceback text", { skip }, async () => {
    const c = new Cleanup();
    try {
      const { hub, port } = await startHub();
      c.add(() => hub.close());
      await pyWorker(c, port, "fail");
      const error = await rejectsWith(hub.request(1, "a"), UserCodeError, 5000, "fail request");
      assert.match(error.traceback, /^Traceback \(most recent call last\):/);
      assert.match(error.traceback, /File ".*gibbs_py\.py", line \d+, in __call__/);
      assert.match(error.traceback, /ValueError: boom: \(1, 'a'\)\s*$/);
      // The message is the last line, where Python puts what went wrong.
      assert.match(error.message, /ValueError: boom: \(1, 'a'\)/);
      // The worker goes on serving.
      await rejectsWith(hub.request(2), UserCodeError, 5000, "second fail request");
    } finally {
      await c.run();
    }
  });

  test(
    "a Python constructor that raises: the worker exits non-zero with its traceback",
    { skip },
    async () => {
      const c = new Cleanup();
      try {
        const { hub, port } = await startHub();
        c.add(() => hub.close());
        const p = await pyWorker(c, port, "ctor_fail", [], false);
        const exit = await withTimeout(p.exited, START_MS, "ctor_fail exit");
        assert.notEqual(exit.code, 0);
        assert.match(p.stderr, /RuntimeError: ctor_fail: simulated crash in __init__\(\)/);
        assert.equal(hub.workers, 0);
      } finally {
        await c.run();
      }
    },
  );

  test("request timeout against a busy Python worker", { skip }, async () => {
    const c = new Cleanup();
    try {
      const { hub, port } = await startHub();
      c.add(() => hub.close());
      await pyWorker(c, port, "sleep");
      const t0 = performance.now();
      await rejectsWith(
        hub.requestWith({ args: [1.0], timeout: 0.3 }),
        RequestTimeoutError,
        3000,
        "timed-out request",
      );
      const took = performance.now() - t0;
      assert.ok(took >= 290 && took < 900, `timed out after ${took} ms`);
      // Once it is done, the worker serves again.
      assert.equal(await withTimeout(hub.request(0.01), 5000, "next request"), 0.01);
    } finally {
      await c.run();
    }
  });

  test(
    "graceful shutdown: SIGTERM mid-request, the request completes, exit 0",
    { skip },
    async () => {
      const c = new Cleanup();
      try {
        const { hub, port } = await startHub();
        c.add(() => hub.close());
        const p = await pyWorker(c, port, "sleep");
        const request = settle(hub.request(0.8));
        await waitFor(() => hub.stats().busy === 1, 3000, "computing");
        await sleep(100);
        p.kill("SIGTERM");
        const outcome = await withTimeout(request, 5000, "request in hand");
        assert.ok(outcome.ok, `request failed: ${!outcome.ok && outcome.error}`);
        assert.equal(outcome.value, 0.8);
        const exit = await withTimeout(p.exited, 5000, "python worker exit");
        assert.deepEqual(exit, { code: 0, signal: null });
      } finally {
        await c.run();
      }
    },
  );

  test(
    "hub restarted: a Python worker resets its socket and serves the new hub",
    { skip },
    async () => {
      const c = new Cleanup();
      try {
        const first = await startHub();
        c.add(() => first.hub.close());
        const p = await pyWorker(c, first.port, "pid");
        assert.equal(await withTimeout(first.hub.request(), 5000), p.pid);
        await first.hub.close();
        await p.waitJson((v) => v.event === "reset", 3000, "python worker reset");
        const second = await startHub({ endpoint: first.endpoint });
        c.add(() => second.hub.close());
        assert.equal(
          await withTimeout(second.hub.request(), 5000, "request to the new hub"),
          p.pid,
        );
      } finally {
        await c.run();
      }
    },
  );
});

/** A Python hub and a way to send it requests and read its answers. */
class PyHub {
  #next = 0;
  constructor(readonly proc: Proc, readonly port: number) {}

  /** Sends a request and returns its answer line (parsed). */
  async request(body: Record<string, unknown>, ms = 10_000): Promise<any> {
    const id = `r${this.#next++}`;
    this.proc.send({ id, ...body });
    return await this.proc.waitJson((v) => v.id === id, ms, `python hub answer to ${id}`);
  }

  /** Waits until the hub has `n` available workers. */
  async waitWorkers(n: number, ms = START_MS): Promise<void> {
    const deadline = performance.now() + ms;
    while (true) {
      const before = this.proc.lines.length;
      this.proc.send({ op: "workers" });
      const listing = await this.proc.waitJson(
        (v) => Array.isArray(v.workers),
        5000,
        "workers listing",
        before,
      );
      if (listing.workers.length >= n) return;
      if (performance.now() > deadline) throw new Error(`python hub saw < ${n} workers`);
      await sleep(50);
    }
  }
}

async function pyHub(c: Cleanup): Promise<PyHub> {
  const proc = python(["hub", "--port", "0", "--heartbeat", "0.5"]);
  c.add(() => proc.dispose());
  const ready = await proc.waitJson((v) => v.ready === true, START_MS, "python hub ready");
  return new PyHub(proc, ready.port);
}

function tsWorkers(
  c: Cleanup,
  port: number,
  exportName: string,
  extra: { args?: unknown[]; kwargs?: Record<string, unknown> } = {},
): WorkerProcesses {
  const workers = spawnWorkers(MODELS_URL, {
    export: exportName,
    host: "127.0.0.1",
    port,
    heartbeatInterval: 0.2,
    inheritOutput: false,
    quiet: true,
    ...extra,
  });
  c.add(() => workers.kill());
  return workers;
}

describe("Python gibbs 0.3 hub ↔ TS workers", () => {
  test(
    "args, kwargs, nested maps and arrays, bytes, floats, null (tagged JSON)",
    { skip },
    async () => {
      const c = new Cleanup();
      try {
        const hub = await pyHub(c);
        tsWorkers(c, hub.port, "echo");
        await hub.waitWorkers(1);
        const args = [
          1,
          -7,
          "two",
          "ünïcødé ✓",
          [3, [4, BYTES_TAG]],
          { a: { b: [1, 2.5], c: null }, d: [] },
          null,
          2.5,
          -0.125,
          BYTES_TAG,
          true,
          false,
          {},
        ];
        const kwargs = { k: { $bytes: "Bwg=" }, n: null, f: 1.5, nested: { x: ["y"] } };
        const answer = await hub.request({ args, kwargs });
        assert.equal(answer.ok, true, JSON.stringify(answer));
        // Our echo returns what arrived: the args, then the kwargs as one trailing object.
        assert.deepEqual(answer.result, [...args, kwargs]);
        // No kwargs: nothing trailing.
        const plain = await hub.request({ args: ["x"] });
        assert.deepEqual(plain.result, ["x"]);
        const none = await hub.request({});
        assert.deepEqual(none.result, []);
      } finally {
        await c.run();
      }
    },
  );

  test("64-bit integers (tagged $int and 2**40) come back as Python ints", { skip }, async () => {
    const c = new Cleanup();
    try {
      const hub = await pyHub(c);
      tsWorkers(c, hub.port, "echo");
      await hub.waitWorkers(1);
      const args = [
        { $int: String(2n ** 62n) },
        { $int: String(-(2n ** 62n)) },
        { $int: String(2n ** 64n - 1n) },
        2 ** 40,
        -(2 ** 40),
        2 ** 53 - 1,
        2 ** 32,
      ];
      const answer = await hub.request({ args });
      assert.equal(answer.ok, true, JSON.stringify(answer));
      // A float here ({"$float": 1099511627776.0}) means the int became a float64 on the wire.
      assert.deepEqual(answer.result, args);
    } finally {
      await c.run();
    }
  });

  test("constructor args and kwargs given to our worker command", { skip }, async () => {
    const c = new Cleanup();
    try {
      const hub = await pyHub(c);
      tsWorkers(c, hub.port, "TWorker", { args: [1, 2], kwargs: { key1: 3, key2: 4 } });
      await hub.waitWorkers(1);
      const answer = await hub.request({ args: [4, 3], kwargs: { key1: 2.5, key2: 5 } });
      assert.equal(answer.ok, true, JSON.stringify(answer));
      assert.deepEqual(answer.result, { pos1: 4, pos2: 6, key1: 7.5, key2: 20 });
      assert.match(answer.worker, /^[0-9a-f]{32}$/, "routing id: 32 lowercase hex chars");
    } finally {
      await c.run();
    }
  });

  test(
    "a thrown TS error: the Python side sees a failure with our stack text",
    { skip },
    async () => {
      const c = new Cleanup();
      try {
        const hub = await pyHub(c);
        tsWorkers(c, hub.port, "fail");
        await hub.waitWorkers(1);
        const answer = await hub.request({ args: [1, "a"] });
        assert.equal(answer.ok, false, JSON.stringify(answer));
        assert.equal(answer.error, "UserCodeException");
        assert.match(answer.traceback, /^RangeError: ts boom: \[1,"a"\]/);
        assert.match(answer.traceback, /\n\s+at fail .*models\.(ts|js)/);
        // Still serving.
        const again = await hub.request({ args: [] });
        assert.equal(again.error, "UserCodeException");
      } finally {
        await c.run();
      }
    },
  );

  test(
    "SIGTERM to a TS worker mid-request: the response is delivered, exit 0",
    { skip },
    async () => {
      const c = new Cleanup();
      try {
        const hub = await pyHub(c);
        const workers = tsWorkers(c, hub.port, "slowDouble");
        await hub.waitWorkers(1);
        const id = "slow";
        hub.proc.send({ id, args: [5, 0.8] });
        await sleep(300);
        const child = workers.processes[0];
        child.kill("SIGTERM");
        const answer = await hub.proc.waitJson(
          (v) => v.id === id,
          5000,
          "answer to the slow request",
        );
        assert.equal(answer.ok, true, JSON.stringify(answer));
        assert.deepEqual(answer.result, [10, child.pid]);
        const exit = await withTimeout(child.exited, 5000, "TS worker exit");
        assert.deepEqual(exit, { code: 0, signal: null });
      } finally {
        await c.run();
      }
    },
  );

  test("timeout and retries on the Python hub with a TS worker", { skip }, async () => {
    const c = new Cleanup();
    try {
      const hub = await pyHub(c);
      tsWorkers(c, hub.port, "slowDouble");
      await hub.waitWorkers(1);
      const answer = await hub.request({ args: [1, 0.6], timeout: 0.2 });
      assert.equal(answer.ok, false);
      assert.equal(answer.error, "timeout");
      // gibbs retries with a new req_id; the worker answers the first one late, which the
      // Python hub ignores, then serves the retry.
      const retried = await hub.request({ args: [2, 0.05], timeout: 1.5, retries: 2 });
      assert.equal(retried.ok, true, JSON.stringify(retried));
      assert.equal(retried.result[0], 4);
    } finally {
      await c.run();
    }
  });
});
