/**
 * Several hubs sharing one pool of workers (application replicas in front of the same workers):
 * each worker serves every hub on a connection of its own, never holds more than its capacity
 * across them, declines what it cannot take so that our hub sends it elsewhere at once, and
 * keeps serving the others when one hub dies. Against Python gibbs hubs too.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Hub, HubClosedError, requestSignal, Worker } from "../mod.ts";
import {
  Cleanup,
  cli,
  EXT,
  MODELS_PATH,
  type Proc,
  pyzmqMissing,
  script,
  sleep,
  startHub,
  startSharedWorker,
  type TestHub,
  waitFor,
  withTimeout,
} from "./_helpers.ts";
import { startPyHub } from "./_gibbs_py.ts";

const pythonSkip = pyzmqMissing();

const LOAD_HUB = fileURLToPath(new URL(`./fixtures/load_hub${EXT}`, import.meta.url));
const TALLY = fileURLToPath(new URL(`./fixtures/tally_model${EXT}`, import.meta.url));

/** Requests that wait until the test lets them finish, counting how many run at once. */
class Gates {
  running = 0;
  peak = 0;
  #open: (() => void)[] = [];

  /** A handler: `(tag, i)` waits for its gate (or its request's abort), returns `[tag, i]`. */
  readonly handler = async (tag: string, i: number): Promise<[string, number]> => {
    this.running++;
    this.peak = Math.max(this.peak, this.running);
    const signal = requestSignal();
    try {
      await new Promise<void>((resolve) => {
        this.#open.push(resolve);
        signal?.addEventListener("abort", () => resolve(), { once: true });
      });
    } finally {
      this.running--;
    }
    return [tag, i];
  };

  get waiting(): number {
    return this.#open.length;
  }

  /** Lets the oldest `n` requests finish (all by default). */
  open(n = Infinity): void {
    for (const resolve of this.#open.splice(0, n)) resolve();
  }
}

/** Hubs on free ports (prefetch 1: a hub sends a worker exactly its capacity). */
async function hubs(c: Cleanup, n: number): Promise<TestHub[]> {
  const list: TestHub[] = [];
  for (let i = 0; i < n; i++) {
    const h = await startHub({ prefetch: 1 });
    c.add(() => h.hub.close());
    list.push(h);
  }
  return list;
}

describe("one worker, several hubs (in process)", () => {
  test(
    "requests of three hubs share a worker's capacity of 2 exactly",
    { timeout: 120_000 },
    async () => {
      const c = new Cleanup();
      try {
        const hs = await hubs(c, 3);
        const gates = new Gates();
        const w = startSharedWorker(gates.handler, hs.map((h) => h.endpoint), { concurrency: 2 });
        c.add(() => (gates.open(), w.stop()));
        await waitFor(() => hs.every((h) => h.hub.workers === 1), 5000, "the worker at each hub");
        const requests = hs.flatMap((h, k) =>
          [0, 1, 2].map((i) => h.hub.request(`h${k}`, i) as Promise<[string, number]>)
        );
        await waitFor(() => gates.running === 2, 5000, "two running");
        await sleep(300);
        assert.equal(gates.running, 2, "no more than the capacity, across the hubs");
        assert.ok(w.worker.declined >= 1, "a hub that found it full was declined");
        while (gates.running > 0 || hs.some((h) => h.hub.stats().pending > 0)) {
          gates.open(1);
          await sleep(20);
        }
        const results = await withTimeout(Promise.all(requests), 5000, "all nine");
        assert.deepEqual(results, hs.flatMap((_, k) => [0, 1, 2].map((i) => [`h${k}`, i])));
        assert.equal(gates.peak, 2);
        assert.equal(w.worker.peakInFlight, 2);
        for (const h of hs) assert.equal(h.hub.stats().redispatched, 0, "a decline is no loss");
      } finally {
        await c.run();
      }
    },
  );

  test("a declined request waits for room, no timeout; or goes to another worker at once", {
    timeout: 120_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const [a, b] = await hubs(c, 2);
      const gates = new Gates();
      const w1 = startSharedWorker(gates.handler, [a.endpoint, b.endpoint]);
      c.add(() => (gates.open(), w1.stop()));
      await waitFor(() => a.hub.workers === 1 && b.hub.workers === 1, 5000, "w1 at both");
      // w1 (capacity 1) computes for hub b; hub a's request finds it full.
      const rb = b.hub.request("b", 0);
      await waitFor(() => gates.running === 1, 5000, "b's request running");
      const ra = a.hub.request("a", 0);
      await waitFor(() => w1.worker.declined === 1, 5000, "a's request declined");
      await sleep(200);
      assert.equal(a.hub.stats().queued, 1, "it waits at hub a for a worker with room");
      gates.open();
      assert.deepEqual(await withTimeout(rb, 5000, "rb"), ["b", 0]);
      // w1 tells hub a there is room again: the request goes out, no timeout needed.
      await waitFor(() => gates.waiting === 1, 5000, "a's request running on w1");
      gates.open();
      assert.deepEqual(await withTimeout(ra, 5000, "ra"), ["a", 0]);

      // Full again for b; this time hub a has another worker: its request goes there at once.
      const rb2 = b.hub.request("b", 1);
      await waitFor(() => gates.running === 1, 5000, "b's second request running");
      const w2 = startSharedWorker((tag: string, i: number) => ["w2", tag, i], [a.endpoint]);
      c.add(() => w2.stop());
      await waitFor(() => a.hub.workers === 2, 5000, "w2 at hub a");
      const results = await withTimeout(
        Promise.all([0, 1, 2].map((i) => a.hub.request("a", 10 + i))),
        5000,
        "hub a's requests while w1 is full",
      );
      assert.deepEqual(results, [0, 1, 2].map((i) => ["w2", "a", 10 + i]));
      assert.equal(gates.running, 1, "w1 still computes b's request");
      gates.open();
      assert.deepEqual(await withTimeout(rb2, 5000, "rb2"), ["b", 1]);
      assert.equal(a.hub.stats().redispatched + b.hub.stats().redispatched, 0);
    } finally {
      await c.run();
    }
  });

  test("a capacity change is announced to every hub", { timeout: 120_000 }, async () => {
    const c = new Cleanup();
    try {
      const [a, b] = await hubs(c, 2);
      const gates = new Gates();
      const w = startSharedWorker(gates.handler, [a.endpoint, b.endpoint]);
      c.add(() => (gates.open(), w.stop()));
      await waitFor(() => a.hub.workers === 1 && b.hub.workers === 1, 5000, "the worker");
      w.worker.setConcurrency(3);
      for (const [h, tag] of [[b, "b"], [a, "a"]] as const) {
        // Each hub alone: it sends 3 at once only if it heard of the new capacity.
        const requests = [0, 1, 2].map((i) => h.hub.request(tag, i));
        await waitFor(() => gates.running === 3, 5000, `3 of hub ${tag}'s at once`);
        gates.open();
        assert.equal((await withTimeout(Promise.all(requests), 5000, tag)).length, 3);
      }
      assert.equal(w.worker.declined, 0);
    } finally {
      await c.run();
    }
  });

  test("addHub and removeHub at run time; a removed hub's requests in hand are answered", {
    timeout: 120_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const [a, b] = await hubs(c, 2);
      const gates = new Gates();
      const w = startSharedWorker(gates.handler, [a.endpoint], { concurrency: 2 });
      c.add(() => (gates.open(), w.stop()));
      await waitFor(() => a.hub.workers === 1, 5000, "the worker at hub a");
      assert.equal(b.hub.workers, 0);
      w.worker.addHub(b.endpoint);
      assert.deepEqual(w.worker.endpoints, [a.endpoint, b.endpoint]);
      await waitFor(() => b.hub.workers === 1, 5000, "the worker at hub b");
      assert.throws(() => w.worker.addHub(b.endpoint), /already serves the hub at/);
      assert.throws(() => w.worker.addHub("udp://x:1"), /unsupported transport/);
      const inHand = a.hub.request("a", 0);
      await waitFor(() => gates.running === 1, 5000, "a's request running");
      const removed = w.worker.removeHub(a.endpoint);
      assert.deepEqual(w.worker.endpoints, [b.endpoint]);
      // Hub a's next request is declined (the worker is leaving it) and waits there...
      const later = a.hub.request("a", 1);
      await waitFor(() => w.worker.declined === 1, 5000, "a's later request declined");
      // ...while hub b is served as before.
      const fromB = b.hub.request("b", 0);
      await waitFor(() => gates.running === 2, 5000, "b's request running");
      gates.open();
      assert.deepEqual(await withTimeout(inHand, 5000, "a's request in hand"), ["a", 0]);
      assert.deepEqual(await withTimeout(fromB, 5000, "b's request"), ["b", 0]);
      await withTimeout(removed, 5000, "removeHub");
      await waitFor(() => a.hub.workers === 0, 5000, "the worker gone from hub a");
      const other = startSharedWorker((tag: string, i: number) => ["other", tag, i], [a.endpoint]);
      c.add(() => other.stop());
      assert.deepEqual(await withTimeout(later, 5000, "a's later request"), ["other", "a", 1]);
      await assert.rejects(w.worker.removeHub(a.endpoint), /does not serve a hub at/);
    } finally {
      await c.run();
    }
  });

  test("a hub that goes away costs only its requests; the worker rejoins when it is back", {
    timeout: 120_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const [a, b] = await hubs(c, 2);
      const gates = new Gates();
      const w = startSharedWorker(gates.handler, [a.endpoint, b.endpoint], { concurrency: 2 });
      c.add(() => (gates.open(), w.stop()));
      await waitFor(() => a.hub.workers === 1 && b.hub.workers === 1, 5000, "the worker");
      const fromA = a.hub.request("a", 0);
      fromA.catch(() => {});
      const fromB = b.hub.request("b", 0);
      await waitFor(() => gates.running === 2, 5000, "both running");
      await a.hub.close();
      await assert.rejects(fromA, HubClosedError);
      // The worker stops computing for a hub that is gone: its slot goes to hub b.
      await waitFor(() => gates.running === 1, 5000, "a's request cancelled on the worker");
      const more = [1, 2, 3].map((i) => b.hub.request("b", i));
      await waitFor(() => gates.running === 2, 5000, "b's next request in a's slot");
      while (gates.running > 0) {
        gates.open();
        await sleep(20);
      }
      assert.deepEqual(await withTimeout(Promise.all([fromB, ...more]), 5000, "hub b's"), [
        ["b", 0],
        ["b", 1],
        ["b", 2],
        ["b", 3],
      ]);
      // Hub a comes back on the same endpoint: the worker reconnects within its 100 ms retry.
      const back = new Hub({ endpoint: a.endpoint, prefetch: 1, logger: () => {} });
      c.add(() => back.close());
      await back.ready;
      const t0 = performance.now();
      await waitFor(() => back.workers === 1, 5000, "the worker back at hub a", 2);
      const rejoinMs = performance.now() - t0;
      assert.ok(rejoinMs < 1000, `rejoined ${Math.round(rejoinMs)} ms after the bind`);
      const again = back.request("a", 9);
      await waitFor(() => gates.running === 1, 5000, "served again");
      gates.open();
      assert.deepEqual(await withTimeout(again, 5000, "hub a again"), ["a", 9]);
    } finally {
      await c.run();
    }
  });

  test("endpoints are checked: not with endpoint, host or port; no duplicates; [] is fine", {
    timeout: 120_000,
  }, async () => {
    const f = (x: number) => x;
    assert.throws(() => new Worker(f, { endpoints: [], port: 1 }), /endpoints replaces/);
    assert.throws(
      () => new Worker(f, { endpoints: ["tcp://a:1", "tcp://a:1"] }),
      /names tcp:\/\/a:1 twice/,
    );
    assert.throws(() => new Worker(f, { endpoints: ["a:1"] }), /Invalid endpoint/);
    const c = new Cleanup();
    try {
      const [a] = await hubs(c, 1);
      const w = startSharedWorker(f, []);
      c.add(() => w.stop());
      await sleep(100);
      assert.equal(w.worker.endpoint, "");
      w.worker.addHub(a.endpoint);
      assert.equal(await withTimeout(a.hub.request(5), 5000, "after addHub"), 5);
    } finally {
      await c.run();
    }
  });
});

/** A hub process of tests/fixtures/load_hub.ts, and what it printed. */
class LoadHub {
  readonly proc: Proc;
  constructor(readonly tag: string, port: number, c: Cleanup) {
    this.proc = script(LOAD_HUB, [String(port), tag]);
    c.add(() => this.proc.dispose());
  }

  async bound(): Promise<{ endpoint: string; at: number }> {
    const line = await this.proc.waitJson((v) => typeof v.bound === "string", 30_000, "bound");
    return { endpoint: line.bound, at: line.at };
  }

  /** When it first saw `n` workers (wall-clock ms). */
  async workers(n: number): Promise<number> {
    const line = await this.proc.waitJson((v) => v.workers === n, 30_000, `${n} workers`);
    return line.at;
  }

  run(file: string, requests: number, inFlight: number, ms: number): void {
    this.proc.send({ op: "run", file, requests, inFlight, ms });
  }

  async answered(n: number, ms: number): Promise<void> {
    await this.proc.waitJson((v) => v.answered >= n, ms, `${this.tag}: ${n} answered`);
  }

  // The fixture's JSON records: the tests assert on them.
  // deno-lint-ignore no-explicit-any
  async done(ms: number): Promise<any> {
    return await this.proc.waitJson((v) => v.done === true, ms, `${this.tag} done`);
  }
}

/** Our CLI worker serving the tally model to every endpoint, logging JSON lines. */
function tallyWorker(c: Cleanup, endpoints: string[], concurrency: number): Proc {
  const proc = cli([
    "worker",
    TALLY,
    ...endpoints.flatMap((e) => ["--endpoint", e]),
    "--threads",
    "0",
    "--concurrency",
    String(concurrency),
    "--heartbeat",
    "0.5",
    "--log-format",
    "json",
  ]);
  c.add(() => proc.dispose());
  return proc;
}

/** The JSON log records a process wrote on standard error. */
// deno-lint-ignore no-explicit-any
function records(p: Proc): any[] {
  return p.stderr.split("\n").flatMap((line) => {
    try {
      return [JSON.parse(line)];
    } catch {
      return [];
    }
  });
}

/** Runs of the tally model written down in `file`: `tag i` → how many times it ran. */
function runsOf(file: string): Map<string, number> {
  const runs = new Map<string, number>();
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (line === "") continue;
    const [tag, i] = line.split(" ");
    runs.set(`${tag} ${i}`, (runs.get(`${tag} ${i}`) ?? 0) + 1);
  }
  return runs;
}

describe("application replicas in front of one pool (processes)", () => {
  test(
    "3 hubs, 4 workers on all 3, 2,000 requests each with 32 in flight; one hub killed " +
      "mid-run: the others lose nothing; restarted: the workers rejoin",
    { timeout: 240_000 },
    async () => {
      const c = new Cleanup();
      const dir = mkdtempSync(join(tmpdir(), "gibbs-shared-"));
      c.add(() => rmSync(dir, { recursive: true, force: true }));
      const file = join(dir, "runs");
      const N = 2000;
      const CAPACITY = 4;
      try {
        const hubsList = ["a", "b", "c"].map((tag) => new LoadHub(tag, 0, c));
        const bound = await Promise.all(hubsList.map((h) => h.bound()));
        const endpoints = bound.map((b) => b.endpoint);
        const workers = Array.from({ length: 4 }, () => tallyWorker(c, endpoints, CAPACITY));
        await Promise.all(hubsList.map((h) => h.workers(4)));
        for (const h of hubsList) h.run(file, N, 32, 1);
        const [a, b, victim] = hubsList;
        await victim.answered(500, 120_000);
        victim.proc.kill("SIGKILL");
        await withTimeout(victim.proc.exited, 5000, "the killed hub's exit");
        assert.ok(!victim.proc.lines.some((l) => l.includes('"done"')), "killed after its run");
        const [doneA, doneB] = await Promise.all([a.done(180_000), b.done(180_000)]);
        for (const done of [doneA, doneB]) {
          assert.equal(done.answered, N);
          assert.deepEqual(done.failed, [], "a request failed");
          assert.equal(done.wrong, 0, "a wrong result");
          assert.equal(done.stats.redispatched, 0, "a request was lost and sent again");
          assert.equal(done.stats.workers, 4, "every worker still connected");
        }
        // The killed hub comes back on its port: the workers rejoin within their retry.
        const port = Number(endpoints[2].slice(endpoints[2].lastIndexOf(":") + 1));
        const back = new LoadHub("c2", port, c);
        const rebound = await back.bound();
        const rejoinedAt = await back.workers(4);
        const rejoinMs = rejoinedAt - rebound.at;
        console.log(`shared pool: 4 workers rejoined ${rejoinMs} ms after the hub's bind`);
        assert.ok(rejoinMs < 1000, `the workers rejoined ${rejoinMs} ms after the bind`);
        back.run(file, 200, 32, 1);
        const doneBack = await back.done(60_000);
        assert.equal(doneBack.answered, 200);
        assert.deepEqual(doneBack.failed, []);
        assert.equal(doneBack.wrong, 0);
        // Each worker reports the most it ever held at once.
        for (const w of workers) w.kill("SIGTERM");
        await Promise.all(workers.map((w) => withTimeout(w.exited, 10_000, "a worker's exit")));
        const stopped = workers.map((w) => {
          const record = records(w).find((r) => r.event === "worker.stopped");
          assert.ok(record, `no worker.stopped record:\n${w.stderr}`);
          return record;
        });
        for (const s of stopped) {
          assert.equal(s.capacity, CAPACITY);
          assert.ok(s.peakInFlight <= CAPACITY, `a worker held ${s.peakInFlight} at once`);
          assert.ok(s.peakInFlight >= 1);
        }
        // Nothing ran twice; everything of hubs a and b ran exactly once.
        const runs = runsOf(file);
        for (const [key, count] of runs) assert.equal(count, 1, `${key} ran ${count} times`);
        for (const tag of ["a", "b"]) {
          for (let i = 0; i < N; i++) assert.ok(runs.has(`${tag} ${i}`), `${tag} ${i} never ran`);
        }
        const served = stopped.reduce((sum, s) => sum + s.served, 0);
        assert.equal(served, runs.size, "each run answered once");
        const killedRan = [...runs.keys()].filter((k) => k.startsWith("c ")).length;
        assert.ok(killedRan < N, "the killed hub's run was cut short");
        const declined = stopped.reduce((sum, s) => sum + s.declined, 0);
        console.log(
          `shared pool: ${served} served, ${declined} declined, peaks ${
            stopped.map((s) => s.peakInFlight)
          } (capacity ${CAPACITY}); the killed hub got ${killedRan} of ${N} run`,
        );
      } finally {
        await c.run();
      }
    },
  );
});

describe("a Python gibbs hub and our hub sharing our workers", () => {
  test("both are served, the Python hub sees gibbs 0.3 only, no worker exceeds its capacity", {
    skip: pythonSkip,
    timeout: 120_000,
  }, async () => {
    const c = new Cleanup();
    try {
      // gibbs's default heartbeat (1 s), as our workers have it.
      const py = await startPyHub(c, { heartbeat: 1 });
      const ours = await startHub();
      c.add(() => ours.hub.close());
      const model = async (tag: string, i: number) => {
        await sleep(2);
        return [tag, i];
      };
      const endpoints = [ours.endpoint, `tcp://127.0.0.1:${py.port}`];
      const ws = [0, 1].map(() => startSharedWorker(model, endpoints, { concurrency: 2 }));
      c.add(() => Promise.all(ws.map((w) => w.stop())));
      await waitFor(() => ours.hub.workers === 2, 10_000, "both workers at our hub");
      // One request at a time at the Python hub (gibbs 0.3's hub fails concurrent requests
      // that outnumber its workers), while our hub keeps 16 in flight.
      const pyResults: unknown[] = [];
      const pySide = (async () => {
        for (let i = 0; i < 150; i++) {
          const answer = await py.call(["py", i], 15_000);
          assert.equal(answer.ok, true, JSON.stringify(answer));
          pyResults.push(answer.result);
        }
      })();
      let next = 0;
      const ourResults: unknown[] = [];
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (next < 600) {
          const i = next++;
          ourResults[i] = await withTimeout(ours.hub.request("ts", i), 30_000, `ours ${i}`);
        }
      }));
      await withTimeout(pySide, 60_000, "the python hub's requests");
      assert.deepEqual(pyResults, Array.from({ length: 150 }, (_, i) => ["py", i]));
      assert.deepEqual(ourResults, Array.from({ length: 600 }, (_, i) => ["ts", i]));
      for (const w of ws) assert.ok(w.worker.peakInFlight <= 2, `${w.worker.peakInFlight} held`);
      await py.assertReceiving();
      assert.equal(ours.hub.stats().redispatched, 0);
    } finally {
      await c.run();
    }
  });
});

describe("a Python gibbs hub beside two of ours that keep the workers full", () => {
  test("its requests after a long idle spell are still served, at once", {
    skip: pythonSkip,
    timeout: 120_000,
  }, async () => {
    const c = new Cleanup();
    try {
      // gibbs's default heartbeat (1 s), as our workers have it.
      const py = await startPyHub(c, { heartbeat: 1 });
      const ours = [await startHub(), await startHub()];
      for (const h of ours) c.add(() => h.hub.close());
      const model = async (tag: string, i: number) => {
        await sleep(2);
        return [tag, i];
      };
      const endpoints = [...ours.map((h) => h.endpoint), `tcp://127.0.0.1:${py.port}`];
      // gibbs's default heartbeat, as the Python hub has it.
      const ws = [0, 1].map(() =>
        startSharedWorker(model, endpoints, { concurrency: 2, heartbeatInterval: 1 })
      );
      c.add(() => Promise.all(ws.map((w) => w.stop())));
      await waitFor(() => ours.every((h) => h.hub.workers === 2), 10_000, "the workers");
      let stop = false;
      const load = ours.map((h) =>
        Promise.all(Array.from({ length: 16 }, async () => {
          while (!stop) await h.hub.request("ts", 0);
        }))
      );
      c.add(() => (stop = true, Promise.all(load)));
      // Idle past the Python hub's 1 s heartbeat each time: its availability marks go stale, and
      // the workers are full of our hubs' requests when it asks.
      for (let i = 0; i < 3; i++) {
        await sleep(1300);
        const t0 = performance.now();
        const answer = await py.call(["py", i], 15_000);
        const ms = performance.now() - t0;
        assert.deepEqual([answer.ok, answer.result], [true, ["py", i]]);
        assert.ok(ms < 2000, `the Python hub waited ${Math.round(ms)} ms for a worker`);
      }
      for (const w of ws) assert.ok(w.worker.peakInFlight <= 2, `${w.worker.peakInFlight} held`);
      stop = true;
      await withTimeout(Promise.all(load), 10_000, "our hubs' load");
      await py.assertReceiving();
    } finally {
      await c.run();
    }
  });
});

describe("the CLI with several hubs", () => {
  test("--endpoint twice for the same hub is a usage error", { timeout: 120_000 }, async () => {
    const p = cli([
      "worker",
      MODELS_PATH,
      "--endpoint",
      "tcp://127.0.0.1:1",
      "--endpoint",
      "tcp://127.0.0.1:1",
    ]);
    try {
      const { code } = await withTimeout(p.exited, 30_000, "the worker's exit");
      assert.equal(code, 2);
      assert.match(p.stderr, /gibbs: --endpoint tcp:\/\/127\.0\.0\.1:1 is given twice/);
    } finally {
      await p.dispose();
    }
  });
});
