/**
 * The ring-buffer queue under the socket's and the dispatcher's queues: generated sequences of
 * every operation checked against a plain array, across growing, wrapping and shrinking.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { Deque } from "../src/socket/deque.ts";

type Op =
  | { op: "push"; value: number }
  | { op: "unshift"; value: number }
  | { op: "shift" }
  | { op: "peek" }
  | { op: "remove"; value: number }
  | { op: "drain" }
  | { op: "burst"; count: number }
  | { op: "empty" };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant("push" as const), value: fc.nat(50) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant("unshift" as const), value: fc.nat(50) }) },
  { weight: 5, arbitrary: fc.constant({ op: "shift" as const }) },
  { weight: 1, arbitrary: fc.constant({ op: "peek" as const }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("remove" as const), value: fc.nat(50) }) },
  { weight: 1, arbitrary: fc.constant({ op: "drain" as const }) },
  // Bursts past the shrink threshold, then most of them taken: the ring grows and shrinks.
  { weight: 1, arbitrary: fc.record({ op: fc.constant("burst" as const), count: fc.nat(10_000) }) },
  { weight: 1, arbitrary: fc.constant({ op: "empty" as const }) },
);

describe("Deque", () => {
  test("behaves as an array under any sequence of operations", { timeout: 60_000 }, () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 200 }), (ops) => {
        const queue = new Deque<number>();
        const model: number[] = [];
        let next = 1000;
        for (const o of ops) {
          switch (o.op) {
            case "push":
              queue.push(o.value);
              model.push(o.value);
              break;
            case "unshift":
              queue.unshift(o.value);
              model.unshift(o.value);
              break;
            case "shift":
              assert.equal(queue.shift(), model.shift());
              break;
            case "peek":
              assert.equal(queue.peek(), model[0]);
              break;
            case "remove": {
              const at = model.indexOf(o.value);
              assert.equal(queue.remove((x) => x === o.value), at >= 0);
              if (at >= 0) model.splice(at, 1);
              break;
            }
            case "drain":
              assert.deepEqual(queue.drain(), model.splice(0));
              break;
            case "burst":
              for (let i = 0; i < o.count; i++) {
                queue.push(next);
                model.push(next++);
              }
              break;
            case "empty":
              while (model.length > 0) assert.equal(queue.shift(), model.shift());
              assert.equal(queue.shift(), undefined);
              break;
          }
          assert.equal(queue.length, model.length);
        }
        assert.deepEqual(queue.drain(), model);
      }),
      { numRuns: 300 },
    );
  });

  test("a queue that emptied after 100,000 items shifts and pushes as a new one", {
    timeout: 60_000,
  }, () => {
    const queue = new Deque<number>();
    for (let i = 0; i < 100_000; i++) queue.push(i);
    for (let i = 0; i < 100_000; i++) assert.equal(queue.shift(), i);
    assert.equal(queue.length, 0);
    queue.push(7);
    queue.unshift(6);
    assert.deepEqual(queue.drain(), [6, 7]);
  });
});
