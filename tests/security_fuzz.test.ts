/**
 * A bounded slice of the CURVE fuzz properties that `scripts/fuzz.ts` runs at length (about 1 s
 * each). A failure reports the seed and path that replay it.
 */

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { CURVE_PROPERTIES } from "./_security_cases.ts";

/** Time each property may run, in ms. */
const SLICE_MS = 1000;
/** Fewest cases a slice must manage (a CURVE case costs about 7 ms, more on a loaded machine). */
const MIN_CASES = 15;

describe("CURVE fuzz slice", () => {
  for (const [name, make] of Object.entries(CURVE_PROPERTIES)) {
    test(name, () => {
      const details = fc.check(make(), {
        numRuns: 1_000_000,
        interruptAfterTimeLimit: SLICE_MS,
        markInterruptAsFailure: false,
      });
      if (details.failed) {
        throw new Error(
          `${name}: ${fc.defaultReportMessage(details)}\n${details.errorInstance}\n` +
            `replay: deno run -A scripts/fuzz.ts --property ${name} --seed ${details.seed}` +
            ` --path ${details.counterexamplePath}`,
        );
      }
      assert.ok(details.numRuns >= MIN_CASES, `${name}: only ${details.numRuns} cases ran`);
    });
  }
});
