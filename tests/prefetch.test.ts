/**
 * How many requests a worker is sent before it answers: gibbs's one-at-a-time rule, a fixed
 * prefetch, and "auto", which pipelines only for workers that answer fast.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Dealer, Hub, type HubOptions } from "../mod.ts";
import { pack, unpack } from "../src/gibbs/codec.ts";
import { observe, sleep, waitFor, withTimeout } from "./_helpers.ts";

const EMPTY = new Uint8Array(0);

/** A hand-driven worker: it pings once, then collects requests and answers when told to. */
async function withFakeWorker(
  options: HubOptions,
  body: (hub: Hub, worker: {
    /** Waits (bounded) until it received `n` requests in all. */
    waitFor(n: number): Promise<void>;
    received(): number;
    answerAll(): Promise<void>;
    answerAtOnce(on: boolean): void;
  }) => Promise<void>,
): Promise<void> {
  const hub = new Hub({ endpoint: "tcp://127.0.0.1:0", logger: () => {}, ...options });
  const dealer = new Dealer({ routingId: "f".repeat(32), linger: 0 });
  const pending: string[] = [];
  let received = 0;
  let atOnce = false;
  try {
    dealer.connect(await withTimeout(hub.ready, 5000, "hub.ready"));
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
      waitFor: (n) => waitFor(() => received >= n, 5000, `${n} requests received`, 5),
      received: () => received,
      async answerAll() {
        for (const reqId of pending.splice(0)) await dealer.send([EMPTY, pack([reqId, 0, 1])]);
      },
      answerAtOnce(on) {
        atOnce = on;
      },
    });
    dealer.close();
    await withTimeout(reader, 5000, "the fake worker's reader ends");
  } finally {
    dealer.close();
    await withTimeout(hub.close(), 5000, "hub.close()");
  }
}

describe("prefetch", () => {
  test(
    "1: a worker gets no second request before it answers the first",
    { timeout: 30_000 },
    async () => {
      await withFakeWorker({ prefetch: 1 }, async (hub, worker) => {
        const requests = [1, 2, 3].map(() => hub.request());
        await worker.waitFor(1);
        await sleep(200);
        assert.equal(worker.received(), 1);
        await worker.answerAll();
        await worker.waitFor(2);
        await worker.answerAll();
        await worker.waitFor(3);
        await worker.answerAll();
        assert.deepEqual(await withTimeout(Promise.all(requests), 5000, "requests"), [1, 1, 1]);
      });
    },
  );

  test("3: a worker holds up to three requests at once", { timeout: 30_000 }, async () => {
    await withFakeWorker({ prefetch: 3 }, async (hub, worker) => {
      const requests = [1, 2, 3, 4, 5].map(() => hub.request());
      await worker.waitFor(3);
      await sleep(200);
      assert.equal(worker.received(), 3);
      await worker.answerAll();
      await worker.waitFor(5);
      await worker.answerAll();
      assert.equal((await withTimeout(Promise.all(requests), 5000, "requests")).length, 5);
    });
  });

  test(
    '"auto": one at a time until the worker proves fast, then several',
    { timeout: 30_000 },
    async () => {
      await withFakeWorker({}, async (hub, worker) => {
        // No history yet: gibbs's rule.
        const first = [hub.request(), hub.request()];
        await worker.waitFor(1);
        await sleep(100);
        assert.equal(worker.received(), 1);
        await worker.answerAll();
        await worker.waitFor(2);
        await worker.answerAll();
        await withTimeout(Promise.all(first), 5000, "first two");
        // Answered slowly (100 ms and more): still one at a time.
        const slow = [hub.request(), hub.request()];
        await worker.waitFor(3);
        await sleep(100);
        assert.equal(worker.received(), 3);
        await worker.answerAll();
        await worker.waitFor(4);
        await worker.answerAll();
        await withTimeout(Promise.all(slow), 5000, "slow two");
        // Answered at once, many times: the moving average drops and the worker gets several.
        // "At once" is a round trip inside this process, which a loaded machine can stretch
        // past the budget for a while: rounds of 60 such requests, until a burst is pipelined.
        let atOnce = 0;
        let rounds = 0;
        while (atOnce <= 1 && rounds < 10) {
          rounds++;
          worker.answerAtOnce(true);
          for (let i = 0; i < 60; i++) {
            await withTimeout(hub.request(), 5000, `fast request ${i}`);
          }
          worker.answerAtOnce(false);
          const before = worker.received();
          const burst = Array.from({ length: 8 }, () => hub.request());
          await sleep(100);
          atOnce = worker.received() - before;
          await withTimeout(
            (async () => {
              while (worker.received() < before + 8) {
                await worker.answerAll();
                await sleep(5);
              }
              await worker.answerAll();
            })(),
            5000,
            "the rest of the burst",
          );
          await withTimeout(Promise.all(burst), 5000, "the burst");
        }
        observe(
          "prefetch auto: rounds of 60 fast requests before a pipelined burst",
          rounds,
          "<= 10",
        );
        assert.ok(
          atOnce > 1,
          `after ${rounds} rounds, only ${atOnce} of 8 requests were sent before an answer`,
        );
      });
    },
  );
});
