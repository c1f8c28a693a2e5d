/**
 * How many requests a worker is sent before it answers: gibbs's one-at-a-time rule, a fixed
 * prefetch, and "auto", which pipelines only for workers that answer fast.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Dealer, Hub, type HubOptions } from "../mod.ts";
import { pack, unpack } from "../src/gibbs/codec.ts";
import { within } from "./_peer.ts";

const EMPTY = new Uint8Array(0);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A hand-driven worker: it pings once, then collects requests and answers when told to. */
async function withFakeWorker(
  options: HubOptions,
  body: (hub: Hub, worker: {
    waitFor(n: number): Promise<void>;
    received(): number;
    answerAll(): Promise<void>;
    answerAtOnce(on: boolean): void;
  }) => Promise<void>,
): Promise<void> {
  const hub = new Hub({ endpoint: "tcp://127.0.0.1:0", logger: () => {}, ...options });
  const dealer = new Dealer({ routingId: "f".repeat(32) });
  const pending: string[] = [];
  let received = 0;
  let atOnce = false;
  try {
    dealer.connect(await hub.ready);
    await dealer.send(EMPTY); // ping: "I am ready"
    const reader = (async () => {
      for await (const [, payload] of dealer) {
        if (payload.length === 0) continue; // pong
        const [reqId] = unpack(payload) as [string];
        received++;
        if (atOnce) await dealer.send([EMPTY, pack([reqId, 0, 1])]);
        else pending.push(reqId);
      }
    })();
    await body(hub, {
      async waitFor(n) {
        while (received < n) await sleep(5);
      },
      received: () => received,
      async answerAll() {
        for (const reqId of pending.splice(0)) await dealer.send([EMPTY, pack([reqId, 0, 1])]);
      },
      answerAtOnce(on) {
        atOnce = on;
      },
    });
    dealer.close();
    await reader;
  } finally {
    dealer.close();
    await hub.close();
  }
}

describe("prefetch", () => {
  test("1: a worker gets no second request before it answers the first", async () => {
    await withFakeWorker({ prefetch: 1 }, async (hub, worker) => {
      const requests = [1, 2, 3].map(() => hub.request());
      await within(worker.waitFor(1), 5000, "first request");
      await sleep(200);
      assert.equal(worker.received(), 1);
      await worker.answerAll();
      await within(worker.waitFor(2), 5000, "second request");
      await worker.answerAll();
      await within(worker.waitFor(3), 5000, "third request");
      await worker.answerAll();
      assert.deepEqual(await Promise.all(requests), [1, 1, 1]);
    });
  });

  test("3: a worker holds up to three requests at once", async () => {
    await withFakeWorker({ prefetch: 3 }, async (hub, worker) => {
      const requests = [1, 2, 3, 4, 5].map(() => hub.request());
      await within(worker.waitFor(3), 5000, "three requests");
      await sleep(200);
      assert.equal(worker.received(), 3);
      await worker.answerAll();
      await within(worker.waitFor(5), 5000, "the other two");
      await worker.answerAll();
      assert.equal((await Promise.all(requests)).length, 5);
    });
  });

  test('"auto": one at a time until the worker proves fast, then several', async () => {
    await withFakeWorker({}, async (hub, worker) => {
      // No history yet: gibbs's rule.
      const first = [hub.request(), hub.request()];
      await within(worker.waitFor(1), 5000, "first request");
      await sleep(100);
      assert.equal(worker.received(), 1);
      await worker.answerAll();
      await within(worker.waitFor(2), 5000, "second request");
      await worker.answerAll();
      await Promise.all(first);
      // Answered slowly (100 ms and more): still one at a time.
      const slow = [hub.request(), hub.request()];
      await within(worker.waitFor(3), 5000, "third request");
      await sleep(100);
      assert.equal(worker.received(), 3);
      await worker.answerAll();
      await within(worker.waitFor(4), 5000, "fourth request");
      await worker.answerAll();
      await Promise.all(slow);
      // Answered at once, many times: the moving average drops and the worker gets several.
      worker.answerAtOnce(true);
      const rtts: number[] = [];
      for (let i = 0; i < 60; i++) {
        const t = performance.now();
        await within(hub.request(), 5000, `fast request ${i}`);
        rtts.push(performance.now() - t);
      }
      worker.answerAtOnce(false);
      rtts.sort((a, b) => a - b);
      const medianRtt = rtts[30];
      const burst = Array.from({ length: 8 }, () => hub.request());
      await sleep(100);
      const atOnce = worker.received() - 64;
      await worker.answerAll();
      while (worker.received() < 72) {
        await sleep(5);
        await worker.answerAll();
      }
      await within(Promise.all(burst), 5000, "the burst");
      // "Fast" is under 2.5 ms a request: on cores so busy that even an instant answer takes
      // longer (the machine, not the hub), gibbs's rule is the right answer too.
      if (medianRtt < 1.5) {
        assert.ok(atOnce > 1, `only ${atOnce} of 8 requests were sent before an answer`);
      } else if (medianRtt > 5) {
        assert.equal(atOnce, 1, `answers took ${medianRtt.toFixed(2)} ms: no pipelining`);
      }
    });
  });
});
