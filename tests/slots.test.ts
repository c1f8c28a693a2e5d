/**
 * A worker's capacity shared by several hubs, alone: no socket, no process. Scenario tests for
 * each rule, then generated sequences of arrivals, answers and capacity changes checked after
 * every step against what the rules promise.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { type SlotActions, SlotLedger } from "../src/gibbs/slots.ts";

type Actions = SlotActions<string, string>;
const jobs = (list: { job: string }[]) => list.map((x) => x.job);
const none = { start: [], decline: [], offer: [], resume: [] };

describe("slots shared by hubs", () => {
  test(
    "a free slot is taken at once; none is ever held beyond the capacity",
    { timeout: 60_000 },
    () => {
      const s = new SlotLedger<string, string>(2);
      assert.deepEqual(jobs(s.arrive("A", "a1", true).start), ["a1"]);
      assert.deepEqual(jobs(s.arrive("B", "b1", true).start), ["b1"]);
      assert.equal(s.free, 0);
      assert.deepEqual(s.arrive("C", "c1", true), { ...none, decline: [{ link: "C", job: "c1" }] });
      assert.equal(s.held, 2);
      assert.equal(s.peak, 2);
    },
  );

  test(
    "full: a request waits behind its own hub's, another hub's is declined",
    { timeout: 60_000 },
    () => {
      const s = new SlotLedger<string, string>(1);
      s.arrive("A", "a1", true);
      assert.deepEqual(s.arrive("A", "a2", true), none, "a2 waits: A holds the slot");
      assert.equal(s.waitingFor("A"), 1);
      assert.deepEqual(jobs(s.arrive("B", "b1", true).decline), ["b1"]);
      assert.equal(s.inLine("B"), true);
      assert.deepEqual(jobs(s.release("A").start), ["a2"], "A's own prefetch takes its slot");
      assert.deepEqual(s.release("A"), { ...none, resume: ["B"] }, "B alone in line: resumes");
      assert.equal(s.inLine("B"), false);
      assert.throws(() => s.release("A"), /not held/);
    },
  );

  test("hubs in line take turns: a slot kept for each, first come first served", {
    timeout: 60_000,
  }, () => {
    const s = new SlotLedger<string, string>(1);
    s.arrive("A", "a1", true);
    s.arrive("B", "b1", true); // declined: B in line
    s.arrive("C", "c1", true); // declined: C in line
    assert.deepEqual(s.arrive("A", "a2", true).decline.length, 1, "A may not queue more");
    assert.deepEqual(s.release("A"), { ...none, offer: ["B"] }, "B was first in line");
    assert.equal(s.free, 0, "the slot is kept for B");
    assert.deepEqual(jobs(s.arrive("C", "c2", true).decline), ["c2"], "not C's");
    // B's turn: what it sends for the room waits behind its first request.
    assert.deepEqual(jobs(s.arrive("B", "b2", true).start), ["b2"]);
    assert.deepEqual(s.arrive("B", "b3", true), none);
    assert.deepEqual(jobs(s.release("B").start), ["b3"]);
    assert.deepEqual(s.release("B"), none, "freed during B's turn: still B's");
    assert.equal(s.keptFor("B"), 1);
    assert.deepEqual(jobs(s.arrive("B", "b4", true).start), ["b4"]);
    // B passes: back in line, behind C and A.
    assert.deepEqual(s.pass("B"), none);
    assert.equal(s.inLine("B"), true);
    assert.deepEqual(jobs(s.arrive("B", "b5", true).decline), ["b5"], "its turn is over");
    assert.deepEqual(s.release("B").offer, ["C"]);
    assert.deepEqual(s.pass("C"), { ...none, offer: ["A"] }, "C sent nothing: A is next");
    assert.equal(s.inLine("C"), false, "C is back to normal");
    assert.deepEqual(s.pass("A"), { ...none, resume: ["B"] }, "B alone in line: resumes");
    assert.deepEqual(s.pass("A"), none, "a stale pass");
    assert.equal(s.free, 1);
  });

  test("a gibbs hub cannot be declined: its request waits, and takes the next free slot", {
    timeout: 60_000,
  }, () => {
    const s = new SlotLedger<string, string>(1);
    s.arrive("A", "a1", true);
    s.arrive("A", "a2", true);
    const g = s.arrive("G", "g1", false);
    assert.deepEqual(g, none);
    const next = s.release("A");
    assert.deepEqual(jobs(next.start), ["g1"], "before A's own a2");
    assert.deepEqual(jobs(next.decline), ["a2"], "a2 would wait on G's slot: declined");
    assert.equal(s.inLine("A"), true);
  });

  test("a freed slot goes to the freeing hub's next request, else to the oldest waiting", {
    timeout: 60_000,
  }, () => {
    const s = new SlotLedger<string, string>(2);
    s.arrive("A", "a1", true);
    s.arrive("A", "a2", true);
    // A has the capacity in the worker: what it sends now is prefetch, and waits.
    assert.deepEqual(s.arrive("A", "a3", true), none);
    assert.deepEqual(s.arrive("A", "a4", true), none);
    assert.deepEqual(jobs(s.arrive("B", "b1", true).decline), ["b1"]);
    assert.deepEqual(jobs(s.arrive("C", "c1", true).decline), ["c1"]);
    assert.deepEqual(jobs(s.release("A").start), ["a3"], "A's own, though B and C are in line");
    assert.deepEqual(jobs(s.release("A").start), ["a4"]);
    assert.deepEqual(s.release("A").offer, ["B"]);
    assert.deepEqual(jobs(s.arrive("B", "b2", true).start), ["b2"]);
    assert.deepEqual(s.arrive("B", "b3", true), none, "B's turn: it waits behind b2");
    assert.deepEqual(s.pass("B"), none);
    // A meant a5 to run at once (it has less than the capacity here): declined, not queued.
    assert.deepEqual(jobs(s.arrive("A", "a5", true).decline), ["a5"]);
    assert.deepEqual(jobs(s.release("A").start), ["b3"], "A has none waiting: the oldest");
  });

  test("a request its hub meant to run at once is declined, not queued, when slots are taken", {
    timeout: 60_000,
  }, () => {
    const s = new SlotLedger<string, string>(4);
    s.arrive("A", "a1", true);
    s.arrive("B", "b1", true);
    s.arrive("B", "b2", true);
    s.arrive("B", "b3", true);
    // Hub A believes it has 3 free slots here (it holds 1 of 4): the worker gave them to B.
    assert.deepEqual(jobs(s.arrive("A", "a2", true).decline), ["a2"]);
    assert.deepEqual(jobs(s.arrive("B", "b4", true).decline), ["b4"], "so did B (3 of 4)");
  });

  test("capacity down: a hub left without a slot has its waiting requests declined", {
    timeout: 60_000,
  }, () => {
    const s = new SlotLedger<string, string>(3);
    s.arrive("A", "a1", true);
    s.arrive("A", "a2", true);
    s.arrive("A", "a3", true);
    assert.deepEqual(s.arrive("A", "a4", true), none, "prefetch");
    assert.deepEqual(s.arrive("G", "g1", false), none);
    assert.deepEqual(s.setCapacity(1), none);
    assert.equal(s.held, 3, "what is held stays held");
    assert.deepEqual(s.release("A"), none, "2 held, 1 allowed");
    assert.deepEqual(s.release("A"), none);
    const gone = s.release("A");
    assert.deepEqual(jobs(gone.start), ["g1"], "the gibbs hub's first");
    assert.deepEqual(jobs(gone.decline), ["a4"], "A holds nothing now, and no slot is free");
    assert.deepEqual(s.release("G"), { ...none, resume: ["A"] });
    assert.equal(s.free, 1);
  });

  test(
    "capacity down takes back a kept slot: its hub is first in line again",
    { timeout: 60_000 },
    () => {
      const s = new SlotLedger<string, string>(2);
      s.arrive("A", "a1", true);
      s.arrive("A", "a2", true);
      s.arrive("B", "b1", true); // declined
      s.arrive("C", "c1", true); // declined
      assert.deepEqual(s.release("A").offer, ["B"]);
      s.setCapacity(1);
      assert.equal(s.keptFor("B"), 0);
      assert.equal(s.inLine("B"), true);
      assert.equal(s.hasTurn("B"), false);
      assert.deepEqual(s.release("A").offer, ["B"], "B before C");
    },
  );

  test("capacity up starts what waits", { timeout: 60_000 }, () => {
    const s = new SlotLedger<string, string>(1);
    s.arrive("A", "a1", true);
    s.arrive("A", "a2", true);
    s.arrive("A", "a3", true);
    assert.deepEqual(jobs(s.setCapacity(3).start), ["a2", "a3"]);
  });

  test("withdraw, forget and drain take waiting requests out without touching slots", {
    timeout: 60_000,
  }, () => {
    const s = new SlotLedger<string, string>(1);
    s.arrive("A", "a1", true);
    s.arrive("A", "a2", true);
    s.arrive("A", "a3", true);
    s.arrive("G", "g1", false);
    s.arrive("B", "b1", true);
    assert.equal(s.withdraw("A", (j) => j === "a3"), "a3");
    assert.equal(s.withdraw("A", (j) => j === "zz"), undefined);
    assert.deepEqual(s.forget("B").dropped, []);
    assert.equal(s.inLine("B"), false, "a hub that left is owed nothing");
    assert.deepEqual(s.drain(), [{ link: "A", job: "a2" }, { link: "G", job: "g1" }]);
    assert.equal(s.waiting, 0);
    assert.equal(s.held, 1);
    assert.deepEqual(s.release("A"), none);
  });

  test("a hub that leaves with a slot kept for it hands the slot on", { timeout: 60_000 }, () => {
    const s = new SlotLedger<string, string>(1);
    s.arrive("A", "a1", true);
    s.arrive("B", "b1", true);
    s.arrive("C", "c1", true);
    assert.deepEqual(s.release("A").offer, ["B"]);
    assert.deepEqual(s.forget("B").actions, { ...none, resume: ["C"] });
  });

  test("an announcement for another reason takes a hub out of line", { timeout: 60_000 }, () => {
    const s = new SlotLedger<string, string>(1);
    s.arrive("A", "a1", true);
    s.arrive("B", "b1", true);
    s.announced("B");
    assert.deepEqual(s.release("A"), none);
  });

  test("capacity must be an integer >= 1", { timeout: 60_000 }, () => {
    assert.throws(() => new SlotLedger(0), /capacity must be an integer >= 1, got 0/);
    assert.throws(() => new SlotLedger(1).setCapacity(1.5), RangeError);
  });
});

// ---------------------------------------------------------------------------------------------
// Generated sequences.

type Op =
  | { op: "arrive"; link: number }
  | { op: "release"; pick: number }
  | { op: "pass"; link: number }
  | { op: "capacity"; capacity: number }
  | { op: "withdraw"; pick: number }
  | { op: "forget"; link: number }
  | { op: "announced"; link: number };

/** Hubs A, B, C are ours (declinable); G is a gibbs hub. */
const LINKS = ["A", "B", "C", "G"];
const link = fc.integer({ min: 0, max: LINKS.length - 1 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.record({ op: fc.constant("arrive" as const), link }), weight: 8 },
  { arbitrary: fc.record({ op: fc.constant("release" as const), pick: fc.nat() }), weight: 6 },
  { arbitrary: fc.record({ op: fc.constant("pass" as const), link }), weight: 2 },
  {
    arbitrary: fc.record({
      op: fc.constant("capacity" as const),
      capacity: fc.integer({ min: 1, max: 4 }),
    }),
    weight: 1,
  },
  { arbitrary: fc.record({ op: fc.constant("withdraw" as const), pick: fc.nat() }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant("forget" as const), link }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant("announced" as const), link }), weight: 1 },
);

let steps = 0;

/** Runs one sequence and checks the rules after every step. */
function runSequence(initial: number, ops: Op[]): void {
  const s = new SlotLedger<string, string>(initial);
  let capacity = initial;
  let n = 0;
  const arrivalOf = new Map<string, number>();
  const linkOf = new Map<string, string>();
  const waiting: string[] = []; // in arrival order
  const holding: string[] = [];
  const ended = new Set<string>();
  /** When each hub in line got in line (a step number), while the order is known. */
  const joined = new Map<string, number>();
  let orderKnown = true;
  /** Hubs that took a kept slot during their turn. */
  const used = new Set<string>();
  const lastStartedFromWaiting = new Map<string, number>();
  let step = 0;

  const apply = (a: Actions, arriving?: string) => {
    const firmWaiting = waiting.filter((j) => linkOf.get(j) === "G");
    for (const [i, { link, job }] of a.start.entries()) {
      assert.equal(linkOf.get(job), link);
      if (job === arriving) {
        assert.equal(i, 0);
      } else {
        const at = waiting.indexOf(job);
        assert.ok(at >= 0, `${job} started without waiting`);
        waiting.splice(at, 1);
        if (i === 0 && firmWaiting.length > 0) {
          assert.equal(job, firmWaiting[0], "a gibbs hub's waiting request goes first");
        }
        // Within a hub, waiting requests start in the order they came.
        const seq = arrivalOf.get(job)!;
        assert.ok((lastStartedFromWaiting.get(link) ?? -1) < seq, `${link}: out of order`);
        lastStartedFromWaiting.set(link, seq);
      }
      holding.push(job);
    }
    if (a.start.length > 0) assert.ok(s.held <= capacity, `held ${s.held} > ${capacity}`);
    for (const { link, job } of a.decline) {
      assert.notEqual(link, "G", "a gibbs hub's request declined");
      if (job !== arriving) {
        const at = waiting.indexOf(job);
        assert.ok(at >= 0, `${job} declined without waiting`);
        waiting.splice(at, 1);
      }
      ended.add(job);
    }
    for (const link of a.offer) {
      assert.ok(s.hasTurn(link) && s.keptFor(link) >= 1, `${link} offered without a kept slot`);
      used.delete(link);
    }
    for (const link of a.resume) {
      assert.ok(!s.inLine(link) && !s.hasTurn(link), `${link} resumed but still in line`);
      assert.equal(a.offer.length, 0, "a resume and an offer at once");
    }
    if (orderKnown) {
      // First come, first served: nobody in line since before an offered hub is still waiting.
      for (const link of [...a.offer, ...a.resume]) {
        const at = joined.get(link) ?? step;
        for (const [other, since] of joined) {
          if (other !== link && s.inLine(other) && !s.hasTurn(other)) {
            assert.ok(since >= at, `${link} served before ${other}, in line longer`);
          }
        }
      }
    }
    if (
      arriving !== undefined && !a.start.some((x) => x.job === arriving) &&
      !a.decline.some((x) => x.job === arriving)
    ) {
      waiting.push(arriving);
    }
  };

  for (const op of ops) {
    steps++;
    step++;
    switch (op.op) {
      case "arrive": {
        const l = LINKS[op.link];
        const job = `j${n}`;
        arrivalOf.set(job, n++);
        linkOf.set(job, l);
        const heldBefore = s.heldBy(l);
        const waitingBefore = s.waitingFor(l);
        const keptBefore = s.keptFor(l);
        const freeBefore = s.free;
        const othersInLine = LINKS.some((o) => o !== l && s.inLine(o));
        const turn = s.hasTurn(l);
        const a = s.arrive(l, job, l !== "G");
        const started = a.start.some((x) => x.job === job);
        assert.equal(started, keptBefore > 0 || freeBefore > 0, "starts iff a slot is its or free");
        if (keptBefore > 0) used.add(l);
        apply(a, job);
        // Behind its own hub's requests: in its turn, or as prefetch with nobody else in line.
        const prefetch = heldBefore + waitingBefore >= capacity && !othersInLine;
        const mayWait = heldBefore > 0 && (turn || prefetch);
        if (waiting.includes(job) && l !== "G") assert.ok(mayWait, `${job} waits for nothing`);
        if (a.decline.some((x) => x.job === job)) {
          assert.ok(!mayWait, `${job} declined though it may wait`);
          assert.ok(s.inLine(l), `${l} declined but not in line`);
        }
        break;
      }
      case "release": {
        if (holding.length === 0) break;
        const [job] = holding.splice(op.pick % holding.length, 1);
        const l = linkOf.get(job)!;
        ended.add(job);
        const turn = s.hasTurn(l);
        const keptBefore = s.keptFor(l);
        const nothingWaits = waiting.length === 0;
        const freeBefore = s.free;
        const a = s.release(l);
        if (turn && nothingWaits && freeBefore === 0 && s.held < capacity) {
          assert.equal(s.keptFor(l), keptBefore + 1, "a slot freed in a turn is kept for it");
        }
        apply(a);
        break;
      }
      case "pass": {
        const l = LINKS[op.link];
        const turn = s.hasTurn(l);
        const a = s.pass(l);
        if (turn) {
          if (!a.offer.includes(l)) assert.equal(s.keptFor(l), 0, "kept slots freed by a pass");
          const back = s.inLine(l) || a.offer.includes(l) || a.resume.includes(l);
          assert.equal(back, used.has(l), "in line again iff it sent something in its turn");
        } else {
          assert.deepEqual(a, none, "a stale pass changes nothing");
        }
        used.delete(l);
        apply(a);
        break;
      }
      case "capacity":
        capacity = op.capacity;
        orderKnown = false; // a kept slot taken back puts its hub at the front
        apply(s.setCapacity(op.capacity));
        break;
      case "withdraw": {
        if (waiting.length === 0) break;
        const job = waiting[op.pick % waiting.length];
        assert.equal(s.withdraw(linkOf.get(job)!, (j) => j === job), job);
        waiting.splice(waiting.indexOf(job), 1);
        ended.add(job);
        break;
      }
      case "forget": {
        const l = LINKS[op.link];
        const mine = waiting.filter((j) => linkOf.get(j) === l);
        for (const job of mine) {
          waiting.splice(waiting.indexOf(job), 1);
          ended.add(job);
        }
        used.delete(l);
        const { dropped, actions } = s.forget(l);
        assert.deepEqual(dropped, mine);
        assert.equal(s.inLine(l) || s.hasTurn(l) || s.keptFor(l) > 0, false);
        apply(actions);
        break;
      }
      case "announced":
        s.announced(LINKS[op.link]);
        assert.equal(s.inLine(LINKS[op.link]), false);
        break;
    }
    // After every step:
    for (const l of LINKS) {
      if (s.inLine(l) && !joined.has(l)) joined.set(l, step);
      if (!s.inLine(l)) joined.delete(l);
    }
    if (joined.size === 0) orderKnown = true;
    assert.equal(s.held, holding.length, "slots held");
    assert.equal(s.waiting, waiting.length, "requests waiting");
    assert.equal(s.reserved, LINKS.reduce((sum, l) => sum + s.keptFor(l), 0), "slots kept");
    assert.ok(s.reserved <= Math.max(0, capacity - s.held), "more slots kept than free");
    if (s.free > 0) {
      assert.equal(waiting.length, 0, "a request waits while a slot is free");
      for (const l of LINKS) {
        assert.ok(!s.inLine(l) || s.hasTurn(l), `${l} in line while a slot is free`);
      }
    }
    for (const job of waiting) {
      const l = linkOf.get(job)!;
      if (l !== "G") assert.ok(s.heldBy(l) > 0, `${job} waits on another hub's slot`);
    }
    for (const l of LINKS) {
      if (s.keptFor(l) > 0) assert.ok(s.hasTurn(l), `a slot kept for ${l} out of its turn`);
    }
    for (const job of holding) assert.equal(ended.has(job), false, `${job} ended twice`);
  }
  // Every request is accounted for once: holding, waiting, or ended.
  const all = [...holding, ...waiting, ...ended];
  assert.equal(new Set(all).size, all.length, "a request in two places");
  assert.equal(all.length, n, "a request lost");
  const drained = s.drain();
  assert.deepEqual(jobs(drained), waiting);
  assert.equal(s.reserved, 0);
}

describe("slots shared by hubs (fast-check)", () => {
  test("5,000 generated sequences keep every rule", { timeout: 60_000 }, () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.array(opArb, { minLength: 10, maxLength: 120, size: "max" }),
        runSequence,
      ),
      { numRuns: 5000 },
    );
  });

  test("the sequences really ran", { timeout: 60_000 }, () => {
    assert.ok(steps > 5000 * 20, `only ${steps} steps ran`);
  });
});
