/**
 * The README's promise about requests without a timeout: they wait for a worker as long as it
 * takes (gibbs's semantics), but never silently. The hub's scheduler warns every 10 s while
 * requests wait with no worker connected, and warns when it re-sends a lost worker's request.
 * Time is passed in (the Dispatcher is sans-IO), so no test waits 10 real seconds.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Dispatcher, NO_WORKER_WARNING_MS } from "../src/gibbs/dispatcher.ts";

interface Logged {
  level: string;
  event: string;
  message: string;
}

function dispatcher() {
  const logged: Logged[] = [];
  const settled: string[] = [];
  const d = new Dispatcher<null>({
    heartbeatMs: 1000,
    respBufferSize: 100,
    overflow: "evict-oldest",
    redispatch: true,
    prefetch: 1,
  }, {
    send: () => true,
    cancel: () => {},
    settle: (request) => settled.push(request.reqId),
    log: (level, event, message) => logged.push({ level, event, message }),
  });
  return { d, logged, settled };
}

const payload = new Uint8Array([0x93]);

describe("hub warnings", () => {
  test("requests waiting with no worker: a warning every 10 s, none once a worker is there", {
    timeout: 60_000,
  }, () => {
    const { d, logged } = dispatcher();
    assert.equal(NO_WORKER_WARNING_MS, 10_000);
    d.submit("a".repeat(32), payload, null, 0);
    d.submit("b".repeat(32), payload, null, 1000);
    assert.equal(d.nextDeadline(), 10_000, "the hub's timer is armed for the report");
    d.tick(9_999);
    assert.equal(logged.length, 0, "not before 10 s");
    d.tick(10_000);
    assert.deepEqual(logged, [{
      level: "warn",
      event: "requests.waiting",
      message: "2 requests waiting for 10000 ms: no worker connected",
    }]);
    d.tick(15_000);
    assert.equal(logged.length, 1, "not again within 10 s");
    d.tick(20_000);
    assert.equal(logged.length, 2, "again 10 s later");
    assert.match(logged[1].message, /^2 requests waiting for 20000 ms/);
    // A worker joins: the requests go to it, and the reports stop.
    d.join("w1", new Uint8Array([1]), 20_500);
    d.ping("w1", 20_500);
    d.tick(40_000);
    assert.equal(logged.filter((l) => l.event === "requests.waiting").length, 2);
  });

  test(
    "a request re-sent because its worker was lost is a warning naming it",
    { timeout: 60_000 },
    () => {
      const { d, logged } = dispatcher();
      d.join("w1", new Uint8Array([1]), 0);
      d.ping("w1", 0);
      const reqId = "c".repeat(32);
      const request = d.submit(reqId, payload, null, 1);
      assert.equal(request?.state, "sent");
      d.leave("w1", "connection reset", 2);
      const warned = logged.find((l) => l.event === "request.redispatched");
      assert.ok(warned, JSON.stringify(logged));
      assert.equal(warned.level, "warn");
      assert.match(warned.message, new RegExp(`re-sending request ${reqId}: .*connection reset`));
    },
  );
});
