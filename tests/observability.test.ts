/**
 * The hub's figures and events end to end: `/metrics` served by the gateway over HTTP and read
 * by a real Prometheus parser (Debian's python3-prometheus-client), whose request counter must
 * equal the requests made and whose worker gauge the workers connected; the events an
 * embedding application gets (joined, left with the reason, quarantined, re-dispatched, queue
 * full, refused); `GET /status`; and `gibbs status URL [--watch]` in a child process.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import net from "node:net";
import {
  Dealer,
  type HubEvent,
  type HubEventType,
  type HubStatus,
  PROMETHEUS_CONTENT_TYPE,
  UserCodeError,
} from "../mod.ts";
import { pack, unpack } from "../src/gibbs/codec.ts";
import { gatewayHandler } from "../src/cli/gateway.ts";
import { runtime } from "../src/transport/runtime.ts";
import {
  Cleanup,
  cli,
  prometheusMissing,
  PYTHON,
  settle,
  startHub,
  startWorker,
  waitFor,
  withTimeout,
} from "./_helpers.ts";

/** Why the Prometheus parser tests are skipped, or false. */
const prometheusSkip: string | false = prometheusMissing();

/**
 * Python reads `url` with urllib and parses it with prometheus_client's text parser; prints
 * each sample as [name, labels, value].
 */
const PARSE = `
import json, sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
    ctype = r.headers.get("Content-Type")
    text = r.read().decode("utf-8")
families = list(text_string_to_metric_families(text))
samples = [[s.name, s.labels, s.value] for f in families for s in f.samples]
print(json.dumps({"contentType": ctype, "families": {f.name: f.type for f in families},
                  "samples": samples}))
`;

interface Parsed {
  contentType: string;
  families: Record<string, string>;
  samples: [string, Record<string, string>, number][];
}

/** Runs the parser in a child process (asynchronously: the gateway it reads is in this one). */
function parseWithPython(url: string): Promise<Parsed> {
  return new Promise((resolve, reject) => {
    execFile(PYTHON, ["-c", PARSE, url], { timeout: 20_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`prometheus_client failed to read ${url}: ${error}\n${stderr}`));
      else resolve(JSON.parse(stdout));
    });
  });
}

/** The value of the sample `name` whose labels include `labels` (undefined if none). */
function value(p: Parsed, name: string, labels: Record<string, string> = {}): number | undefined {
  const found = p.samples.find(([n, l]) =>
    n === name && Object.entries(labels).every(([k, v]) => l[k] === v)
  );
  return found?.[2];
}

/** Sum of the samples called `name`. */
function total(p: Parsed, name: string): number {
  return p.samples.filter(([n]) => n === name).reduce((a, [, , v]) => a + v, 0);
}

/** Serves the gateway of `hub` on a free loopback port; returns its base URL. */
async function serve(c: Cleanup, hub: Parameters<typeof gatewayHandler>[0]): Promise<string> {
  const server = await runtime.serveHttp("127.0.0.1", 0, gatewayHandler(hub));
  c.add(() => server.close());
  return `http://127.0.0.1:${server.port}`;
}

/** Collects the hub events of the given types. */
function collect(hub: { events: EventTarget }, types: HubEventType[]): HubEvent[] {
  const seen: HubEvent[] = [];
  for (const type of types) hub.events.addEventListener(type, (e) => seen.push(e as HubEvent));
  return seen;
}

function randomHex(): string {
  return Array.from({ length: 32 }, () => Math.floor(Math.random() * 16).toString(16)).join("");
}

/**
 * A gibbs 0.3 worker made of a raw Dealer (it announces nothing in its handshake): pings, and
 * answers each request with `answer(reqId)` (null: keeps it).
 */
function fakeWorker(
  c: Cleanup,
  endpoint: string,
  answer: (reqId: string) => Uint8Array[] | null,
): { id: string; requests: () => number; close: () => Promise<void> } {
  const id = randomHex();
  const dealer = new Dealer({ routingId: id, linger: 0, receiveTimeout: 200 });
  dealer.connect(endpoint);
  let requests = 0;
  let stopped = false;
  const loop = (async () => {
    await dealer.send([""]).catch(() => {});
    while (!stopped) {
      let message: Uint8Array[];
      try {
        message = await dealer.receive();
      } catch {
        if (stopped) return;
        await dealer.send([""]).catch(() => {});
        continue;
      }
      if (message.length === 2 && message[1].length > 0) {
        requests++;
        const [reqId] = unpack(message[1]) as [string];
        const reply = answer(reqId);
        if (reply !== null) await dealer.send(reply).catch(() => {});
      }
    }
  })();
  const close = async () => {
    stopped = true;
    dealer.close();
    await loop;
  };
  c.add(close);
  return { id, requests: () => requests, close };
}

const double = (x: number) => {
  if (x < 0) throw new RangeError(`negative: ${x}`);
  return x * 2;
};

describe("/metrics read by prometheus_client", () => {
  test("the request counter equals the requests made; the worker gauge the workers connected", {
    skip: prometheusSkip,
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const { hub, endpoint } = await startHub();
      c.add(() => hub.close());
      const base = await serve(c, hub);
      const workers = [0, 1, 2].map(() => startWorker(double, endpoint));
      for (const w of workers) c.add(() => w.stop());
      await waitFor(() => hub.workers === 3, 10_000, "3 workers");

      const okCount = 57;
      const failing = 3;
      const results = await withTimeout(
        Promise.all([
          ...Array.from({ length: okCount }, (_, i) => settle(hub.request(i))),
          ...Array.from({ length: failing }, (_, i) => settle(hub.request(-1 - i))),
        ]),
        20_000,
        "60 requests",
      );
      assert.equal(results.filter((r) => r.ok).length, okCount);
      assert.ok(
        results.filter((r) => !r.ok).every((r) => !r.ok && r.error instanceof UserCodeError),
      );

      let p = await parseWithPython(`${base}/metrics`);
      assert.equal(p.contentType, PROMETHEUS_CONTENT_TYPE);
      assert.equal(p.families["gibbs_requests"], "counter");
      assert.equal(p.families["gibbs_request_duration_seconds"], "histogram");
      assert.equal(total(p, "gibbs_requests_total"), okCount + failing);
      assert.equal(
        value(p, "gibbs_requests_total", { outcome: "ok", service: "default" }),
        okCount,
      );
      assert.equal(value(p, "gibbs_requests_total", { outcome: "user_error" }), failing);
      assert.equal(value(p, "gibbs_workers", { service: "default" }), 3);
      assert.equal(value(p, "gibbs_queue_depth"), 0);
      assert.equal(value(p, "gibbs_requests_pending"), 0);
      for (const h of ["duration", "service", "queue_wait"]) {
        const name = `gibbs_request_${h}_seconds`;
        assert.equal(value(p, `${name}_count`), okCount + failing, name);
        assert.equal(value(p, `${name}_bucket`, { le: "+Inf" }), okCount + failing, name);
      }
      const duration = value(p, "gibbs_request_duration_seconds_sum")!;
      assert.ok(duration > 0 && duration < 60, `duration sum ${duration} s`);
      assert.ok(value(p, "gibbs_received_bytes_total")! > 60 * 10, "bytes in");
      assert.ok(value(p, "gibbs_sent_bytes_total")! > 60 * 10, "bytes out");
      assert.equal(value(p, "gibbs_connections_accepted_total"), 3);

      // One worker leaves: the gauge follows, its leaving is counted with its reason.
      await workers[2].stop();
      await waitFor(() => hub.workers === 2, 10_000, "2 workers");
      p = await parseWithPython(`${base}/metrics`);
      assert.equal(value(p, "gibbs_workers"), 2);
      assert.equal(value(p, "gibbs_workers_left_total", { reason: "closed" }), 1);
      assert.equal(total(p, "gibbs_requests_total"), okCount + failing);
    } finally {
      await c.run();
    }
  });

  test(
    "refusals, handshake failures and queue-full rejections, by reason",
    { skip: prometheusSkip, timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const { hub, port } = await startHub({ respBufferSize: 1, overflow: "reject-new" });
        c.add(() => hub.close());
        const base = await serve(c, hub);
        const events = collect(hub, ["peer.refused", "queue.full"]);
        // Not a ZMTP peer at all.
        const bad = net.connect(port, "127.0.0.1", () => bad.write("GET / HTTP/1.1\r\n\r\n"));
        bad.on("error", () => {});
        c.add(() => bad.destroy());
        await waitFor(() => events.some((e) => e.type === "peer.refused"), 10_000, "refusal");
        // No worker: the first request waits, the second finds the queue full.
        const first = settle(hub.request(1));
        const second = await settle(hub.request(2));
        assert.equal(second.ok, false);
        const p = await parseWithPython(`${base}/metrics`);
        assert.equal(value(p, "gibbs_handshake_failures_total", { reason: "bad-signature" }), 1);
        assert.equal(value(p, "gibbs_requests_total", { outcome: "rejected" }), 1);
        assert.equal(value(p, "gibbs_queue_depth"), 1);
        assert.equal(value(p, "gibbs_workers"), 0);
        const refused = events.find((e) => e.type === "peer.refused") as HubEvent<"peer.refused">;
        assert.equal(refused.detail.code, "bad-signature");
        assert.match(refused.detail.reason, /0x47/);
        const full = events.find((e) => e.type === "queue.full") as HubEvent<"queue.full">;
        assert.equal(full.detail.policy, "reject-new");
        assert.match(full.detail.message, /1 requests are already pending/);
        await hub.close();
        assert.equal((await first).ok, false);
      } finally {
        await c.run();
      }
    },
  );
});

describe("hub events", () => {
  test(
    "joined (ours and gibbs 0.3, with capacity), left with the reason, re-dispatched, quarantined",
    { timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const { hub, endpoint } = await startHub({ maxMessageSize: 1000 });
        c.add(() => hub.close());
        const events = collect(hub, [
          "worker.joined",
          "worker.left",
          "request.redispatched",
          "worker.quarantined",
        ]);
        const ours = startWorker(double, endpoint, { concurrency: 3 });
        c.add(() => ours.stop());
        await waitFor(() => hub.workers === 1, 10_000, "our worker");
        let joined = events.find((e) => e.type === "worker.joined") as HubEvent<"worker.joined">;
        assert.deepEqual(
          { ...joined.detail, remote: typeof joined.detail.remote },
          { worker: ours.worker.id, remote: "string", runtime: "gibbs-ts", capacity: 3 },
        );
        assert.ok(Math.abs(joined.time - Date.now()) < 60_000);
        await ours.stop();
        await waitFor(() => hub.workers === 0, 10_000, "our worker gone");

        // A gibbs 0.3 worker that keeps a request and vanishes: the request goes elsewhere.
        const keeper = fakeWorker(c, endpoint, () => null);
        await waitFor(() => hub.workers === 1, 10_000, "keeper");
        const pending = hub.request(21);
        await waitFor(() => keeper.requests() === 1, 10_000, "keeper holds the request");
        const other = startWorker(double, endpoint);
        c.add(() => other.stop());
        await waitFor(() => hub.workers === 2, 10_000, "second worker");
        await keeper.close();
        assert.equal(await withTimeout(pending, 10_000, "re-dispatched request"), 42);
        joined = events.find((e) =>
          e.type === "worker.joined" && (e as HubEvent<"worker.joined">).detail.worker === keeper.id
        ) as HubEvent<"worker.joined">;
        assert.equal(joined.detail.runtime, "gibbs 0.3");
        assert.equal(joined.detail.capacity, 1);
        const redispatched = events.find((e) => e.type === "request.redispatched") as HubEvent<
          "request.redispatched"
        >;
        assert.equal(redispatched.detail.worker, keeper.id);
        assert.match(redispatched.detail.reason, /disconnected/);
        const left = events.filter((e) => e.type === "worker.left") as HubEvent<"worker.left">[];
        assert.deepEqual(left.map((e) => [e.detail.worker, e.detail.code]), [
          [ours.worker.id, "closed"],
          [keeper.id, "closed"],
        ]);

        // Garbage for an answer: quarantined. Too large a message: dropped, with the ZMTP code.
        const liar = fakeWorker(c, endpoint, () => [new Uint8Array(0), pack("not a response")]);
        await waitFor(() => hub.workers === 2, 10_000, "liar");
        await other.stop();
        await waitFor(() => hub.workers === 1, 10_000, "only the liar");
        await settle(withTimeout(hub.request(1), 10_000, "request to the liar"));
        await waitFor(
          () => events.some((e) => e.type === "worker.quarantined"),
          10_000,
          "quarantine",
        );
        const q = events.find((e) => e.type === "worker.quarantined") as HubEvent<
          "worker.quarantined"
        >;
        assert.equal(q.detail.worker, liar.id);
        assert.match(q.detail.reason, /malformed response/);
        assert.equal(hub.metrics().quarantines, 1);
        assert.equal(hub.metrics().quarantined, 1);
        const bigId = randomHex();
        const big = new Dealer({ routingId: bigId, linger: 0 });
        c.add(() => big.close());
        big.connect(endpoint);
        await big.send(["", new Uint8Array(5000)]);
        await waitFor(
          () =>
            events.some((e) =>
              e.type === "worker.left" &&
              (e as HubEvent<"worker.left">).detail.code === "message-too-large"
            ),
          10_000,
          "the big message's sender dropped",
        );
        const dropped = events.find((e) =>
          (e as HubEvent<"worker.left">).detail.code === "message-too-large"
        ) as HubEvent<"worker.left">;
        assert.equal(dropped.detail.worker, bigId);
        assert.match(dropped.detail.reason, /1000/);
        const recent = hub.status().events.map((e) => e.type);
        assert.ok(recent.includes("worker.quarantined") && recent.includes("request.redispatched"));
      } finally {
        await c.run();
      }
    },
  );

  test("a listener that throws is logged and the hub goes on; remove and once work", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const { hub, endpoint, log } = await startHub();
      c.add(() => hub.close());
      const calls: string[] = [];
      hub.events.addEventListener("worker.joined", () => {
        throw new Error("alerting hook is broken");
      });
      const removed = () => calls.push("removed");
      hub.events.addEventListener("worker.joined", removed);
      hub.events.removeEventListener("worker.joined", removed);
      hub.events.addEventListener("worker.joined", () => calls.push("once"), { once: true });
      hub.events.addEventListener("worker.joined", {
        handleEvent: (e) => calls.push(`object ${e.detail.runtime}`),
      });
      const a = startWorker(double, endpoint);
      c.add(() => a.stop());
      await waitFor(() => hub.workers === 1, 10_000, "first worker");
      const b = startWorker(double, endpoint);
      c.add(() => b.stop());
      await waitFor(() => hub.workers === 2, 10_000, "second worker");
      assert.deepEqual(calls, ["once", "object gibbs-ts", "object gibbs-ts"]);
      assert.ok(log.has('a "worker.joined" listener threw: Error: alerting hook is broken'));
      assert.equal(await withTimeout(hub.request(4), 10_000, "a request after"), 8);
    } finally {
      await c.run();
    }
  });

  test(
    "metrics: false stops counting requests, gauges and events stay; metricsEnabled switches it",
    { timeout: 60_000 },
    async () => {
      const c = new Cleanup();
      try {
        const { hub, endpoint } = await startHub({ metrics: false });
        c.add(() => hub.close());
        const joined = collect(hub, ["worker.joined"]);
        const w = startWorker(double, endpoint);
        c.add(() => w.stop());
        await waitFor(() => hub.workers === 1, 10_000, "worker");
        for (let i = 0; i < 5; i++) assert.equal(await hub.request(i), 2 * i);
        const m = hub.metrics();
        assert.equal(m.services[0].requests.ok, 0);
        assert.equal(m.services[0].latency.count, 0);
        assert.equal(m.workers, 1);
        assert.equal(joined.length, 1);
        assert.equal(hub.metricsEnabled, false);
        hub.metricsEnabled = true; // switched at run time
        assert.equal(await hub.request(5), 10);
        assert.equal(hub.metrics().services[0].requests.ok, 1);
      } finally {
        await c.run();
      }
    },
  );
});

describe("GET /status and gibbs status", () => {
  test("/status: workers with runtime, capacity, held, served; history; recent events", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const { hub, endpoint } = await startHub();
      c.add(() => hub.close());
      const base = await serve(c, hub);
      const ours = startWorker(double, endpoint, { concurrency: 2 });
      c.add(() => ours.stop());
      const plain = fakeWorker(c, endpoint, (reqId) => [new Uint8Array(0), pack([reqId, 0, 7])]);
      await waitFor(() => hub.workers === 2, 10_000, "2 workers");
      const results = await withTimeout(
        Promise.all(Array.from({ length: 40 }, (_, i) => hub.request(i))),
        20_000,
        "40 requests",
      );
      assert.equal(results.length, 40);
      const response = await fetch(`${base}/status`);
      assert.equal(response.status, 200);
      const s = await response.json() as HubStatus;
      assert.equal(s.endpoint, endpoint);
      assert.equal(s.workersTotal, 2);
      const byId = new Map(s.workers.map((w) => [w.id, w]));
      const mine = byId.get(ours.worker.id)!;
      const theirs = byId.get(plain.id)!;
      assert.equal(mine.runtime, "gibbs-ts");
      assert.equal(mine.capacity, 2);
      assert.equal(theirs.runtime, "gibbs 0.3");
      assert.equal(theirs.capacity, 1);
      assert.equal(mine.served + theirs.served, 40);
      assert.equal(theirs.served, plain.requests());
      assert.equal(mine.held + theirs.held, 0);
      assert.ok(mine.served === 0 || mine.meanMs! >= 0);
      assert.ok(mine.lastHeardMs! >= 0 && mine.lastHeardMs! < 10_000);
      assert.equal(s.history.requests.length, s.history.seconds);
      assert.equal(s.history.requests.reduce((a, b) => a + b, 0), 40);
      assert.equal(s.history.window.requests, 40);
      assert.ok(s.history.window.p50Ms! > 0);
      assert.equal(s.events.filter((e) => e.type === "worker.joined").length, 2);
      const limited = await (await fetch(`${base}/status?workers=1`)).json() as HubStatus;
      assert.equal(limited.workers.length, 1);
      assert.equal(limited.workersTotal, 2);
      const post = await fetch(`${base}/metrics`, { method: "POST", body: "x" });
      assert.equal(post.status, 405);
      await post.body?.cancel();
    } finally {
      await c.run();
    }
  });

  test("gibbs status URL prints the table; --watch refreshes until SIGTERM; no hub: exit 1", {
    timeout: 60_000,
  }, async () => {
    const c = new Cleanup();
    try {
      const { hub, endpoint } = await startHub();
      c.add(() => hub.close());
      const base = await serve(c, hub);
      const w = startWorker(double, endpoint);
      c.add(() => w.stop());
      await waitFor(() => hub.workers === 1, 10_000, "worker");
      for (let i = 0; i < 12; i++) await hub.request(i);
      await settle(hub.request(-1));

      const once = cli(["status", base]);
      c.add(() => once.dispose());
      const exit = await withTimeout(once.exited, 30_000, "gibbs status");
      assert.equal(exit.code, 0, once.stderr);
      const out = once.lines.join("\n");
      assert.match(out, new RegExp(`gibbs hub ${base} — workers connect to ${endpoint}`));
      assert.match(out, /workers 1 \(busy 0\)/);
      assert.match(out, /requests 13: ok 12, user error 1/);
      assert.match(out, /WORKER\s+ADDRESS\s+RUNTIME\s+SERVICE\s+CAP\s+HELD\s+SERVED/);
      const row = once.lines.find((l) => l.startsWith(w.worker.id));
      assert.ok(row, `no row for ${w.worker.id} in:\n${out}`);
      assert.match(row!, /gibbs-ts\s+default\s+1\s+0\s+13\s/);
      assert.match(out, /recent events:\n.*worker\.joined\s+\S+ gibbs-ts, capacity 1/);

      const watch = cli(["status", base, "--watch", "--interval", "0.2"]);
      c.add(() => watch.dispose());
      await watch.waitLine((l) => l.includes("requests 13"), 30_000, "first picture");
      const first = watch.lines.length;
      await hub.request(100);
      await watch.waitLine((l) => l.includes("requests 14"), 10_000, "a refreshed picture", first);
      watch.kill("SIGTERM");
      const watchExit = await withTimeout(watch.exited, 10_000, "gibbs status --watch exit");
      assert.equal(watchExit.code, 0, watch.stderr);

      const free = net.createServer();
      await new Promise<void>((resolve) => free.listen(0, "127.0.0.1", resolve));
      const deadPort = (free.address() as net.AddressInfo).port;
      await new Promise<void>((resolve) => free.close(() => resolve()));
      const none = cli(["status", `http://127.0.0.1:${deadPort}`]);
      c.add(() => none.dispose());
      const noneExit = await withTimeout(none.exited, 30_000, "gibbs status, no hub");
      assert.equal(noneExit.code, 1);
      assert.match(
        none.stderr,
        new RegExp(`gibbs status: cannot read http://127.0.0.1:${deadPort}/status`),
      );

      const usage = cli(["status", "ftp://x"]);
      c.add(() => usage.dispose());
      assert.equal((await withTimeout(usage.exited, 30_000, "usage")).code, 2);
      assert.match(usage.stderr, /URL must be an http/);
    } finally {
      await c.run();
    }
  });
});
