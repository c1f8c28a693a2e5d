/**
 * The metrics' pieces alone: fixed-bucket histograms and their quantiles, the per-second
 * history, how outcomes are classified, the Prometheus encoder, and the byte counters of the
 * socket layer (checked against the exact ZMTP frame sizes).
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  GibbsError,
  HubClosedError,
  QueueFullError,
  RequestEvictedError,
  RequestTimeoutError,
  UserCodeError,
  WorkerProtocolError,
} from "../src/gibbs/errors.ts";
import {
  Histogram,
  History,
  outcomeOf,
  OUTCOMES,
  quantileOf,
  recordRequest,
  ServiceMetrics,
} from "../src/gibbs/metrics.ts";
import { formatPrometheus } from "../src/gibbs/prometheus.ts";
import type { MetricsSnapshot } from "../src/gibbs/hub_observer.ts";
import { Dealer, Router } from "../mod.ts";
import { waitFor, withTimeout } from "./_helpers.ts";

describe("histogram", () => {
  test("counts each observation once, in the first bucket whose bound it does not exceed", {
    timeout: 60_000,
  }, () => {
    const h = new Histogram([1, 10, 100]);
    for (const ms of [0, 1, 1.0001, 10, 99, 100, 100.5, 1e9]) h.observe(ms);
    assert.deepEqual(Array.from(h.counts), [2, 2, 2, 2]);
    assert.deepEqual(h.cumulative(), [2, 4, 6, 8]);
    assert.equal(h.count, 8);
    assert.equal(h.sum, 0 + 1 + 1.0001 + 10 + 99 + 100 + 100.5 + 1e9);
  });

  test(
    "quantiles interpolate within the bucket, as histogram_quantile does",
    { timeout: 60_000 },
    () => {
      const h = new Histogram([10, 20]);
      for (let i = 0; i < 10; i++) h.observe(5); // (0, 10]
      for (let i = 0; i < 10; i++) h.observe(15); // (10, 20]
      assert.equal(h.quantile(0.25), 5);
      assert.equal(h.quantile(0.5), 10);
      assert.equal(h.quantile(0.75), 15);
      h.observe(1000); // +Inf: the largest finite bound
      assert.equal(h.quantile(1), 20);
      assert.ok(Number.isNaN(new Histogram([1]).quantile(0.5)));
      assert.throws(() => new Histogram([2, 1]), /ascend/);
      assert.equal(quantileOf([1], [0, 0], 0, 0.5), NaN);
    },
  );
});

describe("history", () => {
  test("per-second requests, errors and latency, oldest first, the current second last", {
    timeout: 60_000,
  }, () => {
    const h = new History(5, [1, 10, 100]);
    h.record(1000, false, 0);
    h.record(1500, true, 2);
    h.record(3200, false, 1);
    h.sample(3300, 7, 2);
    h.sample(3400, 3, 3);
    const s = h.series(3999);
    assert.equal(s.seconds, 5);
    assert.deepEqual(s.requests, [0, 0, 2, 0, 1]);
    assert.deepEqual(s.errors, [0, 0, 1, 0, 0]);
    assert.deepEqual(s.queued, [null, null, null, null, 7]);
    assert.deepEqual(s.workers, [null, null, null, null, 3]);
    // Second 1: one in (0, 1], one in (10, 100]: the median is the first one's bucket's top.
    assert.deepEqual(s.p50Ms.slice(1), [null, 1, null, 5.5]);
    assert.equal(s.window.requests, 3);
  });

  test("a slot is reset when its second comes round again; old seconds fall out", {
    timeout: 60_000,
  }, () => {
    const h = new History(3, [1]);
    h.record(0, true, 0);
    h.record(3000, false, 1); // the same slot as second 0, three seconds later
    const s = h.series(3000);
    assert.deepEqual(s.requests, [0, 0, 1]);
    assert.deepEqual(s.errors, [0, 0, 0]);
    assert.deepEqual(h.series(10_000).requests, [0, 0, 0]);
  });

  test(
    "recordRequest times queue wait (sent requests), service (answered ones) and end to end (all)",
    { timeout: 60_000 },
    () => {
      const svc = new ServiceMetrics("default");
      const history = new History();
      const sent = { createdAt: 100, sentAt: 103, sentTo: [{}] };
      recordRequest(svc, history, sent, 0, 110); // ok: wait 3, service 7, total 10
      recordRequest(svc, history, { createdAt: 0, sentAt: 0, sentTo: [] }, 2, 50); // timeout
      assert.equal(svc.requests[0], 1);
      assert.equal(svc.requests[OUTCOMES.indexOf("timeout")], 1);
      assert.equal(svc.queueWait.count, 1);
      assert.equal(svc.queueWait.sum, 3);
      assert.equal(svc.service.count, 1);
      assert.equal(svc.service.sum, 7);
      assert.equal(svc.latency.count, 2);
      assert.equal(svc.latency.sum, 60);
    },
  );
});

test("outcomes: each typed error has its label; anything else is the signal's reason", {
  timeout: 60_000,
}, () => {
  const label = (e: unknown) => OUTCOMES[outcomeOf(e)];
  assert.equal(label(new UserCodeError("Traceback\nValueError: x")), "user_error");
  assert.equal(label(new RequestTimeoutError(1, 1)), "timeout");
  assert.equal(label(new RequestEvictedError(4)), "evicted");
  assert.equal(label(new QueueFullError(4)), "rejected");
  assert.equal(label(new HubClosedError()), "closed");
  assert.equal(label(new WorkerProtocolError("garbage")), "worker_error");
  assert.equal(label(new GibbsError("Request lost 5 times")), "lost");
  assert.equal(label(new DOMException("aborted", "AbortError")), "cancelled");
  assert.equal(label("a plain reason"), "cancelled");
});

describe("Prometheus text format", () => {
  const snapshot = (): MetricsSnapshot => {
    const h = { bucketsMs: [0.1, 1000], cumulative: [1, 2, 3], sumMs: 1500.25, count: 3 };
    return {
      startedAt: 1_700_000_000_000,
      uptimeSeconds: 5,
      services: [{
        service: 'we"ird\\name\n',
        requests: Object.fromEntries(OUTCOMES.map((o, i) => [o, i])) as never,
        queueWait: h,
        serviceTime: h,
        latency: h,
        workers: 2,
        busy: 1,
        queued: 4,
        pending: 5,
        redispatched: 6,
      }],
      workers: 2,
      busy: 1,
      quarantined: 0,
      bytesReceived: 123,
      bytesSent: 456,
      connectionsAccepted: 3,
      connectionsRefused: { "too-many-connections": 1 },
      handshakeFailures: { "bad-signature": 2, "handshake-timeout": 1 },
      workersLeft: { closed: 1 },
      quarantines: 0,
      unexpectedResponses: 0,
    };
  };

  test("families with HELP and TYPE, seconds for durations, escaped label values", {
    timeout: 60_000,
  }, () => {
    const text = formatPrometheus(snapshot());
    assert.ok(text.endsWith("\n"));
    const lines = text.split("\n");
    const svc = 'service="we\\"ird\\\\name\\n"';
    assert.ok(lines.includes("# TYPE gibbs_requests_total counter"));
    assert.ok(lines.includes(`gibbs_requests_total{${svc},outcome="timeout"} 2`));
    assert.ok(lines.includes(`gibbs_request_duration_seconds_bucket{${svc},le="0.0001"} 1`));
    assert.ok(lines.includes(`gibbs_request_duration_seconds_bucket{${svc},le="1"} 2`));
    assert.ok(lines.includes(`gibbs_request_duration_seconds_bucket{${svc},le="+Inf"} 3`));
    assert.ok(lines.includes(`gibbs_request_duration_seconds_sum{${svc}} 1.50025`));
    assert.ok(lines.includes(`gibbs_queue_depth{${svc}} 4`));
    assert.ok(lines.includes('gibbs_handshake_failures_total{reason="bad-signature"} 2'));
    assert.ok(lines.includes("gibbs_received_bytes_total 123"));
    assert.ok(lines.includes("gibbs_hub_start_time_seconds 1700000000"));
    // Every sample belongs to the family declared above it.
    let family = "";
    for (const line of lines) {
      if (line.startsWith("# TYPE ")) family = line.split(" ")[2];
      else if (line !== "" && !line.startsWith("#")) {
        assert.ok(line.startsWith(family), `${line} outside its family ${family}`);
      }
    }
  });
});

test(
  "sockets count the bytes they read and write, ZMTP framing included",
  { timeout: 60_000 },
  async () => {
    const router = new Router({ linger: 0 });
    const dealer = new Dealer({ linger: 0, routingId: "counted" });
    try {
      const endpoint = await router.bind("tcp://127.0.0.1:0");
      dealer.connect(endpoint);
      await dealer.send("hi");
      await withTimeout(router.receive(), 5000, "first message");
      await waitFor(() => dealer.bytesReceived === router.bytesSent, 5000, "handshake bytes");
      const [inBefore, outBefore] = [router.bytesReceived, dealer.bytesSent];
      assert.equal(inBefore, outBefore, "what one side wrote, the other read");
      await dealer.send(new Uint8Array(1000)); // one long frame: 9-byte header + body
      await withTimeout(router.receive(), 5000, "1000-byte message");
      assert.equal(router.bytesReceived - inBefore, 1009);
      assert.equal(dealer.bytesSent - outBefore, 1009);
      const sentBefore = router.bytesSent;
      await router.send(["counted", new Uint8Array(10)]); // short frame: 2 + 10
      await withTimeout(dealer.receive(), 5000, "reply");
      assert.equal(router.bytesSent - sentBefore, 12);
      // The totals survive the connection.
      const total = router.bytesReceived;
      dealer.close();
      await waitFor(() => router.peerCount === 0, 5000, "disconnect");
      assert.equal(router.bytesReceived, total);
    } finally {
      dealer.close();
      router.close();
      await router.whenClosed();
    }
  },
);
