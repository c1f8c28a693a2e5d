/**
 * Wire compatibility with Python gibbs 0.3, both directions, against tests/peers/gibbs_py.py: a
 * hub and a worker on pyzmq + msgpack as strict as gibbs 0.3's own (a hub whose receive loop
 * dies on the first message it cannot unpack, a ready set that raises KeyError, lazy binding,
 * requests that wait forever or leak, a worker that dies on a request it cannot unpack). Our hub
 * drives Python workers, a Python hub drives our workers, and every test of the second kind ends
 * by checking that the Python hub still receives.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import {
  RequestTimeoutError,
  Router,
  spawnWorkers,
  UserCodeError,
  type WorkerProcesses,
} from "../mod.ts";
import { pack, unpack } from "../src/gibbs/codec.ts";
import {
  Cleanup,
  freePort,
  listener,
  MODELS_URL,
  observe,
  portOf,
  pyzmqMissing,
  rejectsWith,
  settle,
  sleep,
  startHub,
  waitFor,
  withTimeout,
} from "./_helpers.ts";
import { assertAlive, PY_START_MS, startPyHub, startPyWorker } from "./_gibbs_py.ts";
import { concat, decode, messageBytes, peerGreeting, readyFrame } from "./_wire_kit.ts";

const skip = pyzmqMissing();
const EMPTY = new Uint8Array(0);

/** The bytes 0x00 0x01 0xff, and their base64 in tagged JSON. */
const BYTES = new Uint8Array([0, 1, 255]);
const BYTES_TAG = { $bytes: "AAH/" };

describe("TS hub ↔ Python gibbs 0.3 workers", () => {
  test(
    "args, kwargs, nested maps and arrays, bytes, floats, null",
    { skip, timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const { hub, port } = await startHub();
        c.add(() => hub.close());
        const py = await startPyWorker(c, port, "echo");
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
        assertAlive(py);
      } finally {
        await c.run();
      }
    },
  );

  test(
    "64-bit integers: 2n**62n as bigint and 2**40 as number reach Python as int",
    { skip, timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const { hub, port } = await startHub();
        c.add(() => hub.close());
        const echo = await startPyWorker(c, port, "echo");
        const big = [2n ** 62n, -(2n ** 62n), 2n ** 64n - 1n, 2 ** 40, -(2 ** 40), 2 ** 53 - 1];
        assert.deepEqual(await withTimeout(hub.request(...big), 5000, "echo of big ints"), [
          [2n ** 62n, -(2n ** 62n), 2n ** 64n - 1n, 2 ** 40, -(2 ** 40), 2 ** 53 - 1],
          {},
        ]);
        // What Python really received: the fail model puts repr(args) in its traceback.
        const other = await startHub();
        c.add(() => other.hub.close());
        const fail = await startPyWorker(c, other.port, "fail");
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
        assertAlive(echo);
        assertAlive(fail);
      } finally {
        await c.run();
      }
    },
  );

  test(
    "64-bit integers from Python: int64 as bigint, exact 2**40 as number",
    { skip, timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const { hub, port } = await startHub();
        c.add(() => hub.close());
        const big = await startPyWorker(c, port, "scaled", [
          "--args",
          JSON.stringify([{ $int: String(2n ** 62n) }]),
        ]);
        assert.equal(await withTimeout(hub.request(1), 5000), 2n ** 62n);
        assert.equal(await withTimeout(hub.request(-1), 5000), -(2n ** 62n));
        assertAlive(big);
        await c.run();
        const again = await startHub();
        c.add(() => again.hub.close());
        const exact = await startPyWorker(c, again.port, "scaled", ["--args", "[1099511627776]"]);
        assert.equal(await withTimeout(again.hub.request(1), 5000), 2 ** 40);
        assert.equal(await withTimeout(again.hub.request(2.5), 5000), 2.5 * 2 ** 40);
        assertAlive(exact);
      } finally {
        await c.run();
      }
    },
  );

  test(
    "constructor args and kwargs; call args and kwargs",
    { skip, timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const a = await startHub();
        c.add(() => a.hub.close());
        await startPyWorker(c, a.port, "scaled", ["--args", "[3]"]);
        assert.equal(await withTimeout(a.hub.request(5), 5000), 15);
        const b = await startHub();
        c.add(() => b.hub.close());
        await startPyWorker(c, b.port, "scaled", ["--kwargs", '{"factor": 4}']);
        assert.equal(await withTimeout(b.hub.request(2.5), 5000), 10);
        const d = await startHub();
        c.add(() => d.hub.close());
        const add = await startPyWorker(c, d.port, "add");
        assert.equal(
          await withTimeout(d.hub.requestWith({ args: [1, 2, 3], kwargs: { offset: 10 } }), 5000),
          16,
        );
        assert.equal(await withTimeout(d.hub.request(0.5, 0.25), 5000), 0.75);
        assertAlive(add);
      } finally {
        await c.run();
      }
    },
  );

  test(
    "a Python exception: UserCodeError with the Python traceback text; the worker goes on",
    { skip, timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const { hub, port } = await startHub();
        c.add(() => hub.close());
        const py = await startPyWorker(c, port, "fail");
        const error = await rejectsWith(hub.request(1, "a"), UserCodeError, 5000, "fail request");
        assert.match(error.traceback, /^Traceback \(most recent call last\):/);
        assert.match(error.traceback, /File ".*gibbs_py\.py", line \d+, in __call__/);
        assert.match(error.traceback, /ValueError: boom: \(1, 'a'\)\s*$/);
        // The message is the last line, where Python puts what went wrong.
        assert.match(error.message, /ValueError: boom: \(1, 'a'\)/);
        // The same worker (the only one) answers the next request.
        const again = await rejectsWith(hub.request(2), UserCodeError, 5000, "second request");
        assert.match(again.traceback, /ValueError: boom: \(2,\)/);
        assertAlive(py);
      } finally {
        await c.run();
      }
    },
  );

  test(
    "a Python constructor that raises: the worker exits non-zero with its traceback, never connecting",
    { skip, timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        // A bare listener where the hub would be: gibbs builds the model before any socket.
        const hub = await listener();
        c.add(() => hub.close());
        const p = await startPyWorker(c, hub.port, "ctor_fail", [], false);
        const exit = await withTimeout(p.exited, PY_START_MS, "ctor_fail exit");
        assert.notEqual(exit.code, 0);
        assert.match(p.stderr, /RuntimeError: ctor_fail: simulated crash in __init__\(\)/);
        assert.equal(hub.accepted(), 0, "the Python worker connected before its constructor ran");
      } finally {
        await c.run();
      }
    },
  );

  test(
    "request timeout against a busy Python worker; it serves again once done",
    { skip, timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const { hub, port } = await startHub();
        c.add(() => hub.close());
        const py = await startPyWorker(c, port, "sleep");
        const t0 = performance.now();
        await rejectsWith(
          hub.requestWith({ args: [1.0], timeout: 0.3 }),
          RequestTimeoutError,
          3000,
          "timed-out request",
        );
        const took = performance.now() - t0;
        // Not before its timeout; and (it rejected) not when the 1 s model finished.
        observe("timeout 0.3 s against a busy Python worker", took, ">= 290");
        assert.ok(took >= 290, `timed out after ${took} ms`);
        assert.equal(await withTimeout(hub.request(0.01), 5000, "next request"), 0.01);
        assertAlive(py);
      } finally {
        await c.run();
      }
    },
  );

  test(
    "shutdown as gibbs does it: SIGTERM mid-request, the request completes, quit(), exit 0",
    { skip, timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const { hub, port } = await startHub();
        c.add(() => hub.close());
        const p = await startPyWorker(c, port, "sleep");
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
    { skip, timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const first = await startHub();
        c.add(() => first.hub.close());
        const p = await startPyWorker(c, first.port, "pid");
        assert.equal(await withTimeout(first.hub.request(), 5000), p.pid);
        await first.hub.close();
        await p.waitJson((v) => v.event === "reset", 5000, "python worker reset");
        const second = await startHub({ endpoint: first.endpoint });
        c.add(() => second.hub.close());
        assert.equal(
          await withTimeout(second.hub.request(), 5000, "request to the new hub"),
          p.pid,
        );
        assertAlive(p);
      } finally {
        await c.run();
      }
    },
  );
});

/** Spawns `count` TS worker processes of a fixture export for the hub on `port`. */
function tsWorkers(
  c: Cleanup,
  port: number,
  exportName: string,
  extra: { args?: unknown[]; kwargs?: Record<string, unknown>; count?: number } = {},
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

describe("Python gibbs 0.3 hub ↔ TS workers (the hub still receives after each)", () => {
  test(
    "args, kwargs, nested maps and arrays, bytes, floats, null (tagged JSON)",
    { skip, timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const hub = await startPyHub(c);
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
        await hub.assertReceiving();
      } finally {
        await c.run();
      }
    },
  );

  test(
    "64-bit integers (tagged $int and 2**40) come back as Python ints",
    { skip, timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const hub = await startPyHub(c);
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
        await hub.assertReceiving();
      } finally {
        await c.run();
      }
    },
  );

  test(
    "constructor args and kwargs given to our worker command",
    { skip, timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const hub = await startPyHub(c);
        tsWorkers(c, hub.port, "TWorker", { args: [1, 2], kwargs: { key1: 3, key2: 4 } });
        await hub.waitWorkers(1);
        const answer = await hub.request({ args: [4, 3], kwargs: { key1: 2.5, key2: 5 } });
        assert.equal(answer.ok, true, JSON.stringify(answer));
        assert.deepEqual(answer.result, { pos1: 4, pos2: 6, key1: 7.5, key2: 20 });
        assert.match(answer.worker!, /^[0-9a-f]{32}$/, "routing id: 32 lowercase hex chars");
        await hub.assertReceiving();
      } finally {
        await c.run();
      }
    },
  );

  test(
    "a thrown TS error: the Python side sees a failure with our stack text",
    { skip, timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const hub = await startPyHub(c);
        tsWorkers(c, hub.port, "fail");
        await hub.waitWorkers(1);
        const answer = await hub.request({ args: [1, "a"] });
        assert.equal(answer.ok, false, JSON.stringify(answer));
        assert.equal(answer.error, "UserCodeException");
        assert.match(answer.traceback!, /^RangeError: ts boom: \[1,"a"\]/);
        assert.match(answer.traceback!, /\n\s+at fail .*models\.(ts|js)/);
        // Still serving.
        const again = await hub.request({ args: [] });
        assert.equal(again.error, "UserCodeException");
        await hub.assertReceiving();
      } finally {
        await c.run();
      }
    },
  );

  test(
    "SIGTERM to a TS worker mid-request: the response is delivered, exit 0",
    { skip, timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const hub = await startPyHub(c);
        const workers = tsWorkers(c, hub.port, "slowDouble");
        await hub.waitWorkers(1);
        const id = hub.send({ args: [5, 0.8] });
        await sleep(300);
        const child = workers.processes[0];
        child.kill("SIGTERM");
        const answer = await hub.answer(id, 5000);
        assert.equal(answer.ok, true, JSON.stringify(answer));
        assert.deepEqual(answer.result, [10, child.pid]);
        const exit = await withTimeout(child.exited, 5000, "TS worker exit");
        assert.deepEqual(exit, { code: 0, signal: null });
        await hub.assertReceiving();
      } finally {
        await c.run();
      }
    },
  );

  test(
    "a timeout, then timeout and retries: the first attempt times out, a retry is served",
    { skip, timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const hub = await startPyHub(c);
        // slowOnce: its first call takes 1.5 s, later calls answer at once.
        tsWorkers(c, hub.port, "slowOnce");
        await hub.waitWorkers(1);
        // Attempt 1 (0-1 s) reaches the worker and times out; attempt 2 (1-2 s) waits for the
        // worker, which frees up at 1.5 s and serves it at once.
        const retried = await hub.request({ args: [2, 1.5], timeout: 1.0, retries: 3 });
        assert.equal(retried.ok, true, JSON.stringify(retried));
        assert.deepEqual(retried.result, [4, 2], "served by the worker's second call");
        assert.equal(retried.attempts, 2, JSON.stringify(retried));
        assert.equal(retried.sent, 2, JSON.stringify(retried));
        // With no retries left, a timeout is the answer.
        const alone = await hub.request({ args: [3, 0], timeout: 0.2, retries: 0 });
        assert.equal(alone.ok, true, "a fast request within its timeout");
        await hub.assertReceiving();
      } finally {
        await c.run();
      }
    },
  );

  test(
    "requests at once, more than idle workers: all served by our workers, never a KeyError",
    { skip, timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const hub = await startPyHub(c);
        tsWorkers(c, hub.port, "slowDouble");
        await hub.waitWorkers(1);
        // One worker, four requests started in one step (asyncio.gather): gibbs's ready set
        // raises KeyError if the worker ever says twice in a row that it is free. Requests
        // shorter and longer than the worker's heartbeat interval (0.2 s).
        for (const [round, seconds] of [0.05, 0.3].entries()) {
          const ids = hub.sendAll([0, 1, 2, 3].map((x) => ({ args: [x + 10 * round, seconds] })));
          for (const [i, id] of ids.entries()) {
            const answer = await hub.answer(id, 10_000);
            assert.equal(answer.ok, true, JSON.stringify(answer));
            assert.equal(answer.result[0], (i + 10 * round) * 2);
          }
        }
        // Two workers, eight requests.
        tsWorkers(c, hub.port, "slowDouble");
        await hub.waitWorkers(2);
        const ids = hub.sendAll(Array.from({ length: 8 }, (_, x) => ({ args: [x, 0.3] })));
        const pids = new Set<number>();
        for (const [i, id] of ids.entries()) {
          const answer = await hub.answer(id, 10_000);
          assert.equal(answer.ok, true, JSON.stringify(answer));
          assert.equal(answer.result[0], i * 2);
          pids.add(answer.result[1]);
        }
        assert.equal(pids.size, 2, "both workers served");
        await hub.assertReceiving();
      } finally {
        await c.run();
      }
    },
  );

  test(
    "workers started before the hub exists (gibbs binds on its first request) are served",
    { skip, timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const port = await freePort();
        tsWorkers(c, port, "slowDouble", { count: 2 });
        // Long enough for the workers to fail to connect, ping into the void and reset.
        await sleep(1500);
        const hub = await startPyHub(c, { port, bind: false });
        assert.equal((await hub.state()).bound, false, "gibbs binds lazily");
        const ids = hub.sendAll([1, 2, 3, 4].map((x) => ({ args: [x, 0.05] })));
        assert.equal(await hub.bound(), port);
        for (const [i, id] of ids.entries()) {
          const answer = await hub.answer(id, 15_000);
          assert.equal(answer.ok, true, JSON.stringify(answer));
          assert.equal(answer.result[0], (i + 1) * 2);
        }
        await hub.assertReceiving();
      } finally {
        await c.run();
      }
    },
  );
});

/**
 * A fake worker speaking ZMTP by hand over one TCP connection, so that a test decides what
 * travels in one write: READY (DEALER, a 32-hex routing id) and messages.
 */
class RawWorker {
  readonly socket: net.Socket;
  #received: Uint8Array[] = [];

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on("data", (chunk: Uint8Array) => this.#received.push(new Uint8Array(chunk)));
    socket.on("error", () => {});
  }

  /**
   * Connects and greets; once the hub's greeting is in, sends READY followed by `messages` in
   * one write. (libzmq stalls when READY arrives before it has sent its own greeting.)
   */
  static async connect(
    c: Cleanup,
    port: number,
    messages: Uint8Array[][] = [],
  ): Promise<RawWorker> {
    const socket = net.connect({ host: "127.0.0.1", port });
    const worker = new RawWorker(socket);
    c.add(() => socket.destroy());
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        socket.once("connect", () => resolve());
        socket.once("error", reject);
      }),
      5000,
      "raw worker connect",
    );
    socket.write(peerGreeting());
    await waitFor(() => worker.#bytes() >= 64, 5000, "the hub's greeting", 5);
    const id = "f".repeat(32);
    socket.write(concat([
      readyFrame([["Socket-Type", "DEALER"], ["Identity", id]]),
      ...messages.map(messageBytes),
    ]));
    return worker;
  }

  #bytes(): number {
    return this.#received.reduce((n, chunk) => n + chunk.length, 0);
  }

  /** Sends messages in one write. */
  send(...messages: Uint8Array[][]): void {
    this.socket.write(concat(messages.map(messageBytes)));
  }

  /** The messages the hub sent so far. */
  messages(): Uint8Array[][] {
    const stream = concat(this.#received);
    if (stream.length <= 64) return [];
    return decode([stream.subarray(64)]).messages;
  }

  /** Pongs (`["", ""]`) received so far. */
  pongs(): number {
    return this.messages().filter((m) => m.length === 2 && m[1].length === 0).length;
  }

  /** Request payloads (`["", P]`) received so far. */
  requests(): Uint8Array[] {
    return this.messages().filter((m) => m.length === 2 && m[1].length > 0).map((m) => m[1]);
  }
}

const PING = [EMPTY];

describe("the strict peer behaves as gibbs 0.3 does", () => {
  // Messages a gibbs 0.3 hub cannot unpack into [req_id, code, result]: each kills its loop.
  const malformed: [string, Uint8Array[]][] = [
    ["three frames", [EMPTY, pack(["x".repeat(32), 0, 1]), new Uint8Array([1])]],
    ["bytes that are not msgpack", [EMPTY, new Uint8Array([0xc1])]],
    ["msgpack of the wrong arity", [EMPTY, pack(["x".repeat(32), 0])]],
    ["an unhashable req_id (a map)", [EMPTY, pack([{ a: 1 }, 0, 1])]],
  ];
  for (const [what, message] of malformed) {
    test(
      `a Python hub sent ${what} stops receiving for good: no pong, no answer`,
      { skip, timeout: 60_000 },
      async () => {
        const c = new Cleanup();
        try {
          // A long heartbeat interval: the fake stays fresh in the ready set throughout.
          const hub = await startPyHub(c, { heartbeat: 5 });
          const fake = await RawWorker.connect(c, hub.port, [PING]);
          await waitFor(() => fake.pongs() === 1, 5000, "the pong to the first ping");
          assert.equal((await hub.state()).receiving, true);
          fake.send(message);
          await hub.proc.waitJson(
            (v) => v.event === "receive_loop_died",
            5000,
            "the receive loop dies",
          );
          assert.equal((await hub.state()).receiving, false);
          fake.send(PING);
          await sleep(1000);
          assert.equal(fake.pongs(), 1, "a dead receive loop answered a ping");
          // The fake is in the ready set (marked before the loop died): it gets a request
          // whose answer nobody will read.
          const answer = settle(hub.request({ args: [1], timeout: 0.5 }, 5000));
          await waitFor(() => fake.requests().length === 1, 5000, "the request reaches the fake");
          const [reqId] = unpack(fake.requests()[0]) as [string];
          fake.send([EMPTY, pack([reqId, 0, "too late"])]);
          const outcome = await answer;
          assert.ok(outcome.ok && outcome.value.error === "timeout", JSON.stringify(outcome));
        } finally {
          await c.run();
        }
      },
    );
  }

  test(
    "two pings in one read while two requests wait: popitem() on an empty ready set, KeyError",
    { skip, timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const hub = await startPyHub(c);
        const [a, b] = hub.sendAll([{ args: [1] }, { args: [2] }]);
        await sleep(200); // both wait in get_next_worker
        const fake = await RawWorker.connect(c, hub.port, [PING, PING]);
        await waitFor(() => fake.requests().length === 1, 5000, "a request for the fake");
        const [reqId] = unpack(fake.requests()[0]) as [string];
        fake.send([EMPTY, pack([reqId, 0, "served"])]);
        const answers = [await hub.answer(a, 5000), await hub.answer(b, 5000)];
        const keyErrors = answers.filter((x) => x.error === "KeyError");
        assert.equal(keyErrors.length, 1, JSON.stringify(answers));
        assert.equal(keyErrors[0].sent, 0, "it failed before a worker was found");
        assert.deepEqual(answers.filter((x) => x.ok).map((x) => x.result), ["served"]);
        assert.equal(fake.requests().length, 1, "one request for one worker");
        assert.equal((await hub.state()).receiving, true, "a KeyError does not stop the loop");
      } finally {
        await c.run();
      }
    },
  );

  test(
    "a full response buffer: an evicted request that awaits waits forever, " +
      "one evicted before it awaits fails with KeyError once sent",
    { skip, timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        // resp_buffer_size 2; the worker is idle and known: request 0 is sent and awaits, 1
        // and 2 wait for the worker; pinning 2 forgets 0.
        const hub = await startPyHub(c, { respBuffer: 2 });
        tsWorkers(c, hub.port, "slowDouble");
        await hub.waitWorkers(1);
        const [r0, r1, r2] = hub.sendAll([0, 1, 2].map((x) => ({ args: [x, 0.3] })));
        for (const [id, x] of [[r1, 1], [r2, 2]] as const) {
          const answer = await hub.answer(id, 10_000);
          assert.equal(answer.ok, true, JSON.stringify(answer));
          assert.equal(answer.result[0], x * 2);
        }
        await sleep(1000);
        assert.equal(hub.answered(r0), false, "the evicted request got an answer");
        assert.equal((await hub.state()).pinned, 0, "request 0 is not pinned, yet it waits");

        // No worker yet: all three wait for one; pinning the third forgets the first, which
        // then gets the worker, is sent, and fails when it comes to await its answer.
        const other = await startPyHub(c, { respBuffer: 2 });
        const [s0, s1, s2] = other.sendAll([0, 1, 2].map((x) => ({ args: [x, 0.05] })));
        await sleep(200);
        tsWorkers(c, other.port, "slowDouble");
        const first = await other.answer(s0, PY_START_MS);
        assert.equal(first.ok, false);
        assert.equal(first.error, "KeyError");
        assert.match(first.message!, /removed because of buffer overflow/);
        assert.equal(first.sent, 1, "sent to the worker before it failed");
        for (const [id, x] of [[s1, 1], [s2, 2]] as const) {
          const answer = await other.answer(id, 10_000);
          assert.equal(answer.ok, true, JSON.stringify(answer));
          assert.equal(answer.result[0], x * 2);
        }
      } finally {
        await c.run();
      }
    },
  );

  test(
    "timed-out requests stay pinned, and their late answers are stored, unread",
    { skip, timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const hub = await startPyHub(c);
        // No worker: three attempts time out waiting for one, each pinned for good.
        const none = await hub.request({ args: [1], timeout: 0.2, retries: 2 });
        assert.equal(none.error, "timeout", JSON.stringify(none));
        assert.equal(none.attempts, 3);
        assert.equal((await hub.state()).pinned, 3);
        // A worker that answers after the timeout: the answer is stored, and never read.
        tsWorkers(c, hub.port, "slowDouble");
        await hub.waitWorkers(1);
        const late = await hub.request({ args: [1, 0.6], timeout: 0.2 });
        assert.equal(late.error, "timeout", JSON.stringify(late));
        assert.equal(late.sent, 1);
        const t0 = performance.now();
        while ((await hub.state()).stored < 1) {
          assert.ok(performance.now() - t0 < 5000, "the late answer was never stored");
          await sleep(50);
        }
        assert.deepEqual(await hub.state(), {
          op: "state",
          bound: true,
          receiving: true,
          pinned: 4,
          stored: 1,
          heard: 1,
        });
      } finally {
        await c.run();
      }
    },
  );

  test(
    "a Python worker dies on a request it cannot unpack (so assertAlive means something)",
    { skip, timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const router = new Router({ linger: 0 });
        c.add(() => router.close());
        const endpoint = await router.bind("tcp://127.0.0.1:0");
        const port = portOf(endpoint);
        const py = await startPyWorker(c, port, "echo", [], false);
        const [id] = await withTimeout(router.receive(), PY_START_MS, "the worker's first ping");
        await router.send([id, EMPTY, pack(["x".repeat(32), [1]])]); // no kwargs
        const exit = await withTimeout(py.exited, 5000, "the Python worker's death");
        assert.equal(exit.code, 1);
        assert.match(py.stderr, /ValueError: not enough values to unpack/);
      } finally {
        await c.run();
      }
    },
  );
});
