/**
 * The hub's scheduler alone: no socket, no timer, no process. Scenario tests for each rule, then
 * generated interleavings of every input checked against a reference model of the rules.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  Dispatcher,
  type DispatcherOptions,
  MAX_REDISPATCH,
  NO_WORKER_WARNING_MS,
  type Outcome,
  type Request,
  type SubmitOptions,
  type WorkerState,
} from "../src/gibbs/dispatcher.ts";
import {
  GibbsError,
  HubClosedError,
  QueueFullError,
  RequestEvictedError,
  RequestTimeoutError,
  UserCodeError,
  WorkerProtocolError,
} from "../src/gibbs/errors.ts";

const HB = 1000;
const enc = new TextEncoder();

interface Sent {
  worker: string;
  reqId: string;
}

/** A dispatcher with a host that records everything it is asked to do. */
function baseRig(options: Partial<DispatcherOptions> = {}) {
  const sent: Sent[] = [];
  const settled = new Map<string, Outcome>();
  const settleCounts = new Map<string, number>();
  const logs: { level: string; event: string; message: string }[] = [];
  const full = new Set<string>();
  const cancelled: Sent[] = [];
  const passes: string[] = [];
  const d = new Dispatcher<null>({
    heartbeatMs: HB,
    respBufferSize: 100,
    overflow: "evict-oldest",
    redispatch: true,
    prefetch: 1,
    ...options,
  }, {
    send(w: WorkerState<null>, r: Request<null>) {
      if (full.has(w.key)) return false;
      sent.push({ worker: w.key, reqId: r.reqId });
      return true;
    },
    cancel(w: WorkerState<null>, r: Request<null>) {
      cancelled.push({ worker: w.key, reqId: r.reqId });
    },
    pass(w: WorkerState<null>) {
      passes.push(w.key);
    },
    settle(r: Request<null>, outcome: Outcome) {
      settled.set(r.reqId, outcome);
      settleCounts.set(r.reqId, (settleCounts.get(r.reqId) ?? 0) + 1);
    },
    log(level, event, message) {
      logs.push({ level, event, message });
    },
  });
  let n = 0;
  return {
    d,
    sent,
    cancelled,
    passes,
    settled,
    settleCounts,
    logs,
    full,
    /** Joins a worker and marks it available (its first ping), as a gibbs worker does. */
    join(key: string, now = 0, capacity?: number, service?: string) {
      d.join(key, enc.encode(key), now, { name: key, capacity, service });
      d.ping(key, now);
    },
    submit(now = 0, timeoutMs = 0, retries = 0, options: SubmitOptions = {}): string {
      const reqId = `r${n++}`;
      d.submit(reqId, enc.encode(reqId), null, now, { timeoutMs, retries, ...options });
      return reqId;
    },
    value(reqId: string): unknown {
      const outcome = settled.get(reqId);
      assert.ok(outcome, `${reqId} is not settled`);
      assert.ok(outcome.ok, `${reqId} failed: ${!outcome.ok && outcome.error}`);
      return outcome.value;
    },
    error(reqId: string): Error {
      const outcome = settled.get(reqId);
      assert.ok(outcome && !outcome.ok, `${reqId} did not fail`);
      return outcome.error;
    },
    sentTo(worker: string): string[] {
      return sent.filter((s) => s.worker === worker).map((s) => s.reqId);
    },
  };
}

/** How the rig's ids `r0`, `r1`… are numbered when the host numbers them, as the hub does. */
const seqOfR = (reqId: string) => /^r\d+$/.test(reqId) ? Number(reqId.slice(1)) : undefined;

// Every rule holds whether the host numbers its request ids (the hub) or the dispatcher does.
for (const hostNumbers of [true, false]) {
  const rig = (options: Partial<DispatcherOptions> = {}) =>
    baseRig(hostNumbers ? { requestSeq: seqOfR, ...options } : options);
  describe(`dispatcher rules (ids numbered by the ${hostNumbers ? "host" : "dispatcher"})`, () => {
    test(
      "a request goes to an available worker, its answer settles it once",
      { timeout: 60_000 },
      () => {
        const t = rig();
        const r = t.submit();
        assert.equal(t.sent.length, 0, "no worker yet: it waits");
        t.join("a");
        assert.deepEqual(t.sentTo("a"), [r]);
        t.d.answer("a", r, 0, "result", 1);
        assert.equal(t.value(r), "result");
        t.d.answer("a", r, 0, "again", 2); // a late duplicate
        assert.equal(t.settleCounts.get(r), 1);
        const counts = {
          workers: 1,
          busy: 0,
          queued: 0,
          pending: 0,
          completed: 1,
          redispatched: 0,
        };
        assert.deepEqual(t.d.stats(), { ...counts, services: { default: counts } });
      },
    );

    test(
      "code 1 fails the request with UserCodeError carrying the traceback",
      { timeout: 60_000 },
      () => {
        const t = rig();
        t.join("a");
        const r = t.submit();
        t.d.answer("a", r, 1, "Traceback (most recent call last):\nValueError: no", 1);
        const error = t.error(r);
        assert.ok(error instanceof UserCodeError);
        assert.match((error as UserCodeError).traceback, /ValueError: no/);
      },
    );

    test("requests leave the queue in the order they were made", { timeout: 60_000 }, () => {
      const t = rig();
      const ids = Array.from({ length: 5 }, () => t.submit());
      t.join("a");
      for (let i = 0; i < ids.length; i++) t.d.answer("a", t.sent[i].reqId, 0, i, i + 1);
      assert.deepEqual(t.sent.map((s) => s.reqId), ids);
    });

    test("the worker freed last gets the next request; idle workers before busy ones", {
      timeout: 60_000,
    }, () => {
      const t = rig({ prefetch: 1 });
      for (const key of ["a", "b", "c", "d"]) t.join(key);
      const first = [t.submit(), t.submit()];
      assert.deepEqual(t.sent.map((s) => s.worker), ["a", "b"], "joined workers in join order");
      t.d.answer("b", first[1], 0, 1, 1);
      t.submit(2);
      assert.equal(t.sent[2].worker, "b", "b just finished: it goes before c and d");
      t.d.answer("b", t.sent[2].reqId, 0, 1, 3);
      t.d.answer("a", first[0], 0, 1, 4);
      t.submit(5);
      t.submit(5);
      t.submit(5);
      assert.deepEqual(t.sent.slice(3).map((s) => s.worker), ["a", "b", "c"], "freed last, first");

      // With room for a second request, a worker that holds one goes to the back of the line.
      const p = rig({ prefetch: 2 });
      for (const key of ["a", "b", "c"]) p.join(key);
      for (let i = 0; i < 4; i++) p.submit();
      assert.deepEqual(p.sent.map((s) => s.worker), ["a", "b", "c", "a"]);
    });

    test("prefetch 1: no second request before the first is answered", { timeout: 60_000 }, () => {
      const t = rig({ prefetch: 1 });
      t.join("a");
      t.submit();
      t.submit();
      assert.equal(t.sent.length, 1);
      t.d.ping("a", 10); // a ping while holding (crossed our request) changes nothing
      assert.equal(t.sent.length, 1);
    });

    test(
      "prefetch 3 and an announced capacity of 4 bound what a worker holds",
      { timeout: 60_000 },
      () => {
        const t = rig({ prefetch: 3 });
        t.join("a");
        t.join("b", 0, 4);
        for (let i = 0; i < 12; i++) t.submit();
        assert.equal(t.sentTo("a").length, 3, "one serving, two waiting in its socket");
        assert.equal(t.sentTo("b").length, 4 + 2, "four serving, two waiting");
        assert.equal(t.d.stats().queued, 3);
      },
    );

    test("one of our workers may change its capacity; 0 pauses it", { timeout: 60_000 }, () => {
      const t = rig({ prefetch: 1 });
      t.join("a", 0, 2);
      for (let i = 0; i < 6; i++) t.submit();
      assert.equal(t.sentTo("a").length, 2);
      t.d.setCapacity("a", 0, 1);
      t.d.answer("a", t.sent[0].reqId, 0, 0, 2);
      t.d.answer("a", t.sent[1].reqId, 0, 0, 3);
      assert.equal(t.sentTo("a").length, 2, "paused: nothing more");
      t.d.setCapacity("a", 3, 4);
      assert.equal(t.sentTo("a").length, 5);
      t.d.ping("a", 5);
      t.d.ping("a", 6); // ours may ping while it computes: nothing is taken back
      assert.equal(t.d.stats().redispatched, 0);
    });

    test('prefetch "auto": one at a time until fast answers, then up to the 5 ms budget', {
      timeout: 60_000,
    }, () => {
      const t = rig({ prefetch: "auto" });
      t.join("a");
      for (let i = 0; i < 20; i++) t.submit();
      assert.equal(t.sent.length, 1, "unmeasured: gibbs's rule");
      t.d.answer("a", t.sent[0].reqId, 0, 0, 1); // 1 ms per request: credit 5
      assert.equal(t.sentTo("a").length, 1 + 5);
      const slow = rig({ prefetch: "auto" });
      slow.join("s");
      for (let i = 0; i < 5; i++) slow.submit();
      slow.d.answer("s", slow.sent[0].reqId, 0, 0, 250);
      assert.equal(slow.sent.length, 2, "a 250 ms model keeps one at a time");
    });

    test("a worker not heard from within the heartbeat interval is skipped until it speaks", {
      timeout: 60_000,
    }, () => {
      const t = rig();
      t.join("a", 0);
      t.join("b", 0);
      t.d.answer; // both available at t=0
      const r = t.submit(HB + 1); // both are stale now
      assert.equal(t.sent.length, 0);
      t.d.ping("b", HB + 2);
      assert.deepEqual(t.sentTo("b"), [r]);
    });

    test("a worker whose connection is full is skipped, and offered again when it speaks", {
      timeout: 60_000,
    }, () => {
      const t = rig();
      t.join("a");
      t.full.add("a");
      const r = t.submit();
      assert.equal(t.sent.length, 0);
      t.full.delete("a");
      t.d.ping("a", 5);
      assert.deepEqual(t.sentTo("a"), [r]);
    });

    test(
      "what a lost worker held goes to another worker at once, in order",
      { timeout: 60_000 },
      () => {
        const t = rig({ prefetch: 2 });
        t.join("a");
        const r1 = t.submit();
        const r2 = t.submit();
        const r3 = t.submit();
        assert.deepEqual(t.sentTo("a"), [r1, r2]);
        t.join("b");
        assert.deepEqual(t.sentTo("b"), [r3]);
        t.d.answer("b", r3, 0, 3, 1);
        t.d.leave("a", "connection reset", 2);
        assert.deepEqual(t.sentTo("b"), [r3, r1, r2]);
        assert.equal(t.d.stats().redispatched, 2);
        assert.ok(t.logs.some((l) => l.event === "request.redispatched" && l.level === "warn"));
        t.d.answer("a", r1, 0, "late", 3); // gone: ignored
        t.d.answer("b", r1, 0, 1, 4);
        assert.equal(t.value(r1), 1);
      },
    );

    test("a lost request prefers another worker, but takes the one that lost it when alone", {
      timeout: 60_000,
    }, () => {
      const t = rig();
      t.join("a");
      const r = t.submit();
      t.d.ping("a", 1);
      t.d.ping("a", 2); // a second ping while holding: the request never reached it
      assert.deepEqual(t.sentTo("a"), [r, r], "nobody else: resent to a");
      t.join("b");
      t.d.ping("a", 3);
      t.d.ping("a", 4);
      assert.deepEqual(t.sentTo("b"), [r], "b is there: it gets it");
    });

    test("a lost request waits for another worker that is busy; the ones behind it go on", {
      timeout: 60_000,
    }, () => {
      const t = rig();
      t.join("a");
      t.join("b");
      const first = t.submit(); // to a
      const lost = t.submit(); // to b
      assert.deepEqual(t.sent.map((x) => x.worker), ["a", "b"]);
      t.d.ping("b", 1);
      t.d.ping("b", 2); // b pinged twice while holding: it never got it
      assert.equal(t.sentTo("b").length, 1, "not back to b while a is there, though a is busy");
      const fresh = t.submit(3);
      assert.deepEqual(t.sentTo("b"), [lost, fresh], "the request behind it went to b");
      t.d.answer("a", first, 0, 1, 4);
      assert.deepEqual(t.sentTo("a"), [first, lost], "the lost one went to a once a was free");
    });

    test(`a request lost more than ${MAX_REDISPATCH} times is given up with a GibbsError`, {
      timeout: 60_000,
    }, () => {
      const t = rig();
      const r = t.submit();
      for (let i = 0; i <= MAX_REDISPATCH; i++) {
        t.join(`w${i}`, i);
        t.d.leave(`w${i}`, "killed", i);
      }
      const error = t.error(r);
      assert.ok(error instanceof GibbsError);
      assert.match(error.message, /lost 5 times/);
    });

    test("with redispatch off, a lost request waits for its caller's timeout and retries", {
      timeout: 60_000,
    }, () => {
      const t = rig({ redispatch: false });
      t.join("a");
      const r = t.submit(0, 500, 1);
      t.d.leave("a", "killed", 10);
      t.join("b", 20);
      assert.equal(t.sentTo("b").length, 0, "not re-sent");
      t.d.tick(500);
      assert.deepEqual(t.sentTo("b"), [r], "the retry goes out");
      t.d.tick(1000);
      assert.ok(t.error(r) instanceof RequestTimeoutError);
    });

    test("timeout and retries: each attempt gets its own deadline, then RequestTimeoutError", {
      timeout: 60_000,
    }, () => {
      const t = rig();
      t.join("a");
      const r = t.submit(0, 100, 2);
      assert.equal(t.d.nextDeadline(), 100);
      t.d.tick(99);
      assert.equal(t.settled.size, 0);
      t.d.tick(100); // retry 1: the busy worker keeps it; nobody else to send the copy to
      t.join("b", 150);
      assert.deepEqual(t.sentTo("b"), [r]);
      t.d.tick(200);
      t.d.tick(300);
      const error = t.error(r);
      assert.ok(error instanceof RequestTimeoutError);
      assert.match(error.message, /3 attempts/);
      assert.equal(t.d.nextDeadline(), Infinity, "nothing left to time");
    });

    test("an answer from the first worker after a retry still settles the request once", {
      timeout: 60_000,
    }, () => {
      const t = rig();
      t.join("a");
      t.join("b");
      const r = t.submit(0, 100, 1);
      t.d.tick(100);
      assert.equal(t.sent.length, 2);
      t.d.answer(t.sent[0].worker, r, 0, "first", 150);
      t.d.answer(t.sent[1].worker, r, 0, "second", 160);
      assert.equal(t.value(r), "first");
      assert.equal(t.settleCounts.get(r), 1);
      assert.equal(t.d.stats().busy, 0, "both workers are free again");
    });

    test("only a worker a request was sent to may answer it", { timeout: 60_000 }, () => {
      const t = rig();
      t.join("a");
      t.join("b");
      const r = t.submit();
      const other = t.sent[0].worker === "a" ? "b" : "a";
      t.d.answer(other, r, 0, "forged", 1);
      assert.equal(t.settled.size, 0);
      assert.ok(t.logs.some((l) => l.event === "response.unexpected"));
    });

    test("past respBufferSize: evict-oldest fails the oldest, reject-new the new one", {
      timeout: 60_000,
    }, () => {
      const evict = rig({ respBufferSize: 2 });
      const [a, b, c] = [evict.submit(), evict.submit(), evict.submit()];
      assert.ok(evict.error(a) instanceof RequestEvictedError);
      assert.equal(evict.settled.has(b) || evict.settled.has(c), false);
      const reject = rig({ respBufferSize: 2, overflow: "reject-new" });
      const [x, y, z] = [reject.submit(), reject.submit(), reject.submit()];
      assert.ok(reject.error(z) instanceof QueueFullError);
      assert.equal(reject.settled.has(x) || reject.settled.has(y), false);
    });

    test("cancel ends a queued or a held request; the worker's late answer is dropped", {
      timeout: 60_000,
    }, () => {
      const t = rig();
      t.join("a");
      const held = t.submit();
      const queued = t.submit();
      t.d.cancel(queued, new Error("aborted"));
      t.d.cancel(held, new Error("aborted"));
      assert.equal(t.error(held).message, "aborted");
      assert.equal(t.d.stats().queued, 0);
      t.d.answer("a", held, 0, "late", 1);
      assert.equal(t.settleCounts.get(held), 1);
      const next = t.submit(2);
      assert.deepEqual(t.sentTo("a"), [held, next], "the worker took the next one after answering");
    });

    test("a malformed answer quarantines the worker; its requests go to a sound one", {
      timeout: 60_000,
    }, () => {
      const t = rig();
      t.join("a");
      const r = t.submit();
      t.join("b", 1);
      t.d.malformed("a", "not msgpack", 2);
      assert.equal(t.settled.size, 0);
      assert.deepEqual(t.sentTo("b"), [r]);
      assert.ok(t.logs.some((l) => l.event === "worker.quarantined"));
      t.d.ping("a", 3);
      t.submit(3);
      assert.equal(t.sentTo("a").length, 1, "a quarantined worker gets nothing more");
    });

    test("a malformed answer with no sound worker left fails with WorkerProtocolError", {
      timeout: 60_000,
    }, () => {
      const t = rig();
      t.join("a");
      const r = t.submit();
      t.d.malformed("a", "not msgpack", 1);
      assert.ok(t.error(r) instanceof WorkerProtocolError);
    });

    test("messages from a worker that is not there are ignored", { timeout: 60_000 }, () => {
      const t = rig();
      assert.equal(t.d.ping("ghost", 0), false);
      t.d.answer("ghost", "r0", 0, 1, 0);
      t.d.malformed("ghost", "x", 0);
      assert.equal(t.d.workerCount, 0);
    });

    test("a worker joining again under its id replaces the old one and takes back its requests", {
      timeout: 60_000,
    }, () => {
      const t = rig();
      t.join("a");
      const r = t.submit();
      t.join("a", 5); // handover: a fresh connection with the same id
      assert.deepEqual(t.sentTo("a"), [r, r]);
      assert.equal(t.d.workerCount, 1);
    });

    test("requests waiting with no worker are reported every 10 s", { timeout: 60_000 }, () => {
      const t = rig();
      t.submit(0);
      assert.equal(t.d.nextDeadline(), NO_WORKER_WARNING_MS);
      t.d.tick(NO_WORKER_WARNING_MS - 1);
      assert.equal(t.logs.length, 0);
      t.d.tick(NO_WORKER_WARNING_MS);
      assert.equal(t.logs.at(-1)?.event, "requests.waiting");
      assert.match(t.logs.at(-1)!.message, /1 request waiting for 10000 ms: no worker connected/);
      t.d.tick(NO_WORKER_WARNING_MS + 5);
      assert.equal(t.logs.length, 1, "not again before another 10 s");
      t.join("a", NO_WORKER_WARNING_MS + 6);
      assert.equal(t.d.nextDeadline(), Infinity);
    });

    test("a worker of service b never gets service a's requests; a's wait for a's workers", {
      timeout: 60_000,
    }, () => {
      const t = rig();
      t.join("b1", 0, 1, "b");
      const a1 = t.submit(0, 0, 0, { service: "a" });
      const b1 = t.submit(0, 0, 0, { service: "b" });
      assert.deepEqual(t.sent, [{ worker: "b1", reqId: b1 }]);
      t.d.answer("b1", b1, 0, "b", 1);
      assert.equal(t.sentTo("b1").length, 1, "a's request did not go to b's worker");
      t.join("a1", 2, 1, "a");
      assert.deepEqual(t.sentTo("a1"), [a1]);
      const stats = t.d.stats();
      assert.equal(stats.services.a.workers, 1);
      assert.equal(stats.services.b.completed, 1);
      assert.equal(stats.workers, 2);
    });

    test(
      "requests for a service nobody serves are reported, and time out",
      { timeout: 60_000 },
      () => {
        const t = rig();
        t.join("d", 0);
        const r = t.submit(0, 15_000, 0, { service: "gpu" });
        t.d.tick(NO_WORKER_WARNING_MS);
        assert.match(t.logs.at(-1)!.message, /no worker serves "gpu"/);
        t.d.tick(15_000);
        assert.ok(t.error(r) instanceof RequestTimeoutError);
        assert.equal(t.d.stats().services.gpu, undefined, "a service nobody serves is forgotten");
      },
    );

    test(
      "cancelling a request one of our workers holds tells that worker",
      { timeout: 60_000 },
      () => {
        const t = rig();
        t.join("ours", 0, 2);
        t.join("plain", 0);
        const a = t.submit();
        const b = t.submit();
        const c = t.submit();
        const holderOf = (r: string) => t.sent.find((s) => s.reqId === r)!.worker;
        for (const r of [a, b, c]) t.d.cancel(r, new Error("aborted"));
        assert.deepEqual(
          t.cancelled.map((x) => x.reqId).sort(),
          [a, b, c].filter((r) => holderOf(r) === "ours").sort(),
          "only our worker is told; a gibbs worker's late answer is dropped",
        );
        assert.equal(t.d.stats().busy, 2, "their slots stay taken until they answer");
        for (const s of [...t.sent]) t.d.answer(s.worker, s.reqId, 1, "cancelled", 1);
        assert.equal(t.d.stats().busy, 0);
        assert.ok([a, b, c].every((r) => t.settleCounts.get(r) === 1));
      },
    );

    test("a stream: chunks only from its worker, no timeout after the first, loss ends it", {
      timeout: 60_000,
    }, () => {
      const t = rig();
      t.join("w", 0, 1);
      const r = t.submit(0, 100, 3, { stream: true });
      assert.equal(t.d.chunk("w", r, 10)?.reqId, r);
      t.d.tick(1000); // past its timeout: a stream that delivered a chunk is not retried
      assert.equal(t.sent.length, 1);
      assert.equal(t.settled.size, 0);
      t.join("x", 1000, 1);
      assert.equal(t.d.chunk("x", r, 1001), undefined, "a worker without it cannot add chunks");
      t.d.leave("w", "killed", 1002);
      const error = t.error(r);
      assert.match(error.message, /Stream interrupted/);
      assert.equal(t.sentTo("x").length, 0, "not re-sent: its chunks were delivered");
    });

    test(
      "a stream lost before its first chunk is re-sent like any request",
      { timeout: 60_000 },
      () => {
        const t = rig();
        t.join("w", 0, 1);
        t.join("x", 0, 1);
        const r = t.submit(0, 0, 0, { stream: true });
        const first = t.sent[0].worker;
        t.d.leave(first, "killed", 5);
        const second = first === "w" ? "x" : "w";
        assert.deepEqual(t.sentTo(second), [r]);
        t.d.chunk(second, r, 6);
        t.d.answer(second, r, 0, null, 7);
        assert.equal(t.value(r), null);
      },
    );

    test("a declined request goes to another worker at once; it is no loss, no re-dispatch", {
      timeout: 60_000,
    }, () => {
      const t = rig({ prefetch: 1 });
      t.join("a", 0, 2);
      t.join("b", 0, 2);
      const r = t.submit(0, 500, 0);
      const first = t.sent[0].worker;
      const other = first === "a" ? "b" : "a";
      t.d.decline(first, r, 1);
      assert.deepEqual(t.sentTo(other), [r], "re-sent at once");
      assert.equal(t.d.stats().redispatched, 0);
      assert.equal(t.logs.filter((l) => l.level === "warn").length, 0, "nothing worth a warning");
      // The decliner gets nothing more until it announces its capacity (room) again...
      const more = [t.submit(2), t.submit(2), t.submit(2)];
      assert.deepEqual(t.sentTo(first), [r]);
      assert.deepEqual(t.sentTo(other), [r, more[0]], "the other one's capacity is 2");
      t.d.ping(first, 3); // ...a heartbeat is not room
      assert.deepEqual(t.sentTo(first), [r]);
      // The request's clock was not reset: it still times out 500 ms after it was made.
      assert.equal(t.d.request(r)?.deadline, 500);
      // Room: what there is for it (up to its credit), a pass, then nothing until the next room.
      t.d.room(first, 4);
      assert.deepEqual(t.sentTo(first), [r, more[1], more[2]]);
      assert.deepEqual(t.passes, [first]);
      t.d.answer(first, more[1], 0, 1, 5);
      const later = t.submit(5);
      assert.deepEqual(t.sentTo(first), [r, more[1], more[2]], "its turn is over");
      t.d.room(first, 6);
      assert.deepEqual(t.sentTo(first), [r, more[1], more[2], later]);
      // Room with nothing to send: a pass alone, and it takes requests as before.
      t.d.answer(first, later, 0, 1, 7);
      t.d.room(first, 8);
      assert.deepEqual(t.passes, [first, first, first]);
      const after = t.submit(9);
      assert.ok(t.sentTo(first).includes(after) || t.sentTo(other).includes(after));
      // A capacity announcement after a decline: as before, no pass.
      t.d.decline(first, r, 10); // (r is not held by it any more: still a decline)
      t.d.setCapacity(first, 2, 11);
      assert.deepEqual(t.passes, [first, first, first]);
    });

    test(
      "a request declined more often than any loss allows still completes",
      { timeout: 60_000 },
      () => {
        const t = rig({ prefetch: 1 });
        t.join("a", 0, 1);
        const r = t.submit(0);
        for (let i = 1; i <= 3 * MAX_REDISPATCH; i++) {
          t.d.decline("a", r, i);
          assert.equal(t.d.request(r)?.state, "queued", "waits: its only worker is full");
          t.d.setCapacity("a", 1, i);
        }
        assert.equal(t.sentTo("a").length, 3 * MAX_REDISPATCH + 1);
        t.d.answer("a", r, 0, "done", 100);
        assert.equal(t.value(r), "done");
      },
    );

    test("a declined copy of a retried request is not queued again while another copy is out", {
      timeout: 60_000,
    }, () => {
      const t = rig({ prefetch: 1 });
      t.join("a", 0, 1);
      t.join("b", 0, 1);
      const r = t.submit(0, 100, 1);
      t.d.tick(100); // the retry's copy goes to the other worker
      assert.equal(t.sent.length, 2);
      t.d.decline(t.sent[1].worker, r, 101);
      assert.equal(t.d.request(r)?.state, "sent");
      assert.equal(t.d.stats().queued, 0);
      t.d.answer(t.sent[0].worker, r, 0, "first", 102);
      assert.equal(t.value(r), "first");
    });

    test("only our workers decline; one that declines what it streamed is quarantined", {
      timeout: 60_000,
    }, () => {
      const t = rig();
      t.join("plain");
      const r = t.submit();
      t.d.decline("plain", r, 1); // a gibbs worker cannot send it: ignored
      assert.deepEqual(t.sentTo("plain"), [r]);
      assert.equal(t.d.request(r)?.state, "sent");
      const s = rig();
      s.join("w", 0, 1);
      const q = s.submit(0, 0, 0, { stream: true });
      s.d.chunk("w", q, 1);
      s.d.decline("w", q, 2);
      assert.ok(s.logs.some((l) => l.event === "worker.quarantined"));
      assert.ok(s.error(q) instanceof WorkerProtocolError);
    });

    test("close fails everything pending and refuses what comes after", { timeout: 60_000 }, () => {
      const t = rig();
      t.join("a");
      const held = t.submit();
      const queued = t.submit();
      t.d.close(new HubClosedError());
      assert.ok(t.error(held) instanceof HubClosedError);
      assert.ok(t.error(queued) instanceof HubClosedError);
      const late = t.submit();
      assert.ok(t.error(late) instanceof HubClosedError);
      assert.equal(t.d.stats().pending, 0);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Generated interleavings against a reference model.

type Op =
  | { op: "submit"; timeout: number; retries: number; service: string; stream: boolean }
  | { op: "join"; w: number; capacity: number; service: string }
  | { op: "chunk"; w: number; pick: number }
  | { op: "leave"; w: number }
  | { op: "ping"; w: number }
  | { op: "answer"; w: number; pick: number; code: 0 | 1 }
  | { op: "malformed"; w: number }
  | { op: "cancel"; pick: number }
  | { op: "full"; w: number; on: boolean }
  | { op: "capacity"; w: number; capacity: number }
  | { op: "decline"; w: number; pick: number }
  | { op: "room"; w: number }
  | { op: "time"; ms: number };

const WORKERS = 4;
const w = fc.integer({ min: 0, max: WORKERS - 1 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    arbitrary: fc.record({
      op: fc.constant("submit" as const),
      timeout: fc.constantFrom(0, 0, 50, 300),
      retries: fc.constantFrom(0, 1, 2, -1),
      service: fc.constantFrom("default", "default", "b"),
      stream: fc.boolean(),
    }),
    weight: 5,
  },
  {
    arbitrary: fc.record({
      op: fc.constant("join" as const),
      w,
      capacity: fc.constantFrom(0, 0, 2, 5),
      service: fc.constantFrom("default", "default", "b"),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({ op: fc.constant("chunk" as const), w, pick: fc.nat() }),
    weight: 2,
  },
  { arbitrary: fc.record({ op: fc.constant("leave" as const), w }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant("ping" as const), w }), weight: 3 },
  {
    arbitrary: fc.record({
      op: fc.constant("answer" as const),
      w,
      pick: fc.nat(),
      code: fc.constantFrom(0 as const, 0 as const, 1 as const),
    }),
    weight: 6,
  },
  { arbitrary: fc.record({ op: fc.constant("malformed" as const), w }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant("cancel" as const), pick: fc.nat() }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant("full" as const), w, on: fc.boolean() }), weight: 1 },
  {
    arbitrary: fc.record({
      op: fc.constant("capacity" as const),
      w,
      capacity: fc.constantFrom(0, 1, 3),
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({ op: fc.constant("decline" as const), w, pick: fc.nat() }),
    weight: 2,
  },
  { arbitrary: fc.record({ op: fc.constant("room" as const), w }), weight: 1 },
  {
    arbitrary: fc.record({ op: fc.constant("time" as const), ms: fc.constantFrom(1, 40, 400) }),
    weight: 3,
  },
);

interface ModelWorker {
  service: string;
  connected: boolean;
  quarantined: boolean;
  capacity: number;
  /** Requests sent to this connection and not answered by it (whatever their state now). */
  held: string[];
  full: boolean;
  /** Declined a request and did not announce its capacity since: must get nothing. */
  declined: boolean;
}

/**
 * Runs one interleaving and checks, after every step, what the rules promise: every request
 * ends exactly once and with the right outcome, never goes to a quarantined or full worker,
 * no worker holds more than its credit, fresh requests are first sent in the order they were
 * made, and the counters agree with the model.
 */
function runInterleaving(ops: Op[], prefetch: number, respBufferSize: number): void {
  let now = 0;
  const settled = new Map<string, Outcome>();
  const workers: (ModelWorker | undefined)[] = [];
  const submitted: string[] = [];
  const firstSends = new Map<string, number[]>();
  const everSent = new Set<string>();
  const serviceOf = new Map<string, string>();
  /** Streams that delivered a chunk, and the worker whose chunks count. */
  const streamingFrom = new Map<string, string>();
  const key = (i: number) => `w${i}`;
  const indexOf = (k: string) => Number(k.slice(1));
  /** What the host was asked to send, in order: `send w1`, `pass w1`. */
  const wire: string[] = [];
  // Capacity: 0 a plain worker (prefetch applies), -1 one of ours that takes nothing now.
  const credit = (m: ModelWorker) =>
    m.capacity > 0 ? m.capacity - 1 + prefetch : m.capacity < 0 ? 0 : prefetch;
  const d = new Dispatcher<null>({
    heartbeatMs: 1e9, // staleness has its own scenario test; here every worker is live
    respBufferSize,
    overflow: "evict-oldest",
    redispatch: true,
    prefetch,
  }, {
    send(ws, r) {
      const m = workers[indexOf(ws.key)];
      assert.ok(m?.connected, `sent to ${ws.key}, which is not connected`);
      assert.equal(m.quarantined, false, `sent to quarantined ${ws.key}`);
      assert.equal(m.declined, false, `sent to ${ws.key}, which declined and has no room`);
      if (m.full) return false;
      const reqId = r.reqId;
      assert.equal(settled.has(reqId), false, `sent ${reqId} after it ended`);
      assert.equal(m.service, serviceOf.get(reqId), `${reqId} sent to another service's worker`);
      assert.equal(streamingFrom.has(reqId), false, `${reqId} re-sent after its stream began`);
      assert.ok(m.held.length < credit(m), `${ws.key} over its credit of ${credit(m)}`);
      m.held.push(reqId);
      wire.push(`send ${ws.key}`);
      if (!everSent.has(reqId)) {
        everSent.add(reqId);
        const list = firstSends.get(m.service) ?? [];
        list.push(Number(reqId.slice(1)));
        firstSends.set(m.service, list);
      }
      return true;
    },
    cancel(ws, r) {
      const m = workers[indexOf(ws.key)];
      assert.ok(m?.connected && m.capacity !== 0, `cancel sent to ${ws.key}, not one of ours`);
      assert.ok(m.held.includes(r.reqId), `cancel of ${r.reqId} sent to ${ws.key}, which lacks it`);
    },
    pass(ws) {
      wire.push(`pass ${ws.key}`);
    },
    settle(r, outcome) {
      assert.equal(settled.has(r.reqId), false, `${r.reqId} settled twice`);
      settled.set(r.reqId, outcome);
    },
    log() {},
  });
  for (const op of ops) {
    stepsRun++;
    switch (op.op) {
      case "submit": {
        const reqId = `r${submitted.length}`;
        submitted.push(reqId);
        serviceOf.set(reqId, op.service);
        d.submit(reqId, new TextEncoder().encode(reqId), null, now, {
          timeoutMs: op.timeout,
          retries: op.retries,
          service: op.service,
          stream: op.stream,
        });
        break;
      }
      case "join":
        if (workers[op.w]?.connected) d.leave(key(op.w), "replaced", now);
        workers[op.w] = {
          service: op.service,
          connected: true,
          quarantined: false,
          capacity: op.capacity,
          held: [],
          full: false,
          declined: false,
        };
        // Capacity 0 stands for a plain gibbs worker, which announces none.
        d.join(key(op.w), new TextEncoder().encode(key(op.w)), now, {
          capacity: op.capacity || undefined,
          service: op.service,
        });
        d.ping(key(op.w), now);
        break;
      case "leave":
        if (workers[op.w]?.connected) workers[op.w]!.connected = false;
        d.leave(key(op.w), "gone", now);
        break;
      case "ping":
        if (workers[op.w]?.connected) {
          // Our model of a well-behaved plain worker never pings twice while holding.
          if (workers[op.w]!.capacity === 0 && workers[op.w]!.held.length > 0) break;
          d.ping(key(op.w), now);
        }
        break;
      case "answer": {
        const m = workers[op.w];
        if (!m?.connected || m.quarantined || m.held.length === 0) break;
        const [reqId] = m.held.splice(op.pick % m.held.length, 1);
        const from = streamingFrom.get(reqId);
        // A stream that began on another copy ends with that copy's answer only.
        const wasPending = d.request(reqId) !== undefined &&
          (from === undefined || from === key(op.w));
        d.answer(key(op.w), reqId, op.code, `value of ${reqId}`, now);
        if (wasPending) {
          const outcome = settled.get(reqId);
          assert.ok(outcome, `${reqId} answered but not settled`);
          if (op.code === 0) {
            assert.ok(outcome.ok && outcome.value === `value of ${reqId}`, "wrong result");
          } else {
            assert.ok(!outcome.ok && outcome.error instanceof UserCodeError, "wrong error");
          }
        }
        break;
      }
      case "chunk": {
        const m = workers[op.w];
        if (!m?.connected || m.quarantined || m.capacity === 0 || m.held.length === 0) break;
        const reqId = m.held[op.pick % m.held.length];
        const accepted = d.chunk(key(op.w), reqId, now);
        const from = streamingFrom.get(reqId);
        if (accepted !== undefined) {
          assert.ok(from === undefined || from === key(op.w), `${reqId}: chunks from two workers`);
          assert.equal(settled.has(reqId), false, `chunk accepted for ended ${reqId}`);
          streamingFrom.set(reqId, key(op.w));
        }
        break;
      }
      case "malformed": {
        const m = workers[op.w];
        if (!m?.connected || m.quarantined) break;
        m.quarantined = true;
        m.held = [];
        d.malformed(key(op.w), "garbage", now);
        break;
      }
      case "cancel": {
        const open = submitted.filter((r) => !settled.has(r));
        if (open.length === 0) break;
        const reqId = open[op.pick % open.length];
        d.cancel(reqId, new Error("aborted"));
        const outcome = settled.get(reqId);
        assert.ok(outcome && !outcome.ok && outcome.error.message === "aborted");
        break;
      }
      case "full": {
        const m = workers[op.w];
        if (!m?.connected) break;
        m.full = op.on;
        // Room again: the hub's sweep tries the queue again (a plain worker does not ping).
        if (!op.on) d.pump(now);
        break;
      }
      case "capacity": {
        const m = workers[op.w];
        if (!m?.connected || m.capacity === 0) break; // only our workers announce changes
        // Lowered below what it holds: it keeps those, and gets no more until below again.
        m.capacity = op.capacity === 0 ? -1 : op.capacity;
        m.declined = false;
        const before = wire.length;
        d.setCapacity(key(op.w), op.capacity, now);
        assert.ok(!wire.slice(before).some((x) => x.startsWith("pass")), "a pass for capacity");
        break;
      }
      case "room": {
        const m = workers[op.w];
        if (!m?.connected || m.quarantined || m.capacity === 0) break; // only ours offer room
        m.declined = false;
        const before = wire.length;
        d.room(key(op.w), now);
        // What requests there are for it, then a pass; then nothing until the next offer.
        const out = wire.slice(before);
        assert.equal(out.at(-1), `pass ${key(op.w)}`, "the pass comes last");
        assert.equal(out.filter((x) => x.startsWith("pass")).length, 1);
        m.declined = out.includes(`send ${key(op.w)}`);
        break;
      }
      case "decline": {
        // One of ours declines a request it was sent (never one it streamed chunks of).
        const m = workers[op.w];
        if (!m?.connected || m.quarantined || m.capacity === 0) break;
        const candidates = m.held.filter((r) => streamingFrom.get(r) !== key(op.w));
        if (candidates.length === 0) break;
        const reqId = candidates[op.pick % candidates.length];
        m.held.splice(m.held.indexOf(reqId), 1);
        m.declined = true;
        const redispatched = d.stats().redispatched;
        const wasPending = d.request(reqId) !== undefined;
        d.decline(key(op.w), reqId, now);
        assert.equal(d.stats().redispatched, redispatched, "a decline counted as a re-dispatch");
        if (wasPending) {
          assert.equal(settled.has(reqId), false, `${reqId} ended by a decline`);
          // Elsewhere at once: held by a worker now, or at the head of the queue.
          const heldElsewhere = workers.some((o) => o?.connected && o.held.includes(reqId));
          assert.ok(
            heldElsewhere || d.request(reqId)?.state === "queued",
            `${reqId} neither re-sent nor queued after a decline`,
          );
        }
        break;
      }
      case "time":
        now += op.ms;
        d.tick(now);
        break;
    }
    const open = submitted.filter((r) => !settled.has(r)).length;
    assert.equal(d.stats().pending, open, "pending count");
    assert.equal(d.stats().workers, workers.filter((m) => m?.connected).length, "worker count");
  }
  // Fresh requests of a service first go out in the order they were made.
  for (const [service, list] of firstSends) {
    for (let i = 1; i < list.length; i++) {
      assert.ok(list[i - 1] < list[i], `order broken for ${service}: ${list}`);
    }
  }
  d.close(new HubClosedError());
  for (const reqId of submitted) assert.ok(settled.has(reqId), `${reqId} never ended`);
}

let stepsRun = 0;

describe("request numbering", () => {
  test("ids the host does not number never collide with those it numbers", {
    timeout: 60_000,
  }, () => {
    const t = baseRig({ requestSeq: seqOfR, prefetch: 4 });
    t.join("a", 0, 8);
    const foreign = ["x", "y"];
    for (const id of foreign) t.d.submit(id, enc.encode(id), null, 0, {});
    const ours = [t.submit(), t.submit()]; // r0, r1: numbered 0 and 1 by the host
    assert.deepEqual(t.sentTo("a"), [...foreign, ...ours]);
    for (const id of [...ours, ...foreign]) {
      assert.equal(t.d.request(id)?.reqId, id, `${id} is found by its id`);
    }
    t.d.answer("a", "y", 0, "Y", 1);
    t.d.answer("a", "r0", 0, "R0", 1);
    t.d.answer("a", "x", 0, "X", 1);
    t.d.answer("a", "r1", 0, "R1", 1);
    assert.deepEqual([t.value("x"), t.value("y"), t.value("r0"), t.value("r1")], [
      "X",
      "Y",
      "R0",
      "R1",
    ]);
    assert.equal(t.d.stats().pending, 0);
  });
});

describe("dispatcher interleavings (fast-check)", () => {
  for (const prefetch of [1, 3]) {
    test(`3,000 interleavings, prefetch ${prefetch}: every request ends exactly once`, {
      timeout: 60_000,
    }, () => {
      fc.assert(
        fc.property(
          fc.array(opArb, { minLength: 20, maxLength: 150, size: "max" }),
          fc.constantFrom(4, 50),
          (ops, respBufferSize) => runInterleaving(ops, prefetch, respBufferSize),
        ),
        { numRuns: 3000 },
      );
    });
  }

  test("the interleavings really ran", { timeout: 60_000 }, () => {
    assert.ok(stepsRun > 2 * 3000 * 10, `only ${stepsRun} steps ran`);
  });
});
